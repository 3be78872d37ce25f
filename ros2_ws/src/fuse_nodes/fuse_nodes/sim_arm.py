"""Arm backend `sim`: joint targets to the twin world over a topic, its joint states back."""

from __future__ import annotations

import threading
import time
from typing import Optional, Sequence

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState

from fuse_core.arm.backends import ArmBackend
from fuse_core.arm.kinematics import FINGER_MAX, FINGER_MIN, JOINT_NAMES, WX250S, ArmKinematics
from fuse_core.errors import DeviceError
from fuse_nodes.common import STATE_QOS

TARGET_TOPIC = '/world/joint_targets'
STATE_TOPIC = '/world/joint_states'


class SimArm(ArmBackend):
    """The twin's arm, driven like the real driver: absolute joint targets, measured joint states.

    Targets outside the joint limits are refused and counted here, as the real driver's caller
    must do (xs_sdk checks nothing). Synthetic: for simulation and tests only.
    """

    name = 'sim'
    synthetic = True

    def __init__(self, node: Node, kinematics: ArmKinematics = WX250S) -> None:
        self.kinematics = kinematics
        self._node = node
        self._lock = threading.Lock()
        self._q: Optional[np.ndarray] = None
        self._finger = FINGER_MAX
        self._received: Optional[float] = None
        self._finger_target = FINGER_MAX
        self._open = False
        self.refused = 0
        self.commands_sent = 0
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

    @property
    def connected(self) -> bool:
        return self._open

    def joint_positions(self) -> np.ndarray:
        with self._lock:
            if self._q is None:
                raise DeviceError(f'sim: no joint states on {STATE_TOPIC}')
            return self._q.copy()

    def gripper_opening(self) -> float:
        with self._lock:
            return float(self._finger)

    def joint_state_age_s(self) -> Optional[float]:
        with self._lock:
            return None if self._received is None else time.monotonic() - self._received

    def set_joint_targets(self, joints: Sequence[float], slow: bool = False) -> bool:
        q = np.asarray(joints, dtype=float)
        if q.shape != (self.kinematics.n,) or not np.all(np.isfinite(q)):
            raise ValueError(f'sim arm: joint targets must be {self.kinematics.n} finite values, got {q.tolist()}')
        if not self.kinematics.within_limits(q, tol=1e-6):
            self.refused += 1
            return False
        self._publish(q)
        self.commands_sent += 1
        return True

    def set_gripper(self, open_: bool) -> None:
        target = FINGER_MAX if open_ else FINGER_MIN
        if target != self._finger_target:
            self._finger_target = target
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

    def close(self) -> None:
        self._open = False
