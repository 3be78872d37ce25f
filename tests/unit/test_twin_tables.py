"""models/twin/table_chain.py: the chain's tables from its replay and evaluation reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.twin import table_chain  # noqa: E402


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _replay(scores, descriptions=None):
    return {'scores': {v: {'nmse': n, 'gripper_agreement': g} for v, (n, g) in scores.items()},
            'descriptions': descriptions or {}}


def test_tables_read_the_reports_and_mark_what_is_missing(tmp_path):
    _write(tmp_path / 'replay_pre_generalist' / 'replay.json', _replay({'correct': (0.2, 0.9)}))
    _write(tmp_path / 'eval_generalist_pick_cube' / 'summary.json',
           {'successes': 3, 'episodes_finished': 20, 'wilson_95': [0.0524, 0.3604]})
    _write(tmp_path / 'replay_ft_fuse' / 'replay.json', _replay(
        {'correct': (0.25, 0.8), 'no_background': (0.5, 0.6), 'silent': (0.3, 0.8)},
        {'correct': {'tactile': {'by_expected': {'pick up the cube that feels soft': {
                                     'names_property': 0.5, 'steps': 10, 'gripper_closed': 1.0, 'gripper_open': 0.0,
                                     'most_said': [['pick up the cube that feels soft', 6]]}}}}}))
    forgetting = table_chain.forgetting(tmp_path).splitlines()
    assert forgetting[2] == '| generalist (before finetuning) | 0.200 | 0.90 | 3 / 20 (5.2 - 36.0 %) |'
    assert forgetting[3] == '| FuSe, plain finetuning | - | - | - |'          # not run yet
    touch = table_chain.touch_sound(tmp_path).splitlines()[2]
    assert touch.startswith('| FuSe, plain finetuning | 0.250 | 0.500 (x2.00) | 0.300 (x1.20) | 0.80 / 0.60 |')
    describe = table_chain.describe(tmp_path).splitlines()
    assert describe[2] == ('| FuSe, plain finetuning | tactile | "pick up the cube that feels soft" | 0.50 (10) | '
                           '1.00 | 0.00 | "pick up the cube that feels soft" (6) |')
    assert len(describe) == 3
