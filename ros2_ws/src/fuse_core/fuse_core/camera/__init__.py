"""Camera frame sources: real V4L2, file replay, synthetic (read by fuse_core.acquisition.SensorReader)."""

from __future__ import annotations

from fuse_core.camera.base import (ActualSettings, DeviceSettingsError, Frame, FrameSource, Pacer,
                                   StaleFrameError)
from fuse_core.camera.config import CameraConfig
from fuse_core.camera.file_sources import ImageFolderSource, VideoFileSource, open_recording
from fuse_core.camera.opencv_camera import OpenCVCamera
from fuse_core.camera.synthetic import SyntheticCameraSource


def make_camera_source(cfg: CameraConfig, name: str = 'camera') -> FrameSource:
    """The FrameSource a camera config asks for; ConfigError for a missing replay file."""
    if cfg.source == 'real':
        return OpenCVCamera(cfg.video_device, cfg.image_width, cfg.image_height, cfg.framerate,
                            cfg.pixel_format, cfg.fps_tolerance_hz, cfg.read_timeout_s, name=name)
    if cfg.source == 'file':
        return open_recording(cfg.file_path, cfg.framerate, cfg.loop, name=name)
    return SyntheticCameraSource(cfg.image_width, cfg.image_height, cfg.framerate, cfg.seed, name=name)


__all__ = ['ActualSettings', 'CameraConfig', 'DeviceSettingsError', 'Frame', 'FrameSource',
           'ImageFolderSource', 'OpenCVCamera', 'Pacer', 'StaleFrameError',
           'SyntheticCameraSource', 'VideoFileSource', 'make_camera_source', 'open_recording']
