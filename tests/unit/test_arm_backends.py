"""Arm backends: the kinematic mock, the arm config, and the Interbotix backend against a recording fake."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fuse_core.arm.backends import MockArm
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.kinematics import FINGER_MAX, FINGER_MIN, SLEEP_JOINTS, WX250S, bridge_state_to_pose
from fuse_core.arm.safety import APPLY, REJECT, SafetyFilter
from fuse_core.config import from_mapping
from fuse_core.errors import ConfigError, DeviceError
from fuse_nodes.interbotix_arm import InterbotixArm, driver_namespaces

FAKES = Path(__file__).resolve().parents[1] / 'fakes' / 'interbotix_xs_modules'
JS = 'sensor_msgs/msg/JointState'
S = 1_000_000_000


# --- mock arm -------------------------------------------------------------------------------
def test_mock_moves_toward_target_within_velocity_limits():
    arm = MockArm(SLEEP_JOINTS, time_constant_s=0.05)
    arm.connect()
    target = np.array([1.0, -0.5, 0.5, 0.8, 0.2, -1.0])
    assert arm.set_joint_targets(target)
    dt = 0.01
    prev = arm.joint_positions()
    for _ in range(300):
        arm.step(dt)
        q = arm.joint_positions()
        assert np.all(np.abs(q - prev) <= WX250S.velocity * dt + 1e-12)
        prev = q
    np.testing.assert_allclose(arm.joint_positions(), target, atol=1e-6)


def test_mock_is_deterministic_and_first_order():
    def run():
        arm = MockArm(SLEEP_JOINTS, time_constant_s=0.1)
        arm.set_joint_targets(SLEEP_JOINTS + 0.01)
        out = []
        for _ in range(5):
            arm.step(0.01)
            out.append(arm.joint_positions())
        return np.array(out)
    a, b = run(), run()
    np.testing.assert_array_equal(a, b)
    # Small errors decay by (1 - dt/tau) per step: 0.01 -> 0.009 -> 0.0081 ...
    np.testing.assert_allclose(a[:, 0] - SLEEP_JOINTS[0], [0.001, 0.0019, 0.00271, 0.003439, 0.0040951],
                               atol=1e-12)


def test_mock_gripper_moves_between_finger_limits():
    arm = MockArm(SLEEP_JOINTS)
    assert arm.gripper_opening() == FINGER_MAX
    arm.set_gripper(False)
    arm.step(0.1)
    assert FINGER_MIN < arm.gripper_opening() < FINGER_MAX
    for _ in range(100):
        arm.step(0.1)
    assert arm.gripper_opening() == FINGER_MIN
    arm.set_gripper(True)
    for _ in range(100):
        arm.step(0.1)
    assert arm.gripper_opening() == FINGER_MAX


def test_mock_hold_stops_motion_and_rejects_bad_targets():
    arm = MockArm(SLEEP_JOINTS)
    arm.set_joint_targets(np.zeros(6))
    arm.step(0.05)
    arm.hold()
    here = arm.joint_positions()
    for _ in range(20):
        arm.step(0.01)
    np.testing.assert_array_equal(arm.joint_positions(), here)
    with pytest.raises(ValueError):
        arm.set_joint_targets([np.nan] * 6)
    assert not arm.set_joint_targets([0.0, 3.0, 0.0, 0.0, 0.0, 0.0])  # shoulder beyond 1.99


# --- config ---------------------------------------------------------------------------------
def test_default_config_is_valid_and_builds_limits():
    cfg = ArmConfig()
    lim = cfg.safety_limits()
    assert lim.max_step_translation == 0.05 and tuple(lim.workspace_max) == (0.45, 0.25, 0.25)


@pytest.mark.parametrize('values,name', [
    ({'backend': 'gazebo'}, 'backend'),
    ({'robot_model': 'wx250'}, 'robot_model'),
    ({'control_rate_hz': -5.0}, 'control_rate_hz'),
    ({'watchdog_s': 0.0}, 'watchdog_s'),
    ({'max_step_translation': 1.0}, 'max_step_translation'),
    ({'workspace_min': [0.1, 0.0]}, 'workspace_min'),
    ({'workspace_min': [0.5, -0.15, -0.01]}, 'workspace_min'),
    ({'start_pose_xyz': [0.6, 0.0, 0.1]}, 'start_pose_xyz'),
    ({'accel_time': 0.2, 'moving_time': 0.25}, 'accel_time'),
    ({'base_frame': 'base_link'}, 'base_frame'),
    ({'mock_initial_pose': 'upright'}, 'mock_initial_pose'),
])
def test_wrong_parameters_raise_config_error_naming_them(values, name):
    with pytest.raises(ConfigError, match=name):
        from_mapping(ArmConfig, values)


def test_shipped_yaml_matches_the_config():
    import yaml
    path = Path(__file__).resolve().parents[2] / 'ros2_ws/src/fuse_bringup/config/arm.yaml'
    params = yaml.safe_load(path.read_text())['arm']['ros__parameters']
    cfg = from_mapping(ArmConfig, params)
    assert cfg == ArmConfig()


# --- Interbotix backend against the recording fake ------------------------------------------
def _forget_interbotix_modules():
    for name in list(sys.modules):
        if name.startswith(('interbotix_xs_modules', 'interbotix_common_modules')):
            del sys.modules[name]


@pytest.fixture
def fake_ix(monkeypatch):
    """The recording fake of interbotix_xs_modules / interbotix_common_modules on sys.path."""
    monkeypatch.syspath_prepend(str(FAKES))
    _forget_interbotix_modules()
    import interbotix_xs_modules as fake
    fake.reset()
    yield fake
    _forget_interbotix_modules()


def topics(*namespaces):
    listed = [(f'{ns}/joint_states', [JS]) for ns in namespaces] + [('/rosout', ['rcl_interfaces/msg/Log'])]
    return lambda: listed


def make_arm(list_topics, **kw):
    kw.setdefault('connect_timeout_s', 0.2)
    return InterbotixArm('wx250s', list_topics, **kw)


def test_driver_namespaces_lists_only_joint_state_publishers():
    found = driver_namespaces([('/wx250/joint_states', [JS]), ('/arm/joint_states', [JS]),
                               ('/wx250s/joint_states', ['std_msgs/msg/String']), ('/x/status', [JS])],
                              exclude=['/arm/joint_states'])
    assert found == ['/wx250']


def test_namespace_mismatch_refuses_and_names_what_it_found(fake_ix):
    arm = make_arm(topics('/wx250'))
    with pytest.raises(DeviceError) as err:
        arm.connect()
    assert "['/wx250']" in str(err.value) and '/wx250s/joint_states' in str(err.value)
    assert 'refusing' in str(err.value)
    assert fake_ix.calls('InterbotixManipulatorXS') == []  # never built: it would wait forever
    assert not arm.connected
    with pytest.raises(DeviceError, match='not connected'):
        arm.set_joint_targets([0.0] * 6)


def test_no_driver_at_all_is_reported(fake_ix):
    with pytest.raises(DeviceError, match='no joint_states publisher'):
        make_arm(lambda: []).connect()


def test_connect_builds_the_api_with_our_node_and_profile(fake_ix):
    arm = make_arm(topics('/wx250s', '/wx250'), moving_time=0.25, accel_time=0.1)
    arm.connect()
    (_, kw), = fake_ix.calls('InterbotixManipulatorXS')
    assert kw['robot_model'] == 'wx250s' and kw['group_name'] == 'arm' and kw['gripper_name'] == 'gripper'
    assert kw['moving_time'] == 0.25 and kw['accel_time'] == 0.1 and kw['node'] is not None
    assert len(fake_ix.calls('robot_startup')) == 1
    np.testing.assert_allclose(arm.joint_positions(), SLEEP_JOINTS)
    assert arm.gripper_opening() == pytest.approx(0.037)


def test_wrong_joint_group_is_refused(fake_ix):
    fake_ix.STATE['arm_joint_names'] = ['waist', 'shoulder', 'elbow', 'wrist_angle', 'wrist_rotate']
    with pytest.raises(DeviceError, match='forearm_roll'):
        make_arm(topics('/wx250s')).connect()
    assert fake_ix.calls('robot_startup') == []


def test_constructor_failure_becomes_device_error(fake_ix):
    fake_ix.STATE['fail_constructor'] = 'services not found'
    with pytest.raises(DeviceError, match='services not found'):
        make_arm(topics('/wx250s')).connect()


def test_streaming_sends_the_checked_joints_non_blocking_as_plain_floats(fake_ix):
    """The filter's IK solution (whose path it checked) is what the driver gets, not the API's own IK."""
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    target = bridge_state_to_pose([0.2, 0.0, 0.15], [0.0, 0.0, 0.0])
    joints = np.array([0.1, -0.5, 0.4, 0.0, 1.2, 0.1], dtype=np.float32)  # float32 breaks float32[] fields
    assert arm.set_ee_target(target, joints, SLEEP_JOINTS)
    (args, kw), = fake_ix.calls('arm.set_joint_positions')
    np.testing.assert_allclose(args[0], joints, atol=1e-6)
    assert all(type(v) is float for v in args[0])
    assert kw['blocking'] is False
    assert kw['moving_time'] is None and kw['accel_time'] is None  # no register service call
    assert fake_ix.calls('arm.set_ee_pose_matrix') == []
    assert fake_ix.calls('arm.set_trajectory_time') == []


def test_gripper_commands_are_non_blocking_and_edge_triggered(fake_ix):
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    for open_ in (True, True, False, False, True):
        arm.set_gripper(open_)
    names = [n for n, _, _ in fake_ix.CALLS if n.startswith('gripper.')]
    assert names == ['gripper.release', 'gripper.grasp', 'gripper.release']
    assert all(kw['delay'] == 0.0 for n, _, kw in fake_ix.CALLS if n.startswith('gripper.'))


def test_slow_pose_moves_switch_the_profile_once(fake_ix):
    arm = make_arm(topics('/wx250s'), moving_time=0.25, pose_moving_time=2.0)
    arm.connect()
    assert arm.set_joint_targets(np.array(SLEEP_JOINTS), slow=True)
    (args, kw), = fake_ix.calls('arm.set_joint_positions')
    assert kw['blocking'] is False and all(type(v) is float for v in args[0])
    arm.set_ee_target(np.eye(4) @ bridge_state_to_pose([0.2, 0, 0.15], [0, 0, 0]), np.zeros(6), SLEEP_JOINTS)
    arm.set_ee_target(bridge_state_to_pose([0.2, 0, 0.16], [0, 0, 0]), np.zeros(6), SLEEP_JOINTS)
    times = [kw['moving_time'] for _, kw in fake_ix.calls('arm.set_trajectory_time')]
    assert times == [2.0, 0.25]


def test_backend_ik_refusal_is_reported(fake_ix):
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    fake_ix.STATE['joint_limits_ok'] = False
    assert not arm.set_ee_target(bridge_state_to_pose([0.2, 0, 0.15], [0, 0, 0]), np.zeros(6), SLEEP_JOINTS)


def test_filter_in_front_of_interbotix_never_forwards_nan_or_estop_commands(fake_ix):
    """The node's path: filter decision -> backend; only APPLY decisions reach the API."""
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    f = SafetyFilter()

    def send(t, now_s):
        now = int(now_s * S)
        d = f.command(t, (0, 0, 0), 1.0, arm.joint_positions(), now, stamp_ns=now, valid_until_ns=now + S)
        if d.kind == APPLY:
            arm.set_ee_target(d.target, d.joints, d.seed)
        return d

    assert send((0.01, 0, 0), 1.0).kind == APPLY
    assert len(fake_ix.calls('arm.set_joint_positions')) == 1
    for bad in ((np.nan, 0, 0), (0, np.inf, 0), (0, 0, -np.inf)):
        assert send(bad, 1.2).kind == REJECT
    assert len(fake_ix.calls('arm.set_joint_positions')) == 1
    f.estop()
    arm.hold()
    n_calls = len(fake_ix.CALLS)
    for i in range(5):
        assert send((0.01, 0, 0), 1.4 + 0.2 * i).kind == REJECT
    assert len(fake_ix.CALLS) == n_calls
    (hold_args, hold_kw) = fake_ix.calls('arm.set_joint_positions')[-1]
    assert len(fake_ix.calls('arm.set_joint_positions')) == 2
    assert hold_kw['blocking'] is False
    np.testing.assert_allclose(hold_args[0], SLEEP_JOINTS)


def test_joint_state_age_comes_from_the_driver_stamp(fake_ix):
    fake_ix.STATE['js_age_s'] = 2.0
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    assert 1.9 < arm.joint_state_age_s() < 10.0
    assert MockArm(SLEEP_JOINTS).joint_state_age_s() is None


def test_close_shuts_the_api_down_once(fake_ix):
    arm = make_arm(topics('/wx250s'))
    arm.connect()
    arm.close()
    arm.close()
    assert len(fake_ix.calls('robot_shutdown')) == 1
    assert not arm.connected


def test_missing_interbotix_package_is_a_clear_device_error(monkeypatch):
    _forget_interbotix_modules()
    monkeypatch.setitem(sys.modules, 'interbotix_xs_modules', None)
    with pytest.raises(DeviceError, match='interbotix_xs_modules'):
        make_arm(topics('/wx250s')).connect()


# --- backend choice ------------------------------------------------------------------------
def test_make_backend_builds_the_mock_here_and_asks_the_node_for_the_others():
    from fuse_core.arm.backends import make_backend
    mock = make_backend(ArmConfig(), {})
    assert isinstance(mock, MockArm) and np.allclose(mock.joint_positions(), SLEEP_JOINTS)
    start = make_backend(from_mapping(ArmConfig, {'mock_initial_pose': 'start'}), {})
    cfg = ArmConfig()
    assert np.allclose(WX250S.fk(start.joint_positions())[:3, 3], cfg.start_pose_xyz, atol=1e-3)
    made = []
    sim = from_mapping(ArmConfig, {'backend': 'sim'})
    assert make_backend(sim, {'sim': lambda: made.append('sim') or MockArm()}) is not None and made == ['sim']
    with pytest.raises(ConfigError, match="'backend' = 'sim'"):
        make_backend(sim, {'interbotix': MockArm})


def test_mock_refusals_are_counted_like_the_twin_arm():
    arm = MockArm()
    q = np.array(SLEEP_JOINTS, dtype=float)
    q[0] = WX250S.upper[0] + 0.5
    assert arm.set_joint_targets(q) is False and arm.refused == 1 and arm.commands_sent == 0
    with pytest.raises(ValueError, match='mock arm: joint targets must be 6 finite values'):
        arm.set_joint_targets([np.nan] * 6)
