"""Arm backend `sim`: joint targets to the twin world over a topic, its joint states back."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState

from fuse_core.arm.backends import JointTargetArm
from fuse_core.arm.kinematics import JOINT_NAMES, WX250S, ArmKinematics
from fuse_core.errors import DeviceError
from fuse_nodes.common import STATE_QOS

TARGET_TOPIC = '/world/joint_targets'
STATE_TOPIC = '/world/joint_states'


class SimArm(JointTargetArm):
    """The twin's arm, driven like the real driver: absolute joint targets, measured joint states.

    Limits, refusals and the finger target are the shared JointTargetArm's (as for the mock);
    this class only carries them over the world's topics. Synthetic: for simulation and tests only.
    """

    name = 'sim'
    synthetic = True
    missing_joints = f'no joint states on {STATE_TOPIC}'

    def __init__(self, node: Node, kinematics: ArmKinematics = WX250S) -> None:
        super().__init__(None, kinematics)
        self._node = node
        self._received: Optional[float] = None
        self._pub = node.create_publisher(JointState, TARGET_TOPIC, STATE_QOS)
        node.create_subscription(JointState, STATE_TOPIC, self._on_state, STATE_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())

    def _on_state(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if any(n not in index for n in JOINT_NAMES) or len(msg.position) != len(msg.name):
            return
        q = np.array([msg.position[index[n]] for n in JOINT_NAMES])
        if not np.all(np.isfinite(q)):
            return
        with self._lock:
            self._q = q
            if 'left_finger' in index:
                self._finger = float(msg.position[index['left_finger']])
            self._received = time.monotonic()

    def connect(self) -> None:
        with self._lock:
            ok = self._q is not None
        if not ok:
            raise DeviceError(f'sim: no joint states on {STATE_TOPIC} yet (is the world node running?)')
        self._open = True

    def joint_state_age_s(self) -> Optional[float]:
        with self._lock:
            return None if self._received is None else time.monotonic() - self._received

    def _send_targets(self, q: np.ndarray) -> None:
        self._publish(q)

    def _gripper_changed(self) -> None:
        self._publish(None)

    def hold(self) -> None:
        self._publish(self.joint_positions())

    def _publish(self, q: Optional[np.ndarray]) -> None:
        msg = JointState()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        names = list(JOINT_NAMES) if q is not None else []
        pos = [float(x) for x in q] if q is not None else []
        msg.name = names + ['left_finger']
        msg.position = pos + [float(self._finger_target)]
        try:
            self._pub.publish(msg)
        except Exception:
            # At shutdown the context goes first; a last hold caught in between is dropped.
            if self._node.context.ok():
                raise
