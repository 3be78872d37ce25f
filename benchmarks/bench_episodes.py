"""Collect N expert episodes of a twin task in lockstep mode, export them to RLDS and LeRobotDataset.

    .venv/bin/python benchmarks/bench_episodes.py [--episodes 50] [--task pick_cube] [--keep DIR]

Prints the collection time per episode, the export throughput (steps/s) and the dataset sizes.
Needs the dataset libraries (./setup.sh --datasets) for the export half.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--task', default='pick_cube')
    ap.add_argument('--keep', type=Path, help='keep the bags and datasets here')
    ap.add_argument('--domain-id', type=int, default=100 + os.getpid() % 100,
                    help='ROS_DOMAIN_ID of the collection graph (its own: another graph on the machine '
                         'would mix its topics in)')
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix='bench_episodes_'))
    eps = work / 'episodes'
    t0 = time.monotonic()
    rc = subprocess.call([str(REPO / 'run.sh'), 'collect', '--task', a.task, '--teleop', 'expert',
                          '--episodes', str(a.episodes), '--mode', 'lockstep', '--out', str(eps),
                          '--log-dir', str(work / 'log'), '--no-status', '--domain-id', str(a.domain_id)], cwd=REPO)
    t_collect = time.monotonic() - t0
    if rc != 0:
        print(f'collect failed ({rc}); logs in {work / "log"}', file=sys.stderr)
        return 1
    from fuse_core.episodes import load_episode
    from fuse_core.export import cli
    bags = cli.find_episodes([eps])
    outcomes = [load_episode(b).outcome for b in bags]
    print(f'collected {len(bags)} episodes ({outcomes.count("success")} success) of {a.task} in '
          f'{t_collect:.1f} s: {t_collect / max(1, len(bags)):.1f} s per episode (graph start-up included); '
          f'bags {du(eps) / 1e6:.1f} MB')
    for fmt in cli.FORMATS:
        s = cli.export(bags, fmt, work / fmt, overwrite=True, log=lambda *_: None)
        s.pop('reloaded', None)
        print(f'{fmt}: {s["episodes"]} episodes, {s["steps"]} steps in {s["seconds"]:.1f} s '
              f'({s["steps_per_s"]:.1f} steps/s, reading bags {s["read_seconds"]:.1f} s), '
              f'{s["bytes"] / 1e6:.1f} MB; skipped {len(s["skipped"])}')
        if s['skipped']:
            print('  ' + json.dumps(s['skipped'][:3]))
    print(f'work dir: {work}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
