"""The applied delta recovered from the safety filter's decisions equals what it executed."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.arm.applied import applied_action, applied_delta
from fuse_core.arm.kinematics import WX250S, bridge_state_to_pose, pose_from_xyz_rpy
from fuse_core.arm.safety import SafetyFilter, SafetyLimits


def start_joints():
    joints, ok, _ = WX250S.ik(bridge_state_to_pose((0.25, 0.0, 0.15), (0, 0, 0)),
                              np.zeros(6), max_iterations=200)
    assert ok
    return joints


def run(filter_, q, action, t_ns):
    return filter_.command(action[:3], action[3:6], action[6], q, t_ns, stamp_ns=t_ns,
                           valid_until_ns=t_ns + int(3e8))


def test_unclipped_commands_come_back_as_themselves():
    f = SafetyFilter(SafetyLimits(), WX250S)
    q = start_joints()
    rng = np.random.default_rng(0)
    t = 10_000_000_000
    for _ in range(20):
        a = np.concatenate([rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05, 3), [1.0]])
        t += 200_000_000
        d = run(f, q, a, t)
        assert d.applied and not d.clipped, d.reason
        np.testing.assert_allclose(applied_action(d), a, atol=1e-9)
        q = d.joints


def test_clipped_and_held_commands_report_what_was_executed():
    f = SafetyFilter(SafetyLimits(), WX250S)
    q = start_joints()
    t = 10_000_000_000
    d = run(f, q, np.array([0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.2]), t)
    assert d.applied and d.clipped
    got = applied_action(d)
    assert got[1] == pytest.approx(0.05, abs=1e-9) and got[6] == 0.0  # step clip; gripper binarised
    np.testing.assert_allclose(got[[0, 2, 3, 4, 5]], 0.0, atol=1e-9)
    # Against the workspace box: x max 0.45, the target is at 0.25; ask for far more than allowed.
    q = d.joints
    for _ in range(6):
        t += 200_000_000
        d = run(f, q, np.array([0.05, 0, 0, 0, 0, 0, 1.0]), t)
        q = d.joints
    x_before = f.target[0, 3]
    t += 200_000_000
    d = run(f, q, np.array([0.05, 0, 0, 0, 0, 0, 1.0]), t)
    got = applied_action(d)
    assert got[0] == pytest.approx(min(0.05, 0.45 - x_before), abs=1e-9) and got[0] < 0.05
    # A rejected command has no applied action (the recording shows an explicit hold).
    assert applied_action(run(f, q, np.array([np.nan, 0, 0, 0, 0, 0, 1.0]), t + 2)) is None


def test_applied_delta_inverts_a_rotation_about_the_ee_point():
    prev = pose_from_xyz_rpy((0.3, 0.1, 0.2), (0.1, -0.2, 0.3))
    from fuse_core.arm.kinematics import rpy_to_rotation
    step = np.array([0.01, -0.02, 0.03, 0.05, -0.04, 0.2])
    tgt = np.eye(4)
    tgt[:3, :3] = rpy_to_rotation(step[3:]) @ prev[:3, :3]
    tgt[:3, 3] = prev[:3, 3] + step[:3]
    np.testing.assert_allclose(applied_delta(prev, tgt), step, atol=1e-12)
    with pytest.raises(ValueError, match='4x4'):
        applied_delta(np.eye(3), tgt)
