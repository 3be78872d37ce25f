"""3Dconnexion SpaceMouse through hidapi (PyPI `hidapi`, module `hid`): 6 axes, 2 buttons."""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional

from fuse_core.errors import DeviceError, DeviceNotFoundError
from fuse_core.teleop.base import DeviceTeleopSource, TeleopInput

VENDOR_IDS = (0x256F, 0x046D)  # 3Dconnexion, and Logitech for the older SpaceNavigator / SpaceMouse
#: Raw axis value at full deflection (the devices report about +-350).
FULL_SCALE = 350.0


def parse_report(report, state: dict) -> None:
    """Update `state` (axes 'tx','ty','tz','rx','ry','rz', 'buttons') from one HID input report.

    Report 1: translation (3 x int16 LE), or translation + rotation in one 13-byte report (newer
    devices); report 2: rotation; report 3: button bit mask (bit 0 left, bit 1 right).
    """
    data = bytes(report)
    if not data:
        return
    rid = data[0]
    if rid == 1 and len(data) >= 7:
        state['tx'], state['ty'], state['tz'] = struct.unpack_from('<hhh', data, 1)
        if len(data) >= 13:
            state['rx'], state['ry'], state['rz'] = struct.unpack_from('<hhh', data, 7)
    elif rid == 2 and len(data) >= 7:
        state['rx'], state['ry'], state['rz'] = struct.unpack_from('<hhh', data, 1)
    elif rid == 3 and len(data) >= 2:
        state['buttons'] = data[1]


class SpaceMouseSource(DeviceTeleopSource):
    """Device axes -> base frame (operator facing the robot's front): push away = +x (base forward
    is device -y), left = +y (device -x), lift = +z (device -z). Left button toggles the gripper,
    right button is `success`. Deflection is the dead-man: let go and the arm holds."""

    name = 'spacemouse'

    def __init__(self, path: str = '', device_factory: Optional[Callable[[], object]] = None,
                 full_scale: float = FULL_SCALE) -> None:
        super().__init__(path, device_factory)
        self.full_scale = full_scale
        self._state = {'tx': 0, 'ty': 0, 'tz': 0, 'rx': 0, 'ry': 0, 'rz': 0, 'buttons': 0}
        self._buttons = 0

    def _open(self) -> Any:
        try:
            import hid
        except ImportError as exc:
            raise self._missing('hidapi') from exc
        dev = hid.device()
        try:
            if self.path:
                dev.open_path(self.path.encode())
            else:
                found = [d for d in hid.enumerate() if d['vendor_id'] in VENDOR_IDS]
                if not found:
                    raise DeviceNotFoundError('spacemouse: no 3Dconnexion device found '
                                              '(check the udev rule for /dev/hidraw*)')
                dev.open_path(found[0]['path'])
        except OSError as exc:
            raise DeviceNotFoundError(f'spacemouse: cannot open {self.path or "the device"}: {exc}') from exc
        return dev

    def _attach(self, dev: Any) -> None:
        try:
            dev.set_nonblocking(1)
        except OSError as exc:
            raise DeviceError(f'spacemouse: {exc}') from exc
        self._dev = dev

    def read(self) -> TeleopInput:
        dev = self._connected()
        pressed = set()
        for _ in range(256):  # drain what arrived since the last tick
            try:
                report = dev.read(64)
            except (OSError, ValueError) as exc:
                raise DeviceError(f'spacemouse: device lost: {exc}') from exc
            if not report:
                break
            parse_report(report, self._state)
            new = self._state['buttons'] & ~self._buttons
            if new & 1:
                pressed.add('gripper_toggle')
            if new & 2:
                pressed.add('success')
            self._buttons = self._state['buttons']
        s, k = self._state, 1.0 / self.full_scale
        t = [-s['ty'] * k, -s['tx'] * k, -s['tz'] * k]
        r = [-s['ry'] * k, -s['rx'] * k, -s['rz'] * k]
        t = [max(-1.0, min(1.0, v)) for v in t]
        r = [max(-1.0, min(1.0, v)) for v in r]
        deflected = any(abs(v) > 0.02 for v in t + r)
        return TeleopInput(t, r, deadman=deflected, pressed=frozenset(pressed))
