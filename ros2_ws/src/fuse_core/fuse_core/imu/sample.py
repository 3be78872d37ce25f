"""The IMU sample type, the incremental parser base class and capture stamping."""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

Vec3 = Tuple[float, float, float]
Quat = Tuple[float, float, float, float]

#: Standard gravity, m/s^2 (used to turn "g" units into SI).
STANDARD_GRAVITY = 9.80665


@dataclass(frozen=True)
class ImuSample:
    """One IMU reading in SI units.

    ``stamp_ns`` is the capture time in wall-clock nanoseconds (0 until a source stamps it);
    ``accel`` m/s^2 (specific force, reads about +9.81 on the up axis at rest), ``gyro`` rad/s,
    ``mag`` tesla or None, ``orientation`` a unit quaternion (x, y, z, w) or None,
    ``temperature`` degrees Celsius or None, ``device_time_us`` the device's own clock if the
    protocol carries one.
    """

    stamp_ns: int
    accel: Vec3
    gyro: Vec3
    mag: Optional[Vec3] = None
    orientation: Optional[Quat] = None
    temperature: Optional[float] = None
    device_time_us: Optional[int] = None

    def with_stamp(self, stamp_ns: int) -> 'ImuSample':
        return ImuSample(stamp_ns, self.accel, self.gyro, self.mag, self.orientation,
                         self.temperature, self.device_time_us)


class ImuParser(abc.ABC):
    """Incremental byte-stream parser: ``feed(bytes) -> [ImuSample]``, never raises.

    Counters (all monotonic): ``frames_ok`` valid frames (of any type the protocol defines),
    ``checksum_failures`` frame candidates rejected by checksum (or by the plausibility check
    of protocols without one), ``resyncs`` bytes skipped because they were not part of a valid
    frame, ``bytes_in`` bytes fed, ``frame_bytes`` bytes consumed by valid frames.
    Invariant: ``bytes_in == frame_bytes + resyncs + buffered``.

    The internal buffer never holds more than ``max_buffer`` bytes: input is processed in
    slices, and when a slice leaves more than that unparsed, the oldest bytes are dropped
    (counted in ``resyncs``).
    """

    protocol = ''

    def __init__(self, max_buffer: int = 4096) -> None:
        if max_buffer < 64:
            raise ValueError(f'max_buffer must be >= 64 bytes, got {max_buffer}')
        self.max_buffer = int(max_buffer)
        self._buf = bytearray()
        self.frames_ok = 0
        self.checksum_failures = 0
        self.resyncs = 0
        self.bytes_in = 0
        self.frame_bytes = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def counters(self) -> dict:
        return {'frames_ok': self.frames_ok, 'checksum_failures': self.checksum_failures,
                'resync_bytes': self.resyncs, 'bytes_in': self.bytes_in}

    def feed(self, data: bytes, stamp_ns: int = 0) -> List[ImuSample]:
        """Parse more bytes; return the samples completed by them, stamped ``stamp_ns``."""
        out: List[ImuSample] = []
        view = memoryview(bytes(data))
        self.bytes_in += len(view)
        step = max(1, self.max_buffer // 2)
        for start in range(0, len(view), step):
            self._buf += view[start:start + step]
            self._parse(out, stamp_ns)
            excess = len(self._buf) - self.max_buffer
            if excess > 0:
                self._skip(excess)
                self._parse(out, stamp_ns)
        return out

    def reset(self) -> None:
        """Forget buffered bytes and any partial state (e.g. after a reconnect); keeps counters."""
        self.resyncs += len(self._buf)
        self._buf.clear()

    # -- helpers for subclasses ----------------------------------------------------------------
    @abc.abstractmethod
    def _parse(self, out: List[ImuSample], stamp_ns: int) -> None:
        ...

    def _skip(self, n: int) -> None:
        n = min(n, len(self._buf))
        del self._buf[:n]
        self.resyncs += n

    def _consume(self, n: int) -> bytes:
        frame = bytes(self._buf[:n])
        del self._buf[:n]
        self.frame_bytes += len(frame)
        return frame

    def _skip_to(self, marker: int, start: int = 0) -> bool:
        """Skip bytes until ``marker`` is at the front (searching from ``start``).

        Returns False (buffer emptied) when no marker is buffered.
        """
        idx = self._buf.find(bytes([marker]), start)
        if idx < 0:
            self._skip(len(self._buf))
            return False
        self._skip(idx)
        return True


def quat_from_euler_zyx(yaw: float, pitch: float, roll: float) -> Quat:
    """Quaternion (x, y, z, w) of the intrinsic z-y'-x'' (3-2-1) rotation, angles in radians."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    return (sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def euler_zyx_from_quat(q: Quat) -> Tuple[float, float, float]:
    """(yaw, pitch, roll) in radians of a quaternion (x, y, z, w); inverse of quat_from_euler_zyx."""
    x, y, z, w = q
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    return yaw, pitch, roll


def quat_multiply(a: Quat, b: Quat) -> Quat:
    """Hamilton product a * b of quaternions (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def quat_rotate_inverse(q: Quat, v: Vec3) -> Vec3:
    """Express world vector v in the body frame of orientation q (i.e. R(q)^T v)."""
    x, y, z, w = q
    conj = (-x, -y, -z, w)
    r = quat_multiply(quat_multiply(conj, (v[0], v[1], v[2], 0.0)), q)
    return (r[0], r[1], r[2])


def all_finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


class CaptureStamper:
    """Turns "bytes read at time t" into monotonic per-sample capture stamps.

    Samples decoded from one read were captured up to one period apart, the last one about
    ``latency_s`` before the read returned; earlier ones are spaced back by the nominal
    period. Every stamp is strictly later than the previous one, so a burst after a stall
    never produces stamps that go backwards.
    """

    def __init__(self, period_s: float, latency_s: float = 0.0, clock_ns=time.time_ns) -> None:
        self._period_ns = int(round(period_s * 1e9))
        self._latency_ns = int(round(latency_s * 1e9))
        self._clock_ns = clock_ns
        self._last_ns = 0

    def now_ns(self) -> int:
        return self._clock_ns()

    def stamp(self, samples: List[ImuSample], read_ns: Optional[int] = None) -> List[ImuSample]:
        if not samples:
            return samples
        read_ns = self._clock_ns() if read_ns is None else read_ns
        newest = read_ns - self._latency_ns
        n = len(samples)
        out = []
        for i, s in enumerate(samples):
            t = max(newest - (n - 1 - i) * self._period_ns, self._last_ns + 1)
            self._last_ns = t
            out.append(s.with_stamp(t))
        return out
