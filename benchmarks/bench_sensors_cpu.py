"""CPU used by the six sensor nodes at their real rates with synthetic sources.

Starts camera_primary, camera_wrist (640x480 at 30 Hz), digit_left, digit_right (320x240 at
60 Hz), audio (44.1 kHz chunks + spectrogram) and imu (200 Hz) as separate processes with the
simulation's parameter files, lets them warm up, then samples each process's CPU time with
psutil and prints per-process and total CPU (% of one core) and the message rates a
subscriber in this process received.

    .venv/bin/python benchmarks/bench_sensors_cpu.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import psutil

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.runner import GraphProcesses

TOPICS = {
    '/camera_primary/image_raw': 'sensor_msgs/msg/Image',
    '/camera_wrist/image_raw': 'sensor_msgs/msg/Image',
    '/digit_left/image_raw': 'sensor_msgs/msg/Image',
    '/digit_right/image_raw': 'sensor_msgs/msg/Image',
    '/audio/chunk': 'fuse_interfaces/msg/AudioChunk',
    '/audio/mel_spectrogram': 'sensor_msgs/msg/Image',
    '/imu/data': 'sensor_msgs/msg/Imu',
}


def message_class(type_name: str):
    """'pkg/msg/Type' -> the message class."""
    import importlib
    pkg, kind, name = type_name.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=20.0)
    ap.add_argument('--warmup', type=float, default=5.0)
    args = ap.parse_args()
    domain = 200 + os.getpid() % 30
    env = dds_environment(domain_id=domain)
    specs = [graph._with(s, ('sim.yaml',)) for s in graph.SENSOR_NODES]
    procs = GraphProcesses(specs, env, log_dir=None)
    os.environ.update(env)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from fuse_nodes.common import SENSOR_QOS

    procs.start()
    rclpy.init(domain_id=domain)
    node = rclpy.create_node('bench_sensors')
    counts = {t: 0 for t in TOPICS}
    for topic, type_name in TOPICS.items():
        def cb(_msg, t=topic):
            counts[t] += 1
        node.create_subscription(message_class(type_name), topic, cb, SENSOR_QOS, raw=True)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        time.sleep(args.warmup)
        ps = {n: psutil.Process(p.pid) for n, p in procs.procs.items()}
        cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in ps.items()}
        c0 = dict(counts)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        dt = time.monotonic() - t0
        cpu1 = {n: sum(p.cpu_times()[:2]) for n, p in ps.items()}
        c1 = dict(counts)
    finally:
        ex.shutdown()
        codes = procs.stop()
        rclpy.try_shutdown()
    print(f'six sensor processes, synthetic sources, {dt:.1f} s after {args.warmup:g} s warm-up '
          f'({psutil.cpu_count()} cores)')
    total = 0.0
    for n in cpu0:
        pct = 100.0 * (cpu1[n] - cpu0[n]) / dt
        total += pct
        print(f'  {n:<16s} {pct:6.1f} % of one core')
    print(f'  {"total":<16s} {total:6.1f} % of one core')
    print('received rates (this process, sensor-data QoS):')
    for t in TOPICS:
        print(f'  {t:<28s} {(c1[t] - c0[t]) / dt:7.1f} Hz')
    print(f'exit codes: {codes}')


if __name__ == '__main__':
    main()
