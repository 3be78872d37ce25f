"""Validated parameters of the arm node (the same names are ROS parameters and YAML keys)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, List

import numpy as np

from fuse_core.config import ValidatedConfig, param, validate
from fuse_core.errors import ConfigError
from fuse_core.gripper import GRIPPER_THRESHOLD

if TYPE_CHECKING:  # fuse_core.arm.safety takes its defaults from this module
    from fuse_core.arm.safety import SafetyLimits


@dataclass
class ArmConfig(ValidatedConfig):
    backend: str = param('mock', 'mock: kinematic simulation (synthetic, tests only); '
                         'sim: the MuJoCo twin world (joint targets on /world/joint_targets, joint states '
                         'from /world/joint_states; synthetic); '
                         'interbotix: a real arm through interbotix_xs_modules',
                         choices=('mock', 'sim', 'interbotix'))
    robot_model: str = param('wx250s', 'Interbotix robot model; also the driver namespace',
                             choices=('wx250s',))
    command_topic: str = param('/policy/command', 'DeltaEECommand input topic')
    commander: str = param('/policy', 'The one node (full name) whose commands move the arm; a command from '
                           'any other publisher is refused and the arm holds, naming it')
    motion_services: bool = param(False, 'Serve reset_estop, move_to_start and move_to_pose (false on the robot: '
                                  'anyone on the DDS domain could call them; ~/estop is always served)')
    rearm_gap_s: float = param(1.0, 'After reset_estop the commander must send no motion command for this '
                               'long (holds are fine), then start a new sequence, before the arm moves (s)',
                               min=0.05, max=60.0)
    control_rate_hz: float = param(100.0, 'Control loop rate: mock integration, watchdog, moves',
                                   min=1.0, max=1000.0)
    joint_state_rate_hz: float = param(100.0, 'Rate of ~/joint_states and ~/ee_pose', min=1.0, max=1000.0)
    status_rate_hz: float = param(10.0, 'Rate of ~/status', min=0.1, max=100.0)
    watchdog_s: float = param(0.5, 'Hold when no fresh command arrives for this long', min=0.01, max=10.0)
    max_command_age_s: float = param(1.0, 'Reject commands stamped longer ago than this '
                                     '(used only when valid_until is unset)', min=0.01, max=60.0)
    max_step_translation: float = param(0.05, 'Per-command translation clip per axis (m)',
                                        min=0.0001, max=0.2)
    max_step_rotation: float = param(0.25, 'Per-command rotation clip per axis (rad)', min=0.0001, max=1.0)
    max_linear_speed: float = param(0.25, 'Speed limit of the commanded target (m/s, Euclidean), whatever '
                                    'the command rate: a step moves at most this x the time since the '
                                    'previous applied command', min=0.001, max=1.0)
    max_angular_speed: float = param(1.25, 'Turn-rate limit of the commanded target (rad/s)', min=0.001, max=5.0)
    floor_z: float = param(-0.01, 'Table plane (m, base frame): no point of the arm (elbow, wrist, end '
                           'effector) goes below it anywhere along a move', min=-1.0, max=1.0)
    path_spacing: float = param(2.5e-4, 'Path check resolution: end-effector travel between neighbouring '
                                'uncertified samples of a move (m)', min=1e-5, max=0.005)
    path_tolerance: float = param(5e-4, 'How far past the box faces and the floor a move may bow (m); targets '
                                  'stay in the box (sliding along a face bows out by microns)', min=0.0, max=0.005)
    max_joint_step: float = param(1.0, 'A command whose IK solution moves any joint farther than this (rad) '
                                  'is refused (IK branch flips)', min=0.01, max=6.3)
    max_future_s: float = param(0.05, 'Commands stamped further ahead of the arm clock than this are refused (s)',
                                min=0.0, max=5.0)
    pose_move_margin: float = param(0.02, 'move_to_start / move_to_pose may pass this far outside the workspace '
                                    'box (m); policy motion never does', min=0.0, max=0.1)
    workspace_min: List[float] = param([0.10, -0.15, -0.01], 'Workspace box minimum xyz (m, base frame)',
                                       min=-1.0, max=1.0)
    workspace_max: List[float] = param([0.45, 0.25, 0.25], 'Workspace box maximum xyz (m, base frame)',
                                       min=-1.0, max=1.0)
    orientation_min: List[float] = param([-1.0, -1.0, -1.57], 'Orientation box minimum roll, pitch, yaw '
                                         '(rad, Bridge convention: 0 = gripper down)', min=-3.15, max=3.15)
    orientation_max: List[float] = param([1.0, 1.0, 1.57], 'Orientation box maximum roll, pitch, yaw (rad)',
                                         min=-3.15, max=3.15)
    start_pose_xyz: List[float] = param([0.118, -0.016, 0.233], 'Episode start pose position (m)',
                                        min=-1.0, max=1.0)
    start_pose_rpy: List[float] = param([0.0, 0.0, 0.0], 'Episode start pose roll/pitch/yaw (rad) in the '
                                        'Bridge/FuSe state convention: R = Rz*Ry*Rx(rpy) @ '
                                        '[[0,0,1],[0,1,0],[-1,0,0]], so 0 = gripper pointing down',
                                        min=-3.2, max=3.2)
    gripper_threshold: float = param(GRIPPER_THRESHOLD, 'Gripper commands >= this open the gripper', min=0.0,
                                     max=1.0)
    dry_run: bool = param(False, 'Filter, log and count commands but never send them to the backend')
    base_frame: str = param('wx250s/base_link', 'frame_id of ~/ee_pose and ~/status poses')
    moving_time: float = param(0.25, 'Interbotix time profile: duration of one streamed move (s)',
                               min=0.05, max=10.0)
    accel_time: float = param(0.1, 'Interbotix time profile: acceleration time (s)', min=0.0, max=5.0)
    pose_moving_time: float = param(2.0, 'Interbotix time profile for move_to_pose / move_to_start (s)',
                                    min=0.2, max=20.0)
    move_timeout_s: float = param(15.0, 'A pose move not reached within this time ends in holding',
                                  min=0.5, max=120.0)
    arrival_tolerance: float = param(0.02, 'Max joint error (rad) at which a pose move counts as reached',
                                     min=0.0001, max=0.5)
    connect_timeout_s: float = param(5.0, 'Interbotix: how long to look for the driver at start-up (s)',
                                     min=0.1, max=120.0)
    reconnect_max_s: float = param(10.0, 'Longest wait between reconnection attempts (s)', min=0.5, max=300.0)
    mock_initial_pose: str = param('sleep', 'Mock arm joints at start-up (start = the episode start pose)',
                                   choices=('sleep', 'home', 'start'))
    mock_time_constant_s: float = param(0.05, 'Mock arm first-order response time (s)', min=0.001, max=5.0)
    ik_max_iterations: int = param(50, 'IK iteration cap', min=1, max=1000)
    ik_position_tolerance: float = param(1e-4, 'IK position tolerance (m)', min=1e-7, max=0.01)
    ik_orientation_tolerance: float = param(1e-3, 'IK orientation tolerance (rad)', min=1e-7, max=0.1)

    def __post_init__(self) -> None:
        validate(self)
        for name in ('workspace_min', 'workspace_max', 'orientation_min', 'orientation_max', 'start_pose_xyz',
                     'start_pose_rpy'):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f'ArmConfig: parameter {name!r} = {getattr(self, name)!r} '
                                  'needs exactly 3 values')
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if not np.all(lo < hi):
            raise ConfigError(f'ArmConfig: parameter workspace_min {self.workspace_min} must be below '
                              f'workspace_max {self.workspace_max} on every axis')
        if not np.all(np.asarray(self.orientation_min) < np.asarray(self.orientation_max)):
            raise ConfigError(f'ArmConfig: parameter orientation_min {self.orientation_min} must be below '
                              f'orientation_max {self.orientation_max} on every axis')
        xyz = np.asarray(self.start_pose_xyz)
        if np.any(xyz < lo) or np.any(xyz > hi):
            raise ConfigError(f'ArmConfig: parameter start_pose_xyz {self.start_pose_xyz} is outside '
                              f'the workspace {self.workspace_min}..{self.workspace_max}')
        if self.accel_time * 2.0 > self.moving_time:
            raise ConfigError(f'ArmConfig: parameter accel_time {self.accel_time} must be at most half '
                              f'of moving_time {self.moving_time}')
        if self.floor_z > self.workspace_min[2]:
            raise ConfigError(f'ArmConfig: parameter floor_z {self.floor_z} is above workspace_min z '
                              f'{self.workspace_min[2]}: the box would reach into the table')
        if not self.commander.startswith('/') or self.commander.endswith('/') or ' ' in self.commander:
            raise ConfigError(f'ArmConfig: parameter commander {self.commander!r} must be a full node name '
                              "such as '/policy'")
        expected_frame = f'{self.robot_model}/base_link'
        if self.base_frame != expected_frame:
            raise ConfigError(f'ArmConfig: parameter base_frame {self.base_frame!r} does not match '
                              f'robot_model {self.robot_model!r} (expected {expected_frame!r})')

    def safety_limits(self) -> 'SafetyLimits':
        """The safety filter's limits: each SafetyLimits field from the parameter of its name."""
        from fuse_core.arm.safety import SafetyLimits
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(SafetyLimits)}
        return SafetyLimits(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
