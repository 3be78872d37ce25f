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
    lockstep_follow_topic: str = param('/arm/joint_states', 'Lockstep only: a JointState topic of the node '
                                       'that commands the world (the arm); the world waits for its stamps '
                                       '("" = wait for no one)')
    lockstep_max_lead_s: float = param(0.05, 'Lockstep only: how far sim time may run ahead of the newest '
                                       'stamp on lockstep_follow_topic (s)', min=0.005, max=5.0)
    lockstep_follow_timeout_s: float = param(2.0, 'Lockstep only: wall seconds without a message on '
                                             'lockstep_follow_topic after which the world runs on alone',
                                             min=0.1, max=60.0)
    base_frame: str = param('wx250s/base_link', 'frame_id of poses in the task state')
    instruction_topic: str = param('', 'Latched std_msgs/String topic that gets each episode\'s instruction '
                                   '(e.g. /policy/instruction; "" = none)')
    render: bool = param(True, 'Render the cameras and DIGITs (false: joints, task, audio and IMU only)')
    camera_width: int = param(640, 'Rendered width of both cameras (px; the drivers\' default)', min=16, max=1920)
    camera_height: int = param(480, 'Rendered height of both cameras (px)', min=16, max=1080)
    camera_rate_hz: float = param(30.0, 'Camera frame rate (sim time)', min=0.5, max=120.0)
    digit_rate_hz: float = param(60.0, 'DIGIT frame rate (sim time)', min=0.5, max=120.0)
    imu_rate_hz: float = param(200.0, 'IMU rate (sim time)', min=1.0, max=1000.0)
    audio_block_size: int = param(441, 'Samples per ~/chunk at 44.1 kHz', min=32, max=44100)
    spectrogram_rate_hz: float = param(10.0, 'Rate of /audio/mel_spectrogram', min=0.5, max=100.0)

    def __post_init__(self) -> None:
        validate(self)
        from fuse_sim.tasks import TASKS
        if self.task not in TASKS:
            raise ConfigError(f'WorldConfig: parameter task {self.task!r} is not a known task; '
                              f'known tasks: {sorted(TASKS)}')
        for name in ('start_pose_xyz', 'start_pose_rpy'):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f'WorldConfig: parameter {name!r} needs exactly 3 values')


@dataclass
class ExpertConfig(ValidatedConfig):
    command_topic: str = param('/policy/command', 'Where the expert publishes DeltaEECommand (the policy\'s topic)')
    rate_hz: float = param(5.0, 'Command rate (node clock)', min=0.5, max=50.0)
    command_valid_s: float = param(0.3, 'valid_until = stamp + this', min=0.05, max=2.0)
    reset_on_start: bool = param(True, 'Call /world/reset (task, seed) and /arm/move_to_start before acting')
    task: str = param('', 'Task for the reset ("" = the world\'s current task)')
    seed: int = param(-1, 'Seed for the reset (-1 = the world\'s next seed)', min=-1, max=2**31 - 1)
    episodes: int = param(0, 'Episodes to run, each started with a reset (0 = one after another until stopped)',
                          min=0, max=1000000)
    pause_s: float = param(1.0, 'Pause between the end of an episode and the next reset (s)', min=0.0, max=60.0)
    audio_window_s: float = param(0.5, 'Microphone history the expert listens to (s)', min=0.1, max=5.0)
    frame_id: str = param('wx250s/base_link', 'header.frame_id of the commands')
    action_noise_m: float = param(0.0, 'Std (m) of the noise added to each commanded translation axis while '
                                  'the fingers are open (less for steps under 2 cm), seeded by the episode '
                                  'seed (0 = none). Noisy demonstrations leave the expert\'s path and come '
                                  'back; export them with --relabel expert so that the labels are the clean '
                                  'actions', min=0.0, max=0.05)
    wait_for_episodes: str = param('', 'episode manager state topic (fuse_interfaces/EpisodeState); when set, '
                                   'the first reset waits until it reports recorder_ready, so that the '
                                   'first episode is recorded ("" = start at once)')
