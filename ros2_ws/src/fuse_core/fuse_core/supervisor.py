"""Keeps a device open: open, read in a loop, and reopen with exponential backoff after failures."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Optional, Tuple, Type, TypeVar

from fuse_core.errors import ConfigError, SourceExhaustedError

H = TypeVar('H')  # the opened device handle
R = TypeVar('R')  # one item read from it

IDLE, CONNECTING, CONNECTED, BACKOFF, FINISHED, FAILED, STOPPED = (
    'idle', 'connecting', 'connected', 'backoff', 'finished', 'failed', 'stopped')


@dataclass
class SupervisorStatus:
    """A consistent snapshot for logs and diagnostics."""

    state: str
    last_error: str
    connects: int
    failures: int
    consecutive_failures: int
    retry_in_s: Optional[float]
    finished_reason: str = ''  # why a replay ended (state FINISHED), '' otherwise


class Supervisor(Generic[H, R]):
    """Drives ``open() -> handle``, ``read(handle) -> item or None`` and ``close(handle)``.

    Any exception from open or read closes the handle and schedules a reopen after a backoff
    that starts at ``backoff_s`` and doubles up to ``backoff_max_s``; a successful read resets
    it. Exceptions of a ``fatal`` type (by default ConfigError and SourceExhaustedError) end
    the loop instead: retrying cannot help. A SourceExhaustedError (the end of a non-looping
    replay) is no failure: the state becomes FINISHED with ``finished_reason`` saying why, and
    neither ``last_error`` nor the failure count changes. ``on_error(message)`` is called on
    every failure and ``on_state(state)`` on every state change (e.g. to log).

    Use :meth:`poll` from your own loop (one step, never sleeps: it suits tests with a fake
    clock), or :meth:`start`/:meth:`stop` to run the loop in a thread that hands each item to
    a callback.
    """

    def __init__(self, open_fn: Callable[[], H], read_fn: Callable[[H], Optional[R]],
                 close_fn: Callable[[H], None], *, name: str = 'device', backoff_s: float = 1.0,
                 backoff_max_s: float = 10.0,
                 fatal: Tuple[Type[BaseException], ...] = (ConfigError, SourceExhaustedError),
                 on_error: Optional[Callable[[str], None]] = None,
                 on_state: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ValueError(f'backoff_s ({backoff_s}) must be > 0 and <= backoff_max_s ({backoff_max_s})')
        self._open_fn, self._read_fn, self._close_fn = open_fn, read_fn, close_fn
        self.name = name
        self.backoff_s, self.backoff_max_s = float(backoff_s), float(backoff_max_s)
        self.fatal = fatal
        self._on_error, self._on_state = on_error, on_state
        self._clock = clock
        self._lock = threading.Lock()
        self._handle: Optional[H] = None
        self._state = IDLE
        self._last_error = ''
        self._finished_reason = ''
        self._connects = 0
        self._failures = 0
        self._consecutive = 0
        self.item_errors = 0
        self._next_attempt = 0.0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- state ------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def finished_reason(self) -> str:
        """Why the source ended (the SourceExhaustedError's message) once FINISHED, else ''."""
        return self._finished_reason

    @property
    def handle(self) -> Optional[H]:
        """The open handle, or None while disconnected."""
        return self._handle

    def status(self) -> SupervisorStatus:
        with self._lock:
            retry = max(0.0, self._next_attempt - self._clock()) if self._state == BACKOFF else None
            return SupervisorStatus(self._state, self._last_error, self._connects, self._failures,
                                    self._consecutive, retry, self._finished_reason)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)

    def _close_handle(self) -> str:
        """Close the open handle (if any); returns what a failing close said, or ''."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                self._close_fn(handle)
            except Exception as close_exc:  # the device is already broken; keep the first error
                return f' (close also failed: {close_exc})'
        return ''

    def _fail(self, stage: str, exc: BaseException) -> None:
        final = isinstance(exc, self.fatal)
        if final and isinstance(exc, SourceExhaustedError):
            # The end of a non-looping replay: a state of its own, not a failure.
            self._close_handle()
            with self._lock:
                self._finished_reason = str(exc)
            self._set_state(FINISHED)
            return
        message = f'{self.name}: {stage} failed: {type(exc).__name__}: {exc}'
        message += self._close_handle()
        with self._lock:
            self._last_error = message
            self._failures += 1
            self._consecutive += 1
            delay = min(self.backoff_s * 2 ** (self._consecutive - 1), self.backoff_max_s)
            self._next_attempt = self._clock() + delay
        if self._on_error is not None:
            self._on_error(message)
        if final:
            self._set_state(FAILED)
        else:
            self._set_state(BACKOFF)

    # --- stepping ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once a fatal error or stop() ended supervision."""
        return self._state in (FINISHED, FAILED, STOPPED)

    def seconds_until_retry(self) -> float:
        """0 when an open attempt is due (or connected), else the remaining backoff."""
        if self._state != BACKOFF:
            return 0.0
        return max(0.0, self._next_attempt - self._clock())

    def poll(self) -> Optional[R]:
        """One step: open if due, else read once. Returns the item read, or None."""
        if self.done:
            return None
        if self._handle is None:
            if self._state == BACKOFF and self._clock() < self._next_attempt:
                return None
            self._set_state(CONNECTING)
            try:
                self._handle = self._open_fn()
            except Exception as exc:
                self._fail('open', exc)
                return None
            with self._lock:
                self._connects += 1
            self._set_state(CONNECTED)
        try:
            item = self._read_fn(self._handle)
        except Exception as exc:
            self._fail('read', exc)
            return None
        if item is not None and self._consecutive:
            with self._lock:
                self._consecutive = 0
        return item

    def close(self) -> None:
        """Close the handle (if open) and end supervision."""
        handle, self._handle = self._handle, None
        if not self.done:  # a finished or failed state stays visible in diagnostics
            self._set_state(STOPPED)
        if handle is not None:
            self._close_fn(handle)

    # --- background thread ------------------------------------------------------------------
    def start(self, on_item: Callable[[R], None]) -> None:
        """Run poll() in a daemon thread, handing every item to on_item, until stop()."""
        if self._thread is not None:
            raise RuntimeError(f'{self.name}: supervisor already started')
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(on_item,),
                                        name=f'{self.name}-supervisor', daemon=True)
        self._thread.start()

    def _run(self, on_item: Callable[[R], None]) -> None:
        try:
            while not self._stop.is_set() and not self.done:
                item = self.poll()
                if item is not None:
                    try:
                        on_item(item)
                    except Exception as exc:  # a consumer bug must not stop the device loop
                        self.item_errors += 1
                        with self._lock:
                            self._last_error = f'{self.name}: handling an item failed: {exc!r}'
                        if self._on_error is not None:
                            self._on_error(self._last_error)
                elif self._state == BACKOFF:
                    # Event.wait instead of sleep: stop() interrupts the backoff at once.
                    self._stop.wait(self.seconds_until_retry())
        finally:
            self.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (if any) and close the device."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self.close()
