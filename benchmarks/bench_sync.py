"""Sync costs: per-sample preprocessing, window build + serialisation per tick, and the window on the wire.

Prints median / p99 in milliseconds. Inputs come from the bundle manifest (the shipped
reference bundle unless --bundle is given; FuSe's documented inputs if there is none), fed
with random frames of the real sensor sizes. One section compares a tick's cost in eager
mode (samples preprocessed on arrival) and lazy mode (preprocessed at the tick). The last
one compares the window as published (each sample's data once, WindowSender) with one that
carries every step every tick (what a receiver that has seen nothing needs, and the layout
before): bytes per window, serialisation, and the receiving side's decode (deserialise,
msg_to_window, WindowReceiver.receive and the (W, ...) arrays the policy feeds the model).
"""

import argparse
import dataclasses
import time

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message

from fuse_core.bundle import parse_manifest, read_manifest, resolve_bundle_path
from fuse_core.errors import BundleError
from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS
from fuse_core.sync import WindowBuilder, WindowReceiver, WindowSender, make_preprocessor, stream_settings
from fuse_core.sync.preprocess import resize
from fuse_core.timing import percentiles
from fuse_interfaces.msg import ObservationWindow
from fuse_nodes.conversions import msg_to_window, window_to_msg

NS = 1_000_000_000

#: FuSe's inputs as docs/CONTRACTS.md documents them (used when no bundle is found).
FUSE_MANIFEST = {
    'format_version': 1, 'name': 'fuse-documented', 'control_rate_hz': 5.0, 'window_size': 2,
    'graphs': {'policy': 'policy.onnx'},
    'inputs': FUSE_OBSERVATION_INPUTS,
    'action': {'horizon': 4, 'dim': 7, 'layout': ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper'],
               'normalization': {'mean': [0.0] * 7, 'std': [1.0] * 7, 'mask': [True] * 6 + [False]},
               'gripper_index': 6},
}

#: Sensor sizes and rates (cameras 640x480 @ 30, DIGIT 320x240 @ 60, spectrogram 128x128 @ 10).
SENSORS = {
    'camera_primary': ((480, 640, 3), 'bgr8', 30.0),
    'camera_wrist': ((480, 640, 3), 'bgr8', 30.0),
    'digit_left': ((240, 320, 3), 'bgr8', 60.0),
    'digit_right': ((240, 320, 3), 'bgr8', 60.0),
    'audio': ((128, 128, 1), '32FC1', 10.0),
}


def load_manifest(bundle: str):
    try:
        return read_manifest(resolve_bundle_path(bundle)), 'bundle'
    except BundleError as exc:
        if bundle:
            raise
        print(f'(no reference bundle: {exc}; using the documented FuSe inputs)')
        return parse_manifest(FUSE_MANIFEST), 'documented'


def sample(rng, stream):
    shape, encoding, _ = SENSORS[stream]
    if encoding == '32FC1':
        return rng.uniform(-80, 0, shape).astype(np.float32), encoding
    return rng.integers(0, 256, shape, dtype=np.uint8), encoding


def timed(fn, iterations):
    fn()
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        out.append(1e3 * (time.perf_counter() - t0))
    return percentiles(out, (50, 99))


def row(label, stats):
    print(f"  {label:68s} {stats['p50']:8.3f} {stats['p99']:8.3f}")


def feed(builder, rng, t_from_ns, t_to_ns):
    """Publish-like feeding of every stream at its real rate over [t_from, t_to)."""
    events = []
    for stream in builder.stream_names:
        period = int(NS / SENSORS[stream][2])
        events += [(t, stream) for t in range(t_from_ns, t_to_ns, period)]
    frames = {s: sample(rng, s) for s in builder.stream_names}
    for t, stream in sorted(events):
        image, encoding = frames[stream]
        builder.add_sample(stream, t, image, encoding)


def fed_builder(manifest, eager, rng):
    streams = stream_settings({s.stream: 1.0 for s in manifest.inputs})
    b = WindowBuilder(manifest.inputs, streams, manifest.window_size, manifest.control_rate_hz, eager=eager)
    for stream in b.tactile_streams():
        b.set_background(stream, *sample(rng, stream))
    t = 1000 * NS
    feed(b, rng, t - NS, t)
    return b, t


def tick_costs(manifest, eager, ticks, rng):
    """Per tick: build+serialise time, and the preprocessing time spent outside the tick."""
    b, t = fed_builder(manifest, eager, rng)
    sender = WindowSender()
    build, total = [], []
    for _ in range(ticks):
        before = sum(ch.pre.prepare_seconds for ch in b.channels)
        feed(b, rng, t, t + b.dt_ns)
        fed = sum(ch.pre.prepare_seconds for ch in b.channels) - before
        t += b.dt_ns
        t0 = time.perf_counter()
        w = b.build(t)
        serialize_message(window_to_msg(sender.carried(w), 'wx250s/base_link'))
        build.append(1e3 * (time.perf_counter() - t0))
        total.append(1e3 * fed)
    return percentiles(build, (50, 99)), percentiles(total, (50, 99))


def wire_costs(manifest, ticks, rng, once: bool):
    """Per window: bytes, build-to-bytes time without preprocessing, and the receiver's decode."""
    b, t = fed_builder(manifest, True, rng)
    sender, receiver = WindowSender(), WindowReceiver()
    sizes, send, decode = [], [], []
    for k in range(ticks + 1):
        # Every sample arrives before the tick after it: none is stamped at or before a tick
        # that was built without it (such a late sample makes the older step new data too).
        feed(b, rng, t + 1, t + b.dt_ns + 1)
        t += b.dt_ns
        t0 = time.perf_counter()
        w = b.build(t)
        if once:
            w_sent = sender.carried(w)
        else:  # every valid step's data (invalid steps carry none in either layout)
            w_sent = dataclasses.replace(w, tensors=[dataclasses.replace(
                x, steps=[d if v else None for d, v in zip(x.steps, x.valid)]) for x in w.tensors])
        raw = serialize_message(window_to_msg(w_sent, 'wx250s/base_link'))
        t1 = time.perf_counter()
        rebuilt = receiver.receive(msg_to_window(deserialize_message(raw, ObservationWindow)))
        arrays = {x.name: x.array for x in rebuilt.tensors}
        t2 = time.perf_counter()
        assert all(x.valid == y.valid for x, y in zip(rebuilt.tensors, w.tensors)) and arrays
        if k:  # the first window carries its data either way
            sizes.append(len(raw))
            send.append(1e3 * (t1 - t0))
            decode.append(1e3 * (t2 - t1))
    return percentiles(sizes, (50, 99)), percentiles(send, (50, 99)), percentiles(decode, (50, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--bundle', default='', help='bundle directory (default: the reference bundle)')
    parser.add_argument('--iterations', type=int, default=200)
    parser.add_argument('--ticks', type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    manifest, origin = load_manifest(args.bundle)
    print(f'manifest {manifest.name!r} ({origin}): W={manifest.window_size}, {manifest.control_rate_hz:g} Hz')
    print(f"  {'': <68s} {'p50 ms':>8s} {'p99 ms':>8s}")

    print('per-sample preprocessing (once per sample):')
    for spec in manifest.inputs:
        pre = make_preprocessor(spec)
        image, encoding = sample(rng, spec.stream)
        if hasattr(pre, 'set_background'):
            pre.set_background(*sample(rng, spec.stream))
        row(f'{spec.name} {pre.op} {image.shape[1]}x{image.shape[0]} -> {list(spec.shape)}',
            timed(lambda: pre.finish(pre.prepare(image, encoding)), args.iterations))

    print('resampling choice for a 640x480 -> 256x256 shrink (RGB):')
    frame = sample(rng, 'camera_primary')[0]
    import cv2
    row('INTER_AREA (antialiased; used when shrinking)', timed(lambda: resize(frame, (256, 256), 'lanczos'),
                                                              args.iterations))
    row('INTER_LANCZOS4 (no antialiasing when shrinking)',
        timed(lambda: cv2.resize(frame, (256, 256), interpolation=cv2.INTER_LANCZOS4), args.iterations))

    print(f'per tick: window build + ObservationWindow conversion + serialisation ({args.ticks} ticks, '
          'sensors at real rates):')
    for eager in (True, False):
        mode = 'eager' if eager else 'lazy'
        build, outside = tick_costs(manifest, eager, args.ticks, rng)
        row(f'{mode}: on the tick (build + serialise)', build)
        row(f'{mode}: preprocessing between ticks (on arrival)', outside)

    print(f'the window on the wire ({args.ticks} ticks, eager, so no preprocessing in these figures):')
    for once, label in ((False, 'every step every window'), (True, "each sample's data once")):
        size, send, decode = wire_costs(manifest, args.ticks, rng, once)
        print(f"  {label + ': bytes per window (serialised)':68s} {size['p50']:8.0f} {size['p99']:8.0f}")
        row(f'{label}: build + message + serialise', send)
        row(f'{label}: deserialise + rebuild + (W, ...) arrays', decode)


if __name__ == '__main__':
    main()
