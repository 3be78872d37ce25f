"""WidowX 250s product-of-exponentials kinematics: FK, space Jacobian, damped least-squares IK."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

#: Arm joints in driver order; the gripper is handled separately (finger position in metres).
JOINT_NAMES = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')
FINGER_NAMES = ('left_finger', 'right_finger')

#: EE (ee_gripper_link) pose in the base frame with all joints at zero.
WX250S_M = np.array([[1.0, 0.0, 0.0, 0.458325],
                     [0.0, 1.0, 0.0, 0.0],
                     [0.0, 0.0, 1.0, 0.36065],
                     [0.0, 0.0, 0.0, 1.0]])
#: Space-frame screw axes, one row (w, v) per joint.
WX250S_SLIST = np.array([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                         [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
                         [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
                         [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
                         [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
                         [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0]])
WX250S_LOWER = np.array([-np.pi, -1.885, -2.147, -np.pi, -1.745, -np.pi])
WX250S_UPPER = np.array([np.pi, 1.990, 1.606, np.pi, 2.147, np.pi])
WX250S_VELOCITY = np.full(6, np.pi)
FINGER_MIN, FINGER_MAX = 0.015, 0.037
SLEEP_JOINTS = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
HOME_JOINTS = np.zeros(6)

_TWO_PI = 2.0 * np.pi


def skew(v: Sequence[float]) -> np.ndarray:
    """3x3 cross-product matrix of a 3-vector."""
    x, y, z = v
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def _skew_batch(w: np.ndarray) -> np.ndarray:
    k = np.zeros(w.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2] = -w[..., 2], w[..., 1]
    k[..., 1, 0], k[..., 1, 2] = w[..., 2], -w[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -w[..., 1], w[..., 0]
    return k


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rpy_to_rotation(rpy: Sequence[float]) -> np.ndarray:
    """Roll, pitch, yaw about the fixed world axes: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    roll, pitch, yaw = (float(a) for a in rpy)
    return rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)


def rotation_to_rpy(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rpy_to_rotation`; pitch in [-pi/2, pi/2], roll = 0 at the singularity."""
    r = np.asarray(r, dtype=float)
    sy = -r[2, 0]
    pitch = np.arcsin(np.clip(sy, -1.0, 1.0))
    if abs(sy) < 1.0 - 1e-9:
        roll = np.arctan2(r[2, 1], r[2, 2])
        yaw = np.arctan2(r[1, 0], r[0, 0])
    else:
        # Gimbal lock: only roll - yaw (or roll + yaw) is defined; put it all in yaw.
        roll = 0.0
        yaw = np.arctan2(-r[0, 1], r[1, 1])
    return np.array([roll, pitch, yaw])


def pose_from_xyz_rpy(xyz: Sequence[float], rpy: Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform from a position and world-axes roll/pitch/yaw."""
    t = np.eye(4)
    t[:3, :3] = rpy_to_rotation(rpy)
    t[:3, 3] = np.asarray(xyz, dtype=float)
    return t


#: Bridge/FuSe state convention (widowx_envs): R_ee = R(rpy) @ BRIDGE_DEFAULT_ROTATION, so rpy 0
#: is the gripper pointing straight down (its approach axis x along -z of the base).
BRIDGE_DEFAULT_ROTATION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def bridge_state_to_pose(xyz: Sequence[float], rpy: Sequence[float]) -> np.ndarray:
    """EE pose (4x4) of a Bridge/FuSe state (xyz, rpy), e.g. the FuSe start pose."""
    t = pose_from_xyz_rpy(xyz, rpy)
    t[:3, :3] = t[:3, :3] @ BRIDGE_DEFAULT_ROTATION
    return t


def pose_to_bridge_state(t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`bridge_state_to_pose`: (x, y, z, roll, pitch, yaw)."""
    t = np.asarray(t, dtype=float)
    return np.concatenate([t[:3, 3], rotation_to_rpy(t[:3, :3] @ BRIDGE_DEFAULT_ROTATION.T)])


def rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    r = np.asarray(r, dtype=float)
    tr = np.trace(r)
    if tr > 0.0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s,
                      (r[1, 0] - r[0, 1]) / s, 0.25 * s])
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + r[i, i] - r[j, j] - r[k, k], 1e-12))
        q = np.zeros(4)
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
        q[3] = (r[k, j] - r[j, k]) / s
    q /= np.linalg.norm(q)
    return q if q[3] >= 0.0 else -q


def quaternion_to_rotation(q: Sequence[float]) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> rotation matrix."""
    x, y, z, w = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_log(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector w (|w| in [0, pi]) with exp([w]) = r."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    vee = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-6:
        return 0.5 * vee
    if np.pi - angle < 1e-4:
        # Near pi the antisymmetric part vanishes; recover the axis from the symmetric part.
        b = (r + np.eye(3)) / 2.0
        axis = np.sqrt(np.clip(np.diag(b), 0.0, None))
        i = int(np.argmax(axis))
        axis = b[:, i] / np.sqrt(max(b[i, i], 1e-12))
        if vee @ axis < 0.0:
            axis = -axis
        return angle * axis / np.linalg.norm(axis)
    return angle / (2.0 * np.sin(angle)) * vee


class IKResult(NamedTuple):
    """IK outcome: joints (within limits), whether the tolerances were met, final error norm."""

    joints: np.ndarray
    success: bool
    error: float


class ArmKinematics:
    """Product-of-exponentials model of a serial arm (defaults: WidowX 250s)."""

    def __init__(self, m: np.ndarray = WX250S_M, slist: np.ndarray = WX250S_SLIST,
                 lower: np.ndarray = WX250S_LOWER, upper: np.ndarray = WX250S_UPPER,
                 velocity: np.ndarray = WX250S_VELOCITY) -> None:
        self.m = np.asarray(m, dtype=float)
        self.slist = np.asarray(slist, dtype=float)
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        self.velocity = np.asarray(velocity, dtype=float)
        self.n = self.slist.shape[0]
        self._w = self.slist[:, :3]
        self._v = self.slist[:, 3:]
        self._k = _skew_batch(self._w)
        self._k2 = self._k @ self._k
        self._init_points()

    # --- forward kinematics ----------------------------------------------------------------
    def _exps(self, q: np.ndarray) -> np.ndarray:
        """exp([S_i] q_i) for every joint at once, shape (n, 4, 4); unit-w screws only."""
        s, c = np.sin(q)[:, None, None], np.cos(q)[:, None, None]
        out = np.zeros((self.n, 4, 4))
        out[:, :3, :3] = np.eye(3) + s * self._k + (1.0 - c) * self._k2
        g = (q[:, None, None] * np.eye(3) + (1.0 - c) * self._k
             + (q[:, None, None] - s) * self._k2)
        out[:, :3, 3] = np.einsum('nij,nj->ni', g, self._v)
        out[:, 3, 3] = 1.0
        return out

    def _prefixes(self, q: np.ndarray) -> np.ndarray:
        """Products exp(S1 q1)...exp(Si qi) for i = 0..n (the first is the identity)."""
        exps = self._exps(q)
        pre = np.empty((self.n + 1, 4, 4))
        pre[0] = np.eye(4)
        for i in range(self.n):
            pre[i + 1] = pre[i] @ exps[i]
        return pre

    def point_positions(self, q: np.ndarray) -> np.ndarray:
        """Positions of the checked points for a batch of joint vectors: q (N, n) -> (N, P, 3).

        The points are :attr:`point_names`: the joint origins that leave the base axis (for the
        WidowX: elbow and wrist) and the end effector last. Vectorised over the batch; each
        joint's motion is x -> R (x - a) + a about its axis point a.
        """
        q = np.asarray(q, dtype=float)
        s, c = np.sin(q)[:, :, None, None], (1.0 - np.cos(q))[:, :, None, None]
        rot = np.eye(3) + s * self._k + c * self._k2            # (N, n, 3, 3)
        out = np.empty((q.shape[0], len(self._point_joint) + 1, 3))
        pre_r, pre_p = rot[:, 0], self._chain[0] - rot[:, 0] @ self._chain[0]
        k = 0
        for i in range(1, self.n):
            if k < len(self._point_joint) and self._point_joint[k] == i:
                out[:, k] = pre_r @ self._chain[i] + pre_p
                k += 1
            t = self._chain[i] - rot[:, i] @ self._chain[i]
            pre_p = pre_p + np.einsum('nij,nj->ni', pre_r, t)
            pre_r = pre_r @ rot[:, i]
        out[:, -1] = pre_r @ self.m[:3, 3] + pre_p
        return out

    def reach_bounds(self) -> np.ndarray:
        """Per joint i, a bound r_i on how far any checked point is from joint i's axis (m).

        Turning joint i by dq moves every point by at most r_i |dq|, so sum_i r_i |dq_i| bounds
        how far the end effector travels along a joint-space segment (the path check's
        Lipschitz constant).
        """
        return self._reach.copy()

    def _init_points(self) -> None:
        # Chain of axis points: on each axis, the point closest to the previous one (the first
        # at the origin's foot); consecutive points are fixed in the link between them.
        chain = []
        prev = np.zeros(3)
        for w, v in zip(self._w, self._v):
            foot = np.cross(w, v)                       # closest point of the axis to the origin
            chain.append(foot + w * (w @ (prev - foot)))
            prev = chain[-1]
        self._chain = np.array(chain)
        self._point_joint = tuple(i for i in range(1, self.n)
                                  if np.linalg.norm(chain[i] - chain[i - 1]) > 1e-6
                                  and np.linalg.norm(chain[i][:2]) > 1e-6)
        self.point_names = tuple(JOINT_NAMES[i] if self.n == len(JOINT_NAMES) else f'joint{i}'
                                 for i in self._point_joint) + ('ee',)
        pts = list(chain) + [self.m[:3, 3]]
        links = [float(np.linalg.norm(pts[j + 1] - pts[j])) for j in range(self.n)]
        reach = []
        for i, w in enumerate(self._w):
            d = pts[i + 1] - pts[i]
            perp = float(np.linalg.norm(d - w * (w @ d)))
            reach.append(perp + sum(links[i + 1:]))
        self._reach = np.array(reach)

    def fk(self, q: Sequence[float]) -> np.ndarray:
        """End-effector pose (4x4) in the base frame."""
        q = self._check_joints(q)
        return self._prefixes(q)[-1] @ self.m

    def jacobian(self, q: Sequence[float]) -> np.ndarray:
        """Space Jacobian (6 x n), rows (w, v): the space twist is J @ qdot."""
        q = self._check_joints(q)
        return self._jacobian_from_prefixes(self._prefixes(q))

    def _jacobian_from_prefixes(self, pre: np.ndarray) -> np.ndarray:
        r, p = pre[:-1, :3, :3], pre[:-1, :3, 3]
        w = np.einsum('nij,nj->ni', r, self._w)
        v = np.einsum('nij,nj->ni', r, self._v) + np.cross(p, w)
        return np.concatenate([w, v], axis=1).T

    # --- inverse kinematics ----------------------------------------------------------------
    def ik(self, target: np.ndarray, seed: Sequence[float], *, max_iterations: int = 50,
           position_tolerance: float = 1e-4, orientation_tolerance: float = 1e-3,
           damping: float = 1e-3, max_joint_step: float = 0.5) -> IKResult:
        """Damped least-squares IK from `seed`, kept within the joint limits.

        The error is the world-frame rotation vector of R_target R^T and the position
        difference; each iteration solves J_p dq = e with J_p the Jacobian of (w, p_dot),
        damped so that it stays stable near singularities.
        """
        target = np.asarray(target, dtype=float)
        if target.shape != (4, 4) or not np.all(np.isfinite(target)):
            raise ValueError('IK target must be a finite 4x4 transform')
        q = self.clamp(self._check_joints(seed))
        lam2 = damping * damping
        eye6 = np.eye(6)
        err_norm = np.inf
        for _ in range(max_iterations + 1):
            pre = self._prefixes(q)
            t = pre[-1] @ self.m
            e_w = rotation_log(target[:3, :3] @ t[:3, :3].T)
            e_p = target[:3, 3] - t[:3, 3]
            err_norm = float(np.sqrt(e_w @ e_w + e_p @ e_p))
            if np.linalg.norm(e_p) < position_tolerance and np.linalg.norm(e_w) < orientation_tolerance:
                return IKResult(q, True, err_norm)
            js = self._jacobian_from_prefixes(pre)
            jp = js.copy()
            # Space twist (w, v_s) -> (w, p_dot): p_dot = v_s + w x p.
            jp[3:] = js[3:] - skew(t[:3, 3]) @ js[:3]
            e = np.concatenate([e_w, e_p])
            dq = jp.T @ np.linalg.solve(jp @ jp.T + lam2 * eye6, e)
            step = np.max(np.abs(dq))
            if step > max_joint_step:
                dq *= max_joint_step / step
            q = self.clamp(q + dq)
        return IKResult(q, False, err_norm)

    # --- limits ----------------------------------------------------------------------------
    def within_limits(self, q: Sequence[float], tol: float = 1e-9) -> bool:
        q = np.asarray(q, dtype=float)
        return bool(np.all(q >= self.lower - tol) and np.all(q <= self.upper + tol))

    def clamp(self, q: np.ndarray) -> np.ndarray:
        """Wrap each joint by 2*pi into its limits where that helps, then clip to the limits."""
        q = np.asarray(q, dtype=float).copy()
        up = q > self.upper
        q[up] = np.where(q[up] - _TWO_PI >= self.lower[up], q[up] - _TWO_PI, q[up])
        lo = q < self.lower
        q[lo] = np.where(q[lo] + _TWO_PI <= self.upper[lo], q[lo] + _TWO_PI, q[lo])
        return np.clip(q, self.lower, self.upper)

    def _check_joints(self, q: Optional[Sequence[float]]) -> np.ndarray:
        arr = np.asarray(q, dtype=float)
        if arr.shape != (self.n,):
            raise ValueError(f'expected {self.n} joint positions, got shape {arr.shape}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'joint positions are not finite: {arr.tolist()}')
        return arr


#: The WidowX 250s model shared by the safety filter and the backends.
WX250S = ArmKinematics()
