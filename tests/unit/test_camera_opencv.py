"""OpenCVCamera against a faked cv2.VideoCapture: settings read back, unplug, reconnect, freshness."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from fuse_core.acquisition import ReaderSettings, SensorReader
from fuse_core.camera import OpenCVCamera, opencv_camera
from fuse_core.camera.base import DeviceSettingsError, StaleFrameError
from fuse_core.errors import DeviceError, DeviceNotFoundError


def frame_reader(src, on_frame, log=None, **settings):
    """A SensorReader calling on_frame(frame, stamp) for each frame, as the frame nodes do."""
    return SensorReader(src, lambda item: on_frame(*item), ReaderSettings(**settings), log=log)


class FakeDevices:
    """The 'kernel': which devices exist, what modes they accept, and their frame streams."""

    def __init__(self):
        self.present = {'/dev/video4': True}
        self.max_size = (1920, 1080)
        self.fps_limit = 30.0
        self.fourccs = ('MJPG', 'YUYV')
        self.opened = []
        self.captures = []


class FakeCapture:
    """Just enough of cv2.VideoCapture for OpenCVCamera."""

    devices: FakeDevices = None

    def __init__(self, device, api=cv2.CAP_ANY):
        self.device, self.api = device, api
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                      cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*'YUYV'))}
        self.open = bool(self.devices.present.get(device, False))
        self.released = False
        self.count = 0
        self.devices.opened.append((device, api))
        self.devices.captures.append(self)

    def isOpened(self):
        return self.open

    def set(self, prop, value):
        d = self.devices
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            value = min(value, d.max_size[0])
        elif prop == cv2.CAP_PROP_FRAME_HEIGHT:
            value = min(value, d.max_size[1])
        elif prop == cv2.CAP_PROP_FPS:
            value = min(value, d.fps_limit)
        elif prop == cv2.CAP_PROP_FOURCC:
            code = ''.join(chr((int(value) >> (8 * i)) & 0xFF) for i in range(4))
            if code not in d.fourccs:
                return False
        self.props[prop] = float(value)
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        time.sleep(1.0 / 200)  # a fast camera: the test does not wait for real frame periods
        if self.released or not self.devices.present.get(self.device, False):
            return False, None
        self.count += 1
        h = int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        w = int(self.props[cv2.CAP_PROP_FRAME_WIDTH])
        return True, np.full((h, w, 3), self.count % 256, np.uint8)

    def release(self):
        self.released = True


@pytest.fixture
def devices(monkeypatch):
    d = FakeDevices()
    FakeCapture.devices = d
    monkeypatch.setattr(cv2, 'VideoCapture', FakeCapture)
    return d


def test_connect_sets_the_mode_and_reads_it_back(devices):
    cam = OpenCVCamera('/dev/video4', 640, 480, 30.0, 'mjpg')
    with cam:
        frame, stamp = cam.read()
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        assert abs(stamp - time.time_ns()) < 1e9
    assert devices.opened == [('/dev/video4', cv2.CAP_V4L2)]
    assert (cam.actual.width, cam.actual.height, cam.actual.fps, cam.actual.pixel_format) == \
        (640, 480, 30.0, 'mjpg')
    assert devices.captures[0].released


def test_index_devices_use_the_default_backend(devices):
    devices.present[2] = True
    with OpenCVCamera('2', 640, 480, 30.0):
        pass
    assert devices.opened == [(2, cv2.CAP_ANY)]


def test_unsupported_resolution_fails_naming_the_device(devices):
    devices.max_size = (1280, 720)
    cam = OpenCVCamera('/dev/video4', 1920, 1080, 30.0)
    with pytest.raises(DeviceSettingsError, match=r'/dev/video4.*1280x720 instead of 1920x1080'):
        cam.connect()
    assert devices.captures[0].released


def test_unsupported_rate_fails_but_a_small_difference_is_tolerated(devices):
    devices.fps_limit = 25.0
    with pytest.raises(DeviceSettingsError, match=r'/dev/video4.*25 fps instead of 60'):
        OpenCVCamera('/dev/video4', 640, 480, 60.0).connect()
    devices.fps_limit = 29.97
    with OpenCVCamera('/dev/video4', 640, 480, 30.0, fps_tolerance_hz=0.5) as cam:
        assert cam.actual.fps == pytest.approx(29.97)


def test_unsupported_pixel_format_fails(devices):
    devices.fourccs = ('YUYV',)
    with pytest.raises(DeviceSettingsError, match=r"/dev/video4.*'YUYV' instead of 'MJPG'"):
        OpenCVCamera('/dev/video4', 640, 480, 30.0, 'mjpg').connect()


def test_missing_device_is_device_not_found(devices):
    with pytest.raises(DeviceNotFoundError, match='/dev/video9'):
        OpenCVCamera('/dev/video9', 640, 480, 30.0).connect()


def test_unplug_raises_device_error(devices):
    with OpenCVCamera('/dev/video4', 64, 48, 30.0) as cam:
        cam.read()
        devices.present['/dev/video4'] = False
        with pytest.raises(DeviceError, match='/dev/video4'):
            for _ in range(100):
                cam.read(timeout_s=2.0)


def test_stalled_stream_raises_after_the_read_timeout(devices, monkeypatch):
    stall = threading.Event()
    original = FakeCapture.read

    def stalling_read(self):
        if stall.is_set():
            time.sleep(1.0)
        return original(self)

    monkeypatch.setattr(FakeCapture, 'read', stalling_read)
    with OpenCVCamera('/dev/video4', 64, 48, 30.0) as cam:
        cam.read()
        stall.set()
        cam.read(timeout_s=2.0)  # the one frame that may already be buffered
        with pytest.raises(DeviceError, match='no frame'):
            cam.read(timeout_s=0.1)


def test_read_latest_refuses_stale_frames(devices, monkeypatch):
    with OpenCVCamera('/dev/video4', 64, 48, 30.0) as cam:
        cam.read()
        frame, _ = cam.read_latest(max_age_s=5.0)
        assert frame.shape == (48, 64, 3)
        # Ten seconds later, as far as the freshness check can tell.
        monkeypatch.setattr(opencv_camera, 'wall_ns', lambda: time.time_ns() + 10_000_000_000)
        with pytest.raises(StaleFrameError, match='old'):
            cam.read_latest(max_age_s=0.5)


def test_slow_reader_gets_the_newest_frame_and_skips_are_counted(devices):
    with OpenCVCamera('/dev/video4', 64, 48, 30.0) as cam:
        first, _ = cam.read()
        time.sleep(0.2)  # the fake produces a frame every 5 ms meanwhile
        second, _ = cam.read()
    assert int(second[0, 0, 0]) - int(first[0, 0, 0]) > 2
    assert cam.frames_skipped > 0


def test_runner_reconnects_after_unplug_and_replug(devices):
    frames, logs = [], []
    cam = OpenCVCamera('/dev/video4', 64, 48, 30.0)
    runner = frame_reader(cam, lambda f, t: frames.append(t), backoff_s=0.02, backoff_max_s=0.05,
                          read_timeout_s=1.0, log=lambda level, msg: logs.append(msg))
    runner.start()
    try:
        assert _wait(lambda: len(frames) >= 3)
        devices.present['/dev/video4'] = False
        assert _wait(lambda: runner.state in ('waiting', 'connecting') and runner.monitor.errors >= 2)
        assert 'read failed' in ' '.join(logs) and 'cannot open' in runner.monitor.last_error
        n = len(frames)
        devices.present['/dev/video4'] = True
        assert _wait(lambda: len(frames) >= n + 3)
        assert runner.state == 'streaming' and runner.reconnects == 1
    finally:
        runner.stop()
    assert all(c.released for c in devices.captures)
    assert frames == sorted(frames)


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.005)
    return pred()
