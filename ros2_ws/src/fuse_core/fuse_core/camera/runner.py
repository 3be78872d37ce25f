"""Reads a FrameSource on its own thread through the shared Supervisor, dropping frames that arrive late."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from fuse_core.camera.base import Frame, FrameSource
from fuse_core.supervisor import BACKOFF, CONNECTED, FAILED, FINISHED, Supervisor
from fuse_core.timing import RateMonitor, wall_ns

#: Called with (level, message); level is 'info', 'warn' or 'error'.
LogFn = Callable[[str, str], None]

# The camera and DIGIT diagnostics have always reported these two states under these names.
_STATE_NAMES = {CONNECTED: 'streaming', BACKOFF: 'waiting'}


class SourceRunner:
    """Hands each frame of `source` to `on_frame(frame, stamp_ns)` from a background thread.

    Connecting, reading and reconnecting with backoff are the shared
    :class:`~fuse_core.supervisor.Supervisor`'s, so a missing device at start-up and an unplug
    later are the same path; a file source that ends without looping ends the loop (state
    'finished', with `finished_reason`; not a failure). On top of it this adds what frame
    streams need: frames older than `max_age_s` when they reach this loop are dropped and
    counted (a consumer that fell behind must not publish old data with a fresh look), and a
    RateMonitor plus the newest capture time for diagnostics.
    """

    def __init__(self, source: FrameSource, on_frame: Callable[[np.ndarray, int], None],
                 backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 read_timeout_s: Optional[float] = None, max_age_s: Optional[float] = None,
                 log: Optional[LogFn] = None) -> None:
        self.source = source
        self._on_frame = on_frame
        self._read_timeout_s = read_timeout_s
        self._max_age_ns = None if max_age_s is None else int(max_age_s * 1e9)
        self._log = log or (lambda level, message: None)
        self.monitor = RateMonitor()
        self.last_stamp_ns: Optional[int] = None
        self.supervisor: Supervisor = Supervisor(
            self._open, self._read, lambda src: src.close(), name=source.describe(),
            backoff_s=backoff_s, backoff_max_s=backoff_max_s, on_error=self._on_error,
            on_state=self._on_state)

    # -- supervisor callbacks ------------------------------------------------------------------
    def _open(self) -> FrameSource:
        self.source.connect()
        return self.source

    def _read(self, source: FrameSource) -> Optional[Frame]:
        frame, stamp_ns = source.read(self._read_timeout_s)
        if self._max_age_ns is not None and wall_ns() - stamp_ns > self._max_age_ns:
            self.monitor.drop()
            return None
        return frame, stamp_ns

    def _deliver(self, item: Frame) -> None:
        frame, stamp_ns = item
        self.last_stamp_ns = stamp_ns
        self.monitor.tick()
        self._on_frame(frame, stamp_ns)

    def _report(self, message: str) -> None:
        self.monitor.error(message)
        self._log('error', message)

    def _on_error(self, message: str) -> None:
        # Device failures are reported from _on_state, which runs once the supervisor knows
        # whether it will retry and when; here only a failing frame handler is left, and the
        # device is still open after one.
        if self.supervisor.handle is not None:
            self._report(message)

    def _on_state(self, state: str) -> None:
        sup = self.supervisor
        if state == CONNECTED:
            actual = self.source.actual
            self._log('info', f'{self.source.describe()}: connected'
                      + (' (reconnected)' if sup.status().connects > 1 else '')
                      + (f', {actual}' if actual else ''))
        elif state == BACKOFF:
            self._report(f'{sup.last_error}; retrying in {sup.seconds_until_retry():.3g} s')
        elif state == FAILED:
            self._report(sup.last_error)
        elif state == FINISHED:
            self._log('info', f'{self.source.describe()}: finished: {sup.finished_reason}')

    # -- control and state ---------------------------------------------------------------------
    def start(self) -> None:
        self.supervisor.start(self._deliver)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.supervisor.stop(timeout_s)

    @property
    def state(self) -> str:
        state = self.supervisor.state
        return _STATE_NAMES.get(state, state)

    @property
    def finished_reason(self) -> str:
        """Why a non-looping replay ended (state 'finished'), else ''."""
        return self.supervisor.finished_reason

    @property
    def streaming(self) -> bool:
        return self.supervisor.state == CONNECTED

    @property
    def connects(self) -> int:
        return self.supervisor.status().connects

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        return max(0, self.connects - 1)

    def status(self) -> dict:
        """Figures every frame stream reports in diagnostics: source, state, rate, drops, errors, age."""
        mon = self.monitor
        values = {
            'source': self.source.kind, 'device': self.source.describe(), 'state': self.state,
            'rate_hz': mon.rate_hz(), 'frames': mon.count,
            'drops': mon.drops + self.source.frames_skipped, 'reconnects': self.reconnects,
            'errors': mon.errors, 'last_error': mon.last_error,
        }
        if self.finished_reason:
            values['finished'] = self.finished_reason
        if self.last_stamp_ns is not None:
            values['frame_age_s'] = (wall_ns() - self.last_stamp_ns) / 1e9
        if self.source.actual is not None:
            values.update(self.source.actual.as_dict())
        return values
