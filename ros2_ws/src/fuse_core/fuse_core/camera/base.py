"""The FrameSource interface shared by cameras and DIGITs, and the pacing clock of replayed sources."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from fuse_core.acquisition import SOURCE_KINDS, Source
from fuse_core.errors import DeviceError
from fuse_core.supervisor import BACKOFF, CONNECTED
from fuse_core.timing import wall_ns

#: A frame and its capture time: (H x W x 3 BGR uint8 array, wall-clock nanoseconds).
Frame = Tuple[np.ndarray, int]

__all__ = ['SOURCE_KINDS', 'ActualSettings', 'DeviceSettingsError', 'Frame', 'FrameSource', 'Pacer',
           'StaleFrameError']


class DeviceSettingsError(DeviceError):
    """The device accepted the connection but does not run with the requested settings."""


class StaleFrameError(DeviceError):
    """The newest frame is older than the caller accepts."""


@dataclass(frozen=True)
class ActualSettings:
    """What a source really delivers, read back after connecting."""

    width: int
    height: int
    fps: Optional[float]
    pixel_format: str

    def __str__(self) -> str:
        fps = 'unreported fps' if self.fps is None else f'{self.fps:g} fps'
        return f'{self.width}x{self.height} @ {fps}, {self.pixel_format}'

    def as_dict(self) -> dict:
        return {'actual_width': self.width, 'actual_height': self.height,
                'actual_fps': 'unreported' if self.fps is None else self.fps,
                'actual_pixel_format': self.pixel_format}


class FrameSource(Source[Frame]):
    """A source of BGR frames: `read` blocks until the next frame and returns it with its
    capture time (wall-clock ns). After `connect`, `actual` holds the settings the source
    really runs with.
    """

    item = 'frame'
    # The camera and DIGIT diagnostics have always reported these two states under these names.
    state_names = {CONNECTED: 'streaming', BACKOFF: 'waiting'}

    def __init__(self, name: str) -> None:
        self.name = name
        self.actual: Optional[ActualSettings] = None

    @abc.abstractmethod
    def read(self, timeout_s: Optional[float] = None) -> Frame:
        """The next frame and its capture time in wall-clock ns."""

    def capture_stamps(self, item: Frame) -> Tuple[int]:
        return (item[1],)

    def describe(self) -> str:
        return f'{self.kind} source {self.name}'


class Pacer:
    """Releases frames of a replayed or generated stream at a fixed rate.

    The schedule is absolute (start + n / fps), so sleep jitter does not accumulate into
    rate drift; after a stall of more than one period the schedule restarts from now
    instead of bursting to catch up, and the skipped slots are counted.
    """

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError(f'frame rate must be > 0, got {fps}')
        self.period = 1.0 / fps
        self._start: Optional[float] = None
        self._n = 0
        self.missed = 0

    def reset(self) -> None:
        self._start = None
        self._n = 0

    def wait(self) -> int:
        """Sleep until the next slot; returns the wall-clock time of the release in ns."""
        now = time.monotonic()
        if self._start is None:
            self._start, self._n = now, 0
        due = self._start + self._n * self.period
        if now - due > self.period:
            self.missed += int((now - due) / self.period)
            self._start, self._n, due = now, 0, now
        elif due > now:
            time.sleep(due - now)
        self._n += 1
        return wall_ns()
