"""DIGIT sources: the real one against a faked digit_interface, synthetic, file, config."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from fuse_core.acquisition import ReaderSettings, SensorReader
from fuse_core.camera.base import DeviceSettingsError
from fuse_core.config import from_mapping
from fuse_core.digit import (DigitConfig, DigitSource, SyntheticDigitSource, frame_shape,
                             make_digit_source, to_portrait)
from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError


def frame_reader(src, on_frame, log=None, **settings):
    """A SensorReader calling on_frame(frame, stamp) for each frame, as the frame nodes do."""
    return SensorReader(src, lambda item: on_frame(*item), ReaderSettings(**settings), log=log)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'ros2_ws/src/fuse_bringup/config'
STREAMS = {
    'VGA': {'resolution': {'width': 640, 'height': 480}, 'fps': {'30fps': 30, '15fps': 15}},
    'QVGA': {'resolution': {'width': 320, 'height': 240}, 'fps': {'60fps': 60, '30fps': 30}},
}


class Udev:
    """Which DIGITs are plugged in (serial -> /dev/videoN) and what their sensors see."""

    def __init__(self):
        self.devices = {}
        self.transposes = []
        self.opened = []
        self.fps_set = []

    def frame(self, dev_name, count):
        # The sensor image is landscape; a gradient makes the rotation observable.
        img = np.zeros((240, 320, 3), np.uint8)
        img[:, :, 0] = np.arange(320, dtype=np.uint8)[None, :] // 2
        img[:, :, 1] = np.arange(240, dtype=np.uint8)[:, None]
        img[:, :, 2] = count % 256
        return img


def make_fake_digit_interface(udev: Udev):
    """Modules shaped like digit_interface: Digit (bare Exceptions) and DigitHandler."""

    class DigitHandler:
        @staticmethod
        def list_digits():
            return [{'dev_name': dev, 'manufacturer': 'GelSight', 'model': 'DIGIT',
                     'revision': '0200', 'serial': serial} for serial, dev in udev.devices.items()]

        @staticmethod
        def find_digit(serial):
            return next((d for d in DigitHandler.list_digits() if d['serial'] == serial), None)

    class Digit:
        STREAMS = STREAMS

        def __init__(self, serial=None, name=None):
            self.serial, self.name = serial, name
            info = DigitHandler.find_digit(serial)
            if info is None:
                raise Exception(f'Cannot find DIGIT with serial {serial}')
            self.dev_name = info['dev_name']
            self.count = 0
            self.open = False

        def connect(self):
            if udev.devices.get(self.serial) != self.dev_name:
                raise Exception(f'Error opening video stream: {self.dev_name}')
            self.open = True
            udev.opened.append(self.dev_name)

        def set_resolution(self, stream):
            self.resolution = stream['resolution']

        def set_fps(self, fps):
            udev.fps_set.append(fps)

        def get_frame(self, transpose=False):
            # An unplugged device or one that came back under another node stops delivering.
            if not self.open or udev.devices.get(self.serial) != self.dev_name:
                raise Exception(f'Unable to grab frame from {self.serial} - {self.dev_name}!')
            time.sleep(0.002)
            self.count += 1
            udev.transposes.append(transpose)
            frame = udev.frame(self.dev_name, self.count)
            if not transpose:
                import cv2
                frame = cv2.flip(cv2.transpose(frame), 0)
            return frame

        def disconnect(self):
            self.open = False

    pkg = types.ModuleType('digit_interface')
    digit_mod = types.ModuleType('digit_interface.digit')
    handler_mod = types.ModuleType('digit_interface.digit_handler')
    digit_mod.Digit = Digit
    handler_mod.DigitHandler = DigitHandler
    pkg.digit, pkg.digit_handler = digit_mod, handler_mod
    pkg.Digit, pkg.DigitHandler = Digit, DigitHandler
    return pkg, digit_mod, handler_mod


@pytest.fixture
def udev(monkeypatch):
    u = Udev()
    pkg, digit_mod, handler_mod = make_fake_digit_interface(u)
    monkeypatch.setitem(sys.modules, 'digit_interface', pkg)
    monkeypatch.setitem(sys.modules, 'digit_interface.digit', digit_mod)
    monkeypatch.setitem(sys.modules, 'digit_interface.digit_handler', handler_mod)
    return u


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.005)
    return pred()


# --- real DIGIT (faked digit_interface) -----------------------------------------------------
def test_found_by_serial_among_several(udev):
    udev.devices = {'D00001': '/dev/video0', 'D00002': '/dev/video2'}
    with DigitSource('D00002', 'QVGA', 60, 'landscape') as src:
        frame, stamp = src.read()
        assert src.dev_name == '/dev/video2'
    assert udev.opened == ['/dev/video2'] and udev.fps_set == [60]
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert abs(stamp - time.time_ns()) < 1e9
    assert (src.actual.width, src.actual.height, src.actual.fps) == (320, 240, 60.0)


def test_landscape_is_the_sensor_image_and_portrait_is_digit_interface_rotation(udev):
    udev.devices = {'D1': '/dev/video0'}
    with DigitSource('D1', orientation='landscape') as src:
        land, _ = src.read()
    with DigitSource('D1', orientation='portrait') as src:
        port, _ = src.read()
    assert udev.transposes == [True, False]
    assert land.shape == (240, 320, 3) and port.shape == (320, 240, 3)
    np.testing.assert_array_equal(port[:, :, :2], to_portrait(land)[:, :, :2])


def test_missing_serial_is_not_found_and_names_it(udev):
    udev.devices = {'D00001': '/dev/video0'}
    with pytest.raises(DeviceNotFoundError, match=r"D99999.*D00001"):
        DigitSource('D99999').connect()


def test_unsupported_rate_is_a_settings_error(udev):
    udev.devices = {'D1': '/dev/video0'}
    with pytest.raises(DeviceSettingsError, match='D1'):
        DigitSource('D1', 'VGA', 60).connect()


def test_unplug_is_a_device_error(udev):
    udev.devices = {'D1': '/dev/video0'}
    with DigitSource('D1') as src:
        src.read()
        del udev.devices['D1']
        with pytest.raises(DeviceError, match=r'D1.*unplugged'):
            src.read()


def test_missing_at_start_then_replugged_under_another_node_reconnects_by_serial(udev):
    src = DigitSource('D7', 'QVGA', 60)
    frames, logs = [], []
    runner = frame_reader(src, lambda f, t: frames.append(t), backoff_s=0.01, backoff_max_s=0.05,
                          log=lambda level, msg: logs.append((level, msg)))
    runner.start()
    try:
        assert _wait(lambda: runner.monitor.errors >= 2)
        assert runner.state in ('waiting', 'connecting') and frames == []
        assert 'D7 is not connected' in runner.monitor.last_error
        udev.devices['D7'] = '/dev/video4'
        assert _wait(lambda: len(frames) >= 3)
        assert src.dev_name == '/dev/video4'
        del udev.devices['D7']  # unplug
        assert _wait(lambda: runner.state != 'streaming')
        udev.devices['D7'] = '/dev/video6'  # replug: the kernel gives it another node
        n = len(frames)
        assert _wait(lambda: len(frames) >= n + 3)
        assert src.dev_name == '/dev/video6' and runner.reconnects == 1
    finally:
        runner.stop()
    assert udev.opened == ['/dev/video4', '/dev/video6']
    assert any('unplugged' in msg for level, msg in logs if level == 'error')


def test_make_digit_source_real(udev):
    cfg = DigitConfig(source='real', serial='D1')
    assert isinstance(make_digit_source(cfg), DigitSource)


# --- synthetic ------------------------------------------------------------------------------
def test_synthetic_real_size_and_determinism():
    a = SyntheticDigitSource(240, 320, 60.0, seed=4)
    b = SyntheticDigitSource(240, 320, 60.0, seed=4)
    c = SyntheticDigitSource(240, 320, 60.0, seed=5)
    for n in (0, 17, 600):
        fa = a.frame(n)
        assert fa.shape == (240, 320, 3) and fa.dtype == np.uint8
        np.testing.assert_array_equal(fa, b.frame(n))
    assert not np.array_equal(a.frame(3), c.frame(3))


def test_synthetic_contacts_press_in_and_out():
    src = SyntheticDigitSource(240, 320, 60.0, seed=2, contacts=1)
    depths = np.array([src.depths(n)[0] for n in range(0, 600, 5)])
    assert depths.min() == 0.0 and depths.max() > 0.9
    pressed = int(np.argmax(depths)) * 5
    free = int(np.argmin(depths)) * 5
    diff = np.abs(src.frame(pressed).astype(int) - src.frame(free).astype(int)).max(axis=2)
    assert diff.max() > 30  # the contact changes the image where it presses
    assert np.median(diff) < 10  # and leaves most of the gel as it was


def test_make_digit_source_synthetic_orientation():
    land = make_digit_source(DigitConfig(source='synthetic'))
    port = make_digit_source(DigitConfig(source='synthetic', orientation='portrait'))
    vga = make_digit_source(DigitConfig(source='synthetic', resolution='VGA', framerate=30))
    assert land.synthetic
    assert land.frame(0).shape == (240, 320, 3)
    assert port.frame(0).shape == (320, 240, 3)
    assert vga.frame(0).shape == (480, 640, 3)
    assert frame_shape('QVGA', 'portrait') == (320, 240, 3)


def test_file_source_rotates_recordings_for_portrait(tmp_path):
    import cv2
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / '000.png'), img)
    land = make_digit_source(DigitConfig(source='file', file_path=str(tmp_path), framerate=200))
    port = make_digit_source(DigitConfig(source='file', file_path=str(tmp_path), framerate=200,
                                         orientation='portrait'))
    with land, port:
        np.testing.assert_array_equal(land.read()[0], img)
        np.testing.assert_array_equal(port.read()[0], cv2.flip(cv2.transpose(img), 0))


# --- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize('values,name', [
    ({'source': 'synthetic', 'framerate': -60}, 'framerate'),
    ({'source': 'usb'}, 'source'),
    ({'source': 'synthetic', 'orientation': 'upside_down'}, 'orientation'),
    ({'source': 'synthetic', 'resolution': 'HD'}, 'resolution'),
    ({'source': 'synthetic', 'background_frames': 0}, 'background_frames'),
    ({'source': 'synthetic', 'glitch_threshold': -1.0}, 'glitch_threshold'),
    ({'source': 'real'}, 'serial'),
    ({'source': 'real', 'serial': 'D1', 'framerate': 45}, 'framerate'),
    ({'source': 'real', 'serial': 'D1', 'resolution': 'VGA', 'framerate': 60}, 'framerate'),
    ({'source': 'file'}, 'file_path'),
])
def test_bad_parameter_is_a_config_error_naming_it(values, name):
    with pytest.raises(ConfigError, match=name):
        DigitConfig(**values)


def test_digits_yaml_builds_valid_configs():
    data = yaml.safe_load((CONFIG_DIR / 'digits.yaml').read_text())
    assert set(data) == {'digit_left', 'digit_right'}
    serials = set()
    for name, section in data.items():
        cfg = from_mapping(DigitConfig, section['ros__parameters'])
        assert cfg.source == 'real' and cfg.frame_id == f'{name}_frame'
        assert (cfg.resolution, cfg.framerate) == ('QVGA', 60)
        serials.add(cfg.serial)
    assert len(serials) == 2
