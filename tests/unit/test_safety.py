"""The arm safety filter: finite checks, clipping, target accumulation, workspace, IK, watchdog, e-stop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fuse_core.arm.kinematics import (BRIDGE_DEFAULT_ROTATION, SLEEP_JOINTS, WX250S, bridge_state_to_pose,
                                      pose_from_xyz_rpy, pose_to_bridge_state)
from fuse_core.arm.safety import (APPLY, ESTOP, HOLD, HOLDING, IDLE, MOVING_TO_POSE, REJECT, TRACKING,
                                  SafetyFilter, SafetyLimits)

S = 1_000_000_000
START_XYZ = (0.118, -0.016, 0.233)


def start_joints():
    joints, ok, _ = WX250S.ik(bridge_state_to_pose(START_XYZ, (0, 0, 0)), SLEEP_JOINTS, max_iterations=200)
    assert ok
    return joints


@pytest.fixture
def at_start():
    """A filter whose commanded target is the start pose, and the joints that reach it."""
    f = SafetyFilter()
    q = start_joints()
    d = f.move_to_start(START_XYZ, (0, 0, 0), q, now_ns=0)
    assert d.kind == APPLY
    assert f.update_move(q, now_ns=0, tolerance=1e-3, timeout_s=5) == 'arrived'
    return f, q


def rotation_from(roll, pitch, yaw):
    return pose_from_xyz_rpy((0, 0, 0), (roll, pitch, yaw))[:3, :3]


def cmd(f, q, now_s, t=(0, 0, 0), r=(0, 0, 0), g=1.0, valid_for=0.5):
    now = int(now_s * S)
    return f.command(t, r, g, q, now, stamp_ns=now, valid_until_ns=now + int(valid_for * S))


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('index', range(7))
def test_non_finite_commands_are_rejected_and_change_nothing(at_start, bad, index):
    f, q = at_start
    target = f.target.copy()
    action = [0.01] * 7
    action[index] = bad
    d = cmd(f, q, 1.0, action[:3], action[3:6], action[6])
    assert d.kind == REJECT and 'non-finite' in d.reason and str(index) in d.reason
    assert d.joints is None and d.target is None
    np.testing.assert_array_equal(f.target, target)
    assert f.counters.rejected == 1 and f.counters.applied == 0
    assert f.counters.last_rejection == d.reason


def test_huge_actions_are_clipped_to_the_step_limits(at_start):
    f, q = at_start
    before = f.target.copy()
    d = cmd(f, q, 1.0, t=(5.0, -5.0, 0.0), r=(0.0, 0.0, 3.0))
    assert d.kind == APPLY and d.clipped
    step = d.target[:3, 3] - before[:3, 3]
    # Per axis to +-0.05, then the 0.05 m linear budget of one 0.2 s step (direction kept).
    np.testing.assert_allclose(step, [0.05 / math.sqrt(2), -0.05 / math.sqrt(2), 0.0], atol=1e-12)
    np.testing.assert_allclose(pose_to_bridge_state(d.target)[3:], [0.0, 0.0, 0.25], atol=1e-9)
    assert f.counters.clipped == 1
    # The solution actually reaches the clipped target.
    np.testing.assert_allclose(WX250S.fk(d.joints)[:3, 3], d.target[:3, 3], atol=1e-4)


def test_custom_step_limits_are_honoured():
    f = SafetyFilter(SafetyLimits(max_step_translation=0.01, max_step_rotation=0.1))
    q = start_joints()
    f.target = WX250S.fk(q)
    d = cmd(f, q, 1.0, t=(0.03, 0.0, -0.03), r=(0.2, 0.0, 0.0))
    # Per axis, then the step length (no speed history yet: the budget is one step).
    r = 0.01 / math.sqrt(2)
    np.testing.assert_allclose(d.target[:3, 3] - WX250S.fk(q)[:3, 3], [r, 0.0, -r], atol=1e-12)


def test_target_accumulates_on_the_previous_commanded_target_not_the_measured_pose(at_start):
    f, q = at_start
    start = f.target.copy()
    # The measured joints never move (arm lagging): targets still add up.
    for i in range(3):
        d = cmd(f, q, 1.0 + 0.2 * i, t=(0.02, 0.0, 0.0))
        assert d.kind == APPLY
        np.testing.assert_allclose(d.seed, q)
    np.testing.assert_allclose(f.target[:3, 3], start[:3, 3] + [0.06, 0.0, 0.0], atol=1e-12)


def test_rotation_is_about_the_ee_point_in_world_axes(at_start):
    f, q = at_start
    start = f.target.copy()
    d = cmd(f, q, 1.0, r=(0.1, 0.0, 0.2))
    np.testing.assert_allclose(d.target[:3, 3], start[:3, 3], atol=1e-12)
    np.testing.assert_allclose(pose_to_bridge_state(d.target)[3:], [0.1, 0.0, 0.2], atol=1e-9)
    # World-axes delta: R_new = Rz(0.2) Ry(0) Rx(0.1) @ R_prev.
    np.testing.assert_allclose(d.target[:3, :3] @ start[:3, :3].T, rotation_from(0.1, 0.0, 0.2), atol=1e-12)


def test_workspace_clip_and_reentry_at_step_speed():
    f = SafetyFilter()
    q = start_joints()
    f.target = WX250S.fk(q)
    for i in range(10):  # push up; z must stop at the box top 0.25
        cmd(f, q, 1.0 + 0.2 * i, t=(0.0, 0.0, 0.05))
        q = WX250S.ik(f.target, q).joints
    assert f.target[2, 3] == pytest.approx(0.25)
    # Outside the box (the home pose) the target comes back one clipped step at a time.
    g = SafetyFilter()
    home = np.zeros(6)
    d = cmd(g, home, 1.0)
    assert d.kind == APPLY and d.clipped
    start = WX250S.fk(home)[:3, 3]
    toward = np.array([0.45, 0.0, 0.25]) - start
    np.testing.assert_allclose(d.target[:3, 3], start + 0.05 * toward / np.linalg.norm(toward), atol=1e-9)


def test_ik_failure_holds_and_keeps_the_previous_target():
    f = SafetyFilter(SafetyLimits(workspace_min=(-1.0, -1.0, -1.0), workspace_max=(2.0, 2.0, 2.0),
                                  max_step_translation=0.2))
    q = np.zeros(6)
    f.target = WX250S.fk(q)
    f.target[0, 3] = 0.70  # beyond reach: one more step cannot be solved
    before = f.target.copy()
    d = cmd(f, q, 1.0, t=(0.1, 0.0, 0.0))
    assert d.kind == HOLD and 'IK failed' in d.reason and d.joints is None
    assert f.state == HOLDING and f.hold_reason == d.reason
    np.testing.assert_array_equal(f.target, before)
    assert f.counters.ik_failures == 1 and f.counters.applied == 0


def test_watchdog_holds_after_silence(at_start):
    f, q = at_start
    assert cmd(f, q, 1.0, t=(0.01, 0, 0)).kind == APPLY
    assert f.state == TRACKING
    assert f.tick(int(1.4 * S)) is None
    d = f.tick(int(1.6 * S))
    assert d is not None and d.kind == HOLD and d.reason.startswith('watchdog')
    assert f.state == HOLDING and f.counters.watchdog_holds == 1
    assert f.tick(int(3.0 * S)) is None  # counted once per silence
    assert cmd(f, q, 3.1, t=(0.01, 0, 0)).kind == APPLY and f.state == TRACKING


def test_stale_commands_are_rejected(at_start):
    f, q = at_start
    now = 10 * S
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, stamp_ns=now - S // 2, valid_until_ns=now - 1)
    assert d.kind == REJECT and 'valid_until' in d.reason
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, stamp_ns=now - 2 * S)
    assert d.kind == REJECT and 'stale' in d.reason
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now)
    assert d.kind == REJECT and 'neither' in d.reason
    assert f.counters.rejected == 3 and f.counters.applied == 0
    assert f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, stamp_ns=now - S // 2).kind == APPLY


def test_estop_latches_until_reset(at_start):
    f, q = at_start
    assert cmd(f, q, 1.0, t=(0.01, 0, 0)).kind == APPLY
    f.estop()
    assert f.state == ESTOP and f.estop_latched
    for i in range(5):
        d = cmd(f, q, 1.2 + 0.2 * i, t=(0.01, 0, 0))
        assert d.kind == REJECT and 'e-stop' in d.reason
    assert f.tick(int(10 * S)) is None and f.state == ESTOP  # the watchdog does not unlatch it
    assert f.move_to_start(START_XYZ, (0, 0, 0), q, int(10 * S)).kind == REJECT
    assert f.reset_estop() and f.state == HOLDING and f.target is None and 're-arm' in f.hold_reason
    assert not f.reset_estop()
    # After the reset (and a pause of the stream) the next command starts from the measured pose.
    d = cmd(f, q, 11.0, t=(0.01, 0, 0))
    assert d.kind == APPLY
    np.testing.assert_allclose(d.target[:3, 3], WX250S.fk(q)[:3, 3] + [0.01, 0, 0], atol=1e-12)


def test_move_to_start_then_commands_continue_from_the_start_pose():
    f = SafetyFilter()
    d = f.move_to_start(START_XYZ, (0, 0, 0), SLEEP_JOINTS, now_ns=0)
    assert d.kind == APPLY and d.gripper == 1.0 and f.state == MOVING_TO_POSE
    np.testing.assert_allclose(WX250S.fk(d.joints)[:3, 3], START_XYZ, atol=1e-4)
    # FuSe's start pose rpy 0 is the gripper pointing straight down.
    np.testing.assert_allclose(WX250S.fk(d.joints)[:3, :3], BRIDGE_DEFAULT_ROTATION, atol=1e-3)
    np.testing.assert_allclose(WX250S.fk(d.joints)[:3, 0], [0.0, 0.0, -1.0], atol=1e-3)
    assert cmd(f, SLEEP_JOINTS, 0.1, t=(0.01, 0, 0)).kind == REJECT  # busy moving
    assert f.update_move(SLEEP_JOINTS, int(0.5 * S), 1e-3, 5.0) is None
    assert f.update_move(d.joints, int(1.0 * S), 1e-3, 5.0) == 'arrived' and f.state == IDLE
    np.testing.assert_allclose(f.target[:3, 3], START_XYZ, atol=1e-12)


def test_move_timeout_holds():
    f = SafetyFilter()
    f.move_to_start(START_XYZ, (0, 0, 0), SLEEP_JOINTS, now_ns=0)
    assert f.update_move(SLEEP_JOINTS, 6 * S, 1e-3, 5.0) == 'timeout'
    assert f.state == HOLDING and 'timed out' in f.hold_reason


def test_move_to_pose_outside_workspace_is_rejected():
    f = SafetyFilter()
    d = f.move_to_pose(pose_from_xyz_rpy((0.6, 0.0, 0.1), (0, 0, 0)), 1.0, SLEEP_JOINTS, 0)
    assert d.kind == REJECT and 'outside the workspace' in d.reason and f.state == IDLE


@pytest.mark.parametrize('value,expected', [(0.0, 0.0), (0.49, 0.0), (0.5, 1.0), (0.9, 1.0), (7.0, 1.0),
                                            (-3.0, 0.0)])
def test_gripper_is_binarised(at_start, value, expected):
    f, q = at_start
    assert cmd(f, q, 1.0, g=value).gripper == expected


def test_backend_refusal_restores_the_previous_target(at_start):
    f, q = at_start
    before = f.target.copy()
    d = cmd(f, q, 1.0, t=(0.01, 0, 0))
    f.backend_refused(d, 'driver said no')
    np.testing.assert_array_equal(f.target, before)
    assert f.state == HOLDING and f.counters.applied == 0


def test_limits_are_validated():
    with pytest.raises(ValueError, match='workspace_min'):
        SafetyLimits(workspace_min=(0.5, 0, 0), workspace_max=(0.4, 1, 1))
    with pytest.raises(ValueError, match='watchdog_s'):
        SafetyLimits(watchdog_s=math.nan)



def test_policy_hold_request_keeps_the_target_and_names_the_reason(at_start):
    f, q = at_start
    assert cmd(f, q, 1.0, t=(0.01, 0, 0)).kind == APPLY
    target = f.target.copy()
    d = f.hold_request('stale: camera_wrist', int(1.2 * S))
    assert d.kind == HOLD and f.state == HOLDING and 'camera_wrist' in f.hold_reason
    assert np.array_equal(f.target, target)
    # The policy is alive and deciding: the watchdog does not fire right after a hold request.
    assert f.tick(int(1.3 * S)) is None
    assert cmd(f, q, 1.4, t=(0.01, 0, 0)).kind == APPLY and f.state == TRACKING
    f.estop()
    assert f.hold_request('x', int(1.5 * S)).kind == REJECT


def test_rotation_deltas_stop_at_the_orientation_box(at_start):
    """A policy that keeps turning one way reaches the orientation bound and keeps tracking."""
    from fuse_core.arm.kinematics import BRIDGE_DEFAULT_ROTATION, rotation_to_rpy
    f, q = at_start
    for k in range(10):   # 10 x 0.25 rad = 2.5 rad of yaw requested, the box allows 1.57
        d = cmd(f, q, 1.0 + 0.2 * k, r=(0, 0, 0.25))
        assert d.kind == APPLY, d.reason
        q = d.joints
    rpy = rotation_to_rpy(f.target[:3, :3] @ BRIDGE_DEFAULT_ROTATION.T)
    assert rpy[2] == pytest.approx(f.limits.orientation_max[2], abs=1e-6)
    assert abs(rpy[0]) < 1e-6 and abs(rpy[1]) < 1e-6
    assert f.state == TRACKING and f.counters.ik_failures == 0 and f.counters.clipped >= 4


def test_reset_estop_never_resumes_a_live_stream(at_start):
    """Re-arm: after reset_estop a stream that kept running is refused until it pauses."""
    f, q = at_start
    f.estop()
    for i in range(10):  # the stream goes on during the e-stop
        assert cmd(f, q, 1.0 + 0.1 * i, t=(0.01, 0, 0)).kind == REJECT
    assert f.reset_estop()
    for i in range(20):  # ... and after the reset: still refused, the arm holds
        d = cmd(f, q, 2.0 + 0.1 * i, t=(0.01, 0, 0))
        assert d.kind == REJECT and 're-arm' in d.reason and f.state == HOLDING
    # The commander holds (or is silent) for rearm_gap_s, then starts a new sequence.
    assert f.hold_request('sensor stale', int(4.05 * S)).kind == REJECT  # no motion while waiting
    d = cmd(f, q, 3.9 + f.limits.rearm_gap_s, t=(0.01, 0, 0))
    assert d.kind == APPLY and f.state == TRACKING and not f.awaiting_rearm


def test_long_reasons_are_bounded(at_start):
    f, q = at_start
    d = f.hold_request('x' * 10_000, int(1.0 * S))
    assert len(d.reason) < 400 and len(f.hold_reason) < 400 and '10000 chars' in d.reason


def test_move_to_start_from_a_twisted_configuration_finds_a_solution():
    """The IK seeded with these measured joints fails to reach the start pose; the move must
    still be planned (from the sleep or home seed), and its path is still checked."""
    from fuse_core.arm.kinematics import HOME_JOINTS
    twisted = np.array([0.688, -0.672, -1.595, -2.43, 1.136, 2.075])
    local = WX250S.ik(pose_from_xyz_rpy(START_XYZ, (0, 0, 0)), twisted, max_iterations=200)
    assert not local.success  # the case this test is about
    f = SafetyFilter()
    d = f.move_to_start(START_XYZ, (0, 0, 0), twisted, now_ns=0)
    assert d.kind in (APPLY, REJECT)
    if d.kind == REJECT:  # only the path check may refuse it, never the IK
        assert 'path refused' in d.reason, d.reason
    else:
        np.testing.assert_allclose(WX250S.fk(d.joints)[:3, 3], START_XYZ, atol=2e-3)
    assert SafetyFilter().move_to_start(START_XYZ, (0, 0, 0), HOME_JOINTS, now_ns=0).kind == APPLY


# --- start-pose move through a waypoint (issue 12) ------------------------------------------
#: Inside the box, but the straight joint path from here to the start pose leaves it.
BOWED_OUT = np.array([-0.038, 0.091, 0.679, -2.649, 0.939, -1.864])


def test_a_refused_start_pose_move_goes_through_the_sleep_pose_each_leg_checked():
    f = SafetyFilter()
    start = bridge_state_to_pose(START_XYZ, (0, 0, 0))
    direct = WX250S.ik(start, BOWED_OUT, max_iterations=200)
    assert direct.success and not f._pose_path.check(BOWED_OUT, direct.joints).whole  # the case
    d = f.move_to_start(START_XYZ, (0, 0, 0), BOWED_OUT, now_ns=0)
    assert d.kind == APPLY and d.reason == 'move to pose through the sleep pose', d.reason
    np.testing.assert_allclose(d.joints, SLEEP_JOINTS)
    assert f._pose_path.check(BOWED_OUT, d.joints).whole and f.state == MOVING_TO_POSE
    assert f.update_move(BOWED_OUT, now_ns=S, tolerance=0.02, timeout_s=15) is None
    assert f.update_move(SLEEP_JOINTS + 0.01, now_ns=2 * S, tolerance=0.02, timeout_s=15) == 'waypoint'
    goal = f.move_joints
    assert f._pose_path.check(SLEEP_JOINTS + 0.01, goal).whole
    np.testing.assert_allclose(WX250S.fk(goal)[:3, 3], START_XYZ, atol=2e-3)
    # Each leg has its own timeout, counted from its start.
    assert f.update_move(SLEEP_JOINTS, now_ns=16 * S, tolerance=0.02, timeout_s=15) is None
    assert f.update_move(goal, now_ns=17 * S, tolerance=0.02, timeout_s=15) == 'arrived'
    assert f.state == IDLE and f.move_joints is None
    np.testing.assert_allclose(f.target, start)


def test_the_next_leg_is_checked_again_from_the_measured_joints():
    from fuse_core.arm.path import PathResult
    f = SafetyFilter()
    assert f.move_to_start(START_XYZ, (0, 0, 0), BOWED_OUT, now_ns=0).kind == APPLY

    class Refusing:
        def check(self, q0, q1):
            return PathResult(0.25, np.asarray(q0), 'stub: leaves the box', 0, 0.0, 0.0)

    f._pose_path = Refusing()
    assert f.update_move(SLEEP_JOINTS, now_ns=S, tolerance=0.02, timeout_s=15) == 'refused'
    assert f.state == HOLDING and 'next leg' in f.hold_reason and f.move_joints is None
    assert f.target is None


def test_a_move_with_no_safe_way_is_still_refused():
    from fuse_core.arm.path import PathResult
    f = SafetyFilter()

    class Refusing:
        def check(self, q0, q1):
            return PathResult(0.5, np.asarray(q0), 'stub: leaves the box', 0, 0.0, 0.0)

    f._pose_path = Refusing()
    d = f.move_to_start(START_XYZ, (0, 0, 0), BOWED_OUT, now_ns=0)
    assert d.kind == REJECT and d.reason.startswith('path refused: the joint-space move to xyz')
    assert 'unsafe after 50%' in d.reason and 'no way through the sleep or home pose' in d.reason
    assert f.state != MOVING_TO_POSE and f.counters.path_refused == 1
