"""Clocks and counters for rates, drops and latencies (diagnostics and benchmarks)."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Deque, Optional

import numpy as np


def wall_ns() -> int:
    """Wall-clock time in nanoseconds (the time base of ROS header stamps)."""
    return time.time_ns()


@dataclass
class RateMonitor:
    """Counts events and errors, and estimates the recent event rate.

    Thread-safe: sensor threads call :meth:`tick`; the diagnostics timer calls
    :meth:`snapshot`.
    """

    window_s: float = 5.0
    _times: Deque[float] = field(default_factory=collections.deque)
    count: int = 0
    drops: int = 0
    errors: int = 0
    last_error: str = ''
    last_error_time: Optional[float] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.count += 1
            self._times.append(now)
            self._trim(now)

    def drop(self, n: int = 1) -> None:
        with self._lock:
            self.drops += n

    def error(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = message
            self.last_error_time = time.monotonic()

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate_hz(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def age_s(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds since the last event, or None if there was none."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return now - self._times[-1] if self._times else None


def percentiles(samples, qs=(50, 99)) -> dict:
    """Percentiles of a sample list as {'p50': .., 'p99': ..}; NaN when empty."""
    arr = np.asarray(samples, dtype=float)
    if arr.size == 0:
        return {f'p{q}': float('nan') for q in qs}
    return {f'p{q}': float(np.percentile(arr, q)) for q in qs}
