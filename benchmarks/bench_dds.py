"""Inter-process latency of 640x480 bgr8 images: the project's DDS settings vs Fast DDS defaults.

Runs a publisher and a subscriber as two processes for each setting, side by side in one run,
and prints received/sent, median and p99 latency (stamp = publish time, wall clock).

    .venv/bin/python benchmarks/bench_dds.py [--seconds 8] [--rate 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROLE = os.environ.get('FUSE_BENCH_ROLE')


def publisher(seconds: float, rate: float, reliable: bool) -> None:
    import rclpy
    from sensor_msgs.msg import Image
    from fuse_nodes.common import SENSOR_QOS, STATE_QOS
    from fuse_nodes.conversions import array_to_image
    rclpy.init()
    node = rclpy.create_node('bench_pub')
    pub = node.create_publisher(Image, 'bench/image', STATE_QOS if reliable else SENSOR_QOS)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # wait for discovery, so startup is not counted as loss
    time.sleep(0.3)
    sent = 0
    period = 1.0 / rate
    t_next = time.monotonic()
    end = t_next + seconds
    while time.monotonic() < end:
        msg = array_to_image(frame, 'bgr8', frame_id='bench')
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        sent += 1
        t_next += period
        time.sleep(max(0.0, t_next - time.monotonic()))
    time.sleep(0.5)
    print(json.dumps({'sent': sent}), flush=True)
    rclpy.shutdown()


def subscriber(seconds: float, reliable: bool) -> None:
    import rclpy
    from sensor_msgs.msg import Image
    from fuse_nodes.common import SENSOR_QOS, STATE_QOS
    rclpy.init()
    node = rclpy.create_node('bench_sub')
    lat = []

    def cb(msg):
        lat.append(time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    node.create_subscription(Image, 'bench/image', cb, STATE_QOS if reliable else SENSOR_QOS)
    end = time.monotonic() + seconds + 8.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    arr = np.array(lat) * 1e3
    print(json.dumps({'received': len(lat),
                      'p50_ms': float(np.median(arr)) if len(arr) else None,
                      'p99_ms': float(np.percentile(arr, 99)) if len(arr) else None}), flush=True)
    rclpy.shutdown()


def run_pair(transport: str, seconds: float, rate: float, reliable: bool, domain: int) -> dict:
    from fuse_bringup.dds import dds_environment
    env = dds_environment(domain_id=domain, transport=transport)
    env['FUSE_BENCH_ARGS'] = json.dumps([seconds, rate, reliable])
    sub = subprocess.Popen([sys.executable, __file__], env={**env, 'FUSE_BENCH_ROLE': 'sub'},
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pub = subprocess.Popen([sys.executable, __file__], env={**env, 'FUSE_BENCH_ROLE': 'pub'},
                           stdout=subprocess.PIPE, text=True)
    p_out, _ = pub.communicate(timeout=seconds + 30)
    s_out, _ = sub.communicate(timeout=seconds + 30)
    res = json.loads(s_out.strip().splitlines()[-1])
    res.update(json.loads(p_out.strip().splitlines()[-1]))
    return res


def fmt(v) -> str:
    return f'{v:8.2f}' if v is not None else '      --'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=8.0)
    ap.add_argument('--rate', type=float, default=30.0)
    args = ap.parse_args()
    from fuse_bringup.dds import DEFAULT_TRANSPORT
    print(f'640x480 bgr8 at {args.rate:g} Hz for {args.seconds:g} s, publisher and subscriber in two processes')
    print(f'{"setting":<44s} {"QoS":<12s} {"recv/sent":>10s} {"p50 ms":>8s} {"p99 ms":>8s}')
    domain = 150 + os.getpid() % 50
    for name, transport in (('project (' + DEFAULT_TRANSPORT + ')', DEFAULT_TRANSPORT),
                            ('Fast DDS defaults', 'default')):
        for reliable in (False, True):
            r = run_pair(transport, args.seconds, args.rate, reliable, domain)
            print(f'{name:<44s} {"reliable" if reliable else "best-effort":<12s} '
                  f'{r["received"]:>4d}/{r["sent"]:<5d} {fmt(r["p50_ms"])} {fmt(r["p99_ms"])}', flush=True)


if __name__ == '__main__':
    if ROLE:
        seconds, rate, reliable = json.loads(os.environ['FUSE_BENCH_ARGS'])
        publisher(seconds, rate, reliable) if ROLE == 'pub' else subscriber(seconds, reliable)
    else:
        main()
