"""Checksummed CSV lines from a microcontroller (the project's own format): parsing and encoding.

Format, one line per sample, SI units, in the sensor's frame as mounted (x forward,
y left, z up expected; no conversion is done)::

    $IMU,<t_us>,<ax>,<ay>,<az>,<gx>,<gy>,<gz>,<mx>,<my>,<mz>*<CS>\\r\\n
    $IMU,<t_us>,<ax>,...,<mz>,<qx>,<qy>,<qz>,<qw>*<CS>\\r\\n     (with orientation)

``t_us`` is the microcontroller's clock in microseconds (a non-negative integer, kept as
``device_time_us``; stamps still come from the host read time), acceleration m/s^2
(specific force: +9.81 on the up axis at rest), angular rate rad/s, magnetic field tesla,
optional orientation a quaternion (normalised here; one of norm below 0.5 is rejected).
``CS`` is the NMEA checksum: two hex digits, XOR of the bytes between '$' and '*'; '\\r' is
optional. Numbers are plain decimals (``nan``/``inf`` and other spellings are rejected), and
a line with any other field count is rejected (counted in ``malformed``).
"""

from __future__ import annotations

import math
from typing import List, Optional

from fuse_core.imu.lines import ChecksummedLineParser, frame_line, parse_floats, parse_int
from fuse_core.imu.sample import ImuSample

TAG = 'IMU'
FIELDS_BASIC = 11       # tag, t_us, 9 values
FIELDS_ORIENTED = 15    # ... plus a quaternion


class CsvLineParser(ChecksummedLineParser):
    """Parses ``$IMU,...*CS`` lines (see the module docstring)."""

    protocol = 'csv'

    def _decode(self, fields: List[str]):
        if fields[0] != TAG or len(fields) not in (FIELDS_BASIC, FIELDS_ORIENTED):
            return False
        t_us = parse_int(fields[1])
        if t_us is None or t_us < 0:
            return False
        values = parse_floats(fields[2:])
        if values is None:
            return False
        orientation = None
        if len(values) == 13:
            qx, qy, qz, qw = values[9:13]
            norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
            if norm < 0.5:
                return False
            orientation = (qx / norm, qy / norm, qz / norm, qw / norm)
        return ImuSample(stamp_ns=0, accel=tuple(values[0:3]), gyro=tuple(values[3:6]),
                         mag=tuple(values[6:9]), orientation=orientation, device_time_us=t_us)


def encode_line(sample: ImuSample, t_us: Optional[int] = None, with_orientation: bool = True) -> bytes:
    """The line a microcontroller would send for ``sample``."""
    t = sample.device_time_us if t_us is None else t_us
    mag = sample.mag if sample.mag is not None else (0.0, 0.0, 0.0)
    values = [*sample.accel, *sample.gyro]
    parts = [TAG, str(int(t or 0))]
    parts += [f'{v:.5f}' for v in values]
    parts += [f'{m:.4e}' for m in mag]
    if with_orientation and sample.orientation is not None:
        parts += [f'{q:.6f}' for q in sample.orientation]
    return frame_line(','.join(parts))
