"""DIGIT tactile sources (real via digit_interface, file replay, synthetic), glitches and backgrounds."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from fuse_core.camera.base import FrameSource
from fuse_core.camera.file_sources import open_recording
from fuse_core.digit.background import BackgroundCapture, average_frames
from fuse_core.digit.config import DIGIT_MODES, DigitConfig, frame_shape
from fuse_core.digit.glitch import GlitchDetector, row_gradient
from fuse_core.digit.real import DigitSource
from fuse_core.digit.synthetic import SyntheticDigitSource
from fuse_core.errors import ConfigError


def to_portrait(frame: np.ndarray) -> np.ndarray:
    """Rotate a landscape sensor image 90 degrees counter-clockwise, as digit_interface does."""
    return np.ascontiguousarray(np.rot90(frame))


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: already imported without a spec
        return module in sys.modules


def make_digit_source(cfg: DigitConfig, name: str = 'digit') -> FrameSource:
    """The FrameSource a DIGIT config asks for.

    Recordings are assumed to hold sensor (landscape) images, as plain OpenCV capture
    writes them; they are rotated when the node publishes portrait frames.
    """
    if cfg.source == 'real':
        if not _importable('digit_interface'):
            raise ConfigError("parameter 'source' = 'real' needs the digit-interface package")
        return DigitSource(cfg.serial, cfg.resolution, cfg.framerate, cfg.orientation, name=name)
    if cfg.source == 'file':
        transform = to_portrait if cfg.orientation == 'portrait' else None
        return open_recording(cfg.file_path, float(cfg.framerate), cfg.loop, name=name,
                              transform=transform)
    rows, cols, _ = cfg.shape
    return SyntheticDigitSource(rows, cols, float(cfg.framerate), cfg.seed, name=name)


__all__ = ['BackgroundCapture', 'DIGIT_MODES', 'DigitConfig', 'DigitSource', 'GlitchDetector',
           'SyntheticDigitSource', 'average_frames', 'frame_shape', 'make_digit_source',
           'row_gradient', 'to_portrait']
