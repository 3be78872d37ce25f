"""9-DoF IMU pipeline: protocol parsers, sources (serial, file, synthetic) and a reconnecting reader."""

from fuse_core.imu.protocols import POLLED_PROTOCOLS, PROTOCOLS, make_encoder, make_parser
from fuse_core.imu.sample import CaptureStamper, ImuParser, ImuSample

__all__ = ['PROTOCOLS', 'POLLED_PROTOCOLS', 'make_parser', 'make_encoder', 'ImuSample', 'ImuParser',
           'CaptureStamper']
