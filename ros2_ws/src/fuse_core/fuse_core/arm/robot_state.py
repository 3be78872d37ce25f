"""Sensor mounting frames from the calibration file, and the arm's link transforms from joint states."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.description import LINKS, Joint, joint_transforms, wx250s_joints
from fuse_core.arm.kinematics import pose_from_xyz_rpy
from fuse_core.config import ValidatedConfig, finite_floats, load_yaml, param
from fuse_core.errors import ConfigError

#: The frames the sensor nodes stamp; a calibration file must mount every one of them.
SENSOR_FRAMES = ('camera_primary_optical_frame', 'camera_wrist_optical_frame', 'digit_left_frame',
                 'digit_right_frame', 'imu_link', 'microphone_frame')


@dataclass
class RobotStateConfig(ValidatedConfig):
    robot_model: str = param('wx250s', 'Arm model; its link names are prefixed with "<robot_model>/"',
                             choices=('wx250s',))
    joint_states_topic: str = param('/arm/joint_states', 'Measured joint states that drive the arm links')
    publish_arm_links: bool = param(True, 'Publish the arm links on /tf and the description on '
                                    '/robot_description; false where the Interbotix driver\'s '
                                    'robot_state_publisher already does (the real robot)')
    sensor_frames_file: str = param('', 'Calibration file of the sensor mounts '
                                    '(config/calibration/sensor_frames.yaml); empty = publish no /tf_static')
    tf_rate_hz: float = param(50.0, 'Most /tf messages per second (joint states come at 100 Hz); '
                              '0 = one per joint state', min=0.0, max=1000.0)


@dataclass(frozen=True)
class Mount:
    """A fixed frame: `child` at `xyz`/`rpy` in `parent`."""

    child: str
    parent: str
    xyz: Tuple[float, float, float]
    rpy: Tuple[float, float, float]

    def transform(self) -> np.ndarray:
        return pose_from_xyz_rpy(self.xyz, self.rpy)


def _vector(path: str, name: str, key: str, value) -> Tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f'{path}: frame {name!r}: {key} must be a list of 3 numbers, got {value!r}')
    out = finite_floats(value, lambda v: ConfigError(
        f'{path}: frame {name!r}: {key} must be 3 finite numbers, got {value!r}'))
    return (out[0], out[1], out[2])


def parse_sensor_frames(data, path: str = '<sensor frames>', known_parents: Sequence[str] = LINKS,
                        required: Sequence[str] = SENSOR_FRAMES) -> List[Mount]:
    """Validate the parsed YAML of a sensor frames file; ConfigError names the file and the frame."""
    if not isinstance(data, dict) or not isinstance(data.get('frames'), dict) or not data['frames']:
        raise ConfigError(f'{path}: expected a mapping with a non-empty "frames:" section')
    frames = data['frames']
    mounts: List[Mount] = []
    for name, entry in frames.items():
        if not isinstance(entry, dict):
            raise ConfigError(f'{path}: frame {name!r}: expected parent, xyz and rpy')
        unknown = sorted(set(entry) - {'parent', 'xyz', 'rpy'})
        if unknown:
            raise ConfigError(f'{path}: frame {name!r}: unknown key(s) {unknown} (parent, xyz, rpy)')
        parent = entry.get('parent')
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f'{path}: frame {name!r}: parent must be a frame name')
        if parent not in known_parents and parent not in frames:
            raise ConfigError(f'{path}: frame {name!r}: parent {parent!r} is neither an arm link '
                              f'({", ".join(known_parents)}) nor a frame of this file')
        if parent == name:
            raise ConfigError(f'{path}: frame {name!r} is its own parent')
        mounts.append(Mount(str(name), parent, _vector(path, name, 'xyz', entry.get('xyz')),
                            _vector(path, name, 'rpy', entry.get('rpy'))))
    # Frames of this file chained to one another must end at an arm link.
    by_child = {m.child: m for m in mounts}
    for m in mounts:
        seen, cur = {m.child}, m.parent
        while cur in by_child:
            if cur in seen:
                raise ConfigError(f'{path}: frames {sorted(seen)} form a cycle')
            seen.add(cur)
            cur = by_child[cur].parent
    missing = [f for f in required if f not in by_child]
    if missing:
        raise ConfigError(f'{path}: no mount for the sensor frame(s) {missing}')
    return mounts


def load_sensor_frames(path: str, **kwargs) -> List[Mount]:
    """Read and validate a sensor frames YAML file."""
    return parse_sensor_frames(load_yaml(path, 'sensor frames file'), str(path), **kwargs)


class LinkStates:
    """Joint states -> (parent, child, transform) of every arm link, as robot_state_publisher does."""

    def __init__(self, prefix: str = 'wx250s/', joints: Optional[Sequence[Joint]] = None) -> None:
        self.prefix = prefix
        self.joints = list(joints) if joints is not None else wx250s_joints()
        self.movable = [j.name for j in self.joints if j.kind != 'fixed']
        self.fixed = [j for j in self.joints if j.kind == 'fixed']

    def frame(self, link: str) -> str:
        return self.prefix + link

    def positions(self, names: Sequence[str], values: Sequence[float]) -> Dict[str, float]:
        """Joint name -> position; raises ValueError when a movable joint is missing or not finite."""
        if len(names) != len(values):
            raise ValueError(f'joint state has {len(names)} names but {len(values)} positions')
        pos = dict(zip(names, (float(v) for v in values)))
        missing = [n for n in self.movable if n not in pos]
        if missing:
            raise ValueError(f'joint state lacks {missing}')
        bad = [n for n in self.movable if not math.isfinite(pos[n])]
        if bad:
            raise ValueError(f'joint state has non-finite positions for {bad}')
        return pos

    def moving(self, positions: Mapping[str, float]) -> List[Tuple[str, str, np.ndarray]]:
        """Transforms of the joints that move (published on /tf at each joint state)."""
        rel = joint_transforms(self.joints, positions)
        return [(self.frame(j.parent), self.frame(j.child), rel[j.child])
                for j in self.joints if j.kind != 'fixed']

    def static(self) -> List[Tuple[str, str, np.ndarray]]:
        """Transforms of the fixed joints (published once on /tf_static)."""
        rel = joint_transforms(self.fixed, {})
        return [(self.frame(j.parent), self.frame(j.child), rel[j.child]) for j in self.fixed]

    def mounts(self, mounts: Sequence[Mount]) -> List[Tuple[str, str, np.ndarray]]:
        """Sensor mounts with arm-link parents prefixed like the links."""
        links = set(LINKS)
        return [(self.frame(m.parent) if m.parent in links else m.parent, m.child, m.transform())
                for m in mounts]
