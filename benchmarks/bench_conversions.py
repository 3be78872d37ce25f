"""Cost of the image conversions and of serialising a 640x480 Image (median / p99 over N iterations)."""

from __future__ import annotations

import argparse
import time

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from fuse_core.timing import percentiles
from fuse_nodes.conversions import array_to_image, image_to_array


def timed(fn, iterations: int) -> dict:
    fn()  # warm-up (allocations, first-call imports)
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return percentiles(samples, (50, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--iterations', type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for label, shape in (('640x480 bgr8', (480, 640, 3)), ('320x240 bgr8', (240, 320, 3))):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        msg = array_to_image(frame, 'bgr8')
        rows.append((f'array_to_image {label}',
                     timed(lambda: array_to_image(frame, 'bgr8'), args.iterations)))
        rows.append((f'image_to_array {label} (view)', timed(lambda: image_to_array(msg), args.iterations)))
        rows.append((f'image_to_array {label} (copy)',
                     timed(lambda: image_to_array(msg, copy=True), args.iterations)))
    big = array_to_image(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), 'bgr8')
    rows.append(('serialize_message Image 640x480', timed(lambda: serialize_message(big), args.iterations)))
    blob = serialize_message(big)
    rows.append(('deserialize_message Image 640x480',
                 timed(lambda: deserialize_message(blob, Image), args.iterations)))
    print(f'{"operation":<42} {"median ms":>10} {"p99 ms":>10}   ({args.iterations} iterations)')
    for name, p in rows:
        print(f'{name:<42} {p["p50"]:>10.3f} {p["p99"]:>10.3f}')


if __name__ == '__main__':
    main()
