"""Validated configuration of one DIGIT tactile sensor (fields = ROS parameters = YAML keys)."""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.camera.config import FrameSourceConfig
from fuse_core.config import param
from fuse_core.errors import ConfigError

#: resolution -> (width, height) of the sensor's landscape image, and the rates it streams at
#: (the modes of digit_interface's Digit.STREAMS).
DIGIT_MODES = {'QVGA': ((320, 240), (60, 30)), 'VGA': ((640, 480), (30, 15))}


def frame_shape(resolution: str, orientation: str) -> tuple:
    """(rows, cols, 3) of a published frame.

    landscape: the sensor's own image, e.g. 240 rows x 320 cols for QVGA (what plain
    OpenCV capture gives, as in FuSe's recordings); portrait: rotated 90 degrees
    counter-clockwise, 320 rows x 240 cols (digit_interface's default).
    """
    (width, height), _ = DIGIT_MODES[resolution]
    return (height, width, 3) if orientation == 'landscape' else (width, height, 3)


@dataclass
class DigitConfig(FrameSourceConfig):
    serial: str = param('', 'Serial number of the DIGIT (e.g. D20001); required when source is real')
    resolution: str = param('QVGA', 'QVGA (320x240, 60/30 fps) or VGA (640x480, 30/15 fps)',
                            choices=tuple(DIGIT_MODES))
    framerate: int = param(60, 'Frame rate in Hz; a real DIGIT supports 60/30 (QVGA) or 30/15 (VGA)',
                           min=1, max=240)
    orientation: str = param('landscape', 'Published frame orientation: landscape = the sensor image '
                             '(QVGA: 240 rows x 320 cols); portrait = rotated 90 deg counter-clockwise '
                             '(320 rows x 240 cols, digit_interface default)',
                             choices=('landscape', 'portrait'))
    frame_id: str = param('', "header.frame_id; empty = '<node name>_frame'")
    background_frames: int = param(10, 'Frames averaged into a background (service num_frames = 0)',
                                   min=1, max=600)
    capture_background_on_start: bool = param(True, 'Capture and latch a background once the first '
                                              'frames arrive')
    glitch_threshold: float = param(25.0, 'A row whose mean absolute vertical gradient exceeds this '
                                    '(intensity levels) counts as glitched; 0 disables detection',
                                    min=0.0, max=255.0)
    glitch_min_rows: int = param(2, 'Glitched rows that make a frame glitched (dropped)',
                                 min=1, max=4096)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source == 'real':
            if not self.serial.strip():
                raise ConfigError("DigitConfig: parameter 'serial' must be set when source is 'real'")
            rates = DIGIT_MODES[self.resolution][1]
            if self.framerate not in rates:
                raise ConfigError(f"DigitConfig: parameter 'framerate' = {self.framerate} is not "
                                  f'supported by a DIGIT at {self.resolution} (one of {list(rates)})')

    @property
    def shape(self) -> tuple:
        return frame_shape(self.resolution, self.orientation)
