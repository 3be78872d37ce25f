"""Validated parameters of the twin world (the same names are the world node's ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from fuse_core.config import ValidatedConfig, param, validate
from fuse_core.errors import ConfigError


@dataclass
class WorldConfig(ValidatedConfig):
    task: str = param('pick_cube', 'Task at start-up (see fuse_sim.tasks.TASKS)')
    seed: int = param(0, 'Seed of the first episode', min=0, max=2**31 - 1)
    mode: str = param('realtime', 'realtime: paced to the wall clock; lockstep: as fast as the machine '
                      'allows, every node on use_sim_time', choices=('realtime', 'lockstep'))
    timestep_s: float = param(0.0025, 'Physics step (s)', min=0.0005, max=0.01)
    moving_time: float = param(0.25, 'Joint target profile: duration of one streamed move (s), as the '
                               'Interbotix driver\'s time profile', min=0.05, max=5.0)
    finger_speed: float = param(0.06, 'Finger speed (m/s)', min=0.005, max=1.0)
    start_pose_xyz: List[float] = param([0.118, -0.016, 0.233], 'Arm pose after a reset (m)', min=-1.0, max=1.0)
    start_pose_rpy: List[float] = param([0.0, 0.0, 0.0], 'Arm orientation after a reset (Bridge rpy)',
                                        min=-3.2, max=3.2)
    joint_state_rate_hz: float = param(100.0, 'Rate of ~/joint_states', min=1.0, max=1000.0)
    task_state_rate_hz: float = param(10.0, 'Rate of ~/task_state', min=0.5, max=100.0)
    clock_rate_hz: float = param(200.0, 'Rate of /clock', min=10.0, max=2000.0)
    lockstep_real_time_factor: float = param(0.0, 'Lockstep only: cap on sim time per wall second '
                                             '(0 = no cap)', min=0.0, max=100.0)
    base_frame: str = param('wx250s/base_link', 'frame_id of poses in the task state')

    def __post_init__(self) -> None:
        validate(self)
        from fuse_sim.tasks import TASKS
        if self.task not in TASKS:
            raise ConfigError(f'WorldConfig: parameter task {self.task!r} is not a known task; '
                              f'known tasks: {sorted(TASKS)}')
        for name in ('start_pose_xyz', 'start_pose_rpy'):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f'WorldConfig: parameter {name!r} needs exactly 3 values')
