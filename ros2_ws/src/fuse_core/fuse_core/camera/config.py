"""Validated configuration of one camera (fields = ROS parameters = YAML keys)."""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.acquisition import ReaderSettings, StreamSourceConfig
from fuse_core.config import param
from fuse_core.errors import ConfigError


@dataclass
class FrameSourceConfig(StreamSourceConfig):
    """What cameras and DIGITs share: the frame source fields, a read timeout and an age limit."""

    read_timeout_s: float = param(2.0, 'No frame for this long = device lost (then reconnect)',
                                  min=0.05, max=60.0)
    max_frame_age_s: float = param(0.5, 'Frames older than this when ready to publish are dropped '
                                   '(counted as drops)', min=0.001, max=60.0)

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(self.reconnect_backoff_s, self.backoff_max_s, self.read_timeout_s,
                              self.max_frame_age_s)


@dataclass
class CameraConfig(FrameSourceConfig):
    video_device: str = param('/dev/video0', 'Device path (/dev/video0, /dev/v4l/by-id/...) or '
                              'index as a string; used when source is real')
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source == 'real' and not str(self.video_device).strip():
            raise ConfigError("CameraConfig: parameter 'video_device' must be set when source is 'real'")
