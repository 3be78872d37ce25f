"""Validated configuration of the IMU pipeline (fields = `imu` node parameters = YAML keys)."""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.acquisition import SourceConfig
from fuse_core.config import param
from fuse_core.errors import ConfigError
from fuse_core.imu.protocols import PROTOCOLS
from fuse_core.imu.witmotion import DEFAULT_MAG_TESLA_PER_COUNT


@dataclass
class ImuConfig(SourceConfig):
    """The IMU's source (a file replays raw bytes through the parser), protocol and covariances.

    Its reconnect backoff grows up to 16x reconnect_backoff_s (no parameter for the cap).
    """

    protocol: str = param('bno055', 'serial protocol of the IMU', choices=PROTOCOLS)
    port: str = param('/dev/ttyUSB0', 'serial device path (a /dev/serial/by-id/ link survives '
                      're-plugging) or a pyserial URL such as loop://')
    baud: int = param(115200, 'serial baud rate', min=1200, max=4_000_000)
    read_timeout_s: float = param(0.1, 'serial read timeout, seconds', min=0.005, max=5.0)
    file_path: str = param('', 'raw capture to replay when source is file (.imucap keeps timing; '
                           'any other file is plain bytes)')
    file_byte_rate: float = param(0.0, 'replay speed of a file, bytes/s; 0 = original timing for '
                                  '.imucap captures, baud/10 for plain byte files', min=0.0, max=1e8)
    file_loop: bool = param(True, 'restart the file at its end (false: stop publishing at the end)')
    capture_path: str = param('', 'if set, record the raw bytes read from the real device to this '
                              '.imucap file')
    rate_hz: float = param(200.0, 'sample rate: synthetic output rate, BNO055 poll rate, and the '
                           'nominal period used to spread stamps of samples read together',
                           min=1.0, max=1000.0)
    latency_s: float = param(0.0, 'fixed transport latency subtracted from the read time to get '
                             'the capture stamp, seconds', min=0.0, max=1.0)
    frame_id: str = param('imu_link', 'frame_id of the published messages')
    accel_variance: float = param(0.0, 'linear acceleration variance (m/s^2)^2; 0 = unknown', min=0.0)
    gyro_variance: float = param(0.0, 'angular velocity variance (rad/s)^2; 0 = unknown', min=0.0)
    mag_variance: float = param(0.0, 'magnetic field variance T^2; 0 = unknown', min=0.0)
    orientation_variance: float = param(0.0, 'orientation variance rad^2; 0 = unknown', min=0.0)
    witmotion_mag_tesla_per_count: float = param(
        DEFAULT_MAG_TESLA_PER_COUNT, 'WitMotion magnetometer scale, tesla per count (chip dependent)',
        min=1e-12, max=1e-3)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.frame_id:
            raise ConfigError("ImuConfig: parameter 'frame_id' must not be empty")
        if self.source == 'real' and not self.port:
            raise ConfigError("ImuConfig: parameter 'port' must not be empty when source is 'real'")
