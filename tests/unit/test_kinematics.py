"""WidowX 250s kinematics: FK at known poses, Jacobian vs finite differences, IK round trips."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.arm.kinematics import (HOME_JOINTS, SLEEP_JOINTS, WX250S, bridge_state_to_pose,
                                      pose_from_xyz_rpy, pose_to_bridge_state,
                                      quaternion_to_rotation, rotation_log, rotation_to_quaternion,
                                      rotation_to_rpy, rpy_to_rotation, rot_x, rot_y, rot_z)


def test_home_pose_is_m():
    t = WX250S.fk(HOME_JOINTS)
    np.testing.assert_allclose(t[:3, 3], [0.458325, 0.0, 0.36065], atol=1e-9)
    np.testing.assert_allclose(t[:3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t[:3, 3], [0.458, 0.0, 0.361], atol=1e-3)


def test_sleep_pose_tucks_the_gripper_low_and_close():
    t = WX250S.fk(SLEEP_JOINTS)
    # Shoulder -1.80, elbow 1.55, wrist 0.8: net pitch 0.55 rad down, EE just in front of the base.
    np.testing.assert_allclose(t[:3, 3], [0.1227, 0.0, 0.0813], atol=5e-4)
    np.testing.assert_allclose(rotation_to_rpy(t[:3, :3]), [0.0, 0.55, 0.0], atol=1e-9)


def test_single_joint_motions_match_the_geometry():
    q = np.zeros(6)
    q[0] = np.pi / 2  # waist turns the arm to +y
    np.testing.assert_allclose(WX250S.fk(q)[:3, 3], [0.0, 0.458325, 0.36065], atol=1e-9)
    q = np.zeros(6)
    q[5] = 1.0  # wrist_rotate spins the EE about its own x axis only
    t = WX250S.fk(q)
    np.testing.assert_allclose(t[:3, 3], [0.458325, 0.0, 0.36065], atol=1e-9)
    np.testing.assert_allclose(t[:3, :3], rot_x(1.0), atol=1e-12)


def test_rpy_conventions_are_world_axes_z_y_x():
    rpy = [0.3, -0.4, 1.2]
    np.testing.assert_allclose(rpy_to_rotation(rpy), rot_z(1.2) @ rot_y(-0.4) @ rot_x(0.3), atol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(200):
        rpy = rng.uniform([-np.pi, -1.5, -np.pi], [np.pi, 1.5, np.pi])
        np.testing.assert_allclose(rotation_to_rpy(rpy_to_rotation(rpy)), rpy, atol=1e-9)
    t = pose_from_xyz_rpy([0.1, 0.2, 0.3], [0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(t[:3, 0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(t[:3, 3], [0.1, 0.2, 0.3])


def test_quaternion_round_trip_and_log():
    rng = np.random.default_rng(2)
    for _ in range(200):
        r = rpy_to_rotation(rng.uniform(-np.pi, np.pi, 3))
        q = rotation_to_quaternion(r)
        assert q[3] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
        np.testing.assert_allclose(quaternion_to_rotation(q), r, atol=1e-9)
        w = rotation_log(r)
        angle = np.linalg.norm(w)
        assert angle <= np.pi + 1e-9
        if angle > 1e-9:
            k = w / angle
            kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
            np.testing.assert_allclose(np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx, r,
                                       atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rotation_log(rot_z(np.pi))), np.pi, atol=1e-9)


def _twist_of(t0, t1, dt):
    """Space twist (w, v) taking t0 to t1 in dt (first order)."""
    dtt = (t1 - t0) / dt
    bracket = dtt @ np.linalg.inv(t0)
    w = np.array([bracket[2, 1], bracket[0, 2], bracket[1, 0]])
    return np.concatenate([w, bracket[:3, 3]])


def test_space_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    h = 1e-6
    for _ in range(20):
        q = rng.uniform(WX250S.lower, WX250S.upper)
        j = WX250S.jacobian(q)
        assert j.shape == (6, 6)
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = h
            numeric = _twist_of(WX250S.fk(q - dq), WX250S.fk(q + dq), 2 * h)
            np.testing.assert_allclose(j[:, i], numeric, atol=1e-6)


def test_ik_round_trips_on_random_reachable_poses_within_limits():
    rng = np.random.default_rng(4)
    ok = 0
    for _ in range(300):
        q_true = rng.uniform(WX250S.lower * 0.8, WX250S.upper * 0.8)
        target = WX250S.fk(q_true)
        seed = np.clip(q_true + rng.normal(0.0, 0.15, 6), WX250S.lower, WX250S.upper)
        joints, success, error = WX250S.ik(target, seed)
        assert WX250S.within_limits(joints)
        if success:
            ok += 1
            reached = WX250S.fk(joints)
            assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-4
            assert np.linalg.norm(rotation_log(target[:3, :3] @ reached[:3, :3].T)) < 1e-3
            assert error < 2e-3
    assert ok >= 297, f'only {ok}/300 IK round trips converged'


def test_bridge_state_convention_puts_the_gripper_down_at_rpy_zero():
    t = bridge_state_to_pose([0.3, 0.0, 0.1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(t[:3, 0], [0.0, 0.0, -1.0], atol=1e-12)  # approach axis down
    state = np.array([0.2, 0.05, 0.1, 0.1, -0.2, 0.7])
    np.testing.assert_allclose(pose_to_bridge_state(bridge_state_to_pose(state[:3], state[3:])), state,
                               atol=1e-9)


def test_ik_reaches_the_fuse_start_pose_from_sleep():
    target = bridge_state_to_pose([0.118, -0.016, 0.233], [0.0, 0.0, 0.0])
    joints, success, _ = WX250S.ik(target, SLEEP_JOINTS, max_iterations=200)
    assert success and WX250S.within_limits(joints)
    np.testing.assert_allclose(WX250S.fk(joints)[:3, 3], target[:3, 3], atol=1e-4)
    np.testing.assert_allclose(WX250S.fk(joints)[:3, :3], target[:3, :3], atol=1e-3)


def test_ik_reports_failure_for_unreachable_pose_and_stays_in_limits():
    target = pose_from_xyz_rpy([1.0, 0.0, 0.3], [0.0, 0.0, 0.0])  # beyond the 650 mm reach
    joints, success, error = WX250S.ik(target, HOME_JOINTS)
    assert not success and error > 0.1
    assert WX250S.within_limits(joints)


def test_ik_rejects_bad_inputs():
    with pytest.raises(ValueError):
        WX250S.ik(np.full((4, 4), np.nan), HOME_JOINTS)
    with pytest.raises(ValueError):
        WX250S.fk([0.0] * 5)
    with pytest.raises(ValueError):
        WX250S.fk([0.0, 0.0, np.inf, 0.0, 0.0, 0.0])


def test_clamp_wraps_before_clipping():
    q = np.array([np.pi + 0.1, 0.0, 0.0, -np.pi - 0.2, 0.0, 0.0])
    c = WX250S.clamp(q)
    np.testing.assert_allclose(c[[0, 3]], [-np.pi + 0.1, np.pi - 0.2])
    assert WX250S.clamp(np.array([0.0, 3.0, 0.0, 0.0, 0.0, 0.0]))[1] == pytest.approx(1.990)
