"""Scripted experts through the arm's safety filter, in process: a few seeds per task succeed.

The 50-episode success rates are a benchmark (benchmarks/bench_twin.py), not a test.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('mujoco')

from fuse_sim.expert import ExpertObservation, ScriptedExpert, perturbed  # noqa: E402
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


class _Kinematic:
    """A point end effector that goes where it is told (the commanded target, 1:1) and fingers
    that close in 2 ticks; a cube that follows closed fingers around it. Enough to drive the
    expert through states of a policy's making."""

    def __init__(self, cube=(0.3, 0.05, 0.02)) -> None:
        self.ee = np.array([0.25, 0.0, 0.12])
        self.opening = 0.037
        self.cube = np.array(cube, float)

    def obs(self) -> ExpertObservation:
        return ExpertObservation(ee_xyz=self.ee.copy(), gripper_opening=self.opening,
                                 objects={'cube_0': VisibleObject('cube_0', self.cube.copy(), 'red')},
                                 instruction='pick up the red cube', target_xyz=self.ee.copy())

    def apply(self, action) -> None:
        near = np.linalg.norm(self.ee - (self.cube + [0, 0, -0.005])) < 0.01
        self.ee = self.ee + np.asarray(action[:3])
        closing = action[6] < 0.5
        self.opening = max(0.0198 if near else 0.015, self.opening - 0.01) if closing else 0.037
        if closing and near and self.opening < 0.021:
            self.cube = self.ee + [0, 0, 0.005]


def _run(expert, world, ticks, policy=None):
    labels = []
    for k in range(ticks):
        a = expert.act(world.obs())
        labels.append((expert.phase, a))
        world.apply(a if policy is None else policy(k, a))
    return labels


def test_pick_expert_recovers_from_a_policys_states():
    """DAgger labels (fuse_sim.relabel) are the expert's actions in the policy's states: each must
    lead back to the task. Drifting off the descent goes back to the approach; fingers the policy
    keeps open are told to close for as long as they stay open; a lift that leaves the cube
    behind opens and tries again."""
    # Its own run: grasped and lifted.
    w = _Kinematic()
    _run(ScriptedExpert('pick_cube'), w, 30)
    assert w.cube[2] > 0.1
    # A policy that pushes sideways during the descent: the expert goes back up to approach.
    w, expert = _Kinematic(), ScriptedExpert('pick_cube')
    drifted = _run(expert, w, 14, policy=lambda k, a: a + [0, 0.03, 0, 0, 0, 0, 0]
                   if expert.phase.startswith('descend') else a)
    phases = [p for p, _ in drifted]
    first_descent = phases.index('descend to cube_0')
    assert 'approach cube_0' in phases[first_descent:]
    # A policy that never closes the fingers: every label at the cube says close.
    w, expert = _Kinematic(), ScriptedExpert('pick_cube')
    labels = _run(expert, w, 30, policy=lambda k, a: np.concatenate([a[:6], [1.0]]))
    phases = [p for p, _ in labels]
    start = phases.index('close on cube_0')
    closing = [a for p, a in labels[start:start + 11]]
    assert phases[start:start + 11] == ['close on cube_0'] * 10 + ['lift cube_0']  # 10: the most it waits
    assert all(a[6] == 0.0 for a in closing)
    # ... and after the lift left the cube behind, it opens and tries again.
    assert 'missed cube_0: open' in phases
    assert 'approach cube_0' in phases[phases.index('missed cube_0: open'):]
    # Left alone again, it picks the cube up.
    _run(expert, w, 40)
    assert w.cube[2] > 0.1


def test_perturbed_commands_leave_the_path_and_the_expert_brings_them_back():
    """DART-style demonstrations (./run.sh collect --expert-noise): noise on the open-finger
    commands only, seeded; the expert still picks the cube from wherever the noise put it."""
    a_open = np.array([0.01, -0.02, 0.03, 0, 0, 0, 1.0])
    a_closed = np.array([0.01, -0.02, 0.03, 0, 0, 0, 0.0])
    assert perturbed(a_open, np.random.default_rng(1), 0.0) is a_open
    assert perturbed(a_closed, np.random.default_rng(1), 0.01) is a_closed
    p1 = perturbed(a_open, np.random.default_rng(1), 0.01)
    p2 = perturbed(a_open, np.random.default_rng(1), 0.01)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1[:3], a_open[:3]) and np.array_equal(p1[3:], a_open[3:])
    draws = np.array([perturbed(a_open, np.random.default_rng(s), 0.01)[:3] - a_open[:3] for s in range(400)])
    assert abs(draws.std() - 0.01) < 0.0015 and np.abs(draws.mean(axis=0)).max() < 0.002
    w, expert = _Kinematic(), ScriptedExpert('pick_cube')
    rng = np.random.default_rng(7)
    pushed = []

    def noisy(k, a):
        p = perturbed(a, rng, 0.01)
        pushed.append(np.linalg.norm(p[:3] - a[:3]))
        return p
    _run(expert, w, 60, policy=noisy)
    assert max(pushed) > 0.01          # it was pushed off its path ...
    assert w.cube[2] > 0.1             # ... and picked the cube up all the same
