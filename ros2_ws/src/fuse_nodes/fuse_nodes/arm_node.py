"""Arm node: filters 5 Hz delta-EE commands and drives a WidowX 250s backend (mock, sim or Interbotix)."""

from __future__ import annotations

import sys
from typing import Optional

import numpy as np
from fuse_interfaces.msg import ArmStatus, DeltaEECommand
from fuse_interfaces.srv import MoveToPose
from geometry_msgs.msg import Pose, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from fuse_core.arm.backends import ArmBackend, make_backend
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.controller import AppliedCommand, ArmCommand, ArmController, pose_to_xyz_quat, xyz_quat_to_pose
from fuse_core.arm.gate import CommandGate
from fuse_core.arm.kinematics import FINGER_NAMES, JOINT_NAMES
from fuse_core.timing import RateMonitor
from fuse_nodes.common import CONTROL_QOS, STATE_QOS, Diagnostics, declare_config, log_at, run_node, time_to_ns


def pose_msg(t: np.ndarray) -> Pose:
    """4x4 transform -> geometry_msgs/Pose."""
    p = Pose()
    (p.position.x, p.position.y, p.position.z), q = pose_to_xyz_quat(t)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = q
    return p


def pose_matrix(p: Pose) -> Optional[np.ndarray]:
    """geometry_msgs/Pose -> 4x4 transform; None for a quaternion that is not finite or ~zero."""
    o = p.orientation
    return xyz_quat_to_pose([p.position.x, p.position.y, p.position.z], [o.x, o.y, o.z, o.w])


class ArmNode(Node):
    """ROS shell around fuse_core.arm.controller.ArmController: topics, services, timers, messages."""

    def __init__(self) -> None:
        super().__init__('arm')
        self.cfg: ArmConfig = declare_config(self, ArmConfig)
        cfg = self.cfg
        self._js_rate = RateMonitor()
        self._cmd_rate = RateMonitor()
        self._control_rate = RateMonitor()

        # One group each, so a command flood cannot starve the control loop, the joint states,
        # the status or the e-stop (multithreaded executor); the command callback only hands the
        # message to the gate, and the control loop filters at most one command per tick.
        control = MutuallyExclusiveCallbackGroup()
        commands = MutuallyExclusiveCallbackGroup()
        states = MutuallyExclusiveCallbackGroup()
        status = MutuallyExclusiveCallbackGroup()
        estop = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        self._pub_js = self.create_publisher(JointState, '~/joint_states', STATE_QOS)
        self._pub_pose = self.create_publisher(PoseStamped, '~/ee_pose', STATE_QOS)
        self._pub_status = self.create_publisher(ArmStatus, '~/status', STATE_QOS)
        # What the arm did with each command after the safety filter (the training action).
        self._pub_applied = self.create_publisher(DeltaEECommand, '~/applied_command', STATE_QOS)

        gate = CommandGate(cfg.commander, self._publisher_name, foreign_hold_s=cfg.watchdog_s)
        self.arm = ArmController(cfg, self._make_backend(), gate,
                                 lambda level, message: log_at(self.get_logger(), level, message))
        self.arm.reconnect()

        self.create_subscription(DeltaEECommand, cfg.command_topic, self._on_command, CONTROL_QOS,
                                 callback_group=commands)
        self.create_timer(1.0 / cfg.control_rate_hz, self._on_control, callback_group=control)
        self.create_timer(1.0 / cfg.joint_state_rate_hz, self._on_joint_states, callback_group=states)
        self.create_timer(1.0 / cfg.status_rate_hz, self._on_status, callback_group=status)
        # Reconnection may wait for the driver; its own group keeps status and services going.
        self.create_timer(0.5, self.arm.reconnect, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, '~/estop', self._srv_estop, callback_group=estop)
        self.create_service(Trigger, '~/reset_estop', self._srv_reset_estop, callback_group=services)
        self.create_service(Trigger, '~/move_to_start', self._srv_move_to_start, callback_group=services)
        self.create_service(MoveToPose, '~/move_to_pose', self._srv_move_to_pose, callback_group=services)

        self._diag = Diagnostics(self, hardware_id=f'{cfg.robot_model} ({self.arm.label})')
        self._diag.add('arm', self._diagnostics)
        self.get_logger().info(
            f'arm ready: backend {self.arm.label}, commands from {cfg.command_topic}, '
            f'step clip {cfg.max_step_translation} m / {cfg.max_step_rotation} rad, workspace '
            f'{cfg.workspace_min}..{cfg.workspace_max}, watchdog {cfg.watchdog_s} s, commander '
            f'{cfg.commander}, speed {cfg.max_linear_speed} m/s / {cfg.max_angular_speed} rad/s, '
            f'motion services {"on" if cfg.motion_services else "off"}'
            + (', DRY RUN: nothing is sent to the arm' if cfg.dry_run else ''))

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

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- commands and the control loop ------------------------------------------------------
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
        """Subscription: hand the command to the gate; the control loop filters it."""
        self._cmd_rate.tick()
        command = ArmCommand(int(msg.tick_index), msg.translation, msg.rotation, msg.gripper, hold=msg.hold,
                             reason=msg.reason, stamp_ns=time_to_ns(msg.header.stamp),
                             valid_until_ns=time_to_ns(msg.valid_until), source=msg)
        self.arm.offer(command, bytes(info['publisher_gid']['data']), self._now_ns())

    def _on_control(self) -> None:
        now = self._now_ns()
        self._control_rate.tick()
        applied = self.arm.tick(now)
        if applied is not None:
            self._publish_applied(applied)

    def _publish_applied(self, a: AppliedCommand) -> None:
        """~/applied_command: the delta the arm executed for a command, or an explicit hold."""
        msg = a.command.source
        out = DeltaEECommand()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = self.cfg.base_frame
        out.tick_index = msg.tick_index
        out.newest_sample_stamp = msg.newest_sample_stamp
        out.valid_until = msg.valid_until
        out.hold = a.hold
        out.translation, out.rotation = list(a.translation), list(a.rotation)
        out.gripper, out.reason = a.gripper, a.reason
        self._pub_applied.publish(out)

    # --- state out --------------------------------------------------------------------------
    def _on_joint_states(self) -> None:
        q, finger = self.arm.measured()
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
        ps.pose = pose_msg(self.arm.kinematics.fk(q))
        self._pub_pose.publish(ps)
        self._js_rate.tick()

    def _on_status(self) -> None:
        r = self.arm.report()
        msg = ArmStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg.base_frame
        msg.backend = r.backend
        msg.state, msg.hold_reason = r.state, r.hold_reason
        msg.commands_received, msg.commands_applied = r.received, r.applied
        msg.commands_rejected = r.rejected
        msg.estop_latched = r.estop_latched
        if r.ee_pose is not None:
            msg.ee_pose = pose_msg(r.ee_pose)
            msg.target_pose = pose_msg(r.target_pose)
            msg.gripper_opening = r.gripper_opening
        self._pub_status.publish(msg)

    # --- services ---------------------------------------------------------------------------
    def _srv_estop(self, request, response):
        response.success, response.message = self.arm.estop()
        return response

    def _srv_reset_estop(self, request, response):
        response.success, response.message = self.arm.reset_estop()
        return response

    def _srv_move_to_start(self, request, response):
        response.success, response.message = self.arm.move_to_start(self._now_ns())
        return response

    def _srv_move_to_pose(self, request, response):
        if request.use_start_pose:
            response.success, response.message = self.arm.move_to_start(self._now_ns(), 'move_to_pose')
        else:
            response.success, response.message = self.arm.move_to_pose(
                pose_matrix(request.pose), request.gripper, self._now_ns())
        return response

    # --- diagnostics and shutdown -----------------------------------------------------------
    def _diagnostics(self):
        return self.arm.diagnostics({'joint_states_rate_hz': self._js_rate.rate_hz(),
                                     'command_rate_hz': self._cmd_rate.rate_hz(),
                                     'control_rate_hz': self._control_rate.rate_hz()})

    def close(self) -> None:
        # Stop the loops first so no callback touches the backend while it closes.
        for timer in list(self.timers):
            timer.cancel()
        self.arm.close()


def main(args=None):
    return run_node(ArmNode, args=args, multithreaded=True)


if __name__ == '__main__':
    sys.exit(main())
