"""Reads a FrameSource on its own thread and reconnects it with exponential backoff."""

from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np

from fuse_core.camera.base import ActualSettings, FrameSource
from fuse_core.errors import DeviceError, SourceExhaustedError
from fuse_core.timing import RateMonitor, wall_ns

#: Called with (level, message); level is 'info', 'warn' or 'error'.
LogFn = Callable[[str, str], None]


class Backoff:
    """Exponential backoff delays: initial, 2x, 4x, ... capped at maximum; reset on success."""

    def __init__(self, initial_s: float, maximum_s: float) -> None:
        if not initial_s > 0 or maximum_s < initial_s:
            raise ValueError(f'backoff needs 0 < initial ({initial_s}) <= maximum ({maximum_s})')
        self.initial_s, self.maximum_s = initial_s, maximum_s
        self._next = initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2.0, self.maximum_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


class SourceRunner:
    """The acquisition loop: connect, read, hand each frame to `on_frame`, reconnect on failure.

    A DeviceError (device missing, unplugged, frames stopped, wrong settings) is reported
    through `log` and the monitor, the source is closed and reconnected after a backoff
    delay, so a missing device at start-up and an unplug later are the same path. A file
    source that ends without looping stops the loop (state 'finished').

    Frames older than `max_age_s` when they reach this loop are dropped and counted: a
    consumer that fell behind must not publish old data with a fresh look.
    """

    def __init__(self, source: FrameSource, on_frame: Callable[[np.ndarray, int], None],
                 backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 read_timeout_s: Optional[float] = None, max_age_s: Optional[float] = None,
                 log: Optional[LogFn] = None,
                 on_connect: Optional[Callable[[ActualSettings], None]] = None) -> None:
        self.source = source
        self._on_frame = on_frame
        self._on_connect = on_connect
        self._backoff = Backoff(backoff_s, backoff_max_s)
        self._read_timeout_s = read_timeout_s
        self._max_age_ns = None if max_age_s is None else int(max_age_s * 1e9)
        self._log = log or (lambda level, message: None)
        self.monitor = RateMonitor()
        self.state = 'idle'
        self.connects = 0
        self.last_stamp_ns: Optional[int] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        return max(0, self.connects - 1)

    @property
    def streaming(self) -> bool:
        return self.state == 'streaming'

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f'source-{self.source.name}',
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.source.close()
        if self.state != 'finished':
            self.state = 'stopped'

    def _fail(self, message: str) -> None:
        self.monitor.error(message)
        self._log('error', message)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.state = 'connecting'
            try:
                self.source.connect()
            except DeviceError as exc:
                self.source.close()
                self._wait_backoff(f'{self.source.describe()}: connect failed: {exc}')
                continue
            self.connects += 1
            self._backoff.reset()
            self.state = 'streaming'
            self._log('info', f'{self.source.describe()}: connected'
                      + (' (reconnected)' if self.connects > 1 else '')
                      + (f', {self.source.actual}' if self.source.actual else ''))
            if self._on_connect is not None and self.source.actual is not None:
                self._on_connect(self.source.actual)
            try:
                self._stream()
            except DeviceError as exc:
                self.source.close()
                if self._stop.is_set():
                    break
                self._wait_backoff(f'{self.source.describe()}: {exc}')
            except SourceExhaustedError as exc:
                self.source.close()
                self.state = 'finished'
                self._log('info', f'{self.source.describe()}: {exc}')
                return

    def _wait_backoff(self, message: str) -> None:
        delay = self._backoff.next_delay()
        self.state = 'waiting'
        self._fail(f'{message}; retrying in {delay:.3g} s')
        self._stop.wait(delay)

    def _stream(self) -> None:
        while not self._stop.is_set():
            frame, stamp_ns = self.source.read(self._read_timeout_s)
            if self._max_age_ns is not None and wall_ns() - stamp_ns > self._max_age_ns:
                self.monitor.drop()
                continue
            self.last_stamp_ns = stamp_ns
            self.monitor.tick()
            try:
                self._on_frame(frame, stamp_ns)
            except DeviceError:
                raise
            except Exception as exc:  # a failing consumer must not end acquisition silently
                self._fail(f'{self.source.describe()}: frame handler failed: {exc!r}')
