"""The safety filter between policy commands and every arm backend (pure, clock passed in)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.kinematics import (BRIDGE_DEFAULT_ROTATION, HOME_JOINTS, SLEEP_JOINTS, WX250S, ArmKinematics,
                                      bridge_state_to_pose, rotation_to_rpy, rpy_to_rotation)
from fuse_core.arm.config import ArmConfig
from fuse_core.arm.gate import MAX_REASON_CHARS, bounded
from fuse_core.arm.path import PathChecker, PathResult
from fuse_core.config import field_defaults
from fuse_core.gripper import binarised_gripper

#: Safe configurations a pose move may pass through when its direct joint path is refused.
POSE_MOVE_WAYPOINTS = (('sleep', SLEEP_JOINTS), ('home', HOME_JOINTS))

# States reported in ArmStatus.state (dry_run is decided by the node, which never sends).
IDLE, TRACKING, HOLDING, ESTOP, MOVING_TO_POSE = 'idle', 'tracking', 'holding', 'estop', 'moving_to_pose'
#: States in which the arm takes no motion command (a pose move under way, or the e-stop).
NOT_COMMANDABLE = (MOVING_TO_POSE, ESTOP)

APPLY, HOLD, REJECT = 'apply', 'hold', 'reject'

#: The arm node's parameter defaults, written once in ArmConfig (sequences as tuples here).
_ARM = {name: tuple(value) if isinstance(value, list) else value
        for name, value in field_defaults(ArmConfig).items()}


@dataclass(frozen=True)
class SafetyLimits:
    """What the filter enforces: the arm parameters of the same names (ArmConfig.safety_limits()),
    with their defaults."""

    max_step_translation: float = _ARM['max_step_translation']
    max_step_rotation: float = _ARM['max_step_rotation']
    workspace_min: Sequence[float] = _ARM['workspace_min']
    workspace_max: Sequence[float] = _ARM['workspace_max']
    # Orientation box, as roll/pitch/yaw of the Bridge state (0 = gripper pointing down): rotation
    # deltas accumulate on the commanded target, and without a bound a policy that keeps turning
    # one way drives the target out of reach and the arm holds for good.
    orientation_min: Sequence[float] = _ARM['orientation_min']
    orientation_max: Sequence[float] = _ARM['orientation_max']
    watchdog_s: float = _ARM['watchdog_s']
    max_command_age_s: float = _ARM['max_command_age_s']
    # Speed limits per unit of time, whatever the command rate: the commanded target moves at
    # most max_linear_speed * dt (m, Euclidean) and turns at most max_angular_speed * dt (rad)
    # since the previous applied command; dt is capped where the per-step clip takes over.
    max_linear_speed: float = _ARM['max_linear_speed']
    max_angular_speed: float = _ARM['max_angular_speed']
    # Table plane: no checked point of the arm (elbow, wrist, end effector) goes below it.
    floor_z: float = _ARM['floor_z']
    # Path check resolution: EE travel between neighbouring uncertified samples (m).
    path_spacing: float = _ARM['path_spacing']
    # How far past the box faces and the floor a path may bow (m); targets stay in the box.
    path_tolerance: float = _ARM['path_tolerance']
    # One command may move no joint farther than this (rad): refuses IK branch flips.
    max_joint_step: float = _ARM['max_joint_step']
    # Commands stamped further ahead of the arm's clock than this are refused (s).
    max_future_s: float = _ARM['max_future_s']
    # Operator pose moves (move_to_start / move_to_pose, slow) may pass this far outside the
    # box (m): the joint-space move from the sleep pose to the start pose dips 2 mm below x min.
    pose_move_margin: float = _ARM['pose_move_margin']
    # After reset_estop the commander's stream must pause this long before motion resumes (s).
    rearm_gap_s: float = _ARM['rearm_gap_s']
    gripper_threshold: float = _ARM['gripper_threshold']
    ik_max_iterations: int = _ARM['ik_max_iterations']
    ik_position_tolerance: float = _ARM['ik_position_tolerance']
    ik_orientation_tolerance: float = _ARM['ik_orientation_tolerance']

    def __post_init__(self) -> None:
        lo = np.asarray(self.workspace_min, dtype=float)
        hi = np.asarray(self.workspace_max, dtype=float)
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError('workspace_min and workspace_max need 3 values (x, y, z)')
        if not np.all(lo < hi):
            raise ValueError(f'workspace_min {lo.tolist()} must be below workspace_max {hi.tolist()} '
                             'on every axis')
        olo = np.asarray(self.orientation_min, dtype=float)
        ohi = np.asarray(self.orientation_max, dtype=float)
        if olo.shape != (3,) or ohi.shape != (3,) or not np.all(olo < ohi):
            raise ValueError(f'orientation_min {olo.tolist()} / orientation_max {ohi.tolist()} need 3 values '
                             '(roll, pitch, yaw), min below max')
        for name in ('max_step_translation', 'max_step_rotation', 'watchdog_s', 'max_command_age_s', 'rearm_gap_s',
                     'max_linear_speed', 'max_angular_speed', 'path_spacing', 'max_joint_step', 'max_future_s'):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0.0:
                raise ValueError(f'{name} must be a positive number, got {value!r}')


def bounded_step(action, limits: 'SafetyLimits', budget_t: float, budget_r: float):
    """A command's 6-D motion as the filter lets it through before the workspace: each axis
    clipped to its per-command limit, then the translation and the rotation each scaled down to
    the speed budget (m, rad). Returns (step, clipped, speed_limited)."""
    action = np.asarray(action, dtype=float)
    step = action[:6].copy()
    lim_t, lim_r = limits.max_step_translation, limits.max_step_rotation
    step[:3] = np.clip(step[:3], -lim_t, lim_t)
    step[3:] = np.clip(step[3:], -lim_r, lim_r)
    clipped = bool(np.any(step != action[:6]))
    norm_t, norm_r = float(np.linalg.norm(step[:3])), float(np.linalg.norm(step[3:]))
    if norm_t > budget_t:
        step[:3] *= budget_t / norm_t
    if norm_r > budget_r:
        step[3:] *= budget_r / norm_r
    speed_limited = norm_t > budget_t or norm_r > budget_r
    return step, clipped or speed_limited, speed_limited


def nominal_budget(limits: 'SafetyLimits', period_s: float):
    """The speed budget (m, rad) of commands `period_s` apart (what _speed_budget gives at that rate)."""
    return (min(limits.max_step_translation, limits.max_linear_speed * period_s),
            min(limits.max_step_rotation, limits.max_angular_speed * period_s))


@dataclass
class FilterDecision:
    """What to do with one command: apply a target, hold where we are, or reject the input."""

    kind: str
    reason: str = ''
    joints: Optional[np.ndarray] = None      # IK solution to command (APPLY)
    target: Optional[np.ndarray] = None      # 4x4 EE target (APPLY)
    seed: Optional[np.ndarray] = None        # measured joints the IK was seeded with
    gripper: Optional[float] = None          # 1.0 open / 0.0 closed (APPLY)
    clipped: bool = False
    path: Optional[PathResult] = None         # the path check of the motion (APPLY)
    previous_target: Optional[np.ndarray] = None  # commanded target before this decision
    # The target this step started from (the measured pose for the first command), so the
    # applied delta can be recovered from the decision (fuse_core.arm.applied).
    step_from: Optional[np.ndarray] = None

    @property
    def applied(self) -> bool:
        return self.kind == APPLY


@dataclass
class SafetyCounters:
    received: int = 0
    applied: int = 0
    rejected: int = 0
    clipped: int = 0
    ik_failures: int = 0
    watchdog_holds: int = 0
    speed_limited: int = 0
    path_shortened: int = 0
    path_refused: int = 0
    future_stamped: int = 0
    out_of_order: int = 0
    last_rejection: str = ''


@dataclass
class SafetyFilter:
    """Turns 5 Hz delta-EE commands into safe absolute targets.

    The next target is the delta applied to the previous *commanded* target (so tracking
    error does not accumulate into the command), clipped per step and to the workspace,
    and solved by IK seeded with the measured joints. Every decision is explicit and
    counted; an e-stop latches until :meth:`reset_estop`.
    """

    limits: SafetyLimits = field(default_factory=SafetyLimits)
    kinematics: ArmKinematics = WX250S
    state: str = IDLE
    hold_reason: str = ''
    target: Optional[np.ndarray] = None          # last commanded EE target (4x4)
    gripper: float = 1.0                         # last commanded gripper (1 open, 0 closed)
    counters: SafetyCounters = field(default_factory=SafetyCounters)
    last_command_ns: Optional[int] = None
    last_applied_ns: Optional[int] = None        # time of the last applied motion (speed limit)
    last_tick_index: Optional[int] = None        # tick_index of the last accepted command
    awaiting_rearm: bool = False                 # e-stop released, no new command sequence yet
    _last_offer_ns: Optional[int] = None         # arrival of the previous command of any kind
    _goal_pose: Optional[np.ndarray] = None
    _goal_joints: Optional[np.ndarray] = None    # joints of the current leg of a pose move
    _goal_legs: List[np.ndarray] = field(default_factory=list)  # the legs after it
    _goal_started_ns: int = 0
    _path: Optional[PathChecker] = None

    def __post_init__(self) -> None:
        lim = self.limits
        self._path = PathChecker(self.kinematics, lim.workspace_min, lim.workspace_max, lim.floor_z,
                                 spacing=lim.path_spacing, tolerance=lim.path_tolerance)
        grow = np.full(3, lim.pose_move_margin)
        self._pose_path = PathChecker(self.kinematics, np.asarray(lim.workspace_min) - grow,
                                      np.asarray(lim.workspace_max) + grow, lim.floor_z,
                                      spacing=lim.path_spacing)

    @property
    def path_checker(self) -> PathChecker:
        return self._path

    # --- commands ---------------------------------------------------------------------------
    def command(self, translation: Sequence[float], rotation: Sequence[float], gripper: float,
                measured_joints: Sequence[float], now_ns: int, stamp_ns: int = 0,
                valid_until_ns: int = 0, tick_index: Optional[int] = None) -> FilterDecision:
        """Filter one delta command (world axes) given the measured joints and the time."""
        self.counters.received += 1
        gap_ns = self._offered(now_ns)
        action = np.concatenate([np.asarray(translation, dtype=float).reshape(-1),
                                 np.asarray(rotation, dtype=float).reshape(-1),
                                 [float(gripper)]])
        if action.shape != (7,):
            return self._reject(f'command has {action.size} values, expected 7 '
                                '(3 translation, 3 rotation, gripper)')
        if not np.all(np.isfinite(action)):
            bad = [i for i, a in enumerate(action) if not np.isfinite(a)]
            return self._reject(f'non-finite command values at indices {bad}: {action.tolist()}')
        if self.state == ESTOP:
            return self._reject('e-stop latched; call reset_estop first')
        if self.state == MOVING_TO_POSE:
            return self._reject('moving to a pose; commands resume when it is reached')
        if self.awaiting_rearm:
            if gap_ns is not None and gap_ns < int(self.limits.rearm_gap_s * 1e9):
                return self._reject(self.rearm_reason)
            self.awaiting_rearm = False
            self.last_tick_index = None
        stale = self._staleness(now_ns, stamp_ns, valid_until_ns)
        if stale:
            return self._reject(stale)
        order = self._order(tick_index, now_ns)
        if order:
            return self._reject(order)
        measured = np.asarray(measured_joints, dtype=float)
        if measured.shape != (self.kinematics.n,) or not np.all(np.isfinite(measured)):
            return self._hold(f'measured joints unusable: {measured.tolist()}')

        budget_t, budget_r = self._speed_budget(now_ns)
        step, clipped, speed_limited = bounded_step(action, self.limits, budget_t, budget_r)
        if speed_limited:
            self.counters.speed_limited += 1

        previous = self.target if self.target is not None else self.kinematics.fk(measured)
        target = np.eye(4)
        # Rotation about the EE point (world axes), so it does not move the position.
        target[:3, :3] = rpy_to_rotation(step[3:]) @ previous[:3, :3]
        # Keep the orientation inside its box (Bridge rpy relative to gripper-down).
        rpy = rotation_to_rpy(target[:3, :3] @ BRIDGE_DEFAULT_ROTATION.T)
        bounded = np.clip(rpy, self.limits.orientation_min, self.limits.orientation_max)
        if np.any(bounded != rpy):
            target[:3, :3] = rpy_to_rotation(bounded) @ BRIDGE_DEFAULT_ROTATION
            clipped = True
        wanted = previous[:3, 3] + step[:3]
        boxed = np.clip(wanted, self.limits.workspace_min, self.limits.workspace_max)
        # From outside the box (e.g. the home pose) the target re-enters at step speed,
        # never in one jump.
        moved = boxed - previous[:3, 3]
        norm_m = float(np.linalg.norm(moved))
        if norm_m > budget_t:
            moved *= budget_t / norm_m
        target[:3, 3] = previous[:3, 3] + moved
        clipped = clipped or bool(np.any(np.abs(target[:3, 3] - wanted) > 1e-12))

        result = self.kinematics.ik(target, measured,
                                    max_iterations=self.limits.ik_max_iterations,
                                    position_tolerance=self.limits.ik_position_tolerance,
                                    orientation_tolerance=self.limits.ik_orientation_tolerance)
        if not result.success:
            self.counters.ik_failures += 1
            self.last_command_ns = now_ns
            return self._hold(f'IK failed for target xyz {np.round(target[:3, 3], 4).tolist()} '
                              f'(error {result.error:.4g}); holding the previous target')
        self.last_command_ns = now_ns
        jump = np.abs(result.joints - measured)
        if float(jump.max()) > self.limits.max_joint_step:
            self.counters.path_refused += 1
            return self._hold(f'path refused: IK solution moves joint {int(np.argmax(jump))} by '
                              f'{float(jump.max()):.3f} rad (max_joint_step {self.limits.max_joint_step})')
        path = self._path.check(measured, result.joints)
        joints, reason = result.joints, 'clipped' if clipped else ''
        if not path.whole:
            if path.fraction <= 0.0:
                self.counters.path_refused += 1
                return self._hold(f'path refused: {path.reason}')
            # Stop at the end of the safe part; the next command continues from there.
            joints = path.joints
            target = self.kinematics.fk(joints)
            clipped = True
            self.counters.path_shortened += 1
            reason = f'path shortened to {path.fraction:.3f}: {path.reason}'
        previous_target = self.target
        self.target = target
        self.gripper = self.binarise(action[6])
        self.last_applied_ns = now_ns
        if tick_index is not None:
            self.last_tick_index = int(tick_index)
        self.state, self.hold_reason = TRACKING, ''
        self.counters.applied += 1
        if clipped:
            self.counters.clipped += 1
        return FilterDecision(APPLY, reason, joints=joints, target=target,
                              seed=measured, gripper=self.gripper, clipped=clipped,
                              previous_target=previous_target, step_from=previous.copy(), path=path)

    def _speed_budget(self, now_ns: int):
        """How far (m, rad) the target may move now: speed x time since the last applied motion."""
        lim = self.limits
        if self.last_applied_ns is None:
            return lim.max_step_translation, lim.max_step_rotation
        return nominal_budget(lim, max(0.0, (now_ns - self.last_applied_ns) / 1e9))

    def new_stream(self) -> None:
        """The commander restarted: its tick_index may start over."""
        self.last_tick_index = None

    def _order(self, tick_index: Optional[int], now_ns: int) -> str:
        # tick_index is ordered within one stream; after a pause longer than the watchdog
        # (the arm already held) a new stream may start over, e.g. a restarted sync node.
        if self.last_command_ns is not None and now_ns - self.last_command_ns > int(self.limits.watchdog_s * 1e9):
            self.last_tick_index = None
        if tick_index is None or self.last_tick_index is None:
            return ''
        if int(tick_index) <= self.last_tick_index:
            self.counters.out_of_order += 1
            return (f'tick_index {int(tick_index)} is not after the last accepted {self.last_tick_index} '
                    '(replayed or reordered command)')
        return ''

    def hold_request(self, reason: str, now_ns: int) -> FilterDecision:
        """The policy asks to hold (e.g. a sensor went stale): keep the previous target, say why.

        It counts as a fresh command for the watchdog (the policy is alive and deciding), and
        the next motion command resumes tracking from the held target.
        """
        self.counters.received += 1
        if self.state in (ESTOP, MOVING_TO_POSE):
            return self._reject(f'{self.state}: hold request ignored')
        if self.awaiting_rearm:
            return self._reject(self.rearm_reason)
        self.last_command_ns = now_ns
        return self._hold(f'policy: {bounded(reason)}' if reason else 'policy asked to hold')

    def foreign_hold(self, reason: str) -> FilterDecision:
        """Another node publishes on the command topic: hold where the target is, naming it."""
        if self.state in (ESTOP, MOVING_TO_POSE):
            return FilterDecision(HOLD, self.hold_reason)
        return self._hold(bounded(reason))

    def _offered(self, now_ns: int) -> Optional[int]:
        """Note a motion command's arrival; returns the gap since the previous one (None: first)."""
        gap = None if self._last_offer_ns is None else now_ns - self._last_offer_ns
        self._last_offer_ns = now_ns
        return gap

    def refuse(self, reason: str) -> FilterDecision:
        """Count a command that could not even be filtered (e.g. no arm connected)."""
        self.counters.received += 1
        return self._reject(reason)

    def backend_refused(self, decision: FilterDecision, reason: str) -> FilterDecision:
        """The backend did not take an applied target: restore the previous target and hold."""
        if decision.kind == APPLY and self.target is decision.target:
            self.target = decision.previous_target
            self.counters.applied -= 1
            self.counters.ik_failures += 1
        return self._hold(reason)

    def binarise(self, gripper: float) -> float:
        return binarised_gripper(gripper, self.limits.gripper_threshold)

    def _staleness(self, now_ns: int, stamp_ns: int, valid_until_ns: int) -> str:
        lim = self.limits
        max_age_ns = int(lim.max_command_age_s * 1e9)
        if stamp_ns > now_ns + int(lim.max_future_s * 1e9):
            self.counters.future_stamped += 1
            return (f'command stamped {(stamp_ns - now_ns) / 1e9:.3f} s in the future '
                    f'(max_future_s {lim.max_future_s}; clocks out of sync or a forged stamp)')
        if valid_until_ns > 0:
            if valid_until_ns < now_ns:
                return f'stale command: valid_until passed {(now_ns - valid_until_ns) / 1e9:.3f} s ago'
            ahead = valid_until_ns - (stamp_ns if stamp_ns > 0 else now_ns)
            if ahead > max_age_ns:
                return (f'valid_until is {ahead / 1e9:.3f} s after the '
                        f'{"stamp" if stamp_ns > 0 else "arrival"} (max_command_age_s {lim.max_command_age_s})')
            return ''
        if stamp_ns > 0:
            age = (now_ns - stamp_ns) / 1e9
            if age > self.limits.max_command_age_s:
                return (f'stale command: stamped {age:.3f} s ago '
                        f'(max_command_age_s {self.limits.max_command_age_s})')
            return ''
        return 'command has neither valid_until nor header.stamp; cannot tell if it is fresh'

    # --- periodic checks --------------------------------------------------------------------
    def tick(self, now_ns: int) -> Optional[FilterDecision]:
        """Watchdog: a tracking arm with no fresh command for watchdog_s holds its last target."""
        if self.state != TRACKING or self.last_command_ns is None:
            return None
        silence = (now_ns - self.last_command_ns) / 1e9
        if silence > self.limits.watchdog_s:
            self.counters.watchdog_holds += 1
            return self._hold(f'watchdog: no fresh command for {silence:.2f} s '
                              f'(watchdog_s {self.limits.watchdog_s})')
        return None

    # --- e-stop -----------------------------------------------------------------------------
    def estop(self, reason: str = 'e-stop requested') -> FilterDecision:
        """Latch the e-stop: every command is rejected until :meth:`reset_estop`."""
        self.state, self.hold_reason = ESTOP, reason
        self._end_move()
        return FilterDecision(HOLD, reason)

    def reset_estop(self) -> bool:
        """Release the latch into holding until the commander re-arms.

        Re-arm: the commander sends no motion command for rearm_gap_s (it may hold or be
        silent), then a new one; a motion stream that was live when the e-stop fired never
        resumes by itself. The first
        command after the re-arm starts from the measured pose.
        """
        if self.state != ESTOP:
            return False
        self.state, self.hold_reason = HOLDING, self.rearm_reason
        self.awaiting_rearm = True
        self.target = None
        self.last_command_ns = None
        self.last_applied_ns = None
        return True

    @property
    def rearm_reason(self) -> str:
        return (f'e-stop released; waiting for re-arm: the commander must send no motion command for '
                f'{self.limits.rearm_gap_s} s (holds are fine), then start a new sequence')

    @property
    def estop_latched(self) -> bool:
        return self.state == ESTOP

    # --- pose moves -------------------------------------------------------------------------
    def move_to_pose(self, pose: np.ndarray, gripper: float, measured_joints: Sequence[float],
                     now_ns: int) -> FilterDecision:
        """Start a move to an absolute pose (e.g. the episode start pose); not step-limited."""
        if self.state == ESTOP:
            return FilterDecision(REJECT, 'e-stop latched; call reset_estop first')
        pose = np.asarray(pose, dtype=float)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            return FilterDecision(REJECT, 'pose is not a finite 4x4 transform')
        gripper = float(gripper)
        if not np.isfinite(gripper):
            return FilterDecision(REJECT, f'gripper value {gripper} is not finite')
        lo, hi = np.asarray(self.limits.workspace_min), np.asarray(self.limits.workspace_max)
        xyz = pose[:3, 3]
        if np.any(xyz < lo) or np.any(xyz > hi):
            return FilterDecision(REJECT, f'pose xyz {np.round(xyz, 4).tolist()} is outside the workspace '
                                          f'{lo.tolist()}..{hi.tolist()}')
        measured = np.asarray(measured_joints, dtype=float)
        # Seeded with the measured joints first (the nearest solution); from a folded or twisted
        # configuration (where a policy may have left the arm) that local solve often fails, so
        # the arm's sleep and home configurations are tried next. The path check below judges
        # whichever solution is found.
        for seed in (measured, SLEEP_JOINTS, HOME_JOINTS):
            result = self.kinematics.ik(pose, seed, max_iterations=max(self.limits.ik_max_iterations, 200),
                                        position_tolerance=self.limits.ik_position_tolerance,
                                        orientation_tolerance=self.limits.ik_orientation_tolerance)
            if result.success:
                break
        if not result.success:
            self.counters.ik_failures += 1
            return FilterDecision(REJECT, f'IK failed for pose xyz {np.round(xyz, 4).tolist()} '
                                          f'(error {result.error:.4g})')
        legs, via, direct = self._pose_move_legs(measured, result.joints, pose)
        if not legs:
            self.counters.path_refused += 1
            return FilterDecision(REJECT, f'path refused: the joint-space move to xyz {np.round(xyz, 4).tolist()} '
                                          f'is unsafe after {direct.fraction:.0%} of it (pose_move_margin '
                                          f'{self.limits.pose_move_margin} m): {direct.reason}; no way through the '
                                          f'{" or ".join(n for n, _ in POSE_MOVE_WAYPOINTS)} pose is safe either')
        self.state, self.hold_reason = MOVING_TO_POSE, ''
        self._goal_pose, self._goal_joints, self._goal_legs = pose.copy(), legs[0], legs[1:]
        self._goal_started_ns = now_ns
        self.gripper = self.binarise(gripper)
        return FilterDecision(APPLY, f'move to pose through the {via} pose' if via else 'move to pose',
                              joints=legs[0], target=pose.copy(), seed=measured, gripper=self.gripper)

    def _pose_move_legs(self, measured: np.ndarray, goal: np.ndarray,
                        pose: np.ndarray) -> Tuple[List[np.ndarray], str, PathResult]:
        """The joint targets of a pose move, each leg path-checked, the waypoint's name and the
        direct path's check: [goal] when the direct joint path is safe, else [waypoint, goal']
        through the first waypoint configuration whose two legs are both safe (goal' solved
        from the waypoint), else none."""
        direct = self._pose_path.check(measured, goal)
        if direct.whole:
            return [goal], '', direct
        # A twin episode can end where the straight joint path to the start pose bows out of the
        # box (e.g. above z max); through the folded sleep pose (inside the box) it usually stays in.
        for name, waypoint in POSE_MOVE_WAYPOINTS:
            if not self._pose_path.check(measured, waypoint).whole:
                continue
            result = self.kinematics.ik(pose, waypoint, max_iterations=max(self.limits.ik_max_iterations, 200),
                                        position_tolerance=self.limits.ik_position_tolerance,
                                        orientation_tolerance=self.limits.ik_orientation_tolerance)
            if result.success and self._pose_path.check(waypoint, result.joints).whole:
                return [waypoint.copy(), result.joints], name, direct
        return [], '', direct

    def move_to_start(self, xyz: Sequence[float], rpy: Sequence[float],
                      measured_joints: Sequence[float], now_ns: int) -> FilterDecision:
        """Move to the episode start pose (Bridge state convention: rpy 0 = gripper down), gripper open."""
        return self.move_to_pose(bridge_state_to_pose(xyz, rpy), 1.0, measured_joints, now_ns)

    def update_move(self, measured_joints: Sequence[float], now_ns: int, tolerance: float,
                    timeout_s: float) -> Optional[str]:
        """While moving to a pose: 'arrived' (target anchored at the pose), 'waypoint' (a leg ended:
        send :attr:`move_joints`, the next leg, whose path from the measured joints passed the
        check), 'refused' (it did not: holding), 'timeout' (a leg took longer than timeout_s), or None."""
        if self.state != MOVING_TO_POSE or self._goal_joints is None:
            return None
        measured = np.asarray(measured_joints, dtype=float)
        if np.all(np.abs(measured - self._goal_joints) <= tolerance):
            if self._goal_legs:
                following = self._goal_legs.pop(0)
                path = self._pose_path.check(measured, following)
                if not path.whole:
                    self.counters.path_refused += 1
                    self._end_move()
                    self.target = None
                    self._hold(f'path refused: the next leg of the pose move is unsafe after '
                               f'{path.fraction:.0%} of it: {path.reason}')
                    return 'refused'
                self._goal_joints, self._goal_started_ns = following, now_ns
                return 'waypoint'
            self.target = self._goal_pose
            self.state, self.hold_reason = IDLE, ''
            self.last_command_ns = None
            self._goal_pose = self._goal_joints = None
            return 'arrived'
        if (now_ns - self._goal_started_ns) / 1e9 > timeout_s:
            self._end_move()
            self.target = None
            self._hold(f'move to pose timed out after {timeout_s} s')
            return 'timeout'
        return None

    @property
    def move_joints(self) -> Optional[np.ndarray]:
        """The joint target of the pose move's current leg (None when no move is under way)."""
        return None if self._goal_joints is None else self._goal_joints.copy()

    def _end_move(self) -> None:
        self._goal_pose = self._goal_joints = None
        self._goal_legs = []

    # --- helpers ----------------------------------------------------------------------------
    def _reject(self, reason: str) -> FilterDecision:
        reason = bounded(reason, 2 * MAX_REASON_CHARS)
        self.counters.rejected += 1
        self.counters.last_rejection = reason
        return FilterDecision(REJECT, reason)

    def _hold(self, reason: str) -> FilterDecision:
        reason = bounded(reason, 2 * MAX_REASON_CHARS)
        if self.state != ESTOP:
            self.state, self.hold_reason = HOLDING, reason
        return FilterDecision(HOLD, reason)

    def snapshot(self) -> dict:
        """Counters and state as a plain dict (diagnostics, logs)."""
        out = dataclasses.asdict(self.counters)
        out.update(state=self.state, hold_reason=self.hold_reason)
        return out
