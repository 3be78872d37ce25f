"""Scripted and fake teleop sources: a list of actions played once per tick, and a test device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np

from fuse_core.errors import DeviceError, DeviceNotFoundError
from fuse_core.gripper import binarised_gripper, gripper_open
from fuse_core.teleop.base import TeleopInput, TeleopSource


def load_script(path) -> np.ndarray:
    """A (N, 7) action array from .npy or .json ([[dx, dy, dz, droll, dpitch, dyaw, gripper], ...])."""
    p = Path(path)
    if not p.is_file():
        raise DeviceNotFoundError(f'scripted: no script file {p}')
    arr = np.load(p) if p.suffix == '.npy' else np.asarray(json.loads(p.read_text()), dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 7 or not np.isfinite(arr).all():
        raise DeviceError(f'scripted: {p} must hold finite (N, 7) actions, got shape {arr.shape}')
    return arr


class ScriptedSource(TeleopSource):
    """Plays 7-D actions (metres, radians, gripper) once per read, then holds (script ended)."""

    name = 'scripted'
    synthetic = True

    def __init__(self, actions: Sequence[Sequence[float]], max_translation: float,
                 max_rotation: float) -> None:
        self.actions = np.asarray(actions, dtype=float).reshape(-1, 7)
        self.scale = np.array([max_translation] * 3 + [max_rotation] * 3)
        self.index = 0
        self._gripper = 1.0

    def connect(self) -> None:
        self.index, self._gripper = 0, 1.0

    def read(self) -> TeleopInput:
        if self.index >= len(self.actions):
            return TeleopInput(deadman=False)
        a = self.actions[self.index]
        self.index += 1
        axes = np.divide(a[:6], self.scale, out=np.zeros(6), where=self.scale > 0)
        pressed = set()
        if gripper_open(a[6]) != gripper_open(self._gripper):
            pressed.add('gripper_toggle')
            self._gripper = binarised_gripper(a[6])
        return TeleopInput(axes[:3], axes[3:], deadman=True, pressed=frozenset(pressed))

    def close(self) -> None:
        pass


class FakeTeleopDevice(TeleopSource):
    """A synthetic device for tests and the fake teleop: queued inputs, then the last one again;
    unplug() makes the next read fail like a real unplug, replug() makes connect work again."""

    name = 'fake'
    synthetic = True

    def __init__(self, inputs: Iterable[TeleopInput] = (), present: bool = True) -> None:
        self.queue: List[TeleopInput] = list(inputs)
        self.present, self.connected = present, False
        self.last: Optional[TeleopInput] = None
        self.connects = 0

    def push(self, *inputs: TeleopInput) -> None:
        self.queue.extend(inputs)

    def unplug(self) -> None:
        self.present = False

    def replug(self) -> None:
        self.present = True

    def connect(self) -> None:
        if not self.present:
            raise DeviceNotFoundError('fake: device not present')
        self.connected = True
        self.connects += 1

    def read(self) -> TeleopInput:
        if not self.present or not self.connected:
            self.connected = False
            raise DeviceError('fake: device unplugged')
        if self.queue:
            self.last = self.queue.pop(0)
        if self.last is None:
            return TeleopInput()
        # Buttons are events: only once.
        out, self.last = self.last, TeleopInput(self.last.translation, self.last.rotation,
                                                self.last.deadman)
        return out

    def close(self) -> None:
        self.connected = False


def make_source(cfg) -> TeleopSource:
    """The source a TeleopConfig names."""
    if cfg.device == 'keyboard':
        from fuse_core.teleop.keyboard import KeyboardSource
        return KeyboardSource()
    if cfg.device == 'spacemouse':
        from fuse_core.teleop.spacemouse import SpaceMouseSource
        return SpaceMouseSource(cfg.device_path)
    if cfg.device == 'gamepad':
        from fuse_core.teleop.gamepad import GamepadSource
        return GamepadSource(cfg.device_path)
    if cfg.device == 'scripted':
        if not cfg.script_path:
            raise DeviceError('scripted: parameter script_path is empty')
        return ScriptedSource(load_script(cfg.script_path), cfg.max_translation, cfg.max_rotation)
    # fake: a synthetic operator pushing +x with the dead-man held (tests, demos)
    return FakeTeleopDevice([TeleopInput((0.5, 0.0, 0.0), (0.0, 0.0, 0.0), deadman=True)])
