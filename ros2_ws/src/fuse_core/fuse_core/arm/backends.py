"""Arm backends behind one interface, the kinematic mock, and the choice of backend by name.

Backends that need ROS (the twin's `sim`, the Interbotix driver) live in fuse_nodes; the arm
node hands them to :func:`make_backend` as callables, so this module never imports ROS.
"""

from __future__ import annotations

import abc
import threading
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from fuse_core.arm.config import ArmConfig
from fuse_core.arm.kinematics import (FINGER_MAX, FINGER_MIN, HOME_JOINTS, SLEEP_JOINTS, WX250S, ArmKinematics,
                                      bridge_state_to_pose)
from fuse_core.device import Device
from fuse_core.errors import ConfigError, DeviceError


class ArmBackend(Device):
    """What the arm node needs from an arm. Callers pass only finite, filtered targets."""

    #: Name reported in status and diagnostics.
    name: str = ''
    #: True for simulated arms, so logs and diagnostics never pass them off as hardware.
    synthetic: bool = False

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the arm; raises DeviceError with the reason if it cannot be used."""

    @abc.abstractmethod
    def joint_positions(self) -> np.ndarray:
        """Measured arm joints (6, rad), driver order."""

    @abc.abstractmethod
    def gripper_opening(self) -> float:
        """Measured finger position (m), FINGER_MIN closed .. FINGER_MAX open."""

    @abc.abstractmethod
    def set_joint_targets(self, joints: Sequence[float], slow: bool = False) -> bool:
        """Command absolute joint targets without blocking; slow=True for long pose moves."""

    def set_ee_target(self, target: np.ndarray, joints: Sequence[float], seed: Sequence[float]) -> bool:
        """Stream an EE target (already solved to `joints` by the filter) without blocking."""
        return self.set_joint_targets(joints)

    @abc.abstractmethod
    def set_gripper(self, open_: bool) -> None:
        """Open or close the gripper without blocking."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Stop where the arm is now."""

    def step(self, dt: float) -> None:
        """Advance a simulated arm by dt seconds; real arms move on their own."""

    def joint_state_age_s(self) -> Optional[float]:
        """Seconds since the driver last reported joints (None: always current, e.g. the mock)."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the arm; safe to call twice."""

    @property
    def connected(self) -> bool:
        return True


class JointTargetArm(ArmBackend):
    """An arm driven by absolute joint targets whose joints and finger are kept here (mock, twin).

    Targets must be finite; targets outside the joint limits are refused and counted, as the
    real driver's caller must do (xs_sdk checks nothing). Subclasses send accepted targets
    (:meth:`_send_targets`) and gripper changes (:meth:`_gripper_changed`) on their way.
    """

    #: What joint_positions() says before the first joints are known.
    missing_joints = 'no joint states yet'

    def __init__(self, initial_joints: Optional[Sequence[float]], kinematics: ArmKinematics) -> None:
        self.kinematics = kinematics
        self._lock = threading.Lock()
        self._q: Optional[np.ndarray] = (None if initial_joints is None
                                         else kinematics.clamp(np.asarray(initial_joints, dtype=float)))
        self._finger = FINGER_MAX
        self._finger_target = FINGER_MAX
        self._open = False
        self.refused = 0
        self.commands_sent = 0

    @property
    def connected(self) -> bool:
        return self._open

    def joint_positions(self) -> np.ndarray:
        with self._lock:
            if self._q is None:
                raise DeviceError(f'{self.name}: {self.missing_joints}')
            return self._q.copy()

    def gripper_opening(self) -> float:
        with self._lock:
            return float(self._finger)

    def set_joint_targets(self, joints: Sequence[float], slow: bool = False) -> bool:
        q = np.asarray(joints, dtype=float)
        if q.shape != (self.kinematics.n,) or not np.all(np.isfinite(q)):
            raise ValueError(f'{self.name} arm: joint targets must be {self.kinematics.n} finite values, '
                             f'got {q.tolist()}')
        if not self.kinematics.within_limits(q, tol=1e-6):
            self.refused += 1
            return False
        self._send_targets(np.clip(q, self.kinematics.lower, self.kinematics.upper))
        self.commands_sent += 1
        return True

    @abc.abstractmethod
    def _send_targets(self, q: np.ndarray) -> None:
        """Pass on joint targets that are finite and within the limits."""

    def set_gripper(self, open_: bool) -> None:
        target = FINGER_MAX if open_ else FINGER_MIN
        with self._lock:
            changed = target != self._finger_target
            self._finger_target = target
        if changed:
            self._gripper_changed()

    def _gripper_changed(self) -> None:
        """The finger target changed (the twin publishes it; the mock moves toward it in step)."""

    def close(self) -> None:
        self._open = False


class MockArm(JointTargetArm):
    """Kinematic WidowX 250s: first-order motion toward the targets within the velocity limits.

    Deterministic: state changes only in :meth:`step` (the node calls it at its control rate)
    and the setters. Synthetic; for tests and simulation only.
    """

    name = 'mock'
    synthetic = True

    def __init__(self, initial_joints: Sequence[float] = SLEEP_JOINTS, time_constant_s: float = 0.05,
                 finger_speed: float = 0.05, kinematics: ArmKinematics = WX250S) -> None:
        super().__init__(initial_joints, kinematics)
        self._target = self._q.copy()
        self.time_constant_s = float(time_constant_s)
        self.finger_speed = float(finger_speed)

    @classmethod
    def at_pose(cls, pose: str, **kwargs) -> 'MockArm':
        joints = {'sleep': SLEEP_JOINTS, 'home': HOME_JOINTS}[pose]
        return cls(joints, **kwargs)

    def connect(self) -> None:
        self._open = True

    def joint_targets(self) -> np.ndarray:
        with self._lock:
            return self._target.copy()

    def _send_targets(self, q: np.ndarray) -> None:
        with self._lock:
            self._target = q

    def hold(self) -> None:
        with self._lock:
            self._target = self._q.copy()
            self._finger_target = self._finger

    def step(self, dt: float) -> None:
        if dt <= 0.0:
            return
        with self._lock:
            gain = min(1.0, dt / self.time_constant_s)
            step = (self._target - self._q) * gain
            # One scale for every joint, so the arm moves along the straight joint-space segment
            # to its target (the path the safety filter checked), at most at the velocity limits.
            over = np.abs(step) / (self.kinematics.velocity * dt)
            self._q = self._q + step / max(1.0, float(over.max()))
            df = np.clip(self._finger_target - self._finger, -self.finger_speed * dt, self.finger_speed * dt)
            self._finger = float(np.clip(self._finger + df, FINGER_MIN, FINGER_MAX))


def mock_arm(cfg: ArmConfig, kinematics: ArmKinematics = WX250S) -> MockArm:
    """The mock arm at cfg.mock_initial_pose; 'start' solves the episode start pose (ConfigError if unreachable)."""
    if cfg.mock_initial_pose == 'start':
        # A simulated episode begins where a real one does: at the start pose.
        joints, ok, err = kinematics.ik(bridge_state_to_pose(cfg.start_pose_xyz, cfg.start_pose_rpy),
                                        SLEEP_JOINTS, max_iterations=200)
        if not ok:
            raise ConfigError(f'start_pose_xyz/start_pose_rpy unreachable (IK error {err:.3g})')
        return MockArm(joints, time_constant_s=cfg.mock_time_constant_s, kinematics=kinematics)
    return MockArm.at_pose(cfg.mock_initial_pose, time_constant_s=cfg.mock_time_constant_s,
                           kinematics=kinematics)


#: Builds a backend that needs ROS (it creates topics or a driver node); supplied by the arm node.
BackendFactory = Callable[[], ArmBackend]


def make_backend(cfg: ArmConfig, ros_backends: Mapping[str, BackendFactory]) -> ArmBackend:
    """The backend named by cfg.backend: the mock is built here, the others by their factory."""
    if cfg.backend == 'mock':
        return mock_arm(cfg)
    factory = ros_backends.get(cfg.backend)
    if factory is None:
        raise ConfigError(f"parameter 'backend' = {cfg.backend!r}: no such backend here "
                          f"(available: {['mock', *sorted(ros_backends)]})")
    return factory()
