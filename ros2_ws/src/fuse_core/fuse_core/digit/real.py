"""A real DIGIT through digit_interface, found by serial number (imported lazily)."""

from __future__ import annotations

from typing import Optional

from fuse_core.camera.base import ActualSettings, DeviceSettingsError, Frame, FrameSource
from fuse_core.digit.config import DIGIT_MODES, frame_shape
from fuse_core.errors import DeviceError, DeviceNotFoundError
from fuse_core.timing import wall_ns


def _digit_api():
    try:
        from digit_interface.digit import Digit
        from digit_interface.digit_handler import DigitHandler
    except ImportError as exc:
        raise DeviceError(f'digit_interface is not importable ({exc}); install digit-interface '
                          'and pyudev') from exc
    return Digit, DigitHandler


class DigitSource(FrameSource):
    """A DIGIT chosen by serial number, streamed at `resolution` and `fps`.

    The device is looked up by serial through udev on every connect, because its
    /dev/videoN changes when it is replugged. digit_interface signals every failure with a
    bare Exception (device missing, open failed, unplugged mid-stream); they become
    DeviceError here so the acquisition loop reconnects.

    Orientation: digit_interface's get_frame() rotates the sensor image to portrait unless
    called with transpose=True, which returns it as captured. 'landscape' publishes the
    sensor image (QVGA: 240 rows x 320 cols), 'portrait' the rotated one (320 x 240).
    """

    kind = 'real'

    def __init__(self, serial: str, resolution: str = 'QVGA', fps: int = 60,
                 orientation: str = 'landscape', name: Optional[str] = None) -> None:
        super().__init__(name or serial)
        if resolution not in DIGIT_MODES:
            raise ValueError(f'resolution {resolution!r} is not one of {list(DIGIT_MODES)}')
        if orientation not in ('landscape', 'portrait'):
            raise ValueError(f'orientation {orientation!r} is not landscape or portrait')
        self.serial, self.resolution, self.fps = serial, resolution, int(fps)
        self.orientation = orientation
        self.dev_name = ''
        self._digit = None
        self._expected_shape = frame_shape(resolution, orientation)

    def describe(self) -> str:
        return f'DIGIT {self.serial}' + (f' ({self.dev_name})' if self.dev_name else '')

    def connect(self) -> None:
        self.close()
        Digit, DigitHandler = _digit_api()
        try:
            found = DigitHandler.list_digits()
        except Exception as exc:  # pyudev raises its own types; any failure means "cannot list"
            raise DeviceError(f'DIGIT {self.serial}: cannot list DIGITs via udev: {exc}') from exc
        serials = [d.get('serial') for d in found]
        if self.serial not in serials:
            raise DeviceNotFoundError(f'DIGIT {self.serial} is not connected (found: {serials or "none"})')
        try:
            digit = Digit(self.serial, self.name)
            digit.connect()
        except Exception as exc:  # digit_interface raises bare Exception
            raise DeviceError(f'DIGIT {self.serial}: cannot open: {exc}') from exc
        try:
            stream = Digit.STREAMS[self.resolution]
            rates = sorted(stream['fps'].values())
            if self.fps not in rates:
                raise DeviceSettingsError(f'DIGIT {self.serial}: {self.fps} fps is not offered at '
                                          f'{self.resolution} (one of {rates})')
            digit.set_resolution(stream)
            digit.set_fps(self.fps)
            self.dev_name = str(getattr(digit, 'dev_name', ''))
            self.actual = self._read_back(digit)
        except Exception as exc:
            self._release(digit)
            if isinstance(exc, DeviceError):
                raise
            raise DeviceError(f'DIGIT {self.serial}: cannot configure the stream: {exc}') from exc
        self._digit = digit

    def _read_back(self, digit) -> ActualSettings:
        (width, height), _ = DIGIT_MODES[self.resolution]
        # digit_interface keeps its VideoCapture private; it is the only place the driver's
        # accepted mode can be read back from.
        cap = getattr(digit, '_Digit__dev', None)
        if cap is not None and hasattr(cap, 'get'):
            import cv2

            got_w = int(round(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
            got_h = int(round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            got_fps = float(cap.get(cv2.CAP_PROP_FPS))
            problems = []
            if (got_w, got_h) != (width, height):
                problems.append(f'resolution {got_w}x{got_h} instead of {width}x{height}')
            if got_fps > 0 and abs(got_fps - self.fps) > 1.0:
                problems.append(f'{got_fps:g} fps instead of {self.fps}')
            if problems:
                raise DeviceSettingsError(f'DIGIT {self.serial} ({self.dev_name}) does not run the '
                                          f'requested mode: {"; ".join(problems)}')
        rows, cols, _ = self._expected_shape
        return ActualSettings(cols, rows, float(self.fps), f'{self.resolution.lower()} {self.orientation}')

    def read(self, timeout_s: Optional[float] = None) -> Frame:
        """The next frame (blocks on the driver; an unplug surfaces as DeviceError)."""
        digit = self._digit
        if digit is None:
            raise DeviceError(f'{self.describe()}: not connected')
        try:
            # transpose=True skips digit_interface's rotation to portrait.
            frame = digit.get_frame(transpose=self.orientation == 'landscape')
        except Exception as exc:  # digit_interface raises bare Exception on unplug
            raise DeviceError(f'{self.describe()}: frame read failed (unplugged?): {exc}') from exc
        stamp = wall_ns()
        if frame is None or frame.shape != self._expected_shape:
            raise DeviceSettingsError(f'{self.describe()}: frame shape '
                                      f'{None if frame is None else frame.shape} differs from the '
                                      f'expected {self._expected_shape}')
        return frame, stamp

    @staticmethod
    def _release(digit) -> None:
        try:
            digit.disconnect()
        except Exception:  # releasing a device that is already gone may fail; nothing to do
            pass

    def close(self) -> None:
        digit, self._digit = self._digit, None
        if digit is not None:
            self._release(digit)
