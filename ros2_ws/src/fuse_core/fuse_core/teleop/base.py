"""The teleop source interface: connect / read (latest device state) / close, as the sensors do."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, FrozenSet, Optional, Sequence

import numpy as np

from fuse_core.device import Device
from fuse_core.errors import DeviceError

#: Buttons that end or restart an episode (forwarded to the episode manager).
EPISODE_KEYS = ('success', 'failure', 'discard', 'reset', 'abort')
#: Buttons the mapper itself handles.
CONTROL_KEYS = ('gripper_toggle', 'speed_up', 'speed_down')


@dataclass(frozen=True)
class TeleopInput:
    """One reading of a device: axes in [-1, 1] and the buttons pressed since the last read.

    translation / rotation: normalised device axes (x, y, z) and (roll, pitch, yaw) in the arm's
    base frame after the device's own axis mapping; deadman: the operator holds the enable
    (a button, or any motion key for the keyboard); pressed: button events since the last read.
    """

    translation: Sequence[float] = (0.0, 0.0, 0.0)
    rotation: Sequence[float] = (0.0, 0.0, 0.0)
    deadman: bool = False
    pressed: FrozenSet[str] = field(default_factory=frozenset)
    stamp_s: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        t = np.asarray(self.translation, dtype=float)
        r = np.asarray(self.rotation, dtype=float)
        if t.shape != (3,) or r.shape != (3,) or not (np.isfinite(t).all() and np.isfinite(r).all()):
            raise ValueError(f'teleop axes must be 3 finite values each, got {self.translation!r}, '
                             f'{self.rotation!r}')
        unknown = set(self.pressed) - set(EPISODE_KEYS) - set(CONTROL_KEYS)
        if unknown:
            raise ValueError(f'unknown teleop buttons {sorted(unknown)}')


class TeleopSource(Device):
    """A teleoperation device. read() never blocks; a lost device raises DeviceError."""

    name = 'teleop'
    synthetic = False

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device; DeviceError (naming it) if it is absent."""

    @abc.abstractmethod
    def read(self) -> TeleopInput:
        """The device's state now (drains pending events); DeviceError if it was lost."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""


class DeviceTeleopSource(TeleopSource):
    """A device behind an optional Python package; `device_factory` stands in for it (tests)."""

    def __init__(self, path: str = '', device_factory: Optional[Callable[[], Any]] = None) -> None:
        self.path = path
        self._factory = device_factory
        self._dev: Any = None

    def connect(self) -> None:
        self._attach(self._factory() if self._factory is not None else self._open())

    @abc.abstractmethod
    def _open(self) -> Any:
        """Find and open the real device; DeviceNotFoundError naming it if it is absent."""

    def _attach(self, dev: Any) -> None:
        """Take an opened device into use (set it up, reset the reading state)."""
        self._dev = dev

    def _missing(self, package: str) -> DeviceError:
        """The error for a device package that is not installed (raise it from the ImportError)."""
        return DeviceError(f'{self.name}: the {package} package is not installed (pip install {package})')

    def _connected(self) -> Any:
        if self._dev is None:
            raise DeviceError(f'{self.name}: not connected')
        return self._dev

    def close(self) -> None:
        if self._dev is not None:
            try:
                self._dev.close()
            except OSError:
                pass
        self._dev = None
