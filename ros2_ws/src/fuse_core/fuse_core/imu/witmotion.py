"""WitMotion serial protocol: 11-byte 0x55 packets with a sum checksum, grouped into samples.

Packet: ``55 <type> <8 data bytes = 4 little-endian int16> <sum>``, sum = low byte of the sum
of the first 10 bytes. Types used: 0x51 acceleration (x, y, z /32768*16 g; word 4 is the
temperature /100 C), 0x52 angular rate (/32768*2000 deg/s), 0x53 angle (roll, pitch, yaw
/32768*180 deg), 0x54 magnetic field (raw counts, x ``mag_tesla_per_count``), 0x59 quaternion
(q0..q3 = w, x, y, z /32768). Other types (0x50 time, 0x55 port status, ...) are valid frames
that carry no sample data.

The device scale of the magnetometer depends on its chip (WitMotion's own software converts
with factors between 1/150 uT and 0.15 uT per count), so it is a parameter; the default,
0.15 uT per count, must be checked against the device.

Grouping rule: the device sends one packet of each enabled type per output cycle, starting
with acceleration. A cycle opens at an 0x51 packet; later packets of the sample types join
it. The parser learns the set of types in the previous full cycle (everything from one 0x51
to the next) and emits the sample as soon as the open cycle holds all of them (at least
acceleration and angular rate), so a steady stream costs no extra latency; the very first
cycle, before anything is learned, is emitted when the second 0x51 arrives. If a packet is
lost, the cycle is emitted incomplete when the next 0x51 arrives (mag/orientation None if
they are missing); a cycle without angular rate is dropped (``incomplete_cycles``). Packets
that arrive before the first 0x51, or after their cycle was emitted, join no sample.
Orientation comes from the quaternion packet when present, else from the angle packet
(3-2-1 Euler); it is published as the device reports it.
"""

from __future__ import annotations

import math
import struct
from typing import Dict, List, Optional, Set, Tuple

from fuse_core.imu.sample import (STANDARD_GRAVITY, ImuParser, ImuSample, euler_zyx_from_quat,
                                  quat_from_euler_zyx)

HEADER = 0x55
PACKET_LEN = 11
TYPE_TIME, TYPE_ACC, TYPE_GYRO, TYPE_ANGLE, TYPE_MAG, TYPE_QUAT = 0x50, 0x51, 0x52, 0x53, 0x54, 0x59
#: Types WitMotion devices define (0x50 .. 0x5A); a 0x55 followed by anything else is not a header.
KNOWN_TYPES = frozenset(range(0x50, 0x5B))
SAMPLE_TYPES = frozenset({TYPE_ACC, TYPE_GYRO, TYPE_ANGLE, TYPE_MAG, TYPE_QUAT})

ACC_SCALE = 16.0 * STANDARD_GRAVITY / 32768.0       # m/s^2 per LSB
GYRO_SCALE = math.radians(2000.0) / 32768.0         # rad/s per LSB
ANGLE_SCALE = math.radians(180.0) / 32768.0         # rad per LSB
QUAT_SCALE = 1.0 / 32768.0
DEFAULT_MAG_TESLA_PER_COUNT = 0.15e-6


def checksum(body: bytes) -> int:
    """Low byte of the sum of the given bytes (the first 10 bytes of a packet)."""
    return sum(body) & 0xFF


class WitMotionParser(ImuParser):
    """Parses a WitMotion byte stream into samples (see the module docstring for grouping)."""

    protocol = 'witmotion'

    def __init__(self, mag_tesla_per_count: float = DEFAULT_MAG_TESLA_PER_COUNT,
                 max_buffer: int = 4096) -> None:
        super().__init__(max_buffer)
        if not (math.isfinite(mag_tesla_per_count) and mag_tesla_per_count > 0):
            raise ValueError(f'mag_tesla_per_count must be a positive number, got {mag_tesla_per_count}')
        self.mag_tesla_per_count = float(mag_tesla_per_count)
        self.incomplete_cycles = 0
        self._cycle: Dict[int, Tuple[int, int, int, int]] = {}
        self._cycle_types: Set[int] = set()
        self._cycle_emitted = False
        self._expected: Optional[Set[int]] = None

    def reset(self) -> None:
        super().reset()
        self._cycle.clear()
        self._cycle_types.clear()
        self._cycle_emitted = False

    def _parse(self, out: List[ImuSample], stamp_ns: int) -> None:
        buf = self._buf
        while buf:
            if buf[0] != HEADER:
                if not self._skip_to(HEADER):
                    return
                continue
            if len(buf) < 2:
                return
            if buf[1] not in KNOWN_TYPES:
                self._skip(1)
                continue
            if len(buf) < PACKET_LEN:
                return
            if checksum(buf[:10]) != buf[10]:
                self.checksum_failures += 1
                self._skip(1)
                continue
            packet = self._consume(PACKET_LEN)
            self.frames_ok += 1
            self._on_packet(packet[1], struct.unpack_from('<4h', packet, 2), out, stamp_ns)

    def _on_packet(self, ptype: int, words: Tuple[int, int, int, int], out: List[ImuSample],
                   stamp_ns: int) -> None:
        if ptype not in SAMPLE_TYPES:
            return
        if ptype == TYPE_ACC:
            if self._cycle_types:
                if not self._cycle_emitted:
                    self._emit(out, stamp_ns)
                self._expected = set(self._cycle_types)
            self._cycle = {TYPE_ACC: words}
            self._cycle_types = {TYPE_ACC}
            self._cycle_emitted = False
            return
        if not self._cycle_types:
            return  # before the first acceleration packet: no cycle to join
        self._cycle_types.add(ptype)
        if self._cycle_emitted:
            return
        self._cycle[ptype] = words
        # Until one full cycle has been seen, the first one is emitted at the next 0x51.
        if self._expected is not None and (self._expected | {TYPE_ACC, TYPE_GYRO}).issubset(self._cycle):
            self._emit(out, stamp_ns)

    def _emit(self, out: List[ImuSample], stamp_ns: int) -> None:
        self._cycle_emitted = True
        sample = self._build(self._cycle)
        if sample is None:
            self.incomplete_cycles += 1
            return
        out.append(sample.with_stamp(stamp_ns))

    def _build(self, cycle: Dict[int, Tuple[int, int, int, int]]) -> Optional[ImuSample]:
        if TYPE_ACC not in cycle or TYPE_GYRO not in cycle:
            return None
        acc = cycle[TYPE_ACC]
        gyro = cycle[TYPE_GYRO]
        mag = None
        if TYPE_MAG in cycle:
            mag = tuple(m * self.mag_tesla_per_count for m in cycle[TYPE_MAG][:3])
        orientation = None
        if TYPE_QUAT in cycle:
            qw, qx, qy, qz = (q * QUAT_SCALE for q in cycle[TYPE_QUAT])
            norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            if norm > 0.5:
                orientation = (qx / norm, qy / norm, qz / norm, qw / norm)
        if orientation is None and TYPE_ANGLE in cycle:
            roll, pitch, yaw = (a * ANGLE_SCALE for a in cycle[TYPE_ANGLE][:3])
            orientation = quat_from_euler_zyx(yaw, pitch, roll)
        return ImuSample(
            stamp_ns=0,
            accel=tuple(a * ACC_SCALE for a in acc[:3]),
            gyro=tuple(g * GYRO_SCALE for g in gyro[:3]),
            mag=mag,
            orientation=orientation,
            temperature=acc[3] / 100.0,
        )


# -- encoding (device side), for simulation and tests -----------------------------------------
def _i16(x: float) -> int:
    return max(-32768, min(32767, int(round(x))))


def encode_packet(ptype: int, words: Tuple[int, int, int, int]) -> bytes:
    """One 11-byte packet of the given type with four int16 words."""
    body = struct.pack('<BB4h', HEADER, ptype, *(_i16(w) for w in words))
    return body + bytes([checksum(body)])


def encode_sample(sample: ImuSample, with_angle: bool = False, with_mag: bool = True,
                  with_quat: bool = True, mag_tesla_per_count: float = DEFAULT_MAG_TESLA_PER_COUNT) -> bytes:
    """The packets of one output cycle for ``sample``, in the device's order (0x51 first)."""
    temp = sample.temperature if sample.temperature is not None else 25.0
    out = [encode_packet(TYPE_ACC, (*(a / ACC_SCALE for a in sample.accel), temp * 100.0)),
           encode_packet(TYPE_GYRO, (*(g / GYRO_SCALE for g in sample.gyro), 0))]
    if with_angle and sample.orientation is not None:
        yaw, pitch, roll = euler_zyx_from_quat(sample.orientation)
        out.append(encode_packet(TYPE_ANGLE, (roll / ANGLE_SCALE, pitch / ANGLE_SCALE,
                                              yaw / ANGLE_SCALE, 0)))
    if with_mag and sample.mag is not None:
        out.append(encode_packet(TYPE_MAG, (*(m / mag_tesla_per_count for m in sample.mag), 0)))
    if with_quat and sample.orientation is not None:
        qx, qy, qz, qw = sample.orientation
        out.append(encode_packet(TYPE_QUAT, tuple(q / QUAT_SCALE for q in (qw, qx, qy, qz))))
    return b''.join(out)
