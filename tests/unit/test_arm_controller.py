"""ArmController, the arm node's logic without ROS: connection backoff, the tick, states, pose moves."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.arm.backends import MockArm
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.controller import (DRY_RUN, HOLDING, ArmCommand, ArmController, pose_to_xyz_quat,
                                      xyz_quat_to_pose)
from fuse_core.arm.gate import CommandGate
from fuse_core.arm.kinematics import SLEEP_JOINTS, WX250S, bridge_state_to_pose, pose_from_xyz_rpy
from fuse_core.arm.safety import ESTOP, IDLE, MOVING_TO_POSE, TRACKING
from fuse_core.config import from_mapping
from fuse_core.errors import DeviceError
from fuse_core.severity import Severity

S = 1_000_000_000
GID = b'commander'


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FlakyArm(MockArm):
    """A mock that refuses to connect the first `failures` times."""

    name = 'flaky'

    def __init__(self, failures: int, **kw) -> None:
        super().__init__(**kw)
        self.failures = failures
        self.attempts = 0

    def connect(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise DeviceError(f'flaky: attempt {self.attempts} failed')
        super().connect()


def make(backend=None, clock=None, **params):
    cfg = from_mapping(ArmConfig, {'motion_services': True, **params})
    logs = []
    gate = CommandGate(cfg.commander, lambda gid: cfg.commander if gid == GID else '/intruder')
    arm = ArmController(cfg, backend or MockArm(), gate, lambda level, msg: logs.append((level, msg)),
                        clock=clock or Clock())
    return arm, logs


def command(tick, now_ns, t=(0.01, 0.0, 0.0), hold=False, reason=''):
    return ArmCommand(tick, t, (0.0, 0.0, 0.0), 1.0, hold=hold, reason=reason, stamp_ns=now_ns,
                      valid_until_ns=now_ns + S // 2, source=f'msg {tick}')


def settle(arm, start_ns, seconds=8.0, period_ns=S // 100):
    now = start_ns
    while now < start_ns + int(seconds * S) and arm.filter.state == MOVING_TO_POSE:
        now += period_ns
        arm.tick(now)
    return now


def test_pose_conversions_round_trip_and_refuse_bad_quaternions():
    t = pose_from_xyz_rpy((0.2, -0.1, 0.15), (0.3, -0.2, 1.0))
    xyz, q = pose_to_xyz_quat(t)
    assert all(isinstance(v, float) for v in xyz + q) and len(q) == 4
    np.testing.assert_allclose(xyz_quat_to_pose(xyz, q), t, atol=1e-12)
    assert xyz_quat_to_pose(xyz, (0, 0, 0, 0)) is None
    assert xyz_quat_to_pose(xyz, (np.nan, 0, 0, 1)) is None


def test_reconnection_backs_off_through_the_supervisor_and_keeps_the_driver_message():
    clock = Clock()
    arm, logs = make(FlakyArm(3), clock, reconnect_max_s=1.0)
    arm.reconnect()
    assert not arm.connected and arm.last_error == 'flaky: attempt 1 failed'
    assert logs[-1] == ('error', 'flaky: attempt 1 failed; retrying in 0.5 s')
    assert arm.state() == (HOLDING, 'backend not connected: flaky: attempt 1 failed')
    arm.reconnect()  # not due yet
    assert arm.backend.attempts == 1
    waits = []
    for _ in range(2):
        clock.t += arm.connection.seconds_until_retry()
        arm.reconnect()
        waits.append(logs[-1][1].rsplit(' ', 2)[-2])
    assert waits == ['1.0', '1.0']  # doubling, capped at reconnect_max_s
    clock.t += 1.0
    arm.reconnect()
    assert arm.connected and arm.last_error == '' and logs[-1] == ('info', 'backend flaky connected')
    level, message, _ = arm.diagnostics({})
    assert level is Severity.OK and message == IDLE


def test_commands_flow_through_gate_filter_and_backend():
    arm, logs = make()
    arm.reconnect()
    assert arm.move_to_start(0)[0]
    now = settle(arm, 0)
    assert arm.filter.state == IDLE
    now += S // 5
    arm.offer(command(1, now), GID, now)
    applied = arm.tick(now)
    assert applied.command.source == 'msg 1' and not applied.hold
    np.testing.assert_allclose(applied.translation, (0.01, 0.0, 0.0), atol=1e-9)
    assert arm.filter.state == TRACKING and arm.backend.commands_sent >= 2
    # A hold request publishes nothing on ~/applied_command and names the reason.
    arm.offer(command(2, now + S // 5, hold=True, reason='stale: camera'), GID, now + S // 5)
    assert arm.tick(now + S // 5) is None
    assert arm.state() == (HOLDING, 'policy: stale: camera')
    # A foreign publisher makes the arm hold, naming it.
    arm.offer(command(3, now + 2 * S // 5), b'other', now + 2 * S // 5)
    arm.tick(now + 2 * S // 5)
    assert 'foreign publisher /intruder' in arm.state()[1]
    report = arm.report()
    assert report.state == HOLDING and report.received == 2 and report.ee_pose is not None


def test_dry_run_sends_nothing_and_reports_its_state():
    from fuse_core.arm.backends import mock_arm
    cfg = from_mapping(ArmConfig, {'mock_initial_pose': 'start'})
    arm, _ = make(mock_arm(cfg), dry_run=True)
    arm.reconnect()
    ok, message = arm.move_to_start(0)
    assert ok and message == 'dry run: pose move logged, not sent'
    now = S
    arm.offer(command(1, now), GID, now)
    applied = arm.tick(now)
    assert applied.hold and applied.reason == 'dry run: not sent'
    assert arm.backend.commands_sent == 0 and arm.dry_run_sent == 2
    assert arm.state()[0] == DRY_RUN


def test_motion_services_off_refuses_every_motion_service():
    arm, logs = make(motion_services=False)
    arm.reconnect()
    for call in (lambda: arm.reset_estop(), lambda: arm.move_to_start(0),
                 lambda: arm.move_to_pose(np.eye(4), 1.0, 0)):
        ok, message = call()
        assert not ok and 'motion_services false' in message
    assert arm.estop() == (True, 'e-stop latched; call ~/reset_estop to release')
    assert arm.state()[0] == ESTOP


def test_an_invalid_pose_is_refused_before_the_filter():
    arm, _ = make()
    arm.reconnect()
    assert arm.move_to_pose(None, 1.0, 0) == (False, 'pose orientation is not a valid quaternion')


def test_stale_driver_joint_states_hold_and_publish_nothing():
    class Stale(MockArm):
        def joint_state_age_s(self):
            return 0.8

    arm, _ = make(Stale())
    arm.reconnect()
    assert arm.measured() == (None, None)
    state, reason = arm.state()
    assert state == HOLDING and 'driver joint states are 0.80 s old' in reason
    assert arm.move_to_start(0) == (False, reason)


def test_the_start_pose_move_falls_back_to_the_sleep_pose_when_the_direct_path_is_refused():
    """Issue 12: after a twin episode the straight joint path to the start pose may leave the box."""
    bowed_out = np.array([-0.038, 0.091, 0.679, -2.649, 0.939, -1.864])
    arm, logs = make(MockArm(bowed_out))
    arm.reconnect()
    ok, message = arm.move_to_start(0)
    assert ok and 'through the sleep pose (the direct joint path is refused)' in message, message
    np.testing.assert_allclose(arm.backend.joint_targets(), SLEEP_JOINTS)
    checker = arm.filter._pose_path
    visited = [arm.backend.joint_positions()]
    now = 0
    while arm.filter.state == MOVING_TO_POSE and now < 20 * S:
        now += S // 100
        arm.tick(now)
        visited.append(arm.backend.joint_positions())
    assert arm.filter.state == IDLE, arm.state()
    assert ('info', 'waypoint reached; moving on to the pose') in logs
    start = bridge_state_to_pose(arm.cfg.start_pose_xyz, arm.cfg.start_pose_rpy)
    np.testing.assert_allclose(WX250S.fk(arm.backend.joint_positions())[:3, 3], start[:3, 3], atol=5e-3)
    # The executed motion stayed inside what the pose-move check allows, all the way.
    margins = checker.margins(np.array(visited))
    assert margins.min() >= -1e-3, margins.min()


@pytest.mark.parametrize('failing', ['set_joint_targets'])
def test_a_backend_error_on_send_holds_and_is_reported(failing):
    class Broken(MockArm):
        def set_joint_targets(self, joints, slow=False):
            raise DeviceError('bus error')

    arm, logs = make(Broken())
    arm.reconnect()
    ok, message = arm.move_to_start(0)
    assert not ok and message == 'backend error: bus error'
    assert ('error', 'backend error: bus error') in logs and arm.last_error == 'bus error'
