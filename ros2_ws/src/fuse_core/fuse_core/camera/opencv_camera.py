"""USB/V4L2 camera through cv2.VideoCapture, with settings read back and a newest-frame reader thread."""

from __future__ import annotations

import threading
from typing import Optional, Union

from fuse_core.camera.base import (ActualSettings, DeviceSettingsError, FrameSource, Frame,
                                   StaleFrameError)
from fuse_core.errors import DeviceError, DeviceNotFoundError
from fuse_core.timing import wall_ns

#: pixel_format parameter -> V4L2 fourcc
FOURCCS = {'mjpg': 'MJPG', 'yuyv': 'YUYV'}


def parse_device(video_device: str) -> Union[int, str]:
    """'2' -> index 2; anything else (e.g. '/dev/video2', a by-id path) stays a path."""
    text = str(video_device).strip()
    return int(text) if text.isdigit() else text


def fourcc_to_str(code: float) -> str:
    value = int(code)
    return ''.join(chr((value >> (8 * i)) & 0xFF) for i in range(4)).strip('\x00 ')


class OpenCVCamera(FrameSource):
    """A camera opened with cv2.VideoCapture (CAP_V4L2 for /dev paths).

    After opening, the width, height, fps and fourcc the device actually accepted are read
    back; any difference from the request (fps within `fps_tolerance_hz`) raises
    DeviceSettingsError naming the device, because silently running at another resolution
    or rate breaks everything downstream.

    A reader thread calls VideoCapture.read() continuously and keeps only the newest frame,
    so a slow consumer never receives frames from the driver's queue. Capture time is the
    wall clock taken the moment read() returns. CAP_PROP_POS_MSEC is not used: depending on
    the backend and driver it is the kernel buffer timestamp on the monotonic clock, the
    time since the stream started, or 0, so it cannot be turned into an epoch stamp
    reliably. The stamp therefore lags the exposure by the transfer and decode time (a few
    ms for MJPG at 640x480), a nearly constant offset.
    """

    kind = 'real'

    def __init__(self, video_device: str, width: int, height: int, fps: float,
                 pixel_format: str = 'mjpg', fps_tolerance_hz: float = 1.0,
                 read_timeout_s: float = 2.0, name: Optional[str] = None) -> None:
        super().__init__(name or str(video_device))
        if pixel_format not in FOURCCS:
            raise ValueError(f'pixel_format {pixel_format!r} is not one of {list(FOURCCS)}')
        self.video_device = str(video_device)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.pixel_format = pixel_format
        self.fps_tolerance_hz = fps_tolerance_hz
        self.read_timeout_s = read_timeout_s
        self._cap = None
        self._thread: Optional[threading.Thread] = None
        self._cond = threading.Condition()
        self._closing = False
        self._latest: Optional[Frame] = None
        self._seq = 0
        self._last_read_seq = 0
        self._error: Optional[DeviceError] = None
        self._skipped = 0

    def describe(self) -> str:
        return f'camera {self.name} ({self.video_device})'

    @property
    def frames_skipped(self) -> int:
        return self._skipped

    def connect(self) -> None:
        import cv2  # lazily: fuse_core must import with numpy only

        self.close()
        device = parse_device(self.video_device)
        api = cv2.CAP_V4L2 if isinstance(device, str) and device.startswith('/dev/') else cv2.CAP_ANY
        cap = cv2.VideoCapture(device, api)
        if not cap.isOpened():
            cap.release()
            raise DeviceNotFoundError(f'camera {self.video_device}: cannot open the device')
        try:
            self.actual = self._configure(cv2, cap)
        except BaseException:
            cap.release()
            raise
        with self._cond:
            self._cap = cap
            self._closing = False
            self._latest, self._error = None, None
            self._seq = self._last_read_seq = 0
        self._thread = threading.Thread(target=self._reader, name=f'camera-{self.name}', daemon=True)
        self._thread.start()

    def _configure(self, cv2, cap) -> ActualSettings:
        wanted = FOURCCS[self.pixel_format]
        # The fourcc goes first: V4L2 drivers offer different sizes and rates per format.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*wanted))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        # The reader thread drains the driver queue anyway; a short queue keeps frames fresh
        # on backends that honour it.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        width = int(round(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        height = int(round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        fourcc = fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC))
        problems = []
        if (width, height) != (self.width, self.height):
            problems.append(f'resolution {width}x{height} instead of {self.width}x{self.height}')
        # Some backends cannot report the rate (0); that is not evidence of a wrong rate.
        if fps > 0 and abs(fps - self.fps) > self.fps_tolerance_hz:
            problems.append(f'{fps:g} fps instead of {self.fps:g} '
                            f'(tolerance {self.fps_tolerance_hz:g})')
        if fourcc and fourcc.upper() != wanted:
            problems.append(f'pixel format {fourcc!r} instead of {wanted!r}')
        if problems:
            raise DeviceSettingsError(f'camera {self.video_device} does not support the requested '
                                      f'mode: {"; ".join(problems)}')
        return ActualSettings(width, height, fps if fps > 0 else None, (fourcc or wanted).lower())

    def _reader(self) -> None:
        cap = self._cap
        while True:
            with self._cond:
                if self._closing:
                    return
            ok, frame = cap.read()
            stamp = wall_ns()
            with self._cond:
                if self._closing:
                    return
                if not ok or frame is None:
                    self._error = DeviceError(f'camera {self.video_device}: read failed '
                                              '(device unplugged or stream stopped)')
                    self._cond.notify_all()
                    return
                if frame.shape != (self.height, self.width, 3):
                    self._error = DeviceSettingsError(
                        f'camera {self.video_device}: frame shape {frame.shape} differs from '
                        f'the configured {(self.height, self.width, 3)}')
                    self._cond.notify_all()
                    return
                if self._seq > self._last_read_seq:
                    self._skipped += 1
                self._seq += 1
                self._latest = (frame, stamp)
                self._cond.notify_all()

    def read(self, timeout_s: Optional[float] = None) -> Frame:
        """The next frame newer than the last one returned (blocks up to the read timeout)."""
        timeout = self.read_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if self._cap is None:
                raise DeviceError(f'camera {self.video_device}: not connected')
            self._cond.wait_for(lambda: self._seq > self._last_read_seq or self._error is not None
                                or self._closing, timeout)
            if self._seq > self._last_read_seq:
                self._last_read_seq = self._seq
                return self._latest
            if self._error is not None:
                raise self._error
            raise DeviceError(f'camera {self.video_device}: no frame for {timeout:g} s '
                              '(device stalled or unplugged)')

    def read_latest(self, max_age_s: float) -> Frame:
        """The newest frame if it is at most `max_age_s` old; StaleFrameError otherwise."""
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._latest is None:
                raise StaleFrameError(f'camera {self.video_device}: no frame yet')
            frame, stamp = self._latest
            self._last_read_seq = self._seq
        age = (wall_ns() - stamp) / 1e9
        if age > max_age_s:
            raise StaleFrameError(f'camera {self.video_device}: newest frame is {age:.3f} s old '
                                  f'(limit {max_age_s:g} s)')
        return frame, stamp

    def close(self) -> None:
        with self._cond:
            self._closing = True
            cap, self._cap = self._cap, None
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            # read() on a healthy device returns within a frame period; a wedged driver
            # may block longer, and releasing under a blocked read is what unblocks it.
            thread.join(timeout=max(1.0, 3.0 / max(self.fps, 1e-3)))
        if cap is not None:
            cap.release()
