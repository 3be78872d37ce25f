"""Teleoperation: device sources behind one interface, and the 5 Hz delta-EE mapping with dead-man."""

from fuse_core.teleop.base import EPISODE_KEYS, TeleopInput, TeleopSource
from fuse_core.teleop.mapper import TeleopConfig, TeleopMapper, TeleopStep

__all__ = ['EPISODE_KEYS', 'TeleopConfig', 'TeleopInput', 'TeleopMapper', 'TeleopSource', 'TeleopStep']
