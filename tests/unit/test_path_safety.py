"""Path safety: the joint-space motion, not only the target, stays in the box and above the floor;
speed per unit of time; freshness and order of commands; a seeded fuzz of the filter."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fuse_core.arm.config import ArmConfig
from fuse_core.arm.kinematics import SLEEP_JOINTS, WX250S, bridge_state_to_pose
from fuse_core.arm.path import PathChecker
from fuse_core.arm.safety import APPLY, HOLD, REJECT, SafetyFilter, SafetyLimits

S = 1_000_000_000
LO, HI = np.array([0.10, -0.15, -0.01]), np.array([0.45, 0.25, 0.25])
START_XYZ = (0.118, -0.016, 0.233)


def start_joints():
    return WX250S.ik(bridge_state_to_pose(START_XYZ, (0, 0, 0)), SLEEP_JOINTS, max_iterations=200).joints


def dense_excursion(checker, q0, q1, n=4001):
    """Brute force: the worst margin violation along q0 -> q1 relative to the start (m, >= 0)."""
    s = np.linspace(0.0, 1.0, n)
    m = checker.margins(q0 + s[:, None] * (np.asarray(q1) - q0))
    return float(max(0.0, -(m - min(m[0], 0.0)).min()))


def test_batched_points_match_forward_kinematics():
    q = np.random.default_rng(0).uniform(WX250S.lower, WX250S.upper, (200, 6))
    p = WX250S.point_positions(q)
    for i in range(0, 200, 17):
        np.testing.assert_allclose(p[i, -1], WX250S.fk(q[i])[:3, 3], atol=1e-12)
    # The elbow and wrist axis points at the home pose.
    np.testing.assert_allclose(WX250S.point_positions(np.zeros((1, 6)))[0, :2],
                               [[0.04975, 0, 0.36065], [0.29975, 0, 0.36065]], atol=1e-12)


def test_reach_bounds_bound_the_point_speed():
    """Moving one joint by a small dq moves no checked point farther than r_i |dq|."""
    rng = np.random.default_rng(1)
    r = WX250S.reach_bounds()
    q = rng.uniform(WX250S.lower, WX250S.upper, (500, 6))
    for i in range(6):
        dq = np.zeros(6)
        dq[i] = 1e-4
        moved = np.linalg.norm(WX250S.point_positions(q + dq) - WX250S.point_positions(q), axis=2).max()
        assert moved <= r[i] * 1e-4 * (1 + 1e-6) + 1e-12


def test_a_path_between_two_in_box_poses_that_leaves_the_box_is_detected():
    """Both ends in the box, the joint-space path between them leaves it: shortened, not executed."""
    checker = PathChecker(WX250S, LO, HI, -0.01)
    # Far corners of the box: the waist turns the EE along an arc that bulges past x max.
    q0 = WX250S.ik(bridge_state_to_pose((0.43, -0.14, 0.05), (0, 0, 0)), start_joints(), max_iterations=200)
    q1 = WX250S.ik(bridge_state_to_pose((0.43, 0.24, 0.05), (0, 0, 0)), q0.joints, max_iterations=200)
    assert q0.success and q1.success
    assert dense_excursion(checker, q0.joints, q1.joints) > 0.01  # 1 cm outside midway
    r = checker.check(q0.joints, q1.joints)
    assert 0.0 < r.fraction < 1.0 and 'x ' in r.reason and '> 0.4500' in r.reason
    assert dense_excursion(checker, q0.joints, r.joints) <= checker.spacing / 2 + 1e-9
    # Through the filter the same motion is shortened, never executed whole.
    f = SafetyFilter(SafetyLimits(max_step_translation=0.4, max_linear_speed=2.0))
    f.target = WX250S.fk(q0.joints)
    d = fresh(f, q0.joints, 1.0, t=(0.0, 0.38, 0.0))
    assert d.kind == APPLY and 'path shortened' in d.reason and f.counters.path_shortened == 1
    # The filter allows path_tolerance (0.5 mm) past the face, plus the resolution.
    assert dense_excursion(checker, q0.joints, d.joints) <= 5e-4 + checker.spacing / 2 + 1e-9


def test_fuzzed_segments_never_leave_the_box_beyond_the_resolution():
    """Seeded property check against brute-force sampling, 1500 random segments."""
    checker = PathChecker(WX250S, LO, HI, -0.01)
    rng = np.random.default_rng(3)
    q0s = [start_joints(), SLEEP_JOINTS, np.zeros(6)]
    worst = 0.0
    accepted = 0
    for k in range(1500):
        q0 = q0s[k % 3] if k % 2 else WX250S.clamp(q0s[k % 3] + rng.normal(0, 0.2, 6))
        q1 = WX250S.clamp(q0 + rng.normal(0, 0.25, 6))
        r = checker.check(q0, q1)
        if r.fraction > 0:
            accepted += 1
            worst = max(worst, dense_excursion(checker, q0, r.joints, n=801))
    assert accepted > 300
    assert worst <= 1e-3  # the unsafe-event threshold; the design bound is spacing / 2 = 0.125 mm


def test_floor_applies_to_the_elbow_and_wrist_too():
    checker = PathChecker(WX250S, (-1, -1, -1), (1, 1, 1), floor_z=0.05)
    q0 = np.zeros(6)
    q1 = np.array([0.0, 1.2, 0.0, 0.0, 0.0, 0.0])  # the whole arm tips forward onto the table
    r = checker.check(q0, q1)
    assert 0.0 < r.fraction < 1.0 and 'floor' in r.reason
    p = WX250S.point_positions(r.joints[None])[0]
    assert p[:, 2].min() >= 0.05 - checker.spacing


def test_joint_limits_are_checked():
    checker = PathChecker(WX250S, (-1, -1, -1), (1, 1, 1), floor_z=-1)
    r = checker.check(np.zeros(6), [0, 0, 0, 0, 2.5, 0])
    assert r.fraction == 0.0 and 'joint limits' in r.reason and '4' in r.reason


def test_path_check_cost_is_bounded_for_typical_steps():
    checker = PathChecker(WX250S, LO, HI, -0.01)
    q0 = start_joints()
    target = bridge_state_to_pose(np.add(START_XYZ, (0.02, 0.0, -0.02)), (0, 0, 0))
    r = checker.check(q0, WX250S.ik(target, q0).joints)
    assert r.whole and r.samples <= 200  # deep in the box: certified with few samples


# --- the filter -------------------------------------------------------------------------------
def fresh(f, q, now_s, t=(0, 0, 0), r=(0, 0, 0), tick=None):
    now = int(now_s * S)
    return f.command(t, r, 1.0, q, now, stamp_ns=now, valid_until_ns=now + int(0.3 * S), tick_index=tick)


def test_speed_is_limited_per_unit_of_time_whatever_the_rate():
    f = SafetyFilter()
    q = start_joints()
    f.target = WX250S.fk(q)
    f.last_applied_ns = 0
    start = f.target[:3, 3].copy()
    # 100 Hz commands asking for 5 cm each, for 0.5 s: at most 0.25 m/s * 0.5 s.
    for i in range(1, 51):
        d = fresh(f, q, 0.01 * i, t=(0.0, 0.05, 0.0), r=(0.0, 0.0, 0.25))
        assert d.kind == APPLY
        q = d.joints
    moved = np.linalg.norm(f.target[:3, 3] - start)
    assert moved == pytest.approx(0.25 * 0.5, rel=1e-6)
    assert f.counters.speed_limited == 50


def test_downward_steps_stop_at_the_box_bottom_along_the_path():
    """The issue's case: 5 cm steps down with valid_until far ahead end at z min, never below."""
    f = SafetyFilter()
    q = start_joints()
    checker = PathChecker(WX250S, LO, HI, -0.01)  # the box itself, no tolerance
    worst = 0.0
    for i in range(40):
        now = int((1 + 0.2 * i) * S)
        d = f.command((0, 0, -0.05), (0, 0, 0), 1.0, q, now, stamp_ns=now, valid_until_ns=now + 365 * 86400 * S)
        assert d.kind == REJECT and 'valid_until' in d.reason
        d = f.command((0, 0, -0.05), (0, 0, 0), 1.0, q, now, stamp_ns=now, valid_until_ns=now + S // 2)
        if d.kind == APPLY:
            worst = max(worst, dense_excursion(checker, q, d.joints))
            q = d.joints
    assert WX250S.fk(q)[2, 3] == pytest.approx(-0.01, abs=2e-3)
    assert worst <= 1e-3


def test_future_stamps_far_valid_until_and_replayed_ticks_are_refused():
    f = SafetyFilter()
    q = start_joints()
    now = 100 * S
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, stamp_ns=now + 3600 * S, valid_until_ns=now + 3601 * S)
    assert d.kind == REJECT and 'future' in d.reason and f.counters.future_stamped == 1
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, stamp_ns=now, valid_until_ns=now + 2 * S)
    assert d.kind == REJECT and 'max_command_age_s' in d.reason
    d = f.command((0.01, 0, 0), (0, 0, 0), 1.0, q, now, valid_until_ns=now + 2 * S)  # no stamp
    assert d.kind == REJECT and 'arrival' in d.reason
    assert fresh(f, q, 100.0, t=(0.01, 0, 0), tick=7).kind == APPLY
    for tick in (7, 3):
        d = fresh(f, q, 100.2, t=(0.01, 0, 0), tick=tick)
        assert d.kind == REJECT and 'tick_index' in d.reason
    assert f.counters.out_of_order == 2
    assert fresh(f, q, 100.4, t=(0.01, 0, 0), tick=8).kind == APPLY


def test_ik_branch_flips_are_refused():
    f = SafetyFilter(SafetyLimits(max_joint_step=0.05))
    q = start_joints()
    d = fresh(f, q, 1.0, t=(0.05, 0.0, 0.0))
    assert d.kind == HOLD and 'max_joint_step' in d.reason and f.counters.path_refused == 1


def test_move_to_start_from_sleep_is_allowed_only_within_the_pose_margin():
    q1 = SafetyFilter().move_to_start(START_XYZ, (0, 0, 0), SLEEP_JOINTS, 0)
    assert q1.kind == APPLY and q1.reason == 'move to pose'
    strict = SafetyFilter(SafetyLimits(pose_move_margin=0.0))
    d = strict.move_to_start(START_XYZ, (0, 0, 0), SLEEP_JOINTS, 0)
    assert d.kind == REJECT and 'path refused' in d.reason and '< 0.1000' in d.reason


def test_default_start_pose_is_reachable_and_the_box_is_mapped():
    """Samples the default box gripper-down: the start pose solves; unreachable regions are far x."""
    cfg = ArmConfig()
    q = start_joints()
    np.testing.assert_allclose(WX250S.fk(q)[:3, 3], cfg.start_pose_xyz, atol=1e-4)
    unreachable = []
    for x in np.linspace(cfg.workspace_min[0], cfg.workspace_max[0], 8):
        for y in np.linspace(cfg.workspace_min[1], cfg.workspace_max[1], 5):
            for z in np.linspace(cfg.workspace_min[2], cfg.workspace_max[2], 5):
                if not WX250S.ik(bridge_state_to_pose((x, y, z), (0, 0, 0)), q, max_iterations=200).success:
                    unreachable.append((x, y, z))
    unreachable = np.array(unreachable).reshape(-1, 3)
    # Documented in README (Safety): gripper-down IK fails only in the far top corner
    # (x >= 0.35 m high up, and most of x = 0.45 m); the near half of the box is all reachable.
    assert unreachable.shape[0] < 0.15 * 200
    assert unreachable.shape[0] == 0 or unreachable[:, 0].min() >= 0.34
    assert np.all((unreachable[:, 0] >= 0.44) | (unreachable[:, 2] >= 0.18))


def _fuzz_commands(n, seed):
    """Random commands (sizes, rates, rotations, stale or forged times) through the filter with a
    lagging arm; every applied motion's whole joint-space path is checked densely."""
    rng = np.random.default_rng(seed)
    f = SafetyFilter()
    checker = PathChecker(WX250S, LO, HI, -0.01)  # the box itself, no tolerance
    q = start_joints()
    now = 10 * S
    worst = 0.0
    last_applied = None
    last_target = None
    speed_violation = 0.0
    joint_violation = 0.0
    applied = 0
    for i in range(n):
        now += int(rng.choice([0.001, 0.01, 0.05, 0.2, 0.5]) * S)
        scale = rng.choice([0.001, 0.01, 0.05, 1.0])
        t = rng.normal(0, scale, 3)
        r = rng.normal(0, scale * 3, 3)
        stamp = now - int(rng.choice([0.0, 0.1, 2.0, -10.0]) * S)
        valid = stamp + int(rng.choice([0.3, 0.9, 5.0, 3e7]) * S)
        d = f.command(t, r, rng.uniform(), q, now, stamp_ns=stamp, valid_until_ns=valid, tick_index=i)
        if d.kind != APPLY:
            continue
        applied += 1
        worst = max(worst, dense_excursion(checker, q, d.joints, n=401))
        joint_violation = max(joint_violation, float(np.max(np.maximum(WX250S.lower - d.joints, 0.0))),
                              float(np.max(np.maximum(d.joints - WX250S.upper, 0.0))))
        if last_applied is not None:
            dt = (now - last_applied) / 1e9
            budget = min(0.05, 0.25 * dt)
            if d.reason.startswith('path shortened'):
                # The target becomes the end of the safe part of the move from the measured pose:
                # never further from where the arm is than the budgeted target would have been.
                here = WX250S.fk(q)[:3, 3]
                step = np.linalg.norm(d.target[:3, 3] - here) - np.linalg.norm(last_target[:3, 3] - here)
            else:
                step = np.linalg.norm(d.target[:3, 3] - last_target[:3, 3])
            speed_violation = max(speed_violation, step - budget)
        last_applied, last_target = now, d.target.copy()
        # The arm gets part of the way (lagging) or all the way.
        q = q + rng.choice([0.3, 1.0]) * (d.joints - q)
    return applied, worst, speed_violation, joint_violation


def test_command_fuzz_keeps_every_invariant():
    n = int(os.environ.get('FUSE_FUZZ_COMMANDS', '100000'))
    applied, worst, speed, joints = _fuzz_commands(n, seed=4)
    assert applied > n // 10
    assert worst <= 1e-3, f'end effector {worst * 1e3:.3f} mm outside the box along a path'
    assert worst <= 5e-4 + 1.25e-4 + 1e-9  # path_tolerance + path_spacing / 2
    assert speed <= 1e-9 and joints <= 1e-9


def test_tick_order_restarts_with_a_new_stream():
    """A restarted sync/policy starts its ticks over: accepted after the watchdog pause or a
    commander restart, never within a live stream."""
    f = SafetyFilter()
    q = start_joints()
    assert fresh(f, q, 1.0, t=(0.01, 0, 0), tick=500).kind == APPLY
    assert fresh(f, q, 1.2, t=(0.01, 0, 0), tick=0).kind == REJECT
    assert fresh(f, q, 1.2 + f.limits.watchdog_s + 0.01, t=(0.01, 0, 0), tick=0).kind == APPLY
    assert fresh(f, q, 1.9, t=(0.01, 0, 0), tick=0).kind == REJECT
    f.new_stream()
    assert fresh(f, q, 2.0, t=(0.01, 0, 0), tick=0).kind == APPLY


def test_gate_keeps_the_newest_and_refuses_others():
    from fuse_core.arm.gate import CommandGate
    names = {b'a': '/policy', b'b': '/rogue', b'c': '/policy'}
    gate = CommandGate('/policy', names.get, foreign_hold_s=0.5)
    for i in range(5):
        assert gate.offer(i, b'a', i) == ''
    assert gate.take()[:2] == (4, 4) and gate.counters.superseded == 4 and gate.take() is None
    assert 'not the commander' in gate.offer('x', b'b', 10) and gate.foreign_active(10 + S // 10)
    assert not gate.foreign_active(10 + S)
    assert 'second publisher named /policy' in gate.offer('y', b'c', 20)   # /policy still live
    assert gate.offer('z', b'c', 20 + S) == ''                             # old one silent: a restart
    msg, _, restarted = gate.take()
    assert msg == 'z' and restarted and gate.counters.restarts == 1
    assert gate.offer('w', b'?', 30) and gate.counters.unknown == 1


def test_gate_looks_an_unnamed_publisher_up_at_a_bounded_rate():
    """A flood from an endpoint the graph does not name yet costs one graph query per 0.1 s."""
    from fuse_core.arm.gate import RESOLVE_RETRY_NS, CommandGate
    lookups = []
    known = {}

    def resolve(gid):
        lookups.append(gid)
        return known.get(gid)
    gate = CommandGate('/policy', resolve)
    step = RESOLVE_RETRY_NS // 50
    for i in range(200):  # 1 kHz-like flood over 4 retry periods
        assert 'does not list' in gate.offer(i, b'x', i * step)
    assert gate.counters.unknown == 200 and len(lookups) == 4
    known[b'x'] = '/policy'  # discovered: named at the next retry, then cached
    t = 200 * step + RESOLVE_RETRY_NS
    assert gate.offer('a', b'x', t) == '' and gate.offer('b', b'x', t + 1) == ''
    assert len(lookups) == 5 and gate.take()[0] == 'b'


def test_sliding_along_a_box_face_is_not_refused():
    """At the x-min face, small steps along it bow out by microns: within path_tolerance."""
    f = SafetyFilter()
    q = start_joints()
    f.target = WX250S.fk(q)
    for i in range(5):  # to the x-min face
        d = fresh(f, q, 1.0 + 0.2 * i, t=(-0.05, 0.0, 0.0))
        q = d.joints
    assert f.target[0, 3] == pytest.approx(0.10, abs=1e-3)
    applied = 0
    for i in range(20):  # then along it, in y and z
        d = fresh(f, q, 3.0 + 0.2 * i, t=(-0.01, 0.02, -0.005))
        applied += d.kind == APPLY
        q = d.joints if d.kind == APPLY else q
    assert applied >= 18 and WX250S.fk(q)[1, 3] > 0.2
    strict = PathChecker(WX250S, LO, HI, -0.01)
    assert min(strict.margins(q[None])) > -1e-3
