"""Validated configuration of one camera (fields = ROS parameters = YAML keys)."""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.camera.base import SOURCE_KINDS
from fuse_core.config import ValidatedConfig, param
from fuse_core.errors import ConfigError


@dataclass
class CameraConfig(ValidatedConfig):
    source: str = param('real', 'Frame source: real (V4L2 device), file (video or image folder) '
                        'or synthetic (test pattern, tests and simulation only)', choices=SOURCE_KINDS)
    video_device: str = param('/dev/video0', 'Device path (/dev/video0, /dev/v4l/by-id/...) or '
                              'index as a string; used when source is real')
    file_path: str = param('', 'Video file or folder of images to replay; used when source is file')
    image_width: int = param(640, 'Requested frame width in pixels', min=32, max=8192)
    image_height: int = param(480, 'Requested frame height in pixels', min=32, max=8192)
    framerate: float = param(30.0, 'Requested frame rate in Hz (replay and synthetic rate too)',
                             min=0.1, max=480.0)
    pixel_format: str = param('mjpg', 'Pixel format requested from the device; MJPG lets several '
                              'cameras share one USB hub', choices=('mjpg', 'yuyv'))
    fps_tolerance_hz: float = param(1.0, 'Largest accepted difference between the requested and '
                                    'the reported frame rate', min=0.0, max=100.0)
    frame_id: str = param('', "header.frame_id; empty = '<node name>_optical_frame'")
    camera_info_url: str = param('', 'Calibration file (camera_calibration_parsers YAML; file:// URL or '
                                 'path) published as ~/camera_info; empty = uncalibrated, no CameraInfo')
    loop: bool = param(True, 'Restart a file source at its end (else the stream stops)')
    seed: int = param(0, 'Seed of the synthetic pattern', min=0, max=2**31 - 1)
    reconnect_backoff_s: float = param(1.0, 'First delay before reconnecting a failed device; '
                                       'doubles per failure', min=0.01, max=60.0)
    reconnect_backoff_max_s: float = param(30.0, 'Longest delay between reconnect attempts',
                                           min=0.01, max=600.0)
    read_timeout_s: float = param(2.0, 'No frame for this long = device lost (then reconnect)',
                                  min=0.05, max=60.0)
    max_frame_age_s: float = param(0.5, 'Frames older than this when ready to publish are dropped '
                                   '(counted as drops)', min=0.001, max=60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source == 'file' and not self.file_path:
            raise ConfigError("CameraConfig: parameter 'file_path' must be set when source is 'file'")
        if self.source == 'real' and not str(self.video_device).strip():
            raise ConfigError("CameraConfig: parameter 'video_device' must be set when source is 'real'")
        if self.reconnect_backoff_max_s < self.reconnect_backoff_s:
            raise ConfigError(f"CameraConfig: parameter 'reconnect_backoff_max_s' = "
                              f'{self.reconnect_backoff_max_s} is below reconnect_backoff_s = '
                              f'{self.reconnect_backoff_s}')
