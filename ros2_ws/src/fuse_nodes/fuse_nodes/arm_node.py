"""Arm node: filters 5 Hz delta-EE commands and drives a WidowX 250s backend (mock or Interbotix)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

import numpy as np
from fuse_interfaces.msg import ArmStatus, DeltaEECommand
from fuse_interfaces.srv import MoveToPose
from geometry_msgs.msg import Pose, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from fuse_core.arm.applied import applied_action
from fuse_core.arm.backends import ArmBackend, make_backend
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.gate import CommandGate
from fuse_core.arm.kinematics import (FINGER_NAMES, JOINT_NAMES, WX250S, quaternion_to_rotation, rotation_to_quaternion)
from fuse_core.arm.safety import APPLY, ESTOP, HOLD, MOVING_TO_POSE, REJECT, FilterDecision, SafetyFilter
from fuse_core.errors import DeviceError
from fuse_core.gripper import gripper_open
from fuse_core.timing import RateMonitor
from fuse_nodes.common import (CONTROL_QOS, ERROR, OK, STATE_QOS, WARN, Diagnostics, declare_config,
                               run_node, time_to_ns)


def pose_msg(t: np.ndarray) -> Pose:
    """4x4 transform -> geometry_msgs/Pose."""
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in t[:3, 3])
    q = rotation_to_quaternion(t[:3, :3])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    return p


def pose_matrix(p: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4 transform; a zero quaternion is rejected by the caller."""
    t = np.eye(4)
    t[:3, :3] = quaternion_to_rotation([p.orientation.x, p.orientation.y, p.orientation.z,
                                        p.orientation.w])
    t[:3, 3] = [p.position.x, p.position.y, p.position.z]
    return t


#: Older driver joint states are not a measurement: commands are refused and nothing is published.
MAX_JOINT_STATE_AGE_S = 0.5


class ArmNode(Node):
    """ROS shell around SafetyFilter + ArmBackend; all decisions are made in fuse_core."""

    def __init__(self) -> None:
        super().__init__('arm')
        self.cfg: ArmConfig = declare_config(self, ArmConfig)
        cfg = self.cfg
        self._lock = threading.RLock()
        self.filter = SafetyFilter(cfg.safety_limits(), WX250S)
        self._last_error = ''
        self._dry_run_sent = 0
        self._last_logged_state = ''
        self._js_rate = RateMonitor()
        self._cmd_rate = RateMonitor()
        self._control_rate = RateMonitor()
        self._last_tick_ns: Optional[int] = None
        self._next_connect = 0.0
        self._connect_backoff = 0.5

        # One group each, so a command flood cannot starve the control loop, the joint states,
        # the status or the e-stop (multithreaded executor); the command callback only hands the
        # message to the gate, and the control loop filters at most one command per tick.
        control = MutuallyExclusiveCallbackGroup()
        commands = MutuallyExclusiveCallbackGroup()
        states = MutuallyExclusiveCallbackGroup()
        status = MutuallyExclusiveCallbackGroup()
        estop = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        self.gate = CommandGate(cfg.commander, self._publisher_name, foreign_hold_s=cfg.watchdog_s)
        self._foreign_reason = ''
        self._pub_js = self.create_publisher(JointState, '~/joint_states', STATE_QOS)
        self._pub_pose = self.create_publisher(PoseStamped, '~/ee_pose', STATE_QOS)
        self._pub_status = self.create_publisher(ArmStatus, '~/status', STATE_QOS)
        # What the arm did with each command after the safety filter (the training action).
        self._pub_applied = self.create_publisher(DeltaEECommand, '~/applied_command', STATE_QOS)

        self.backend = self._make_backend()
        self._try_connect()

        self.create_subscription(DeltaEECommand, cfg.command_topic, self._on_command, CONTROL_QOS,
                                 callback_group=commands)
        self.create_timer(1.0 / cfg.control_rate_hz, self._on_control, callback_group=control)
        self.create_timer(1.0 / cfg.joint_state_rate_hz, self._on_joint_states, callback_group=states)
        self.create_timer(1.0 / cfg.status_rate_hz, self._on_status, callback_group=status)
        # Reconnection may wait for the driver; its own group keeps status and services going.
        self.create_timer(0.5, self._on_reconnect, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, '~/estop', self._srv_estop, callback_group=estop)
        self.create_service(Trigger, '~/reset_estop', self._srv_reset_estop, callback_group=services)
        self.create_service(Trigger, '~/move_to_start', self._srv_move_to_start, callback_group=services)
        self.create_service(MoveToPose, '~/move_to_pose', self._srv_move_to_pose, callback_group=services)

        self._diag = Diagnostics(self, hardware_id=f'{cfg.robot_model} ({self._backend_label()})')
        self._diag.add('arm', self._diagnostics)
        self.get_logger().info(
            f'arm ready: backend {self._backend_label()}, commands from {cfg.command_topic}, '
            f'step clip {cfg.max_step_translation} m / {cfg.max_step_rotation} rad, workspace '
            f'{cfg.workspace_min}..{cfg.workspace_max}, watchdog {cfg.watchdog_s} s, commander '
            f'{cfg.commander}, speed {cfg.max_linear_speed} m/s / {cfg.max_angular_speed} rad/s, '
            f'motion services {"on" if cfg.motion_services else "off"}'
            + (', DRY RUN: nothing is sent to the arm' if cfg.dry_run else ''))

    # --- backend ----------------------------------------------------------------------------
    def _make_backend(self) -> ArmBackend:
        cfg = self.cfg

        def sim() -> ArmBackend:
            from fuse_nodes.sim_arm import SimArm
            return SimArm(self)

        def interbotix() -> ArmBackend:
            from fuse_nodes.interbotix_arm import InterbotixArm
            own = [self.resolve_topic_name(n) for n in ('~/joint_states',)]
            return InterbotixArm(cfg.robot_model, self.get_topic_names_and_types,
                                 moving_time=cfg.moving_time, accel_time=cfg.accel_time,
                                 pose_moving_time=cfg.pose_moving_time,
                                 connect_timeout_s=cfg.connect_timeout_s, own_topics=own,
                                 node_name=f'{self.get_name()}_interbotix')

        return make_backend(cfg, {'sim': sim, 'interbotix': interbotix})

    def _backend_label(self) -> str:
        return f'{self.backend.name} (synthetic)' if self.backend.synthetic else self.backend.name

    def _try_connect(self) -> bool:
        try:
            self.backend.connect()
        except DeviceError as exc:
            self._last_error = str(exc)
            self.get_logger().error(f'{exc}; retrying in {self._connect_backoff:.1f} s')
            self._next_connect = time.monotonic() + self._connect_backoff
            self._connect_backoff = min(self._connect_backoff * 2.0, self.cfg.reconnect_max_s)
            return False
        self._connect_backoff = 0.5
        self._last_error = ''
        if self.backend.synthetic:
            self.get_logger().warning('backend mock is a SYNTHETIC kinematic arm (tests/simulation only)')
        self.get_logger().info(f'backend {self.backend.name} connected')
        return True

    def _on_reconnect(self) -> None:
        # No lock: nothing touches the backend until it reports connected.
        if not self.backend.connected and time.monotonic() >= self._next_connect:
            self._try_connect()

    def _stale_joints(self) -> str:
        """Why the measured joints cannot be trusted now ('' when they can)."""
        age = self.backend.joint_state_age_s()
        if age is not None and age > MAX_JOINT_STATE_AGE_S:
            return f'driver joint states are {age:.2f} s old (max {MAX_JOINT_STATE_AGE_S} s)'
        return ''

    def _send(self, decision: FilterDecision, slow: bool = False) -> bool:
        """Hand an applied decision to the backend (or only count it in dry-run); True if sent."""
        cfg = self.cfg
        if cfg.dry_run:
            self._dry_run_sent += 1
            xyz = np.round(decision.target[:3, 3], 4).tolist()
            self.get_logger().info(f'dry run: would command xyz {xyz} joints '
                                   f'{np.round(decision.joints, 3).tolist()} gripper {decision.gripper}',
                                   throttle_duration_sec=1.0)
            return False
        try:
            if slow:
                ok = self.backend.set_joint_targets(decision.joints, slow=True)
            else:
                ok = self.backend.set_ee_target(decision.target, decision.joints, decision.seed)
            self.backend.set_gripper(gripper_open(decision.gripper))
        except DeviceError as exc:
            self._last_error = str(exc)
            self.filter.backend_refused(decision, f'backend error: {exc}')
            self.get_logger().error(f'backend error: {exc}')
            return False
        if not ok:
            self.filter.backend_refused(decision, 'backend refused the target (its own IK/limit check)')
        return bool(ok)

    # --- control loop -----------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_control(self) -> None:
        now = self._now_ns()
        self._control_rate.tick()
        with self._lock:
            if not self.backend.connected:
                if self.gate.take() is not None:
                    self.filter.refuse(f'backend not connected: {self._last_error}')
                return
            dt = 0.0 if self._last_tick_ns is None else (now - self._last_tick_ns) / 1e9
            self._last_tick_ns = now
            # A stalled loop must not teleport the mock arm.
            self.backend.step(min(max(dt, 0.0), 0.1))
            q = self.backend.joint_positions()
            if self.filter.state == MOVING_TO_POSE:
                outcome = self.filter.update_move(q, now, self.cfg.arrival_tolerance, self.cfg.move_timeout_s)
                if outcome == 'arrived':
                    self.get_logger().info('pose reached; waiting for commands')
                elif outcome == 'timeout':
                    self.get_logger().warning(self.filter.hold_reason)
            foreign = self.gate.foreign_active(now)
            item = self.gate.take()
            if foreign:
                if item is not None:
                    self.filter.refuse(foreign)
                if foreign != self._foreign_reason:
                    self.get_logger().error(foreign)
                self._foreign_reason = foreign
                self.filter.foreign_hold(foreign)
            else:
                self._foreign_reason = ''
                if item is not None:
                    if item[2]:
                        self.get_logger().info(f'commander {self.cfg.commander} restarted: a new command stream')
                        self.filter.new_stream()
                    self._process(item[0], now)
            held = self.filter.tick(now)
            if held is not None:
                self.get_logger().warning(held.reason)

    def _publisher_name(self, gid: bytes) -> Optional[str]:
        """Full node name of the command-topic publisher with this endpoint gid (None: not listed)."""
        for info in self.get_publishers_info_by_topic(self.cfg.command_topic):
            if bytes(info.endpoint_gid) == gid:
                if 'UNKNOWN' in info.node_name or 'UNKNOWN' in info.node_namespace:
                    return None  # endpoint discovered before its node's name: not yet known
                ns = info.node_namespace.rstrip('/')
                return f'{ns}/{info.node_name}'
        return None

    def _on_command(self, msg: DeltaEECommand, info) -> None:
        """Subscription: hand the message to the gate; the control loop filters it."""
        self._cmd_rate.tick()
        gid = bytes(info['publisher_gid']['data'])
        refused = self.gate.offer(msg, gid, self._now_ns())
        if refused:
            self.get_logger().warning(f'command {msg.tick_index}: {refused}', throttle_duration_sec=1.0)

    def _process(self, msg: DeltaEECommand, now: int) -> None:
        """Filter the newest commander message of this tick (called with the lock held)."""
        stale = self._stale_joints() if self.backend.connected else ''
        if not self.backend.connected:
            d = self.filter.refuse(f'backend not connected: {self._last_error}')
        elif stale:
            d = self.filter.refuse(stale)
        elif msg.hold:
            d = self.filter.hold_request(msg.reason, now)
        else:
            d = self.filter.command(msg.translation, msg.rotation, msg.gripper,
                                    self.backend.joint_positions(), now,
                                    stamp_ns=time_to_ns(msg.header.stamp),
                                    valid_until_ns=time_to_ns(msg.valid_until),
                                    tick_index=int(msg.tick_index))
            sent = d.kind == APPLY and self._send(d)
            self._publish_applied(msg, d, sent)
        if d.kind == REJECT:
            self.get_logger().warning(f'command {msg.tick_index} rejected: {d.reason}',
                                      throttle_duration_sec=1.0)
        elif d.kind == HOLD:
            self.get_logger().warning(f'command {msg.tick_index}: holding: {d.reason}',
                                      throttle_duration_sec=1.0)

    def _publish_applied(self, msg: DeltaEECommand, d: FilterDecision, sent: bool) -> None:
        """~/applied_command: the delta the arm executed for `msg` (after clipping, speed limit,
        workspace box and path shortening), or an explicit hold with the filter's reason."""
        out = DeltaEECommand()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = self.cfg.base_frame
        out.tick_index = msg.tick_index
        out.newest_sample_stamp = msg.newest_sample_stamp
        out.valid_until = msg.valid_until
        action = applied_action(d) if sent else None
        if action is None:
            out.hold = True
            out.gripper = float(self.filter.gripper)
            out.reason = ('dry run: not sent' if d.kind == APPLY and self.cfg.dry_run
                          else d.reason or self.filter.hold_reason or d.kind)
        else:
            out.translation = [float(v) for v in action[:3]]
            out.rotation = [float(v) for v in action[3:6]]
            out.gripper = float(action[6])
            out.reason = d.reason  # '' or clipped / path shortened ...
        self._pub_applied.publish(out)

    def _measured(self):
        with self._lock:
            if not self.backend.connected or self._stale_joints():
                return None, None
            return self.backend.joint_positions(), self.backend.gripper_opening()

    def _on_joint_states(self) -> None:
        q, finger = self._measured()
        if q is None:
            return
        stamp = self.get_clock().now().to_msg()
        js = JointState()
        js.header.stamp = stamp
        js.name = list(JOINT_NAMES + FINGER_NAMES)
        js.position = [float(v) for v in q] + [float(finger), -float(finger)]
        self._pub_js.publish(js)
        ps = PoseStamped()
        ps.header.stamp = stamp
        ps.header.frame_id = self.cfg.base_frame
        ps.pose = pose_msg(WX250S.fk(q))
        self._pub_pose.publish(ps)
        self._js_rate.tick()

    def _state(self):
        """(state, hold_reason) as ArmStatus reports them."""
        if not self.backend.connected:
            return 'holding', f'backend not connected: {self._last_error}'
        stale = self._stale_joints()
        if stale and self.filter.state != ESTOP:
            return 'holding', stale
        if self.filter.state == ESTOP:
            return ESTOP, self.filter.hold_reason
        if self.cfg.dry_run:
            return 'dry_run', self.filter.hold_reason
        return self.filter.state, self.filter.hold_reason

    def _on_status(self) -> None:
        q, finger = self._measured()
        with self._lock:
            state, reason = self._state()
            target = None if self.filter.target is None else self.filter.target.copy()
            c = self.filter.counters
            msg = ArmStatus()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self.cfg.base_frame
            msg.backend = self.backend.name
            msg.state, msg.hold_reason = state, reason
            msg.commands_received, msg.commands_applied = c.received, c.applied
            msg.commands_rejected = c.rejected
            msg.estop_latched = self.filter.estop_latched
        if q is not None:
            measured = WX250S.fk(q)
            msg.ee_pose = pose_msg(measured)
            msg.target_pose = pose_msg(target if target is not None else measured)
            msg.gripper_opening = float(finger)
        self._pub_status.publish(msg)
        if state != self._last_logged_state:
            self.get_logger().info(f'state {state}' + (f': {reason}' if reason else ''))
            self._last_logged_state = state

    # --- services ---------------------------------------------------------------------------
    def _srv_estop(self, request, response):
        with self._lock:
            self.filter.estop('e-stop requested via ~/estop')
            if self.backend.connected and not self.cfg.dry_run:
                try:
                    self.backend.hold()
                except DeviceError as exc:
                    self._last_error = str(exc)
        self.get_logger().warning('E-STOP latched: no motion until ~/reset_estop')
        response.success, response.message = True, 'e-stop latched; call ~/reset_estop to release'
        return response

    def _motion_services_off(self, response, what: str):
        response.success = False
        response.message = (f'{what} is disabled on this arm (motion_services false: anyone on the DDS '
                            'domain could call it); relaunch with motion_services:=true to allow it')
        self.get_logger().warning(f'{what} refused: motion_services is false')
        return response

    def _srv_reset_estop(self, request, response):
        if not self.cfg.motion_services:
            return self._motion_services_off(response, 'reset_estop')
        with self._lock:
            released = self.filter.reset_estop()
        if released:
            self.get_logger().info(f'e-stop released; {self.filter.rearm_reason}')
        response.success = released
        response.message = 'e-stop released' if released else 'e-stop was not latched'
        return response

    def _start_move(self, pose: Optional[np.ndarray], gripper: float = 1.0) -> tuple:
        """Start a pose move (pose None: the configured start pose); returns (success, message)."""
        cfg = self.cfg
        with self._lock:
            if not self.backend.connected:
                return False, f'backend not connected: {self._last_error}'
            now = self._now_ns()
            stale = self._stale_joints()
            if stale:
                return False, stale
            q = self.backend.joint_positions()
            if pose is None:
                d = self.filter.move_to_start(cfg.start_pose_xyz, cfg.start_pose_rpy, q, now)
            else:
                d = self.filter.move_to_pose(pose, gripper, q, now)
            if d.kind != APPLY:
                return False, d.reason
            self._send(d, slow=True)
            if self.cfg.dry_run:
                # Nothing moves in a dry run: take the pose as reached so the target anchors there.
                self.filter.update_move(d.joints, now, self.cfg.arrival_tolerance, self.cfg.move_timeout_s)
                return True, 'dry run: pose move logged, not sent'
            if self.filter.state != MOVING_TO_POSE:
                return False, self.filter.hold_reason
        xyz = np.round(d.target[:3, 3], 4).tolist()
        return True, f'moving to xyz {xyz}; ~/status leaves moving_to_pose when it is reached'

    def _srv_move_to_start(self, request, response):
        if not self.cfg.motion_services:
            return self._motion_services_off(response, 'move_to_start')
        response.success, response.message = self._start_move(None)
        self.get_logger().info(f'move_to_start: {response.message}')
        return response

    def _srv_move_to_pose(self, request, response):
        if not self.cfg.motion_services:
            return self._motion_services_off(response, 'move_to_pose')
        if request.use_start_pose:
            response.success, response.message = self._start_move(None)
        else:
            o = request.pose.orientation
            if not np.isfinite([o.x, o.y, o.z, o.w]).all() or np.linalg.norm([o.x, o.y, o.z, o.w]) < 1e-6:
                response.success, response.message = False, 'pose orientation is not a valid quaternion'
                return response
            response.success, response.message = self._start_move(pose_matrix(request.pose),
                                                                  request.gripper)
        self.get_logger().info(f'move_to_pose: {response.message}')
        return response

    # --- diagnostics and shutdown -----------------------------------------------------------
    def _diagnostics(self):
        with self._lock:
            state, reason = self._state()
            snap = self.filter.snapshot()
        values = {
            'backend': self._backend_label(), 'state': state, 'hold_reason': reason,
            'dry_run': self.cfg.dry_run, 'commands_received': snap['received'],
            'commands_applied': snap['applied'], 'commands_rejected': snap['rejected'],
            'commands_clipped': snap['clipped'], 'last_rejection_reason': snap['last_rejection'],
            'ik_failures': snap['ik_failures'], 'watchdog_holds': snap['watchdog_holds'],
            'speed_limited': snap['speed_limited'], 'path_shortened': snap['path_shortened'],
            'path_refused': snap['path_refused'], 'future_stamped': snap['future_stamped'],
            'out_of_order': snap['out_of_order'], 'commands_superseded': self.gate.counters.superseded,
            'commands_offered': self.gate.counters.offered, 'commander_restarts': self.gate.counters.restarts,
            'foreign_commands': self.gate.counters.foreign, 'last_foreign_publisher':
            self.gate.counters.last_foreign, 'unknown_publisher_commands': self.gate.counters.unknown,
            'commander': self.cfg.commander,
            'dry_run_commands': self._dry_run_sent, 'joint_states_rate_hz': self._js_rate.rate_hz(),
            'command_rate_hz': self._cmd_rate.rate_hz(), 'control_rate_hz': self._control_rate.rate_hz(),
            'last_error': self._last_error,
        }
        if not self.backend.connected:
            return ERROR, f'backend not connected: {self._last_error}', values
        if state in (ESTOP, 'holding'):
            return WARN, f'{state}: {reason}', values
        return OK, state, values

    def close(self) -> None:
        # Stop the loops first so no callback touches the backend while it closes.
        for timer in list(self.timers):
            timer.cancel()
        with self._lock:
            self.backend.close()


def main(args=None):
    return run_node(ArmNode, args=args, multithreaded=True)


if __name__ == '__main__':
    sys.exit(main())
