"""models/twin/table_chain.py: the chain's tables from its replay and evaluation reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

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


def test_failure_modes_say_where_each_episode_went(tmp_path):
    """models/twin/failure_modes.py: an evaluation's bags, each classified from the end effector's
    path against the scene's cubes (the red cube is the named one, the blue one another)."""
    from models.twin import failure_modes
    from support.episode_bags import RED_CUBE, make_episode_bag
    eps = tmp_path / 'eval' / 'episodes'
    red, blue = RED_CUBE[:2], (0.3, -0.1)

    def down_at(xy):
        return lambda k: (xy[0], xy[1], 0.015) if k > 6 else (0.2, 0.0, 0.15)
    cases = {'episode_0000': ('never down', {}),
             'episode_0001': ('wrong object', {'ee_at': down_at(blue)}),
             'episode_0002': ('missed', {'ee_at': down_at((0.2, 0.1))}),
             'episode_0003': ('not closed', {'ee_at': down_at(red)}),
             'episode_0004': ('not lifted', {'ee_at': down_at(red), 'opening_at': lambda k: 0.02 if k > 8 else 0.037}),
             'episode_0005': ('success', {'ee_at': down_at(red), 'outcome': 'success'})}
    for name, (_, kw) in cases.items():
        make_episode_bag(eps, name, steps=6, expert_topics=True, **{'outcome': 'failure', **kw})
    for name, (mode, _) in cases.items():
        got = failure_modes.classify(eps / name)
        assert got['mode'] == mode, (name, got)
    assert failure_modes.classify(eps / 'episode_0003')['closest_to_named_cm'] == 0.0
    missed = failure_modes.classify(eps / 'episode_0002')
    assert missed['down_off_named_cm'] == pytest.approx(100 * np.hypot(0.2 - red[0], 0.1 - red[1]), abs=0.1)
    assert failure_modes.classify(eps / 'episode_0000')['down_off_named_cm'] is None
    assert failure_modes.classify(eps / 'episode_0004')['closed'] and not missed['closed']
    assert failure_modes.main([str(tmp_path / 'eval')]) == 0
    assert failure_modes.main([str(tmp_path)]) == 2          # no bags: named, not an empty table
