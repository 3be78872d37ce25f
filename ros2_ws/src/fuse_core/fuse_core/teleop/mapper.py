"""Device readings -> one delta end-effector action per 5 Hz tick, with dead-man and hold reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from fuse_core.config import ValidatedConfig, param
from fuse_core.errors import DeviceError
from fuse_core.gripper import gripper_open
from fuse_core.teleop.base import EPISODE_KEYS, TeleopInput, TeleopSource


@dataclass
class TeleopConfig(ValidatedConfig):
    device: str = param('keyboard', 'teleop device', choices=('keyboard', 'spacemouse', 'gamepad',
                                                            'scripted', 'fake'))
    command_topic: str = param('/policy/command', 'where the DeltaEECommand goes (the arm\'s command topic)')
    rate_hz: float = param(5.0, 'command rate (FuSe/Bridge control rate)', min=0.5, max=50.0)
    command_valid_s: float = param(0.3, 'each command is valid this long after its stamp', min=0.05, max=2.0)
    max_translation: float = param(0.02, 'metres per tick at full deflection and speed 1', min=0.0, max=0.05)
    max_rotation: float = param(0.1, 'radians per tick at full deflection and speed 1', min=0.0, max=0.25)
    speed: float = param(1.0, 'initial speed scale', min=0.1, max=1.0)
    speed_step: float = param(0.25, 'speed_up / speed_down change', min=0.05, max=1.0)
    deadband: float = param(0.05, 'axis values below this are zero', min=0.0, max=0.5)
    require_recording: bool = param(True, 'command only while /episodes/state says recording; '
                                    'hold otherwise')
    device_path: str = param('', 'gamepad: /dev/input/eventN or "" (the first with sticks); '
                                 'spacemouse: "" (first 3Dconnexion device) or a hidraw path')
    script_path: str = param('', 'scripted: a .json/.npy file of 7-D actions, one per tick')
    reconnect_s: float = param(1.0, 'how often to try to reopen a lost device', min=0.1, max=30.0)


@dataclass
class TeleopStep:
    """What to publish this tick: an action or an explicit hold with its reason."""

    action: Optional[np.ndarray]        # 7-D [dx, dy, dz, droll, dpitch, dyaw, gripper] or None
    reason: str = ''                    # why it holds ('' when it moves)
    episode_keys: List[str] = field(default_factory=list)
    device_lost: str = ''               # set on the tick the device was lost

    @property
    def hold(self) -> bool:
        return self.action is None


class TeleopMapper:
    """Reads the source once per tick. No input, a released dead-man or a lost device: hold."""

    def __init__(self, source: TeleopSource, cfg: TeleopConfig) -> None:
        self.source, self.cfg = source, cfg
        self.gripper = 1.0  # open
        self.speed = cfg.speed
        self.connected = False
        self.last_error = ''
        self.lost_count = 0

    def connect(self) -> bool:
        try:
            self.source.connect()
        except DeviceError as exc:
            self.connected, self.last_error = False, str(exc)
            return False
        self.connected, self.last_error = True, ''
        return True

    def _axes(self, values) -> np.ndarray:
        v = np.clip(np.asarray(values, dtype=float), -1.0, 1.0)
        v[np.abs(v) < self.cfg.deadband] = 0.0
        return v

    def tick(self) -> TeleopStep:
        """The step for this tick (call at rate_hz)."""
        if not self.connected:
            return TeleopStep(None, f'{self.source.name}: not connected: {self.last_error}')
        try:
            inp: TeleopInput = self.source.read()
        except DeviceError as exc:
            self.connected, self.last_error = False, str(exc)
            self.lost_count += 1
            try:
                self.source.close()
            except DeviceError:
                pass
            return TeleopStep(None, f'{self.source.name}: device lost: {exc}', device_lost=str(exc))
        keys = [k for k in EPISODE_KEYS if k in inp.pressed]
        if 'gripper_toggle' in inp.pressed:
            self.gripper = 0.0 if gripper_open(self.gripper) else 1.0
        if 'speed_up' in inp.pressed:
            self.speed = min(1.0, self.speed + self.cfg.speed_step)
        if 'speed_down' in inp.pressed:
            self.speed = max(0.1, self.speed - self.cfg.speed_step)
        if not inp.deadman:
            return TeleopStep(None, f'{self.source.name}: dead-man released', keys)
        action = np.empty(7)
        action[:3] = self._axes(inp.translation) * self.cfg.max_translation * self.speed
        action[3:6] = self._axes(inp.rotation) * self.cfg.max_rotation * self.speed
        action[6] = self.gripper
        return TeleopStep(action, '', keys)

    def close(self) -> None:
        self.source.close()
        self.connected = False
