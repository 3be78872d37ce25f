"""What every sensor shares: the Source interface, the base config, and the supervised reader.

A device module implements :class:`Source` (connect / read with a timeout / close / describe,
its kind and whether it is synthetic); its config extends :class:`SourceConfig`; and one
:class:`SensorReader` drives any source on a thread: reconnect with backoff, rate, age and
drop bookkeeping, and a finished replay as a state of its own. The sensor nodes wrap these.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Optional, Sequence, Tuple, TypeVar

from fuse_core.config import ValidatedConfig, param
from fuse_core.device import Device
from fuse_core.errors import ConfigError
from fuse_core.supervisor import BACKOFF, CONNECTED, FAILED, FINISHED, Supervisor
from fuse_core.timing import RateMonitor, wall_ns

#: Where a device's data comes from; 'synthetic' is for tests and simulation only.
SOURCE_KINDS = ('real', 'file', 'synthetic')

#: Where a device has no parameter for it, the reconnect backoff grows up to this many times
#: its first wait.
BACKOFF_GROWTH_CAP = 16.0

#: Called with (level, message); level is 'info', 'warn' or 'error'.
LogFn = Callable[[str, str], None]

T = TypeVar('T')  # one item read from a source: a frame, a batch of samples, an audio block


class Source(Device, Generic[T]):
    """A device, a replayed recording or a generated stream: connect / read / close.

    ``read(timeout_s)`` returns the next item (or None, or an empty batch, when nothing came
    in time); it raises DeviceError when the device fails (the reader closes it and
    reconnects) and SourceExhaustedError when a non-looping replay ends. ``capture_stamps``
    says when the samples of an item were captured (wall-clock ns), so one reader can count,
    age and drop every kind of item. Usable as a context manager.
    """

    #: 'real', 'file' or 'synthetic'; synthetic data is always reported as such.
    kind: str = 'real'
    #: What one capture stamp is called in diagnostics: '<item>s' counts them, '<item>_age_s' is
    #: the age of the newest.
    item: str = 'sample'
    #: Names this kind of stream reports for some reader states (e.g. connected = 'streaming').
    state_names: Dict[str, str] = {}
    #: The settings the source really runs with, read back after connecting (None: unreported).
    actual: Optional[Any] = None

    @property
    def synthetic(self) -> bool:
        return self.kind == 'synthetic'

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device (or file); safe to call again after close()."""

    @abc.abstractmethod
    def read(self, timeout_s: Optional[float] = None) -> Optional[T]:
        """The next item, or None (or an empty batch) if none arrived in time."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call when not connected or after a failure."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the source is, for logs and diagnostics (names the device or file)."""

    @abc.abstractmethod
    def capture_stamps(self, item: T) -> Sequence[int]:
        """The capture times (wall-clock ns) of the samples in ``item``, oldest first."""

    @property
    def frames_skipped(self) -> int:
        """Items the device captured but nobody read (newest-only buffering)."""
        return 0

    def health(self) -> Dict[str, Any]:
        """Source-specific figures for diagnostics (settings read back, parser counters)."""
        return self.actual.as_dict() if self.actual is not None else {}


class Rebuilt(Source[T]):
    """A source built afresh by ``factory()`` at every connect (the previous one is dropped).

    For devices whose objects are not reusable after a failure, and for tests that inject
    faults through the factory. Until the first build it describes itself as ``name``.
    """

    def __init__(self, factory: Callable[[], Source[T]], kind: str, name: str, item: str = 'sample') -> None:
        self._factory, self.kind, self.name, self.item = factory, kind, name, item
        self.current: Optional[Source[T]] = None

    def connect(self) -> None:
        self.current = None
        source = self._factory()
        try:
            source.connect()
        except BaseException:
            source.close()  # a half-opened device is released before the retry builds another
            raise
        self.current = source

    def read(self, timeout_s: Optional[float] = None) -> Optional[T]:
        return self.current.read(timeout_s)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()

    def describe(self) -> str:
        return self.current.describe() if self.current is not None else self.name

    @property
    def actual(self) -> Optional[Any]:
        return self.current.actual if self.current is not None else None

    def capture_stamps(self, item: T) -> Sequence[int]:
        return self.current.capture_stamps(item)

    @property
    def frames_skipped(self) -> int:
        return self.current.frames_skipped if self.current is not None else 0

    def health(self) -> Dict[str, Any]:
        return self.current.health() if self.current is not None else {}


@dataclass(frozen=True)
class ReaderSettings:
    """How a SensorReader supervises one source (from its config)."""

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    read_timeout_s: Optional[float] = None
    max_age_s: Optional[float] = None


@dataclass
class SourceConfig(ValidatedConfig):
    """The parameters every device node has; device configs extend it with their own.

    Subclasses re-declare a field only where its default or range differs for the device.
    """

    source: str = param('real', 'Where data comes from: real (the device), file (a recording '
                        'replayed in real time) or synthetic (a generated stream; tests and '
                        'simulation only)', choices=SOURCE_KINDS)
    file_path: str = param('', 'Recording to replay; used when source is file')
    seed: int = param(0, 'Seed of the synthetic source', min=0, max=2**31 - 1)
    reconnect_backoff_s: float = param(1.0, 'First wait before reopening a missing or failed '
                                       'device; doubles per failure', min=0.01, max=60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        if self.source == 'file' and not self.file_path:
            raise ConfigError(f"{owner}: parameter 'file_path' must be set when source is 'file'")
        if self.backoff_max_s < self.reconnect_backoff_s:
            raise ConfigError(f"{owner}: parameter 'reconnect_backoff_max_s' = {self.backoff_max_s} "
                              f'is below reconnect_backoff_s = {self.reconnect_backoff_s}')

    @property
    def backoff_max_s(self) -> float:
        """The longest wait between reconnect attempts (a fixed multiple of the first, where the
        device has no parameter for it)."""
        return self.reconnect_backoff_s * BACKOFF_GROWTH_CAP

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(self.reconnect_backoff_s, self.backoff_max_s)


@dataclass
class StreamSourceConfig(SourceConfig):
    """A source whose replay may loop and whose reconnect backoff has a parameter for its cap."""

    loop: bool = param(True, 'Restart a file source at its end (else the stream finishes)')
    reconnect_backoff_max_s: float = param(30.0, 'Longest wait between reconnect attempts',
                                           min=0.01, max=600.0)

    @property
    def backoff_max_s(self) -> float:
        return self.reconnect_backoff_max_s


class SensorReader(Generic[T]):
    """Hands each item of ``source`` to ``on_item(item)`` from a background thread.

    Connecting, reading and reconnecting with backoff are the shared
    :class:`~fuse_core.supervisor.Supervisor`'s, so a missing device at start-up and an
    unplug later are the same path; a replay that ends without looping ends the loop (state
    'finished', with ``finished_reason``; logged at info, not a failure). On top of it this
    keeps what every stream reports: the rate of capture stamps, the newest one's age, items
    older than ``max_age_s`` when they reach this loop dropped and counted (a consumer that
    fell behind must not publish old data with a fresh look), and errors (also those of
    ``on_item``, which leave the device open).
    """

    def __init__(self, source: Source[T], on_item: Callable[[T], None],
                 settings: ReaderSettings = ReaderSettings(), log: Optional[LogFn] = None) -> None:
        self.source = source
        self._on_item = on_item
        self._read_timeout_s = settings.read_timeout_s
        self._max_age_ns = None if settings.max_age_s is None else int(settings.max_age_s * 1e9)
        self._log = log or (lambda level, message: None)
        self.monitor = RateMonitor()
        self.last_stamp_ns: Optional[int] = None
        self.supervisor: Supervisor = Supervisor(
            self._open, self._read, lambda src: src.close(), name=source.describe(),
            backoff_s=settings.backoff_s, backoff_max_s=settings.backoff_max_s,
            on_error=self._on_error, on_state=self._on_state)

    # -- supervisor callbacks ------------------------------------------------------------------
    def _open(self) -> Source[T]:
        self.source.connect()
        return self.source

    def _read(self, source: Source[T]) -> Optional[Tuple[T, Sequence[int]]]:
        item = source.read(self._read_timeout_s)
        stamps = source.capture_stamps(item) if item is not None else ()
        if not stamps:
            return None
        if self._max_age_ns is not None and wall_ns() - stamps[-1] > self._max_age_ns:
            self.monitor.drop(len(stamps))
            return None
        return item, stamps  # the stamps go along, so each item's are worked out once

    def _deliver(self, read: Tuple[T, Sequence[int]]) -> None:
        item, stamps = read
        self.last_stamp_ns = stamps[-1]
        now = time.monotonic()  # one reading for a whole batch (an IMU read holds several samples)
        for _ in stamps:
            self.monitor.tick(now)
        self._on_item(item)

    def _report(self, message: str) -> None:
        self.monitor.error(message)
        self._log('error', message)

    def _on_error(self, message: str) -> None:
        # Device failures are reported from _on_state, which runs once the supervisor knows
        # whether it will retry and when; here only a failing item handler is left, and the
        # device is still open after one.
        if self.supervisor.handle is not None:
            self._report(message)

    def _on_state(self, state: str) -> None:
        sup = self.supervisor
        described = self.source.describe()
        if state == CONNECTED:
            actual = self.source.actual
            self._log('info', f'{described}: connected' + (' (reconnected)' if self.reconnects else '')
                      + (f', {actual}' if actual else ''))
        elif state == BACKOFF:
            self._report(f'{sup.last_error}; retrying in {sup.seconds_until_retry():.3g} s')
        elif state == FAILED:
            self._report(sup.last_error)
        elif state == FINISHED:
            self._log('info', f'{described}: finished: {sup.finished_reason}')

    # -- control and state ---------------------------------------------------------------------
    def start(self) -> None:
        self.supervisor.start(self._deliver)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.supervisor.stop(timeout_s)

    @property
    def state(self) -> str:
        """The supervisor's state, under the name this kind of stream reports it by."""
        state = self.supervisor.state
        return self.source.state_names.get(state, state)

    @property
    def connected(self) -> bool:
        return self.supervisor.state == CONNECTED

    @property
    def finished(self) -> bool:
        return self.supervisor.state == FINISHED

    @property
    def finished_reason(self) -> str:
        """Why a non-looping replay ended (state 'finished'), else ''."""
        return self.supervisor.finished_reason

    @property
    def connects(self) -> int:
        return self.supervisor.status().connects

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        return max(0, self.connects - 1)

    def age_s(self) -> Optional[float]:
        """Seconds since the newest delivered sample was captured (None before the first)."""
        return None if self.last_stamp_ns is None else (wall_ns() - self.last_stamp_ns) / 1e9

    def status(self) -> Dict[str, Any]:
        """Figures every stream reports in diagnostics: source, state, rate, drops, errors, age."""
        mon, st, item = self.monitor, self.supervisor.status(), self.source.item
        values: Dict[str, Any] = {
            'source': self.source.kind, 'device': self.source.describe(),
            'synthetic': self.source.synthetic, 'state': self.state, 'rate_hz': mon.rate_hz(),
            f'{item}s': mon.count, 'drops': mon.drops + self.source.frames_skipped,
            'connects': st.connects, 'reconnects': self.reconnects, 'failures': st.failures,
            'errors': mon.errors, 'last_error': mon.last_error,
        }
        if st.retry_in_s is not None:
            values['retry_in_s'] = st.retry_in_s
        if st.finished_reason:
            values['finished'] = st.finished_reason
        age = self.age_s()
        if age is not None:
            values[f'{item}_age_s'] = age
        values.update(self.source.health())
        return values
