"""Bosch BNO055 UART protocol: register read/write requests, response parsing, encoding.

The host polls registers. Requests: write ``AA 00 <reg> <len> <data..>``, read
``AA 01 <reg> <len>``. Responses: read success ``BB <len> <data..>``; a status
``EE <code>`` (``EE 01`` acknowledges a write, other codes are errors such as ``EE 07``
bus over-run). There is no checksum, so a data response is accepted only if its length is
the one requested and its contents are plausible (accelerations within the +-16 g range,
heading within 0..360 deg, quaternion of norm ~1 or all zero, temperature -40..85 C).

The poller reads one block, ACC_DATA_X_LSB (0x08) to TEMP (0x34), 45 bytes, little-endian:
acc 0x08 (int16 x3, 1/100 m/s^2), mag 0x0E (1/16 uT), gyro 0x14 (1/900 rad/s once UNIT_SEL
selects rad/s, which the init sequence does), euler 0x1A (heading, roll, pitch; 1/16 deg),
quaternion 0x20 (w, x, y, z; 1/2^14), linear acc 0x28, gravity 0x2E, temperature 0x34
(int8, deg C). Orientation is published as the device reports it (its fusion frame).
"""

from __future__ import annotations

import struct
from typing import List, Optional, Sequence, Tuple

from fuse_core.imu.sample import ImuParser, ImuSample

START_REQUEST = 0xAA
CMD_WRITE, CMD_READ = 0x00, 0x01
RESP_READ = 0xBB
RESP_STATUS = 0xEE

REG_PAGE_ID = 0x07
REG_ACC_DATA = 0x08
REG_TEMP = 0x34
REG_UNIT_SEL = 0x3B
REG_OPR_MODE = 0x3D
REG_PWR_MODE = 0x3E

#: UNIT_SEL: acc m/s^2 (bit0 = 0), gyro rad/s (bit1 = 1), euler degrees (bit2 = 0),
#: temperature Celsius (bit4 = 0), Windows orientation convention (bit7 = 0).
UNIT_SEL_SI = 0x02
OPR_MODE_CONFIG = 0x00
OPR_MODE_NDOF = 0x0C
PWR_MODE_NORMAL = 0x00

DATA_BLOCK_LEN = REG_TEMP - REG_ACC_DATA + 1  # 45

STATUS_NAMES = {
    0x01: 'WRITE_SUCCESS', 0x02: 'READ_FAIL', 0x03: 'WRITE_FAIL',
    0x04: 'REGMAP_INVALID_ADDRESS', 0x05: 'REGMAP_WRITE_DISABLED', 0x06: 'WRONG_START_BYTE',
    0x07: 'BUS_OVER_RUN_ERROR', 0x08: 'MAX_LENGTH_ERROR', 0x09: 'MIN_LENGTH_ERROR',
    0x0A: 'RECEIVE_CHARACTER_TIMEOUT',
}

ACC_LSB_PER_MS2 = 100.0
MAG_LSB_PER_UT = 16.0
GYRO_LSB_PER_RADS = 900.0
EULER_LSB_PER_DEG = 16.0
QUAT_LSB = float(1 << 14)

# +-16 g is the widest accelerometer range; one LSB of slack for rounding.
_ACC_LIMIT_RAW = int(16 * 9.80665 * ACC_LSB_PER_MS2) + 1
_HEADING_LIMIT_RAW = int(360 * EULER_LSB_PER_DEG)
_QUAT_NORM_TOL = 0.05


def read_request(reg: int, length: int) -> bytes:
    """Bytes asking the device for ``length`` registers starting at ``reg``."""
    if not (0 <= reg <= 0xFF and 1 <= length <= 128):
        raise ValueError(f'BNO055 read of {length} bytes at register 0x{reg:02X} is out of range')
    return bytes([START_REQUEST, CMD_READ, reg, length])


def write_request(reg: int, data: Sequence[int]) -> bytes:
    """Bytes writing ``data`` to consecutive registers starting at ``reg``."""
    if not (0 <= reg <= 0xFF and 1 <= len(data) <= 128):
        raise ValueError(f'BNO055 write of {len(data)} bytes at register 0x{reg:02X} is out of range')
    return bytes([START_REQUEST, CMD_WRITE, reg, len(data), *data])


def init_sequence() -> List[Tuple[bytes, float]]:
    """(request, seconds to wait after it) to bring the device to NDOF fusion with SI units.

    Mode switches need 19 ms into CONFIG and 7 ms out of it (datasheet table 3-6); the waits
    include margin.
    """
    return [
        (write_request(REG_OPR_MODE, [OPR_MODE_CONFIG]), 0.03),
        (write_request(REG_PWR_MODE, [PWR_MODE_NORMAL]), 0.01),
        (write_request(REG_PAGE_ID, [0]), 0.01),
        (write_request(REG_UNIT_SEL, [UNIT_SEL_SI]), 0.01),
        (write_request(REG_OPR_MODE, [OPR_MODE_NDOF]), 0.03),
    ]


def poll_request() -> bytes:
    """The request for one data block (acc .. temperature)."""
    return read_request(REG_ACC_DATA, DATA_BLOCK_LEN)


class Bno055Parser(ImuParser):
    """Parses BNO055 UART responses to :func:`poll_request` into samples.

    Extra counters: ``acks`` (write acknowledgements), ``device_errors`` (error status
    responses; ``last_status`` holds the latest code).
    """

    protocol = 'bno055'

    def __init__(self, max_buffer: int = 4096) -> None:
        super().__init__(max_buffer)
        self.acks = 0
        self.device_errors = 0
        self.last_status: Optional[int] = None

    def counters(self) -> dict:
        c = super().counters()
        c.update(device_errors=self.device_errors, acks=self.acks)
        if self.last_status is not None:
            c['last_status'] = STATUS_NAMES.get(self.last_status, f'0x{self.last_status:02X}')
        return c

    def _parse(self, out: List[ImuSample], stamp_ns: int) -> None:
        buf = self._buf
        while buf:
            head = buf[0]
            if head == RESP_STATUS:
                if len(buf) < 2:
                    return
                code = buf[1]
                if code not in STATUS_NAMES:
                    self._skip(1)
                    continue
                self._consume(2)
                self.frames_ok += 1
                self.last_status = code
                if code == 0x01:
                    self.acks += 1
                else:
                    self.device_errors += 1
            elif head == RESP_READ:
                if len(buf) < 2:
                    return
                length = buf[1]
                if length != DATA_BLOCK_LEN:
                    # The poller only asks for the data block; a 0xBB with another length is
                    # noise, and skipping just it keeps any frame right behind it intact.
                    self._skip(1)
                    continue
                if len(buf) < 2 + length:
                    return
                sample = decode_data_block(bytes(buf[2:2 + length]))
                if sample is None:
                    self.checksum_failures += 1
                    self._skip(1)
                    continue
                self._consume(2 + length)
                self.frames_ok += 1
                out.append(sample.with_stamp(stamp_ns))
            else:
                nxt = _next_header(buf)
                self._skip(nxt if nxt >= 0 else len(buf))


def _next_header(buf: bytearray) -> int:
    a, b = buf.find(b'\xbb'), buf.find(b'\xee')
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


def decode_data_block(block: bytes) -> Optional[ImuSample]:
    """Decode the 45-byte block at 0x08..0x34; None if it is implausible."""
    if len(block) != DATA_BLOCK_LEN:
        return None
    words = struct.unpack_from('<22h', block, 0)
    temp = struct.unpack_from('<b', block, 44)[0]
    acc, mag, gyr, eul, qua = words[0:3], words[3:6], words[6:9], words[9:12], words[12:16]
    if any(abs(a) > _ACC_LIMIT_RAW for a in acc):
        return None
    if not (0 <= eul[0] <= _HEADING_LIMIT_RAW):
        return None
    if not (-40 <= temp <= 85):
        return None
    qw, qx, qy, qz = (q / QUAT_LSB for q in qua)
    norm = (qw * qw + qx * qx + qy * qy + qz * qz) ** 0.5
    if any(qua):
        if abs(norm - 1.0) > _QUAT_NORM_TOL:
            return None
        orientation = (qx / norm, qy / norm, qz / norm, qw / norm)
    else:
        # All-zero quaternion: the device is in a non-fusion mode.
        orientation = None
    return ImuSample(
        stamp_ns=0,
        accel=tuple(a / ACC_LSB_PER_MS2 for a in acc),
        gyro=tuple(g / GYRO_LSB_PER_RADS for g in gyr),
        mag=tuple(m / MAG_LSB_PER_UT * 1e-6 for m in mag),
        orientation=orientation,
        temperature=float(temp),
    )


# -- encoding (device side), for simulation and tests -----------------------------------------
def _i16(x: float) -> int:
    return max(-32768, min(32767, int(round(x))))


def encode_data_block(sample: ImuSample, euler_deg: Tuple[float, float, float] = (0.0, 0.0, 0.0)) -> bytes:
    """The 45 register bytes a device would return for ``sample`` (quantised)."""
    mag = sample.mag if sample.mag is not None else (0.0, 0.0, 0.0)
    if sample.orientation is not None:
        qx, qy, qz, qw = sample.orientation
        quat = (qw, qx, qy, qz)
    else:
        quat = (0.0, 0.0, 0.0, 0.0)
    heading = euler_deg[0] % 360.0
    words = ([_i16(a * ACC_LSB_PER_MS2) for a in sample.accel]
             + [_i16(m * 1e6 * MAG_LSB_PER_UT) for m in mag]
             + [_i16(g * GYRO_LSB_PER_RADS) for g in sample.gyro]
             + [_i16(heading * EULER_LSB_PER_DEG), _i16(euler_deg[1] * EULER_LSB_PER_DEG),
                _i16(euler_deg[2] * EULER_LSB_PER_DEG)]
             + [_i16(q * QUAT_LSB) for q in quat]
             + [0] * 6)  # linear acceleration and gravity vector: not used by the parser
    temp = int(round(sample.temperature if sample.temperature is not None else 25.0))
    return struct.pack('<22hb', *words, max(-40, min(85, temp)))


def encode_data_response(sample: ImuSample, euler_deg: Tuple[float, float, float] = (0.0, 0.0, 0.0)) -> bytes:
    """A full read response ``BB 2D <45 bytes>`` for ``sample``."""
    return bytes([RESP_READ, DATA_BLOCK_LEN]) + encode_data_block(sample, euler_deg)


def encode_status(code: int) -> bytes:
    """A status response ``EE <code>`` (0x01 = write acknowledged)."""
    return bytes([RESP_STATUS, code])


class Bno055DeviceModel:
    """The device side of the UART protocol, for simulators and tests: answers request bytes.

    Writes are stored and acknowledged (``EE 01``); a read of the data block returns
    ``sample_fn()`` encoded; other reads return the stored registers; a request that does not
    start with 0xAA gets ``EE 06`` (wrong start byte), as the device does.
    """

    def __init__(self, sample_fn) -> None:
        self._sample_fn = sample_fn
        self._buf = bytearray()
        self.registers = bytearray(0x80)
        self.registers[0x00] = 0xA0  # CHIP_ID

    def handle(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while self._buf:
            if self._buf[0] != START_REQUEST:
                del self._buf[0]
                out += encode_status(0x06)
                continue
            if len(self._buf) < 4:
                break
            cmd, reg, length = self._buf[1], self._buf[2], self._buf[3]
            if cmd == CMD_WRITE:
                if len(self._buf) < 4 + length:
                    break
                payload = self._buf[4:4 + length]
                del self._buf[:4 + length]
                if reg + length > len(self.registers):
                    out += encode_status(0x04)
                    continue
                self.registers[reg:reg + length] = payload
                out += encode_status(0x01)
            elif cmd == CMD_READ:
                del self._buf[:4]
                if reg == REG_ACC_DATA and length == DATA_BLOCK_LEN:
                    out += encode_data_response(self._sample_fn())
                elif reg + length <= len(self.registers):
                    out += bytes([RESP_READ, length]) + bytes(self.registers[reg:reg + length])
                else:
                    out += encode_status(0x04)
            else:
                del self._buf[:4]
                out += encode_status(0x06)
        return bytes(out)
