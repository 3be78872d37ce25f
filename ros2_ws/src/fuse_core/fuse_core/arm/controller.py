"""The arm node's logic without ROS: backend connection, the control tick, status, pose moves, e-stop.

The arm node owns the ROS side (topics, services, timers, messages) and hands every decision
to :class:`ArmController`; the controller logs through a plain callable and is driven by the
node's clock, so all of it runs in unit tests against the mock arm.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.applied import applied_action
from fuse_core.arm.backends import ArmBackend
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.gate import CommandGate
from fuse_core.arm.kinematics import WX250S, ArmKinematics, quaternion_to_rotation, rotation_to_quaternion
from fuse_core.arm.safety import APPLY, ESTOP, HOLD, MOVING_TO_POSE, REJECT, FilterDecision, SafetyFilter
from fuse_core.errors import DeviceError
from fuse_core.gripper import gripper_open
from fuse_core.severity import Severity
from fuse_core.supervisor import BACKOFF, Supervisor

#: ArmStatus.state values besides the filter's (idle, tracking, holding, estop, moving_to_pose):
#: 'holding' is also reported while the backend is down or its joint states are stale, and
#: 'dry_run' while nothing is sent.
HOLDING, DRY_RUN = 'holding', 'dry_run'
#: Older driver joint states are not a measurement: commands are refused and nothing is published.
MAX_JOINT_STATE_AGE_S = 0.5
#: First wait before reconnecting the backend; it doubles up to reconnect_max_s.
RECONNECT_BACKOFF_S = 0.5
#: A repeated warning (same kind) is logged at most this often.
LOG_THROTTLE_S = 1.0

#: log(level, message): level is 'info', 'warn' or 'error'.
LogFn = Callable[[str, str], None]


# --- pose conversions ------------------------------------------------------------------------
def pose_to_xyz_quat(t: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """4x4 transform -> ((x, y, z), (qx, qy, qz, qw)), plain floats (geometry_msgs/Pose order)."""
    t = np.asarray(t, dtype=float)
    q = rotation_to_quaternion(t[:3, :3])
    return tuple(float(v) for v in t[:3, 3]), tuple(float(v) for v in q)


def xyz_quat_to_pose(xyz: Sequence[float], quat: Sequence[float]) -> Optional[np.ndarray]:
    """(x, y, z), (qx, qy, qz, qw) -> 4x4 transform; None when the quaternion is not finite or ~zero."""
    q = np.asarray(quat, dtype=float)
    if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-6:
        return None
    t = np.eye(4)
    t[:3, :3] = quaternion_to_rotation(q)
    t[:3, 3] = np.asarray(xyz, dtype=float)
    return t


# --- what flows in and out -------------------------------------------------------------------
@dataclass
class ArmCommand:
    """The fields of one DeltaEECommand the arm acts on; `source` is the message itself, opaque here."""

    tick_index: int
    translation: Sequence[float]
    rotation: Sequence[float]
    gripper: float
    hold: bool = False
    reason: str = ''
    stamp_ns: int = 0
    valid_until_ns: int = 0
    source: Any = None


@dataclass
class AppliedCommand:
    """What ~/applied_command says about one command: the executed delta, or a hold and why."""

    command: ArmCommand
    hold: bool
    gripper: float
    reason: str
    translation: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: Tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class ArmReport:
    """One ~/status: the state and why, counters, and the measured and commanded poses (4x4)."""

    state: str
    hold_reason: str
    backend: str
    received: int
    applied: int
    rejected: int
    estop_latched: bool
    ee_pose: Optional[np.ndarray] = None
    target_pose: Optional[np.ndarray] = None
    gripper_opening: Optional[float] = None


class ArmController:
    """Safety filter, command gate and backend, driven by the arm node's callbacks.

    Thread-safe: every entry point that touches the filter or the backend takes one lock, so
    the node's callbacks may run in parallel (multithreaded executor). The backend's
    (re)connection runs through a :class:`~fuse_core.supervisor.Supervisor` (backoff from
    RECONNECT_BACKOFF_S doubling up to cfg.reconnect_max_s); nothing touches the backend
    until it reports connected.
    """

    def __init__(self, cfg: ArmConfig, backend: ArmBackend, gate: CommandGate, log: LogFn,
                 kinematics: ArmKinematics = WX250S, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.backend, self.gate = cfg, backend, gate
        self.kinematics = kinematics
        self.filter = SafetyFilter(cfg.safety_limits(), kinematics)
        self.lock = threading.RLock()
        self.last_error = ''
        self.dry_run_sent = 0
        self._log_fn = log
        self._clock = clock
        self._logged: Dict[str, float] = {}
        self._last_tick_ns: Optional[int] = None
        self._foreign_reason = ''
        self._last_state = ''
        self.connection = Supervisor(self._connect, self._check_connected, lambda backend: None,
                                     name=f'arm backend {backend.name}', backoff_s=RECONNECT_BACKOFF_S,
                                     backoff_max_s=cfg.reconnect_max_s, on_state=self._on_connection_state,
                                     clock=clock)

    # --- logging ----------------------------------------------------------------------------
    def _log(self, level: str, message: str, kind: Optional[str] = None) -> None:
        """Log; with a `kind`, at most once per LOG_THROTTLE_S for that kind."""
        if kind is not None:
            now = self._clock()
            last = self._logged.get(kind)
            if last is not None and now - last < LOG_THROTTLE_S:
                return
            self._logged[kind] = now
        self._log_fn(level, message)

    # --- connection -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The backend's name, marked when it is synthetic."""
        return f'{self.backend.name} (synthetic)' if self.backend.synthetic else self.backend.name

    def _connect(self) -> ArmBackend:
        try:
            self.backend.connect()
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.last_error = ''
        if self.backend.synthetic:
            self._log('warn', f'backend {self.backend.name} is a SYNTHETIC kinematic arm (tests/simulation only)')
        self._log('info', f'backend {self.backend.name} connected')
        return self.backend

    def _check_connected(self, backend: ArmBackend) -> bool:
        if not backend.connected:
            self.last_error = f'{backend.name}: disconnected'
            raise DeviceError(self.last_error)
        return True

    def _on_connection_state(self, state: str) -> None:
        if state == BACKOFF:
            self._log('error', f'{self.last_error}; retrying in {self.connection.seconds_until_retry():.1f} s')

    def reconnect(self) -> None:
        """Connect the backend when it is down and its backoff has passed (the node's timer calls it)."""
        self.connection.poll()

    @property
    def connected(self) -> bool:
        return self.backend.connected

    def _not_connected(self) -> str:
        return f'backend not connected: {self.last_error}'

    def stale_joints(self) -> str:
        """Why the measured joints cannot be trusted now ('' when they can)."""
        age = self.backend.joint_state_age_s()
        if age is not None and age > MAX_JOINT_STATE_AGE_S:
            return f'driver joint states are {age:.2f} s old (max {MAX_JOINT_STATE_AGE_S} s)'
        return ''

    # --- sending ----------------------------------------------------------------------------
    def send(self, decision: FilterDecision, slow: bool = False) -> bool:
        """Hand an applied decision to the backend (or only count it in dry-run); True if sent."""
        if self.cfg.dry_run:
            self.dry_run_sent += 1
            xyz = np.round(decision.target[:3, 3], 4).tolist()
            self._log('info', f'dry run: would command xyz {xyz} joints '
                              f'{np.round(decision.joints, 3).tolist()} gripper {decision.gripper}', 'dry_run')
            return False
        try:
            if slow:
                ok = self.backend.set_joint_targets(decision.joints, slow=True)
            else:
                ok = self.backend.set_ee_target(decision.target, decision.joints, decision.seed)
            self.backend.set_gripper(gripper_open(decision.gripper))
        except DeviceError as exc:
            self.last_error = str(exc)
            self.filter.backend_refused(decision, f'backend error: {exc}')
            self._log('error', f'backend error: {exc}')
            return False
        if not ok:
            self.filter.backend_refused(decision, 'backend refused the target (its own IK/limit check)')
        return bool(ok)

    # --- commands and the control tick ------------------------------------------------------
    def offer(self, command: ArmCommand, gid: bytes, now_ns: int) -> None:
        """A command arrived (subscription callback): hand it to the gate; the tick filters it."""
        refused = self.gate.offer(command, gid, now_ns)
        if refused:
            self._log('warn', f'command {command.tick_index}: {refused}', 'offer')

    def tick(self, now_ns: int) -> Optional[AppliedCommand]:
        """One control period: step the arm, follow a pose move, filter the newest command, watchdog.

        Returns what ~/applied_command must say about the command filtered in this tick (None
        when there was none, or it was a hold request).
        """
        with self.lock:
            if not self.backend.connected:
                if self.gate.take() is not None:
                    self.filter.refuse(self._not_connected())
                return None
            dt = 0.0 if self._last_tick_ns is None else (now_ns - self._last_tick_ns) / 1e9
            self._last_tick_ns = now_ns
            # A stalled loop must not teleport the mock arm.
            self.backend.step(min(max(dt, 0.0), 0.1))
            q = self.backend.joint_positions()
            if self.filter.state == MOVING_TO_POSE:
                self._follow_move(q, now_ns)
            applied = None
            foreign = self.gate.foreign_active(now_ns)
            item = self.gate.take()
            if foreign:
                if item is not None:
                    self.filter.refuse(foreign)
                if foreign != self._foreign_reason:
                    self._log('error', foreign)
                self._foreign_reason = foreign
                self.filter.foreign_hold(foreign)
            else:
                self._foreign_reason = ''
                if item is not None:
                    if item[2]:
                        self._log('info', f'commander {self.cfg.commander} restarted: a new command stream')
                        self.filter.new_stream()
                    applied = self.process(item[0], now_ns)
            held = self.filter.tick(now_ns)
            if held is not None:
                self._log('warn', held.reason)
            return applied

    def _follow_move(self, q: np.ndarray, now_ns: int) -> None:
        outcome = self.filter.update_move(q, now_ns, self.cfg.arrival_tolerance, self.cfg.move_timeout_s)
        if outcome == 'arrived':
            self._log('info', 'pose reached; waiting for commands')
        elif outcome == 'waypoint':
            self._log('info', 'waypoint reached; moving on to the pose')
            self.send(self._leg(), slow=True)
        elif outcome in ('timeout', 'refused'):
            self._log('warn', self.filter.hold_reason)

    def _leg(self) -> FilterDecision:
        """The current leg of the pose move as a decision to send (slow joint move)."""
        return FilterDecision(APPLY, 'move to pose', joints=self.filter.move_joints,
                              target=self.kinematics.fk(self.filter.move_joints), gripper=self.filter.gripper)

    def process(self, command: ArmCommand, now_ns: int) -> Optional[AppliedCommand]:
        """Filter the newest commander message of this tick (called with the lock held)."""
        stale = self.stale_joints() if self.backend.connected else ''
        applied = None
        if not self.backend.connected:
            d = self.filter.refuse(self._not_connected())
        elif stale:
            d = self.filter.refuse(stale)
        elif command.hold:
            d = self.filter.hold_request(command.reason, now_ns)
        else:
            d = self.filter.command(command.translation, command.rotation, command.gripper,
                                    self.backend.joint_positions(), now_ns, stamp_ns=command.stamp_ns,
                                    valid_until_ns=command.valid_until_ns, tick_index=int(command.tick_index))
            sent = d.kind == APPLY and self.send(d)
            applied = self._applied(command, d, sent)
        if d.kind == REJECT:
            self._log('warn', f'command {command.tick_index} rejected: {d.reason}', 'rejected')
        elif d.kind == HOLD:
            self._log('warn', f'command {command.tick_index}: holding: {d.reason}', 'holding')
        return applied

    def _applied(self, command: ArmCommand, d: FilterDecision, sent: bool) -> AppliedCommand:
        """The delta the arm executed for `command` (after clipping, speed limit, workspace box
        and path shortening), or an explicit hold with the filter's reason."""
        action = applied_action(d) if sent else None
        if action is None:
            reason = ('dry run: not sent' if d.kind == APPLY and self.cfg.dry_run
                      else d.reason or self.filter.hold_reason or d.kind)
            return AppliedCommand(command, hold=True, gripper=float(self.filter.gripper), reason=reason)
        return AppliedCommand(command, hold=False, gripper=float(action[6]), reason=d.reason,
                              translation=tuple(float(v) for v in action[:3]),
                              rotation=tuple(float(v) for v in action[3:6]))

    # --- state ------------------------------------------------------------------------------
    def measured(self) -> Tuple[Optional[np.ndarray], Optional[float]]:
        """(joints, finger opening) when they are a current measurement, else (None, None)."""
        with self.lock:
            if not self.backend.connected or self.stale_joints():
                return None, None
            return self.backend.joint_positions(), self.backend.gripper_opening()

    def state(self) -> Tuple[str, str]:
        """(state, hold_reason) as ArmStatus reports them."""
        if not self.backend.connected:
            return HOLDING, self._not_connected()
        stale = self.stale_joints()
        if stale and self.filter.state != ESTOP:
            return HOLDING, stale
        if self.filter.state == ESTOP:
            return ESTOP, self.filter.hold_reason
        if self.cfg.dry_run:
            return DRY_RUN, self.filter.hold_reason
        return self.filter.state, self.filter.hold_reason

    def report(self) -> ArmReport:
        """The status to publish now; a change of state is logged."""
        q, finger = self.measured()
        with self.lock:
            state, reason = self.state()
            target = None if self.filter.target is None else self.filter.target.copy()
            c = self.filter.counters
            out = ArmReport(state, reason, self.backend.name, c.received, c.applied, c.rejected,
                            self.filter.estop_latched)
        if q is not None:
            out.ee_pose = self.kinematics.fk(q)
            out.target_pose = target if target is not None else out.ee_pose
            out.gripper_opening = float(finger)
        if state != self._last_state:
            self._log('info', f'state {state}' + (f': {reason}' if reason else ''))
            self._last_state = state
        return out

    # --- services ---------------------------------------------------------------------------
    def estop(self) -> Tuple[bool, str]:
        with self.lock:
            self.filter.estop('e-stop requested via ~/estop')
            if self.backend.connected and not self.cfg.dry_run:
                try:
                    self.backend.hold()
                except DeviceError as exc:
                    self.last_error = str(exc)
        self._log('warn', 'E-STOP latched: no motion until ~/reset_estop')
        return True, 'e-stop latched; call ~/reset_estop to release'

    def _motion_services_off(self, what: str) -> Tuple[bool, str]:
        self._log('warn', f'{what} refused: motion_services is false')
        return False, (f'{what} is disabled on this arm (motion_services false: anyone on the DDS '
                       'domain could call it); relaunch with motion_services:=true to allow it')

    def reset_estop(self) -> Tuple[bool, str]:
        if not self.cfg.motion_services:
            return self._motion_services_off('reset_estop')
        with self.lock:
            released = self.filter.reset_estop()
        if released:
            self._log('info', f'e-stop released; {self.filter.rearm_reason}')
        return released, 'e-stop released' if released else 'e-stop was not latched'

    def move_to_start(self, now_ns: int, service: str = 'move_to_start') -> Tuple[bool, str]:
        """Start the move to the configured start pose; returns (success, message)."""
        if not self.cfg.motion_services:
            return self._motion_services_off(service)
        return self._logged_move(service, self._start_move(None, 1.0, now_ns))

    def move_to_pose(self, pose: Optional[np.ndarray], gripper: float, now_ns: int) -> Tuple[bool, str]:
        """Start a move to `pose` (None: not a valid pose, refused); returns (success, message)."""
        if not self.cfg.motion_services:
            return self._motion_services_off('move_to_pose')
        if pose is None:
            return False, 'pose orientation is not a valid quaternion'
        return self._logged_move('move_to_pose', self._start_move(pose, gripper, now_ns))

    def _logged_move(self, service: str, result: Tuple[bool, str]) -> Tuple[bool, str]:
        self._log('info', f'{service}: {result[1]}')
        return result

    def _start_move(self, pose: Optional[np.ndarray], gripper: float, now_ns: int) -> Tuple[bool, str]:
        cfg = self.cfg
        with self.lock:
            if not self.backend.connected:
                return False, self._not_connected()
            stale = self.stale_joints()
            if stale:
                return False, stale
            q = self.backend.joint_positions()
            if pose is None:
                d = self.filter.move_to_start(cfg.start_pose_xyz, cfg.start_pose_rpy, q, now_ns)
            else:
                d = self.filter.move_to_pose(pose, gripper, q, now_ns)
            if d.kind != APPLY:
                return False, d.reason
            self.send(d, slow=True)
            if cfg.dry_run:
                # Nothing moves in a dry run: take every leg as reached so the target anchors at the pose.
                while self.filter.update_move(self.filter.move_joints, now_ns, cfg.arrival_tolerance,
                                              cfg.move_timeout_s) == 'waypoint':
                    self.send(self._leg(), slow=True)
                return True, 'dry run: pose move logged, not sent'
            if self.filter.state != MOVING_TO_POSE:
                return False, self.filter.hold_reason
        xyz = np.round(d.target[:3, 3], 4).tolist()
        via = d.reason[len('move to pose '):] if d.reason.startswith('move to pose through') else ''
        return True, (f'moving to xyz {xyz}' + (f' {via} (the direct joint path is refused)' if via else '')
                      + '; ~/status leaves moving_to_pose when it is reached')

    # --- diagnostics and shutdown -----------------------------------------------------------
    def diagnostics(self, rates: Dict[str, float]) -> Tuple[Severity, str, Dict[str, Any]]:
        """(level, message, values) of the arm's diagnostics; `rates` are the node's topic rates."""
        with self.lock:
            state, reason = self.state()
            snap = self.filter.snapshot()
        g = self.gate.counters
        values = {
            'backend': self.label, 'state': state, 'hold_reason': reason,
            'dry_run': self.cfg.dry_run, 'commands_received': snap['received'],
            'commands_applied': snap['applied'], 'commands_rejected': snap['rejected'],
            'commands_clipped': snap['clipped'], 'last_rejection_reason': snap['last_rejection'],
            'ik_failures': snap['ik_failures'], 'watchdog_holds': snap['watchdog_holds'],
            'speed_limited': snap['speed_limited'], 'path_shortened': snap['path_shortened'],
            'path_refused': snap['path_refused'], 'future_stamped': snap['future_stamped'],
            'out_of_order': snap['out_of_order'], 'commands_superseded': g.superseded,
            'commands_offered': g.offered, 'commander_restarts': g.restarts,
            'foreign_commands': g.foreign, 'last_foreign_publisher': g.last_foreign,
            'unknown_publisher_commands': g.unknown, 'commander': self.cfg.commander,
            'dry_run_commands': self.dry_run_sent, **rates, 'last_error': self.last_error,
        }
        if not self.backend.connected:
            return Severity.ERROR, self._not_connected(), values
        if state in (ESTOP, HOLDING):
            return Severity.WARN, f'{state}: {reason}', values
        return Severity.OK, state, values

    def close(self) -> None:
        """End the reconnection and release the backend (after the node stopped its timers)."""
        with self.lock:
            self.connection.close()
            self.backend.close()
