"""Background reader of an IMU source: reconnects with backoff and keeps the health figures."""

from __future__ import annotations

import time
from typing import Callable, List, Optional

from fuse_core.imu.sample import ImuSample
from fuse_core.imu.sources import ImuSource
from fuse_core.supervisor import BACKOFF, CONNECTED, FINISHED, Supervisor
from fuse_core.timing import RateMonitor

#: The backoff doubles after each consecutive failure up to this multiple of the first wait.
BACKOFF_GROWTH_CAP = 16.0


class ImuReader:
    """Reads ``source`` in a thread and hands each batch of samples to ``on_samples``.

    Reconnection is the shared :class:`~fuse_core.supervisor.Supervisor`'s: a missing or
    failing device closes the source, records the error and reopens it after a backoff that
    starts at ``backoff_s`` and doubles up to 16x; only the end of a non-looping file (state
    'finished', with ``finished_reason``; not a failure) or stop() ends the thread.
    ``on_samples`` runs on the reader thread and must be quick: it paces how fast the device
    is drained.
    """

    def __init__(self, source: ImuSource, on_samples: Callable[[List[ImuSample]], None],
                 backoff_s: float = 1.0, log: Optional[Callable[[str, str], None]] = None) -> None:
        self.source = source
        self._on_samples = on_samples
        self._log = log or (lambda level, msg: None)
        self.monitor = RateMonitor()
        self.last_stamp_ns: Optional[int] = None
        self.supervisor: Supervisor = Supervisor(
            self._open, self._read, self._close, name='imu', backoff_s=backoff_s,
            backoff_max_s=backoff_s * BACKOFF_GROWTH_CAP, on_error=self._on_error,
            on_state=self._on_state)

    # -- supervisor callbacks ------------------------------------------------------------------
    def _open(self) -> ImuSource:
        self.source.connect()
        return self.source

    def _read(self, source: ImuSource) -> Optional[List[ImuSample]]:
        return source.read() or None

    def _close(self, source: ImuSource) -> None:
        source.close()

    def _on_error(self, message: str) -> None:
        self.monitor.error(message)
        # Called before the supervisor enters its new state, so the delay is worked out here.
        sup = self.supervisor
        retry = min(sup.backoff_s * 2 ** (sup.status().consecutive_failures - 1), sup.backoff_max_s)
        self._log('error', f'{message}; retrying in {retry:.2g} s')

    def _on_state(self, state: str) -> None:
        if state == CONNECTED:
            self._log('info', f'reading {self.source.describe()}')
        elif state == FINISHED:
            self._log('info', f'{self.source.describe()}: finished: {self.finished_reason}')

    def _deliver(self, samples: List[ImuSample]) -> None:
        now = time.monotonic()
        for _ in samples:
            self.monitor.tick(now)
        self.last_stamp_ns = samples[-1].stamp_ns
        self._on_samples(samples)

    # -- control and state ---------------------------------------------------------------------
    def start(self) -> None:
        self.supervisor.start(self._deliver)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.supervisor.stop(timeout_s)

    @property
    def state(self) -> str:
        return self.supervisor.state

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
    def reconnects(self) -> int:
        return max(0, self.supervisor.status().connects - 1)

    def status(self) -> dict:
        """Figures for diagnostics: rate, parser counters, connection state, last error."""
        st = self.supervisor.status()
        values = {
            'source': self.source.kind,
            'device': self.source.describe(),
            'state': st.state,
            'rate_hz': self.monitor.rate_hz(),
            'samples': self.monitor.count,
            'reconnects': max(0, st.connects - 1),
            'failures': st.failures,
            'last_error': st.last_error,
        }
        if st.state == BACKOFF and st.retry_in_s is not None:
            values['retry_in_s'] = st.retry_in_s
        if st.finished_reason:
            values['finished'] = st.finished_reason
        values.update(self.source.parser.counters())
        skipped = getattr(self.source, 'skipped', None)
        if skipped is not None:
            values['skipped'] = skipped
        return values
