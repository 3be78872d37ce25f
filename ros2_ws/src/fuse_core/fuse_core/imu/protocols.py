"""The protocol registry: one parser class and one device-side encoder per protocol name."""

from __future__ import annotations

import math
from typing import Callable

from fuse_core.imu import bno055, csvline, vectornav, witmotion
from fuse_core.imu.sample import ImuParser, ImuSample, euler_zyx_from_quat

PROTOCOLS = ('bno055', 'witmotion', 'vectornav', 'csv')
#: Protocols that need the host to poll (the others stream on their own).
POLLED_PROTOCOLS = frozenset({'bno055'})


def make_parser(protocol: str, *, mag_tesla_per_count: float = witmotion.DEFAULT_MAG_TESLA_PER_COUNT,
                max_buffer: int = 4096) -> ImuParser:
    """A fresh parser for ``protocol`` (one of PROTOCOLS)."""
    if protocol == 'bno055':
        return bno055.Bno055Parser(max_buffer)
    if protocol == 'witmotion':
        return witmotion.WitMotionParser(mag_tesla_per_count, max_buffer)
    if protocol == 'vectornav':
        return vectornav.VectorNavParser(max_buffer)
    if protocol == 'csv':
        return csvline.CsvLineParser(max_buffer)
    raise ValueError(f'unknown IMU protocol {protocol!r}; known: {list(PROTOCOLS)}')


def make_encoder(protocol: str, *, mag_tesla_per_count: float = witmotion.DEFAULT_MAG_TESLA_PER_COUNT
                 ) -> Callable[[ImuSample], bytes]:
    """A function turning a sample into the bytes a device of ``protocol`` would send for it.

    For the BNO055 that is the response to one data-block poll.
    """
    if protocol == 'bno055':
        def encode_bno055(s: ImuSample) -> bytes:
            euler = (0.0, 0.0, 0.0)
            if s.orientation is not None:
                yaw, pitch, roll = euler_zyx_from_quat(s.orientation)
                # BNO055 heading grows clockwise; the register order is heading, roll, pitch.
                euler = ((-math.degrees(yaw)) % 360.0, math.degrees(roll), math.degrees(pitch))
            return bno055.encode_data_response(s, euler)
        return encode_bno055
    if protocol == 'witmotion':
        return lambda s: witmotion.encode_sample(s, mag_tesla_per_count=mag_tesla_per_count)
    if protocol == 'vectornav':
        return vectornav.encode_vnymr
    if protocol == 'csv':
        return csvline.encode_line
    raise ValueError(f'unknown IMU protocol {protocol!r}; known: {list(PROTOCOLS)}')
