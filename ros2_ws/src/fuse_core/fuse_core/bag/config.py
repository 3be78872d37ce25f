"""Configs of the recorder and bag player nodes, and where the shipped recording lives."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from fuse_core.config import ValidatedConfig, param
from fuse_core.errors import BagError, ConfigError

#: Every sensor topic of docs/CONTRACTS.md: what the shipped recording holds.
SENSOR_TOPICS = [
    '/camera_primary/image_raw', '/camera_wrist/image_raw',
    '/digit_left/image_raw', '/digit_right/image_raw',
    '/digit_left/background', '/digit_right/background',
    '/audio/chunk', '/audio/mel_spectrogram',
    '/imu/data', '/imu/mag',
]

#: What an episode bag records besides the sensors (recorder mode episodes): the command sent,
#: the delta the arm applied after its safety filter (the training action), the measured
#: end-effector pose, joints and gripper (FuSe's state), the windows, the twin's task state and
#: the episode manager's state.
EPISODE_EXTRA_TOPICS = [
    '/policy/command', '/arm/applied_command', '/arm/ee_pose', '/arm/joint_states', '/arm/status',
    '/sync/window', '/world/task_state', '/episodes/state',
]

#: What an episode bag must hold for the export (fuse_core.export.steps.REQUIRED_TOPICS): in mode
#: episodes the recorder answers ~/ready only once every one of these is subscribed.
EXPORT_TOPICS = [
    '/camera_primary/image_raw', '/camera_wrist/image_raw',
    '/digit_left/image_raw', '/digit_left/background', '/digit_right/image_raw', '/digit_right/background',
    '/audio/mel_spectrogram', '/arm/applied_command', '/arm/ee_pose', '/arm/joint_states',
]

#: The recording that ships with the project (synthetic sensors), see recordings/README.md.
SHIPPED_RECORDING = 'sim_synthetic'


def _check_topics(owner: str, name: str, topics: List[str]) -> None:
    for t in topics:
        if not isinstance(t, str) or not t.startswith('/') or t.endswith('/') or ' ' in t:
            raise ConfigError(f'{owner}: parameter {name!r}: {t!r} is not an absolute topic name')
    dupes = sorted({t for t in topics if topics.count(t) > 1})
    if dupes:
        raise ConfigError(f'{owner}: parameter {name!r} lists {dupes} more than once')


@dataclass
class RecorderConfig(ValidatedConfig):
    output_dir: str = param('', 'bag directory to create; empty: ./rosbag2_<date>-<time> '
                                '(must not exist or be empty)')
    topics: List[str] = param(list(SENSOR_TOPICS), 'absolute topic names to record; each is '
                              'subscribed once it appears in the graph')
    compression: str = param('zstd', 'MCAP chunk compression', choices=('zstd', 'lz4', 'none'))
    chunk_size_kb: int = param(1024, 'uncompressed chunk size; a crash loses at most the '
                               'current chunk', min=4, max=1 << 20)
    max_duration_s: float = param(0.0, 'stop after this many seconds from the first message '
                                  '(0 = until Ctrl-C)', min=0.0)
    mode: str = param('continuous', 'continuous: one bag from start to Ctrl-C; episodes: one bag '
                      'per episode under output_dir, started and stopped by ~/start and ~/stop',
                      choices=('continuous', 'episodes'))
    record_episode_topics: bool = param(True, 'mode episodes: also record the command, applied '
                                        'command, arm state, window, task and episode topics')
    discovery_period_s: float = param(0.5, 'how often to look for topics not yet subscribed',
                                      min=0.05, max=10.0)
    ready_topics: List[str] = param(list(EXPORT_TOPICS), 'mode episodes: ~/ready (std_srvs/Trigger) '
                                    'answers true once these recorded topics are subscribed (default: '
                                    'what the export needs); an episode started earlier would lack them')

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.topics:
            raise ConfigError('RecorderConfig: parameter \'topics\' is empty: nothing to record')
        _check_topics('RecorderConfig', 'topics', self.topics)
        _check_topics('RecorderConfig', 'ready_topics', self.ready_topics)
        if self.mode == 'episodes':
            unrecorded = [t for t in self.ready_topics if t not in self.recorded_topics()]
            if unrecorded:
                raise ConfigError(f'RecorderConfig: ready_topics {unrecorded} are not recorded (topics, '
                                  'record_episode_topics): ~/ready would never answer true')

    def recorded_topics(self) -> List[str]:
        """The topics to subscribe: `topics`, plus the episode topics in mode episodes."""
        out = list(self.topics)
        if self.mode == 'episodes' and self.record_episode_topics:
            out += [t for t in EPISODE_EXTRA_TOPICS if t not in out]
        return out

    def bag_dir(self) -> Path:
        """continuous: the bag directory; episodes: the directory that holds one bag per episode."""
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        if self.mode == 'episodes':
            return Path.cwd() / 'episodes'
        return Path.cwd() / time.strftime('rosbag2_%Y_%m_%d-%H_%M_%S')


@dataclass
class BagPlayerConfig(ValidatedConfig):
    bag_path: str = param('', 'bag directory or .mcap file; empty: the shipped recording '
                              f'recordings/{SHIPPED_RECORDING}')
    rate: float = param(1.0, 'playback speed factor (1.0 = real time)', min=0.01, max=100.0)
    loop: bool = param(False, 'start over at the end of the bag (forever)')
    restamp: bool = param(True, 'rewrite header.stamp to the current wall time (consistent '
                                'shift) so consumers without use_sim_time can follow a looping bag')
    publish_clock: bool = param(False, 'publish the bag time on /clock (for use_sim_time); '
                                       'only with restamp false')
    clock_rate_hz: float = param(100.0, '/clock publish rate', min=1.0, max=1000.0)
    start_paused: bool = param(False, 'wait for ~/set_paused false before publishing')
    topics: List[str] = param([], 'topics to play; empty: every topic in the bag')
    required_topics: List[str] = param([], 'topics the bag must contain (with messages); the '
                                           'player refuses to start without them')
    verify_on_start: bool = param(True, 'read every chunk once at start-up (CRC) so a corrupt '
                                        'bag fails now, not during playback')

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.restamp and self.publish_clock:
            raise ConfigError('BagPlayerConfig: parameters \'restamp\' and \'publish_clock\' are both '
                              'true: restamped messages follow the wall clock, a /clock with bag '
                              'time would contradict them; set one of them false')
        _check_topics('BagPlayerConfig', 'topics', self.topics)
        _check_topics('BagPlayerConfig', 'required_topics', self.required_topics)


def default_recording_path(roots: Sequence[Path]) -> Path:
    """The shipped recording: the first of `roots` (fuse_nodes.layout.shipped_roots()) holding it."""
    candidates = [Path(root) / 'recordings' / SHIPPED_RECORDING for root in roots]
    for c in candidates:
        if (c / 'metadata.yaml').is_file():
            return c
    raise BagError('the shipped recording was not found; looked in: ' +
                   ', '.join(str(c) for c in candidates) + ' (set bag_path)')
