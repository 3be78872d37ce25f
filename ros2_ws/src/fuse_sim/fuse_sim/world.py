"""The twin world: MuJoCo physics of the workcell, driven only by joint targets.

The arm follows each joint target with the driver's time profile (a smooth move over
``moving_time``, slower when the velocity limit needs it) tracked by position actuators;
targets outside the joint limits are refused and counted. Tasks place the objects on a
seeded reset and judge success from the world's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.kinematics import (FINGER_MAX, FINGER_MIN, JOINT_NAMES, WX250S, bridge_state_to_pose)
from fuse_core.errors import ConfigError
from fuse_sim.config import WorldConfig
from fuse_sim.model import build_model
from fuse_sim.tasks import TASKS, Task, TaskStatus, make_task

FINGER_JOINTS = ('left_finger', 'right_finger')


@dataclass
class ContactEvent:
    """A new contact between two geoms (for sound): sim time, normal speed, materials."""

    time_s: float
    speed: float
    material: str


@dataclass
class WorldCounters:
    targets_received: int = 0
    targets_refused: int = 0
    last_refusal: str = ''
    resets: int = 0


class World:
    """One task's workcell. Not thread-safe: one owner calls reset/step/set_* in turn."""

    def __init__(self, cfg: Optional[WorldConfig] = None, render_size: Tuple[int, int] = (640, 480)) -> None:
        import mujoco

        self.mj = mujoco
        self.cfg = cfg or WorldConfig()
        self.task: Task = make_task(self.cfg.task)
        self.model = build_model(self.task.scene(), self.cfg.timestep_s, render_size)
        self.data = mujoco.MjData(self.model)
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self._arm_qadr = np.array([m.jnt_qposadr[jid(n)] for n in JOINT_NAMES])
        self._arm_vadr = np.array([m.jnt_dofadr[jid(n)] for n in JOINT_NAMES])
        self._finger_qadr = np.array([m.jnt_qposadr[jid(n)] for n in FINGER_JOINTS])
        self._finger_vadr = np.array([m.jnt_dofadr[jid(n)] for n in FINGER_JOINTS])
        self._arm_act = np.arange(6)
        self._finger_act = np.array([6, 7])
        self.ee_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, 'ee_site')
        self.imu_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, 'imu_site')
        self._sensor_adr = {name: int(m.sensor_adr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR, name)])
                            for name in ('imu_acc', 'imu_gyro', 'imu_mag')}
        self._pad_geoms = {side: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f'{side}_pad')
                           for side in ('left', 'right')}
        self._nominal = {'light_diffuse': m.light_diffuse.copy(), 'cam_pos': m.cam_pos.copy(),
                         'geom_rgba': m.geom_rgba.copy(), 'geom_solref': m.geom_solref.copy(),
                         'body_pos': m.body_pos.copy()}
        self.counters = WorldCounters()
        self.seed = self.cfg.seed
        self.instruction = ''
        self.modality_instructions: Dict[str, str] = {}
        self.status = TaskStatus()
        self.events: List[ContactEvent] = []
        self._known_contacts: set = set()
        self._ref = np.zeros(6)
        self._move_from = np.zeros(6)
        self._move_to = np.zeros(6)
        self._move_t0 = 0.0
        self._episode_steps = 0     # physics steps since the reset: episode time without rounding drift
        self._move_T = 0.0
        self._finger_ref = FINGER_MAX
        self._finger_goal = FINGER_MAX
        self.episode_start_s = 0.0
        self.reset(self.cfg.task, self.cfg.seed)

    # --- episodes ---------------------------------------------------------------------------
    def reset(self, task: Optional[str] = None, seed: Optional[int] = None) -> str:
        """Start an episode of `task` (default: the current one) from `seed`; returns the instruction.

        Every call with the same task and seed gives the same scene. The arm is put at the
        start pose with the gripper open (as after the episode manager's move to start).
        """
        mj = self.mj
        name = self.task.name if task in (None, '') else task
        if name not in TASKS:
            raise ConfigError(f'unknown task {name!r}; known tasks: {sorted(TASKS)}')
        if seed is None:
            seed = self.seed + 1
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) < 2**31:
            raise ConfigError(f'bad seed {seed!r}: an integer in [0, 2**31) is needed')
        if name != self.task.name:
            # Another task has other objects: rebuild the model, keeping the clock and the counters.
            now, counters = float(self.data.time), self.counters
            self.cfg = WorldConfig(**{**self.cfg.__dict__, 'task': name})
            self.__init__(self.cfg, (self.model.vis.global_.offwidth, self.model.vis.global_.offheight))
            self.data.time = now
            self.counters = counters
            return self.reset(name, seed)
        self.seed = int(seed)
        m, d = self.model, self.data
        for key, value in self._nominal.items():
            getattr(m, key)[:] = value
        now = float(d.time)
        mj.mj_resetData(m, d)
        d.time = now                # sim time (and /clock) never runs backwards
        rng = np.random.default_rng(self.seed)
        # Scene randomisation shared by all tasks: lighting and a small primary camera jitter.
        m.light_diffuse[:] = self._nominal['light_diffuse'] * rng.uniform(0.8, 1.2)
        cam = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, 'primary')
        m.cam_pos[cam] = self._nominal['cam_pos'][cam] + rng.uniform(-0.01, 0.01, 3)
        self.instruction = self.task.reset(self, rng)
        self.modality_instructions = self.task.modality_instructions(self)
        q0 = self.start_joints()
        d.qpos[self._arm_qadr] = q0
        d.qpos[self._finger_qadr] = FINGER_MAX
        d.ctrl[self._arm_act] = q0
        d.ctrl[self._finger_act] = FINGER_MAX
        self._ref = q0.copy()
        self._move_from = q0.copy()
        self._move_to = q0.copy()
        self._move_t0, self._move_T = 0.0, 0.0
        self._episode_steps = 0
        self._finger_ref = self._finger_goal = FINGER_MAX
        mj.mj_forward(m, d)
        self.events = []
        self._known_contacts = self._contact_pairs()
        self.counters.resets += 1
        self.episode_start_s = float(d.time)
        self.task.on_reset_done(self)
        self.status = self.task.evaluate(self)
        return self.instruction

    def start_joints(self) -> np.ndarray:
        pose = bridge_state_to_pose(self.cfg.start_pose_xyz, self.cfg.start_pose_rpy)
        from fuse_core.arm.kinematics import SLEEP_JOINTS
        result = WX250S.ik(pose, SLEEP_JOINTS, max_iterations=300)
        if not result.success:
            raise ConfigError(f'start pose {self.cfg.start_pose_xyz} is out of reach (IK error {result.error:.3g})')
        return result.joints

    # --- commands ---------------------------------------------------------------------------
    def set_joint_targets(self, joints: Sequence[float], moving_time: Optional[float] = None) -> bool:
        """New arm target: refused (False, counted) unless 6 finite values within the joint limits."""
        self.counters.targets_received += 1
        q = np.asarray(joints, dtype=float)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            return self.refuse(f'joint targets must be 6 finite values, got {np.asarray(joints).tolist()}')
        if not WX250S.within_limits(q, tol=1e-6):
            bad = [JOINT_NAMES[i] for i in range(6) if not WX250S.lower[i] - 1e-6 <= q[i] <= WX250S.upper[i] + 1e-6]
            return self.refuse(f'joint targets outside the limits: {bad}')
        q = np.clip(q, WX250S.lower, WX250S.upper)
        duration = self.cfg.moving_time if moving_time is None else float(moving_time)
        # A smoothstep profile peaks at 1.5x the mean speed; keep that under the velocity limit.
        need = float(np.max(1.5 * np.abs(q - self._ref) / WX250S.velocity))
        self._move_from, self._move_to = self._ref.copy(), q
        self._move_t0, self._move_T = self.episode_time_s, max(duration, need)
        return True

    def set_finger_target(self, position: float) -> bool:
        """Finger target (m, FINGER_MIN closed .. FINGER_MAX open); refused when outside."""
        self.counters.targets_received += 1
        if not np.isfinite(position) or not FINGER_MIN - 1e-6 <= position <= FINGER_MAX + 1e-6:
            return self.refuse(f'finger target {position!r} outside {FINGER_MIN}..{FINGER_MAX} m')
        self._finger_goal = float(np.clip(position, FINGER_MIN, FINGER_MAX))
        return True

    def set_gripper(self, open_: bool) -> None:
        self.set_finger_target(FINGER_MAX if open_ else FINGER_MIN)

    def squeeze(self, body: str) -> None:
        """Close the fingers on `body` without a controller: joint targets (IK) straight above it,
        down to grasp height, then the gripper shut (the squeeze the DIGIT checks feel)."""
        p = self.body_position(body)
        for z in (0.10, 0.015):
            r = WX250S.ik(bridge_state_to_pose([p[0], p[1], z], [0, 0, 0]), self.joint_positions(), max_iterations=200)
            self.set_joint_targets(r.joints)
            self.advance(0.6)
        self.set_gripper(False)
        self.advance(1.0)

    def refuse(self, reason: str) -> bool:
        """Count a refused target (also for targets the caller could not even parse)."""
        self.counters.targets_refused += 1
        self.counters.last_refusal = reason
        return False

    # --- time -------------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return float(self.data.time)

    @property
    def episode_time_s(self) -> float:
        """Sim time since the reset, from the step count (the same in every run of a seed)."""
        return self._episode_steps * float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        """Advance n physics steps."""
        mj, m, d = self.mj, self.model, self.data
        dt = m.opt.timestep
        for _ in range(n):
            self._episode_steps += 1
            t = self._episode_steps * dt
            if self._move_T > 0.0:
                tau = min(1.0, (t - self._move_t0) / self._move_T)
                s = tau * tau * (3.0 - 2.0 * tau)
                self._ref = self._move_from + s * (self._move_to - self._move_from)
            df = np.clip(self._finger_goal - self._finger_ref, -self.cfg.finger_speed * dt, self.cfg.finger_speed * dt)
            self._finger_ref += float(df)
            d.ctrl[self._arm_act] = self._ref
            d.ctrl[self._finger_act] = self._finger_ref
            mj.mj_step(m, d)
            self._collect_contacts()
        self.task.on_step(self)
        if self.status.state == 'running':
            self.status = self.task.evaluate(self)

    def advance(self, seconds: float) -> None:
        self.step(max(1, int(round(seconds / self.model.opt.timestep))))

    # --- state ------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._arm_vadr].copy()

    def finger_positions(self) -> np.ndarray:
        return self.data.qpos[self._finger_qadr].copy()

    def finger_velocities(self) -> np.ndarray:
        return self.data.qvel[self._finger_vadr].copy()

    def gripper_opening(self) -> float:
        """Finger position (m) as the driver reports it (left finger)."""
        return float(self.data.qpos[self._finger_qadr[0]])

    def ee_pose(self) -> np.ndarray:
        t = np.eye(4)
        t[:3, :3] = self.data.site_xmat[self.ee_site].reshape(3, 3)
        t[:3, 3] = self.data.site_xpos[self.ee_site]
        return t

    def imu(self) -> Dict[str, np.ndarray]:
        """Specific force (m/s^2), angular rate (rad/s), magnetic field (T) in the IMU site frame."""
        s = self.data.sensordata
        return {k.split('_')[1]: s[a:a + 3].copy() for k, a in self._sensor_adr.items()}

    def body_position(self, name: str) -> np.ndarray:
        bid = self.mj.mj_name2id(self.model, self.mj.mjtObj.mjOBJ_BODY, name)
        if bid < 0:
            raise KeyError(f'no body {name!r} in task {self.task.name}')
        return self.data.xpos[bid].copy()

    def body_speed(self, name: str) -> float:
        bid = self.mj.mj_name2id(self.model, self.mj.mjtObj.mjOBJ_BODY, name)
        return float(np.linalg.norm(self.data.cvel[bid][3:]))

    def joint_value(self, name: str) -> float:
        jid = self.mj.mj_name2id(self.model, self.mj.mjtObj.mjOBJ_JOINT, name)
        return float(self.data.qpos[self.model.jnt_qposadr[jid]])

    def geom_id(self, name: str) -> int:
        gid = self.mj.mj_name2id(self.model, self.mj.mjtObj.mjOBJ_GEOM, name)
        if gid < 0:
            raise KeyError(f'no geom {name!r} in task {self.task.name}')
        return gid

    def pad_contacts(self) -> Dict[str, List[Tuple[int, float, np.ndarray]]]:
        """Per finger pad: (other geom, normal force N, contact point) of its current contacts."""
        mj, m, d = self.mj, self.model, self.data
        out: Dict[str, List[Tuple[int, float, np.ndarray]]] = {'left': [], 'right': []}
        force = np.zeros(6)
        for i in range(d.ncon):
            c = d.contact[i]
            for side, gid in self._pad_geoms.items():
                if gid in (c.geom1, c.geom2):
                    mj.mj_contactForce(m, d, i, force)
                    other = c.geom2 if c.geom1 == gid else c.geom1
                    out[side].append((int(other), float(abs(force[0])), c.pos.copy()))
        return out

    def holding(self, geom: int) -> bool:
        """True when both pads touch `geom`."""
        contacts = self.pad_contacts()
        return all(any(g == geom for g, _, _ in contacts[s]) for s in ('left', 'right'))

    # --- contact events (sound) -----------------------------------------------------------------
    def _contact_pairs(self) -> set:
        d = self.data
        return {tuple(sorted((int(d.contact[i].geom1), int(d.contact[i].geom2)))) for i in range(d.ncon)}

    def _collect_contacts(self) -> None:
        pairs = self._contact_pairs()
        new = pairs - self._known_contacts
        if new:
            for g1, g2 in new:
                speed = self._relative_speed(g1, g2)
                if speed > 0.02:
                    self.events.append(ContactEvent(self.time_s, speed, self.task.material(self, g1, g2)))
        self._known_contacts = pairs

    def _relative_speed(self, g1: int, g2: int) -> float:
        m, d = self.model, self.data
        v = np.zeros(6)
        speeds = []
        for g in (g1, g2):
            self.mj.mj_objectVelocity(m, d, self.mj.mjtObj.mjOBJ_GEOM, g, v, 0)
            speeds.append(v[3:].copy())
        return float(np.linalg.norm(speeds[0] - speeds[1]))

    def take_events(self) -> List[ContactEvent]:
        events, self.events = self.events, []
        return events
