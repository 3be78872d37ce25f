"""Scripted experts through the arm's safety filter, in process: a few seeds per task succeed.

The 50-episode success rates are a benchmark (benchmarks/bench_twin.py), not a test.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('mujoco')

from fuse_sim.expert import ExpertObservation, ScriptedExpert  # noqa: E402
from fuse_sim.rollout import EpisodeRunner  # noqa: E402
from fuse_sim.tasks import TASKS, VisibleObject  # noqa: E402


@pytest.mark.parametrize('task', sorted(TASKS))
def test_expert_completes_the_task(task):
    runner = EpisodeRunner(task)
    for seed in (11, 12):
        result = runner.run(seed)
        assert result.success, (task, seed, result.detail, result.decisions)
        assert result.duration_s < TASKS[task].time_limit_s


def test_touch_and_sound_experts_decide_from_what_they_sensed():
    soft = EpisodeRunner('pick_soft').run(21)
    assert soft.success
    assert any('soft' in d for d in soft.decisions.values())
    beep = EpisodeRunner('press_beep').run(21, extra_time_s=1.0)
    assert beep.success
    assert 'beeped' in beep.decisions.values()


def test_expert_never_reads_hidden_state():
    # The expert's whole input is an ExpertObservation; nothing in it says which cube is soft.
    fields = set(ExpertObservation.__dataclass_fields__)
    assert fields == {'ee_xyz', 'gripper_opening', 'objects', 'instruction', 'target_xyz', 'audio', 'sample_rate'}


def test_expert_steps_are_bounded_like_the_policy_actions():
    expert = ScriptedExpert('pick_cube')
    obs = ExpertObservation(ee_xyz=np.array([0.12, 0.0, 0.23]), gripper_opening=0.037,
                            objects={'cube_0': VisibleObject('cube_0', np.array([0.35, 0.1, 0.02]), 'red')},
                            instruction='pick up the red cube')
    a = expert.act(obs)
    assert a.shape == (7,) and np.all(np.abs(a[:3]) <= 0.05 + 1e-12) and a[6] == 1.0
    with pytest.raises(ValueError, match='no scripted expert'):
        ScriptedExpert('juggle')


def test_in_process_episodes_are_deterministic():
    runner = EpisodeRunner('place_in_bowl')
    a, b = runner.run(31), runner.run(31)
    assert (a.state, a.duration_s, a.ticks, a.applied) == (b.state, b.duration_s, b.ticks, b.applied)
