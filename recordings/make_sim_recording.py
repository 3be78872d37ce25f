#!/usr/bin/env python3
"""Makes recordings/sim_synthetic: the sensor nodes (source: synthetic) recorded by the recorder node.

Run from anywhere with the project's venv:

    .venv/bin/python recordings/make_sim_recording.py [--duration 3] [--force]

Each sensor node runs as its own process with its family's YAML, the simulation overrides
(sim.yaml) and the reduced sizes below; the recorder node records every sensor topic. The
raw recording is then trimmed so that every stream is present from the first instant: the
start is the moment the last stream delivered its first message, the latched DIGIT
backgrounds are logged at that start, and the bag ends `duration` seconds later.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / 'ros2_ws' / 'src' / 'fuse_bringup' / 'config'
DEFAULT_OUTPUT = REPO / 'recordings' / 'sim_synthetic'

# (module, node name, family params file, overrides that keep the recording small).
# Sized to keep the bag under ~8 MB: cameras at 320x240/15 Hz (the sync node resizes anyway);
# DIGITs at 5 Hz, the control rate (their synthetic frames carry per-pixel sensor noise and
# cost ~120 KB each even compressed); the spectrogram at 5 Hz; the IMU at 100 Hz.
SENSORS = [
    ('fuse_nodes.camera_node', 'camera_primary', 'cameras.yaml',
     {'image_width': 320, 'image_height': 240, 'framerate': 15.0}),
    ('fuse_nodes.camera_node', 'camera_wrist', 'cameras.yaml',
     {'image_width': 320, 'image_height': 240, 'framerate': 15.0}),
    ('fuse_nodes.digit_node', 'digit_left', 'digits.yaml', {'resolution': 'QVGA', 'framerate': 5}),
    ('fuse_nodes.digit_node', 'digit_right', 'digits.yaml', {'resolution': 'QVGA', 'framerate': 5}),
    ('fuse_nodes.audio_node', 'audio', 'audio.yaml', {'spectrogram_rate_hz': 5.0}),
    ('fuse_nodes.imu_node', 'imu', 'imu.yaml', {'rate_hz': 100.0}),
]
LATCHED = ('/digit_left/background', '/digit_right/background')


def ros_value(v) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(ros_value(x) for x in v) + ']'
    return str(v)


def start(module: str, name: str, params_files: List[Path], params: Dict, env, log_dir: Path):
    args = [sys.executable, '-m', module, '--ros-args', '-r', f'__node:={name}']
    for f in params_files:
        args += ['--params-file', str(f)]
    for k, v in params.items():
        args += ['-p', f'{k}:={ros_value(v)}']
    log = open(log_dir / f'{name}.log', 'wb')
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_for_topics(topics: List[str], domain_id: int, timeout_s: float) -> List[str]:
    """Topics still without a publisher after timeout_s (empty list: all there)."""
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    node = rclpy.create_node('make_sim_recording_probe', context=ctx)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t in topics if node.count_publishers(t) == 0]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)
    finally:
        node.destroy_node()
        ctx.try_shutdown()


def trim(raw: Path, out: Path, duration_s: float) -> None:
    """Copy `raw` to `out` from the instant every stream has started, for duration_s."""
    from fuse_core.bag import BagReader, BagWriter
    r = BagReader(raw, verify=True)
    streams = [t for t in r.topics if t not in LATCHED]
    firsts = {}
    for m in r.messages(streams):
        firsts.setdefault(m.topic, m.log_time_ns)
        if len(firsts) == len(streams):
            break
    t_start = max(firsts.values())
    t_end = t_start + int(duration_s * 1e9)
    if r.end_ns < t_end:
        raise SystemExit(f'raw recording too short: {(r.end_ns - t_start) / 1e9:.2f} s after all '
                         f'streams started, need {duration_s} s')
    # One chunk for the whole (~30 MB raw) recording: zstd then finds the repetition between
    # consecutive camera frames; 1 MB chunks make the bag ~35% larger.
    with BagWriter(out, compression='zstd', chunk_size=64 << 20,
                   custom_data={'source': 'synthetic', 'made_by': 'recordings/make_sim_recording.py'}) as w:
        for name in sorted(r.topics):
            info = r.topics[name]
            w.add_topic(name, info.type, info.offered_qos_profiles,
                        definition=r.definition(name), type_hash=info.type_description_hash)
        latest_latched = {}
        for m in r.messages(LATCHED):
            if m.log_time_ns <= t_start:
                latest_latched[m.topic] = m
        for topic in LATCHED:
            m = latest_latched[topic]
            w.write(topic, m.data, t_start, m.publish_time_ns)
        for m in r.messages():
            if m.topic in LATCHED:
                if t_start < m.log_time_ns <= t_end:
                    w.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns)
            elif t_start <= m.log_time_ns <= t_end:
                w.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns)


def describe(bag: Path) -> str:
    """A Markdown table of the bag: topic, type, count, rate, raw size, compressed estimate."""
    import zstandard
    from fuse_core.bag import BagReader
    r = BagReader(bag, verify=True)
    dur = r.duration_ns / 1e9
    lines = ['| topic | type | messages | rate (Hz) | raw MB | zstd MB (per topic, est.) |',
             '|---|---|---|---|---|---|']
    for name in sorted(r.topics):
        data = [m.data for m in r.messages([name])]
        raw = sum(len(d) for d in data)
        packed = len(zstandard.ZstdCompressor().compress(b''.join(data)))
        n = len(data)
        rate = (n - 1) / dur if n > 1 and name not in LATCHED else 0.0
        lines.append(f'| {name} | {r.topics[name].type} | {n} | '
                     f'{rate:.1f} | {raw / 1e6:.2f} | {packed / 1e6:.2f} |' if name not in LATCHED else
                     f'| {name} | {r.topics[name].type} | {n} | latched | {raw / 1e6:.2f} | '
                     f'{packed / 1e6:.2f} |')
    size = sum(f.stat().st_size for f in bag.iterdir())
    lines.append('')
    lines.append(f'Duration {dur:.2f} s, {r.message_count} messages, {size / 1e6:.2f} MB on disk.')
    return '\n'.join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--output', type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument('--duration', type=float, default=3.0, help='seconds in the final bag')
    ap.add_argument('--domain-id', type=int, default=100 + os.getpid() % 100)
    ap.add_argument('--force', action='store_true', help='replace an existing output')
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / 'ros2_ws' / 'src' / 'fuse_bringup'))
    from fuse_bringup.dds import dds_environment
    from fuse_core.bag.config import SENSOR_TOPICS

    if args.output.exists():
        if not args.force:
            print(f'{args.output} exists; use --force to replace it', file=sys.stderr)
            return 1
        shutil.rmtree(args.output)
    work = Path(tempfile.mkdtemp(prefix='sim_recording_'))
    env = dds_environment(domain_id=args.domain_id)
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    # This process probes the graph too: same transport as the nodes, or it sees none of them.
    os.environ.update(dds_environment())
    sensors = [start(mod, name, [CONFIG / family, CONFIG / 'sim.yaml'], params, env, work)
               for mod, name, family, params in SENSORS]
    recorder = None
    try:
        missing = wait_for_topics(SENSOR_TOPICS, args.domain_id, timeout_s=60)
        if missing:
            print(f'sensor topics never appeared: {missing}; logs in {work}', file=sys.stderr)
            return 1
        # Margin for discovery and the streams' start-up, trimmed off afterwards.
        recorder = start('fuse_nodes.recorder_node', 'recorder', [CONFIG / 'recorder.yaml'],
                         {'output_dir': str(work / 'raw'), 'max_duration_s': args.duration + 3.0},
                         env, work)
        recorder.wait(args.duration + 60)
        if recorder.returncode != 0:
            print(f'recorder failed ({recorder.returncode}); logs in {work}', file=sys.stderr)
            return 1
    finally:
        stop(sensors + ([recorder] if recorder is not None else []))
    trim(work / 'raw', args.output, args.duration)
    print(describe(args.output))
    shutil.rmtree(work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
