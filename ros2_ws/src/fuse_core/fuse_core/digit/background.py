"""DIGIT background capture: the average of N frames, taken on request from the live stream."""

from __future__ import annotations

import threading
from typing import Iterable, Optional

import numpy as np


def average_frames(frames: Iterable[np.ndarray]) -> np.ndarray:
    """The rounded per-pixel mean of equally shaped uint8 frames, as uint8."""
    total: Optional[np.ndarray] = None
    count = 0
    for frame in frames:
        if total is None:
            total = frame.astype(np.uint32)
        elif frame.shape != total.shape:
            raise ValueError(f'frame shape {frame.shape} differs from {total.shape}')
        else:
            total += frame
        count += 1
    if total is None:
        raise ValueError('no frames to average')
    return ((total + count // 2) // count).astype(np.uint8)


class BackgroundCapture:
    """Accumulates the next N frames offered by the acquisition thread into a background.

    The service thread calls :meth:`request` then :meth:`wait`; the acquisition thread calls
    :meth:`offer` with every good frame. A new request replaces one in progress. The last
    completed background stays in :attr:`latest` (with the capture time of its last frame).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._needed = 0
        self._total: Optional[np.ndarray] = None
        self._count = 0
        self._generation = 0
        self.latest: Optional[np.ndarray] = None
        self.latest_stamp_ns: Optional[int] = None

    @property
    def active(self) -> bool:
        with self._lock:
            return self._needed > 0

    def request(self, num_frames: int) -> int:
        """Start averaging the next `num_frames` frames; returns a ticket for wait()."""
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        with self._lock:
            self._generation += 1
            self._needed, self._total, self._count = int(num_frames), None, 0
            self._done.clear()
            return self._generation

    def offer(self, frame: np.ndarray, stamp_ns: int) -> Optional[np.ndarray]:
        """Add a frame to the capture in progress; returns the background when it completes."""
        with self._lock:
            if self._needed == 0:
                return None
            if self._total is not None and frame.shape != self._total.shape:
                self._total, self._count = None, 0  # the stream changed size: start over
            if self._total is None:
                self._total = frame.astype(np.uint32)
            else:
                self._total += frame
            self._count += 1
            if self._count < self._needed:
                return None
            n = self._count
            background = ((self._total + n // 2) // n).astype(np.uint8)
            self.latest, self.latest_stamp_ns = background, stamp_ns
            self._needed, self._total, self._count = 0, None, 0
            self._done.set()
            return background

    def wait(self, ticket: int, timeout_s: float) -> Optional[np.ndarray]:
        """The background of request `ticket`, or None if it did not complete in time."""
        self._done.wait(timeout_s)
        with self._lock:
            if self._generation != ticket or not self._done.is_set():
                return None
            return self.latest

    def cancel(self) -> None:
        with self._lock:
            self._needed, self._total, self._count = 0, None, 0
