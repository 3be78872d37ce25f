"""Robot state node: the arm's links on /tf from joint states, sensor mounts on /tf_static, /robot_description."""

from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from fuse_core.arm.description import urdf
from fuse_core.arm.kinematics import rotation_to_quaternion
from fuse_core.arm.robot_state import LinkStates, RobotStateConfig, load_sensor_frames
from fuse_core.timing import RateMonitor
from fuse_nodes.common import (ERROR, LATCHED_QOS, OK, STATE_QOS, WARN, Diagnostics, declare_config,
                               run_node)

#: The QoS tf2 uses: /tf reliable with a deep queue, /tf_static latched and keeping every sender's last.
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def transform_msg(parent: str, child: str, t: np.ndarray, stamp) -> TransformStamped:
    """4x4 transform of `child` in `parent` -> geometry_msgs/TransformStamped."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
        float(v) for v in t[:3, 3])
    q = rotation_to_quaternion(t[:3, :3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


class RobotStateNode(Node):
    """Thin shell around fuse_core.arm.robot_state, publishing what robot_state_publisher would.

    On the real robot the Interbotix driver's robot_state_publisher owns the arm links
    (`publish_arm_links: false`); this node then publishes only the sensor mounts, attached
    to the driver's link names (the same '<robot_model>/' prefix).
    """

    def __init__(self) -> None:
        super().__init__('robot_state')
        cfg = self.cfg = declare_config(self, RobotStateConfig)
        self.links = LinkStates(prefix=f'{cfg.robot_model}/')
        self.mounts = load_sensor_frames(cfg.sensor_frames_file) if cfg.sensor_frames_file else []
        self._min_period_ns = int(1e9 / cfg.tf_rate_hz) if cfg.tf_rate_hz > 0 else 0
        self._last_pub_ns = 0
        self._last_js_ns = None
        self._last_error = ''
        self._bad = 0
        self._rate = RateMonitor()
        self.pub_tf = self.create_publisher(TFMessage, '/tf', TF_QOS)
        self.pub_static = self.create_publisher(TFMessage, '/tf_static', TF_STATIC_QOS)
        static = self.links.mounts(self.mounts)
        if cfg.publish_arm_links:
            static = self.links.static() + static
            self.pub_description = self.create_publisher(String, '/robot_description', LATCHED_QOS)
            self.pub_description.publish(String(data=urdf(cfg.robot_model)))
            self.create_subscription(JointState, cfg.joint_states_topic, self._on_joint_states, STATE_QOS)
        if static:
            stamp = self.get_clock().now().to_msg()
            self.pub_static.publish(TFMessage(transforms=[transform_msg(p, c, t, stamp) for p, c, t in static]))
        self._n_static = len(static)
        self.diagnostics = Diagnostics(self, hardware_id=cfg.robot_model)
        self.diagnostics.add('robot_state', self._status)
        self.get_logger().info(
            f'{len(static)} static frames ({len(self.mounts)} sensor mounts'
            + (f' from {cfg.sensor_frames_file}' if cfg.sensor_frames_file else ', no sensor_frames_file') + '); '
            + (f'arm links from {cfg.joint_states_topic}' if cfg.publish_arm_links
               else 'arm links left to the driver\'s robot_state_publisher'))

    def _on_joint_states(self, msg: JointState) -> None:
        now = time.monotonic_ns()
        if self._min_period_ns and now - self._last_pub_ns < self._min_period_ns:
            return
        try:
            pos = self.links.positions(list(msg.name), list(msg.position))
        except ValueError as exc:
            self._bad += 1
            if str(exc) != self._last_error:
                self.get_logger().warning(f'{self.cfg.joint_states_topic}: {exc}; no /tf for it')
            self._last_error = str(exc)
            return
        self._last_pub_ns = now
        self._last_js_ns = now
        self._rate.tick()
        self.pub_tf.publish(TFMessage(transforms=[transform_msg(p, c, t, msg.header.stamp)
                                                  for p, c, t in self.links.moving(pos)]))

    def _status(self):
        values = {'static_frames': self._n_static, 'sensor_mounts': len(self.mounts),
                  'bad_joint_states': self._bad, 'publish_arm_links': self.cfg.publish_arm_links}
        if not self.cfg.publish_arm_links:
            return OK, 'sensor mounts only (arm links from the driver)', values
        values['tf_rate_hz'] = self._rate.rate_hz()
        if self._last_js_ns is None:
            return WARN, f'no valid joint states on {self.cfg.joint_states_topic} yet' + (
                f' ({self._last_error})' if self._last_error else ''), values
        age = (time.monotonic_ns() - self._last_js_ns) / 1e9
        values['joint_state_age_s'] = age
        if age > 1.0:
            return ERROR, f'joint states stopped {age:.1f} s ago', values
        return OK, 'publishing', values


def main(args=None):
    return run_node(RobotStateNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
