"""Gamepad through evdev (Linux input events): sticks move, LB is the dead-man, buttons end episodes."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from fuse_core.errors import DeviceError, DeviceNotFoundError
from fuse_core.teleop.base import DeviceTeleopSource, TeleopInput

# Linux input event codes (linux/input-event-codes.h), so parsing needs no evdev import.
EV_KEY, EV_ABS = 1, 3
ABS_X, ABS_Y, ABS_RX, ABS_RY, ABS_HAT0X, ABS_HAT0Y = 0, 1, 3, 4, 16, 17
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 304, 305, 307, 308
BTN_TL, BTN_TR, BTN_SELECT, BTN_START, BTN_MODE = 310, 311, 314, 315, 316

#: Button -> teleop button (A success, B failure, X discard, Y reset, RB gripper, start/select speed,
#: mode abort). LB is the dead-man: hold it to move.
BUTTONS: Dict[int, str] = {BTN_SOUTH: 'success', BTN_EAST: 'failure', BTN_WEST: 'discard',
                           BTN_NORTH: 'reset', BTN_TR: 'gripper_toggle', BTN_START: 'speed_up',
                           BTN_SELECT: 'speed_down', BTN_MODE: 'abort'}
DEADMAN = BTN_TL


class GamepadSource(DeviceTeleopSource):
    """Left stick: x (push = +x) and y (left = +y); right stick: z (push = +z) and yaw (left = +yaw);
    d-pad: pitch (up/down) and roll (left/right)."""

    name = 'gamepad'

    def __init__(self, path: str = '', device_factory: Optional[Callable[[], object]] = None) -> None:
        super().__init__(path, device_factory)
        self._abs: Dict[int, float] = {}
        self._ranges: Dict[int, tuple] = {}
        self._deadman = False

    def _open(self) -> Any:
        try:
            import evdev
        except ImportError as exc:
            raise self._missing('evdev') from exc
        paths = [self.path] if self.path else evdev.list_devices()
        for p in paths:
            try:
                d = evdev.InputDevice(p)
            except OSError as exc:
                if self.path:
                    raise DeviceNotFoundError(f'gamepad: cannot open {p}: {exc}') from exc
                continue
            caps = d.capabilities()
            if EV_ABS in caps and EV_KEY in caps and BTN_TL in caps.get(EV_KEY, []):
                return d
            d.close()
        raise DeviceNotFoundError('gamepad: no input device with sticks and shoulder buttons '
                                  f'(looked at {paths or "no /dev/input/event*"})')

    def _attach(self, dev: Any) -> None:
        self._ranges = {}
        for code in (ABS_X, ABS_Y, ABS_RX, ABS_RY, ABS_HAT0X, ABS_HAT0Y):
            try:
                info = dev.absinfo(code)
                self._ranges[code] = (float(info.min), float(info.max))
            except (OSError, KeyError, AttributeError):
                self._ranges[code] = (-1.0, 1.0) if code in (ABS_HAT0X, ABS_HAT0Y) else (-32768.0, 32767.0)
        self._dev, self._abs, self._deadman = dev, {}, False

    def _norm(self, code: int) -> float:
        if code not in self._abs:
            return 0.0
        lo, hi = self._ranges[code]
        mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0 or 1.0
        return max(-1.0, min(1.0, (self._abs[code] - mid) / half))

    def read(self) -> TeleopInput:
        dev = self._connected()
        pressed = set()
        try:
            for ev in dev.read():
                if ev.type == EV_ABS:
                    self._abs[ev.code] = float(ev.value)
                elif ev.type == EV_KEY:
                    if ev.code == DEADMAN:
                        self._deadman = ev.value != 0
                    elif ev.value == 1 and ev.code in BUTTONS:
                        pressed.add(BUTTONS[ev.code])
        except BlockingIOError:
            pass  # nothing new since the last tick
        except OSError as exc:
            raise DeviceError(f'gamepad: device lost: {exc}') from exc
        n = self._norm
        t = [-n(ABS_Y), -n(ABS_X), -n(ABS_RY)]
        r = [n(ABS_HAT0X), -n(ABS_HAT0Y), -n(ABS_RX)]
        return TeleopInput(t, r, deadman=self._deadman, pressed=frozenset(pressed))
