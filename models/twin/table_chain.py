"""The tables of the generalist -> FuSe chain (models/twin/make_chain_bundles.sh), from its reports.

    .venv/bin/python models/twin/table_chain.py [WORK]      # WORK defaults to runs/chain

Prints, as markdown: forgetting (the pretraining tasks' held-out replay error and closed-loop
pick_cube success, before and after each finetuning), the touch and sound tasks (replay error
with each sensor broken, closed-loop success) and describe-from-touch / from-sound. A report
that is missing shows as '-' (its step has not run yet).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

FORGETTING = ('generalist', 'fuse', 'l2sp', 'spd', 'wise')
TOUCH_SOUND = ('fuse', 'l2sp', 'spd', 'wise', 'noaux', 'vision')
LABEL = {'generalist': 'generalist (before finetuning)', 'fuse': 'FuSe, plain finetuning',
         'l2sp': 'FuSe + L2-SP', 'spd': 'FuSe + SPD', 'wise': 'FuSe, WiSE-FT (alpha 0.5)',
         'noaux': 'without the auxiliary losses', 'vision': 'without touch and sound'}


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _f(x, digits=3) -> str:
    return '-' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.{digits}f}'


def _success(summary) -> str:
    if not summary:
        return '-'
    lo, hi = summary['wilson_95']
    return (f"{summary['successes']} / {summary['episodes_finished']} "
            f"({100 * lo:.1f} - {100 * hi:.1f} %)")


def _variant(report, name, key='nmse'):
    return None if not report or name not in report['scores'] else report['scores'][name][key]


def forgetting(work: Path) -> str:
    rows = ['| bundle | held-out nmse, pick_cube + place_in_bowl | gripper agreement | '
            'pick_cube closed loop (95 % interval) |', '|---|---|---|---|']
    for name in FORGETTING:
        rep = _load(work / f'replay_pre_{name}' / 'replay.json')
        rows.append(f'| {LABEL[name]} | {_f(_variant(rep, "correct"))} | '
                    f'{_f(_variant(rep, "correct", "gripper_agreement"), 2)} | '
                    f'{_success(_load(work / f"eval_{name}_pick_cube" / "summary.json"))} |')
    return '\n'.join(rows)


def touch_sound(work: Path) -> str:
    # closed-loop columns for the tasks that were evaluated (make_chain_bundles.sh: EVAL_TASKS)
    tasks = [t for t in ('pick_soft', 'press_beep') if any((work / f'eval_{n}_{t}').is_dir() for n in TOUCH_SOUND)]
    rows = ['| bundle | held-out nmse | no_background (touch) | silent (sound) | gripper correct / no_background | '
            + ''.join(f'{t} closed loop | ' for t in tasks), '|---|---|---|---|---|' + '---|' * len(tasks)]
    for name in TOUCH_SOUND:
        rep = _load(work / f'replay_ft_{name}' / 'replay.json')
        base = _variant(rep, 'correct')

        def ratio(v):
            x = _variant(rep, v)
            return '-' if x is None or not base else f'{_f(x)} (x{x / base:.2f})'
        grip = (f'{_f(_variant(rep, "correct", "gripper_agreement"), 2)} / '
                f'{_f(_variant(rep, "no_background", "gripper_agreement"), 2)}')
        rows.append(f'| {LABEL[name]} | {_f(base)} | {ratio("no_background")} | {ratio("silent")} | {grip} | '
                    + ''.join(f'{_success(_load(work / f"eval_{name}_{t}" / "summary.json"))} | ' for t in tasks))
    return '\n'.join(row.rstrip() for row in rows)


def describe(work: Path) -> str:
    rows = ['| bundle | from | expected text | names its property (steps) | gripper closed | gripper open | '
            'most said |', '|---|---|---|---|---|---|---|']
    for name in TOUCH_SOUND:
        rep = _load(work / f'replay_ft_{name}' / 'replay.json')
        for key, d in ((rep or {}).get('descriptions', {}).get('correct', {})).items():
            for want, r in d.get('by_expected', {}).items():
                said = r['most_said'][0] if r['most_said'] else ('-', 0)
                rows.append(f'| {LABEL[name]} | {key} | "{want}" | {_f(r["names_property"], 2)} ({r["steps"]}) | '
                            f'{_f(r.get("gripper_closed"), 2)} | {_f(r.get("gripper_open"), 2)} | '
                            f'"{said[0]}" ({said[1]}) |')
    return '\n'.join(rows)


def main(argv) -> int:
    work = Path(argv[0]) if argv else Path('runs/chain')
    for title, table in (('Forgetting', forgetting(work)), ('Touch and sound tasks', touch_sound(work)),
                         ('Describe from touch / sound (held-out touch and sound episodes)', describe(work))):
        print(f'### {title}\n\n{table}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
