"""IMU sources behind one interface: a serial device, a replayed raw capture, a synthetic device.

Every source pushes raw bytes through the protocol parser, so the file and synthetic paths
exercise the same decoding as hardware. ``read()`` blocks for at most about the read
timeout (or one sample period) and returns the samples completed by the bytes it got, each
stamped with its capture time (see :class:`CaptureStamper`).
"""

from __future__ import annotations

import abc
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from fuse_core.acquisition import Source
from fuse_core.errors import DeviceError, DeviceNotFoundError, SourceExhaustedError
from fuse_core.imu import bno055, capture
from fuse_core.imu.protocols import POLLED_PROTOCOLS, make_encoder, make_parser
from fuse_core.imu.sample import CaptureStamper, ImuParser, ImuSample
from fuse_core.imu.synthetic import SyntheticImuModel


class ImuSource(Source[List[ImuSample]]):
    """An IMU: ``read()`` returns the samples the bytes it got completed (often none);
    ``parser`` holds the decoding counters. The read timeout is set when the source is built.
    """

    kind = ''

    def __init__(self, parser: ImuParser, rate_hz: float, latency_s: float = 0.0) -> None:
        self.parser = parser
        self.rate_hz = float(rate_hz)
        self.stamper = CaptureStamper(1.0 / self.rate_hz, latency_s)

    @abc.abstractmethod
    def read(self, timeout_s: Optional[float] = None) -> List[ImuSample]:
        ...

    def capture_stamps(self, item: List[ImuSample]) -> List[int]:
        return [s.stamp_ns for s in item]

    def health(self) -> Dict[str, Any]:
        return self.parser.counters()

    def _decode(self, data: bytes, read_ns: int) -> List[ImuSample]:
        return self.stamper.stamp(self.parser.feed(data), read_ns)


def _is_url(port: str) -> bool:
    return '://' in port


class SerialImuSource(ImuSource):
    """A real IMU on a serial port (pyserial; also accepts pyserial URLs such as ``loop://``).

    For polled protocols (BNO055) connect() runs the init sequence, checking every write is
    acknowledged, and read() sends one data request per period of ``rate_hz``.
    """

    kind = 'real'

    def __init__(self, port: str, baud: int, protocol: str, parser: Optional[ImuParser] = None,
                 rate_hz: float = 200.0, read_timeout_s: float = 0.1, latency_s: float = 0.0,
                 capture_path: str = '') -> None:
        super().__init__(parser if parser is not None else make_parser(protocol), rate_hz, latency_s)
        self.port, self.baud, self.protocol = port, int(baud), protocol
        self.read_timeout_s = float(read_timeout_s)
        self.polled = protocol in POLLED_PROTOCOLS
        self.capture_path = capture_path
        self._ser = None
        self._capture: Optional[capture.CaptureWriter] = None
        self._next_poll = 0.0

    @property
    def serial_port(self):
        """The open pyserial object (None while closed); tests use it to feed ``loop://``."""
        return self._ser

    def describe(self) -> str:
        return f'{self.protocol} IMU on serial port {self.port} at {self.baud} baud'

    def connect(self) -> None:
        import serial  # pyserial: only needed for real devices
        if not _is_url(self.port) and not os.path.exists(self.port):
            raise DeviceNotFoundError(f'IMU serial port {self.port} does not exist')
        try:
            self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=self.read_timeout_s,
                                              write_timeout=self.read_timeout_s)
        except serial.SerialException as exc:
            if not _is_url(self.port) and not os.path.exists(self.port):
                raise DeviceNotFoundError(f'IMU serial port {self.port} disappeared while opening') from exc
            raise DeviceError(f'cannot open IMU serial port {self.port}: {exc}') from exc
        try:
            self.parser.reset()
            if self.capture_path:
                self._capture = capture.CaptureWriter(Path(self.capture_path))
            if self.polled:
                self._initialise_bno055()
            self._next_poll = time.monotonic()
        except BaseException:
            self.close()
            raise

    def _initialise_bno055(self) -> None:
        for request, wait_s in bno055.init_sequence():
            acked = False
            for _attempt in range(3):
                before = self.parser.acks
                self._write(request)
                time.sleep(wait_s)
                deadline = time.monotonic() + self.read_timeout_s
                while self.parser.acks == before and time.monotonic() < deadline:
                    data = self._read_some(2)
                    if data:
                        self.parser.feed(data)
                if self.parser.acks > before:
                    acked = True
                    break
            if not acked:
                status = self.parser.counters().get('last_status', 'no answer')
                raise DeviceError(f'BNO055 on {self.port} did not acknowledge the write to register '
                                  f'0x{request[2]:02X} ({status}); check wiring, baud and PS1 (UART mode)')

    def _write(self, data: bytes) -> None:
        import serial
        if self._ser is None:
            raise DeviceError(f'IMU serial port {self.port} is not open')
        try:
            self._ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f'write to IMU serial port {self.port} failed: {exc}') from exc

    def _read_some(self, n: int) -> bytes:
        import serial
        if self._ser is None:
            raise DeviceError(f'IMU serial port {self.port} is not open')
        try:
            data = self._ser.read(n)
            waiting = self._ser.in_waiting if data else 0
            if waiting:
                data += self._ser.read(waiting)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f'read from IMU serial port {self.port} failed: {exc}') from exc
        if data and self._capture is not None:
            self._capture.write(time.time_ns(), data)
        return data

    def read(self, timeout_s: Optional[float] = None) -> List[ImuSample]:
        if self.polled:
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._write(bno055.poll_request())
            # After a stall, poll again at once but never in a burst to catch up.
            self._next_poll = max(self._next_poll + 1.0 / self.rate_hz, time.monotonic())
            data = self._read_some(2)
            if len(data) == 2 and data[0] == bno055.RESP_READ:
                data += self._read_some(data[1])
        else:
            data = self._read_some(1)
        return self._decode(data, time.time_ns()) if data else []

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # closing a vanished device may fail; it is gone either way
                pass
        if self._capture is not None:
            self._capture.close()
            self._capture = None


class RawFileImuSource(ImuSource):
    """Replays a raw byte capture through the parser.

    A ``.imucap`` capture (see :mod:`fuse_core.imu.capture`) replays in its original timing
    unless ``byte_rate`` > 0; a plain byte file replays at ``byte_rate`` bytes/s (default the
    serial line rate, baud/10). At the end: restart if ``loop``, else SourceExhaustedError.
    """

    kind = 'file'

    def __init__(self, path: str, protocol: str, parser: Optional[ImuParser] = None, byte_rate: float = 0.0,
                 baud: int = 115200, loop: bool = True, rate_hz: float = 200.0, latency_s: float = 0.0,
                 chunk_period_s: float = 0.005) -> None:
        super().__init__(parser if parser is not None else make_parser(protocol), rate_hz, latency_s)
        self.path, self.protocol, self.loop = Path(path), protocol, loop
        self.byte_rate = float(byte_rate)
        self.baud = int(baud)
        self.chunk_period_s = chunk_period_s
        self._f = None
        self._timed = False
        self._records = None
        self._restart_clock()

    def describe(self) -> str:
        timing = 'original timing' if self._timed else f'{self._rate():.0f} B/s'
        return f'{self.protocol} IMU replayed from {self.path} ({timing})'

    def _rate(self) -> float:
        return self.byte_rate if self.byte_rate > 0 else self.baud / 10.0

    def connect(self) -> None:
        if not self.path.is_file():
            raise DeviceNotFoundError(f'IMU capture file {self.path} does not exist')
        try:
            self._timed = capture.is_capture(self.path) and self.byte_rate <= 0
            self._f = open(self.path, 'rb')
        except OSError as exc:
            raise DeviceError(f'cannot read IMU capture file {self.path}: {exc}') from exc
        self._rewind()

    def _rewind(self) -> None:
        self._f.seek(0)
        if capture.is_capture(self.path):
            self._f.seek(len(capture.MAGIC))
            self._records = capture.read_records(self._f)
        else:
            self._records = None
        self._restart_clock()

    def _restart_clock(self) -> None:
        """Replay from the start: the file's first byte (or record) is due now."""
        self._t0_wall = time.monotonic()
        self._t0_file: Optional[int] = None
        self._sent = 0
        self._pending: Optional[tuple] = None

    def _next_chunk(self, max_bytes: int) -> Optional[bytes]:
        if self._records is None:
            data = self._f.read(max_bytes)
            return data or None
        if self._pending is None:
            self._pending = next(self._records, None)
            if self._pending is None:
                return None
        t_ns, data = self._pending
        if len(data) <= max_bytes:
            self._pending = None
            return data
        self._pending = (t_ns, data[max_bytes:])
        return data[:max_bytes]

    def read(self, timeout_s: Optional[float] = None) -> List[ImuSample]:
        if self._f is None:
            raise DeviceError(f'IMU capture file {self.path} is not open')
        if self._timed:
            if self._pending is None:
                self._pending = next(self._records, None)
            if self._pending is None:
                return self._at_end()
            t_ns, data = self._pending
            if self._t0_file is None:
                self._t0_file = t_ns
            wait = self._t0_wall + (t_ns - self._t0_file) / 1e9 - time.monotonic()
            if wait > 0:
                # Long gaps in a capture are slept in slices so close() is never held up.
                time.sleep(min(wait, 0.2))
                if wait > 0.2:
                    return []
            self._pending = None
        else:
            due = int((time.monotonic() - self._t0_wall) * self._rate()) - self._sent
            if due <= 0:
                time.sleep(self.chunk_period_s)
                due = int((time.monotonic() - self._t0_wall) * self._rate()) - self._sent
            if due <= 0:
                return []
            data = self._next_chunk(due)
            if data is None:
                return self._at_end()
            self._sent += len(data)
        return self._decode(data, time.time_ns())

    def _at_end(self) -> List[ImuSample]:
        if not self.loop:
            raise SourceExhaustedError(f'IMU capture file {self.path} ended')
        self._rewind()
        return []

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()


class SyntheticImuSource(ImuSource):
    """A seeded synthetic device at ``rate_hz`` (real time), encoded in ``protocol``'s bytes.

    For tests and simulation only (``synthetic`` is True so callers can say so). Samples
    follow :class:`SyntheticImuModel`; their bytes go through the protocol's real parser (for
    the BNO055 they are the responses to data polls, sent unasked at ``rate_hz``). If
    the reader stalls more than a second, the missed samples are skipped (``skipped``),
    as a device would overwrite them, instead of arriving in one burst.
    """

    kind = 'synthetic'

    def __init__(self, protocol: str, rate_hz: float = 200.0, seed: int = 0,
                 parser: Optional[ImuParser] = None, latency_s: float = 0.0,
                 mag_tesla_per_count: Optional[float] = None) -> None:
        opts = {} if mag_tesla_per_count is None else {'mag_tesla_per_count': mag_tesla_per_count}
        super().__init__(parser if parser is not None else make_parser(protocol, **opts), rate_hz, latency_s)
        self.protocol, self.seed = protocol, seed
        self.model = SyntheticImuModel(rate_hz, seed)
        self.encode = make_encoder(protocol, **opts)
        self.skipped = 0
        self._t0: Optional[float] = None
        self._emitted = 0

    def describe(self) -> str:
        return f'SYNTHETIC {self.protocol} IMU at {self.rate_hz:g} Hz (seed {self.seed})'

    def connect(self) -> None:
        self._t0 = time.monotonic()
        self._emitted = 0

    def read(self, timeout_s: Optional[float] = None) -> List[ImuSample]:
        if self._t0 is None:
            raise DeviceError('synthetic IMU is not connected')
        due = int((time.monotonic() - self._t0) * self.rate_hz) + 1 - self._emitted
        if due <= 0:
            next_t = self._t0 + self._emitted / self.rate_hz
            time.sleep(max(0.0, next_t - time.monotonic()))
            due = int((time.monotonic() - self._t0) * self.rate_hz) + 1 - self._emitted
        if due > self.rate_hz:
            skip = due - 1
            self.skipped += skip
            for _ in range(skip):
                self.model.next_sample()
            self._emitted += skip
            due = 1
        data = b''.join(self.encode(self.model.next_sample()) for _ in range(max(0, due)))
        self._emitted += max(0, due)
        return self._decode(data, time.time_ns()) if data else []

    def close(self) -> None:
        self._t0 = None

    def health(self) -> Dict[str, Any]:
        return {**super().health(), 'skipped': self.skipped}


def make_source(cfg) -> ImuSource:
    """The source an :class:`~fuse_core.imu.config.ImuConfig` asks for (not yet connected)."""
    parser = make_parser(cfg.protocol, mag_tesla_per_count=cfg.witmotion_mag_tesla_per_count)
    if cfg.source == 'real':
        return SerialImuSource(cfg.port, cfg.baud, cfg.protocol, parser, rate_hz=cfg.rate_hz,
                               read_timeout_s=cfg.read_timeout_s, latency_s=cfg.latency_s,
                               capture_path=cfg.capture_path)
    if cfg.source == 'file':
        return RawFileImuSource(cfg.file_path, cfg.protocol, parser, byte_rate=cfg.file_byte_rate,
                                baud=cfg.baud, loop=cfg.file_loop, rate_hz=cfg.rate_hz,
                                latency_s=cfg.latency_s)
    return SyntheticImuSource(cfg.protocol, cfg.rate_hz, cfg.seed, parser, latency_s=cfg.latency_s,
                              mag_tesla_per_count=cfg.witmotion_mag_tesla_per_count)
