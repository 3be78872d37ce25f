#!/usr/bin/env python3
"""Where a policy's pick episodes went: each evaluation bag's end-effector path (/arm/status)
against the objects of its scene (/world/task_state), as one of

  success        the task's detector said so
  wrong object   the fingers went down (below DOWN_Z) within NEAR of another cube, never of the named one
  missed         down, but within NEAR of no cube
  never down     the end effector never went below DOWN_Z
  not closed     down at the named cube, the fingers never closed there
  not lifted     closed at the named cube, and the episode still failed

It also prints how far from the named cube the descent lands (where the end effector first goes
below DOWN_Z; median) and in how many episodes the fingers closed at all.

Usage: models/twin/failure_modes.py EVAL_DIR [--json]   (an `./run.sh eval` report with bags)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

NEAR = 0.02          # m, horizontal distance to a cube's centre
DOWN_Z = 0.04        # m, end-effector height counted as down at the cubes (grasp height 0.015)
CLOSED = 0.03        # m, finger opening counted as closed (open 0.037)
MODES = ('success', 'wrong object', 'missed', 'never down', 'not closed', 'not lifted')


def classify(bag_dir: Path) -> dict:
    from fuse_core.export.steps import read_episode
    from fuse_sim.expert import named_cube, objects_from_message
    rec = read_episode(bag_dir, outcomes=None, topics=['/world/task_state', '/arm/status'])
    task, status = rec.streams['/world/task_state'].msgs, rec.streams['/arm/status'].msgs
    try:
        target = named_cube(task[-1].instruction, objects_from_message(task[-1]))
    except ValueError as exc:
        raise SystemExit(f'{bag_dir}: {exc}') from exc
    ee = np.array([[s.ee_pose.position.x, s.ee_pose.position.y, s.ee_pose.position.z] for s in status])
    opening = np.array([s.gripper_opening for s in status])
    start = {n: o.position[:2] for n, o in objects_from_message(task[0]).items()}
    down = ee[:, 2] < DOWN_Z
    near = {n: down & (np.linalg.norm(ee[:, :2] - xy, axis=1) < NEAR) for n, xy in start.items()
            if n.startswith('cube')}
    if rec.metadata.outcome == 'success':
        mode = 'success'
    elif near[target].any():
        mode = 'not lifted' if (near[target] & (opening < CLOSED)).any() else 'not closed'
    elif any(v.any() for n, v in near.items() if n != target):
        mode = 'wrong object'
    else:
        mode = 'missed' if down.any() else 'never down'
    closest = float(np.min(np.linalg.norm(ee[:, :2] - start[target], axis=1)))
    first_down = np.flatnonzero(down)
    # how far off the named cube the descent lands: where the end effector first goes below DOWN_Z
    landed = (round(100 * float(np.linalg.norm(ee[first_down[0], :2] - start[target])), 1)
              if len(first_down) else None)
    return {'episode': bag_dir.name, 'seed': int(rec.metadata.seed), 'mode': mode,
            'closest_to_named_cm': round(100 * closest, 1), 'down_off_named_cm': landed,
            'closed': bool((opening < CLOSED).any())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('report', type=Path)
    ap.add_argument('--json', action='store_true', help='one JSON object instead of the table')
    a = ap.parse_args(argv)
    bags = sorted(p for p in (a.report / 'episodes').glob('episode_*') if (p / 'episode.json').exists())
    if not bags:
        print(f'{a.report}: no episode bags (evaluated with --no-bags?)', file=sys.stderr)
        return 2
    rows = [classify(b) for b in bags]
    counts = Counter(r['mode'] for r in rows)
    if a.json:
        print(json.dumps({'report': str(a.report), 'counts': {m: counts[m] for m in MODES}, 'episodes': rows}))
        return 0
    print(f'{a.report}: {len(rows)} episodes')
    print('| ' + ' | '.join(MODES) + ' |')
    print('|' + '---|' * len(MODES))
    print('| ' + ' | '.join(str(counts[m]) for m in MODES) + ' |')
    landed = [r['down_off_named_cm'] for r in rows if r['down_off_named_cm'] is not None]
    if landed:
        print(f'first below {100 * DOWN_Z:.0f} cm: {np.median(landed):.1f} cm from the named cube (median of '
              f'{len(landed)}), within {100 * NEAR:.0f} cm in {sum(d <= 100 * NEAR for d in landed)}; closed the '
              f'fingers in {sum(r["closed"] for r in rows)} of {len(rows)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
