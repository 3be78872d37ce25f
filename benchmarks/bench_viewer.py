"""CPU of the Foxglove viewer in the running simulation, with no client and with one client watching everything.

Starts `./run.sh sim --view`'s graph (the twin by default, or --world bag), lets it warm up,
then samples every process's CPU time with psutil for --seconds with no client connected and
again while Foxglove's own protocol client (tests/support/foxglove_client, node) subscribes to
every channel of the shipped layout. Prints the viewer's, robot_state's and the whole graph's
CPU (% of one core), the 5 Hz window rate in both phases and what the client received.

    .venv/bin/python benchmarks/bench_viewer.py [--world twin|bag] [--seconds 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.runner import GraphProcesses

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / 'tests' / 'support' / 'foxglove_client'
sys.path.insert(0, str(REPO / 'tests'))


def cpu(ps):
    out = {}
    for n, p in ps.items():
        try:
            out[n] = sum(p.cpu_times()[:2])
        except psutil.Error:
            out[n] = float('nan')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--world', choices=graph.WORLDS, default='twin')
    ap.add_argument('--policy', action='store_true', help='twin: the policy instead of the scripted expert '
                    '(so the action chunk and its predicted path are shown)')
    ap.add_argument('--seconds', type=float, default=30.0)
    ap.add_argument('--warmup', type=float, default=15.0)
    args = ap.parse_args()
    if shutil.which('node') is None or not (CLIENT / 'node_modules').is_dir():
        sys.exit('needs node and the Foxglove client (./setup.sh installs it with npm)')
    from integration.test_viewer import layout_topics

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    domain = 170 + os.getpid() % 30
    env = dds_environment(domain_id=domain)
    env.setdefault('PYTHONUNBUFFERED', '1')
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'port': port}) if s.name == 'viewer' else s
             for s in graph.sim_graph(world=args.world, view=True, expert=not args.policy)]
    log_dir = REPO / 'log' / 'bench_viewer'
    procs = GraphProcesses(specs, env, log_dir=log_dir)
    os.environ.update(env)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from fuse_interfaces.msg import ObservationWindow
    from fuse_nodes.common import CONTROL_QOS
    procs.start()
    rclpy.init(domain_id=domain)
    node = rclpy.create_node('bench_viewer')
    windows = [0]
    node.create_subscription(ObservationWindow, '/sync/window', lambda _m: windows.__setitem__(0, windows[0] + 1),
                             CONTROL_QOS, raw=True)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    topics = sorted(layout_topics())
    results = {}
    summary = {}
    try:
        time.sleep(args.warmup)
        ps = {n: psutil.Process(p.pid) for n, p in procs.procs.items()}
        for phase in ('no client', 'one client'):
            client = None
            if phase == 'one client':
                client = subprocess.Popen(['node', str(CLIENT / 'probe.js'), f'ws://127.0.0.1:{port}',
                                           str(args.seconds + 4), *topics], stdout=subprocess.PIPE, text=True)
                time.sleep(2.0)
            c0, w0, t0 = cpu(ps), windows[0], time.monotonic()
            time.sleep(args.seconds)
            c1, w1, dt = cpu(ps), windows[0], time.monotonic() - t0
            results[phase] = ({n: 100.0 * (c1[n] - c0[n]) / dt for n in ps}, (w1 - w0) / dt)
            if client is not None:
                out, _ = client.communicate(timeout=60)
                summary = json.loads(out.strip().splitlines()[-1])
        exited = procs.exited()
    finally:
        ex.shutdown()
        codes = procs.stop()
        rclpy.try_shutdown()
    world = args.world + (' (policy)' if args.policy else '')
    print(f'world {world} + viewer, {args.seconds:g} s per phase after {args.warmup:g} s warm-up '
          f'({psutil.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)')
    for phase, (pct, rate) in results.items():
        total = sum(pct.values())
        print(f'  {phase:<10s}: viewer {pct["viewer"]:5.1f} %, robot_state {pct["robot_state"]:5.1f} %, '
              f'all {len(pct)} nodes {total:6.1f} % of one core; /sync/window {rate:.2f} Hz')
    if summary:
        print('  the client received (per second):')
        for topic, t in sorted(summary['topics'].items()):
            per_s = args.seconds + 4
            print(f'    {topic:<30s} {t["count"] / per_s:6.2f}  ({t["bytes"] / 1024 / per_s:7.1f} KiB/s)')
    if exited:
        print(f'  nodes that exited early: {exited}')
    print(f'exit codes: {codes}')


if __name__ == '__main__':
    main()
