"""Camera frame sources without hardware: synthetic, file replay, config, the reconnect loop."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fuse_core.acquisition import ReaderSettings, SensorReader
from fuse_core.camera import (CameraConfig, ImageFolderSource, SyntheticCameraSource,
                              VideoFileSource, make_camera_source)
from fuse_core.camera.base import ActualSettings, FrameSource, Pacer
from fuse_core.config import from_mapping
from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError, SourceExhaustedError


def frame_reader(src, on_frame, log=None, **settings):
    """A SensorReader calling on_frame(frame, stamp) for each frame, as the frame nodes do."""
    return SensorReader(src, lambda item: on_frame(*item), ReaderSettings(**settings), log=log)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'ros2_ws/src/fuse_bringup/config'


# --- synthetic ------------------------------------------------------------------------------
def test_synthetic_frames_have_real_size_and_type():
    src = SyntheticCameraSource(640, 480, 30.0, seed=1, paced=False)
    with src:
        frame, stamp = src.read()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert abs(stamp - time.time_ns()) < 1e9
    assert src.actual == ActualSettings(640, 480, 30.0, 'synthetic')
    assert src.synthetic and 'SYNTHETIC' in src.describe()


def test_synthetic_is_deterministic_per_seed():
    a = SyntheticCameraSource(640, 480, 30.0, seed=7)
    b = SyntheticCameraSource(640, 480, 30.0, seed=7)
    c = SyntheticCameraSource(640, 480, 30.0, seed=8)
    for n in (0, 1, 45, 1000):
        np.testing.assert_array_equal(a.frame(n), b.frame(n))
    assert not np.array_equal(a.frame(5), c.frame(5))


def test_synthetic_frames_change_over_time():
    src = SyntheticCameraSource(320, 240, 30.0, seed=0)
    assert not np.array_equal(src.frame(10), src.frame(11))


def test_synthetic_read_sequence_matches_frame_numbers():
    src = SyntheticCameraSource(160, 120, 30.0, seed=3, paced=False)
    with src:
        frames = [src.read()[0] for _ in range(3)]
    for n, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, src.frame(n))


def test_synthetic_read_before_connect_is_a_device_error():
    with pytest.raises(DeviceError):
        SyntheticCameraSource(64, 48, 30.0).read()


def test_pacer_holds_the_rate_without_drift():
    pacer = Pacer(200.0)
    t0 = time.monotonic()
    for _ in range(20):
        pacer.wait()
    # 20 releases at 200 Hz: the first is immediate, the last due at 95 ms.
    assert time.monotonic() - t0 >= 0.094


# --- file replay ----------------------------------------------------------------------------
def _write_video(path: Path, n: int, w: int = 64, h: int = 48) -> list:
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 30.0, (w, h))
    assert writer.isOpened()
    frames = []
    for i in range(n):
        frame = np.full((h, w, 3), 20 * i + 10, np.uint8)
        writer.write(frame)
        frames.append(frame)
    writer.release()
    return frames


def test_video_file_replays_and_loops(tmp_path):
    path = tmp_path / 'clip.avi'
    frames = _write_video(path, 3)
    with VideoFileSource(str(path), fps=500.0, loop=True) as src:
        assert (src.actual.width, src.actual.height) == (64, 48)
        got = [src.read()[0] for _ in range(5)]
    means = [float(f.mean()) for f in got]
    expected = [float(frames[i % 3].mean()) for i in range(5)]
    np.testing.assert_allclose(means, expected, atol=3)  # MJPG is lossy
    assert got[0].shape == (48, 64, 3) and got[0].dtype == np.uint8


def test_video_file_without_loop_ends(tmp_path):
    path = tmp_path / 'clip.avi'
    _write_video(path, 2)
    with VideoFileSource(str(path), fps=500.0, loop=False) as src:
        src.read()
        src.read()
        with pytest.raises(SourceExhaustedError):
            src.read()


def test_image_folder_replays_in_name_order(tmp_path):
    import cv2
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f'frame_{i:03d}.png'), np.full((10, 12, 3), i * 50, np.uint8))
    (tmp_path / 'notes.txt').write_text('not an image')
    with ImageFolderSource(str(tmp_path), fps=500.0, loop=True) as src:
        values = [int(src.read()[0][0, 0, 0]) for _ in range(4)]
    assert values == [0, 50, 100, 0]


def test_image_folder_without_loop_ends(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((4, 4, 3), np.uint8))
    with ImageFolderSource(str(tmp_path), fps=500.0, loop=False) as src:
        src.read()
        with pytest.raises(SourceExhaustedError):
            src.read()


def test_empty_image_folder_is_a_device_error(tmp_path):
    with pytest.raises(DeviceError, match='no images'):
        ImageFolderSource(str(tmp_path), fps=30.0).connect()


def test_file_source_with_missing_path_is_a_config_error(tmp_path):
    cfg = CameraConfig(source='file', file_path=str(tmp_path / 'missing.avi'))
    with pytest.raises(ConfigError, match='file_path'):
        make_camera_source(cfg)


# --- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize('field,value', [('framerate', -30.0), ('framerate', 0.0), ('image_width', -1),
                                         ('source', 'webcam'), ('pixel_format', 'h264'),
                                         ('reconnect_backoff_s', -1.0)])
def test_bad_parameter_is_a_config_error_naming_it(field, value):
    with pytest.raises(ConfigError, match=field):
        CameraConfig(**{field: value})


def test_file_source_needs_a_path():
    with pytest.raises(ConfigError, match='file_path'):
        CameraConfig(source='file')


def test_cameras_yaml_builds_valid_configs():
    data = yaml.safe_load((CONFIG_DIR / 'cameras.yaml').read_text())
    assert set(data) == {'camera_primary', 'camera_wrist'}
    for name, section in data.items():
        cfg = from_mapping(CameraConfig, section['ros__parameters'])
        assert cfg.source == 'real' and cfg.frame_id == f'{name}_optical_frame'
        assert isinstance(cfg.framerate, float)


def test_make_camera_source_picks_the_kind():
    assert isinstance(make_camera_source(CameraConfig(source='synthetic')), SyntheticCameraSource)
    assert make_camera_source(CameraConfig(source='real')).kind == 'real'


# --- the reconnect loop ---------------------------------------------------------------------
class FlakySource(FrameSource):
    """A device that is absent for the first connects, streams, disappears, comes back."""

    kind = 'real'

    def __init__(self, absent_connects: int, frames_per_session: int) -> None:
        super().__init__('flaky')
        self.absent_connects = absent_connects
        self.frames_per_session = frames_per_session
        self.connect_calls = 0
        self.close_calls = 0
        self._left = 0
        self.connected = False

    def connect(self):
        self.connect_calls += 1
        if self.connect_calls <= self.absent_connects:
            raise DeviceNotFoundError('flaky: no such device')
        self.connected = True
        self._left = self.frames_per_session
        self.actual = ActualSettings(4, 2, 100.0, 'test')

    def read(self, timeout_s=None):
        if not self.connected:
            raise DeviceError('flaky: not connected')
        if self._left == 0:
            raise DeviceError('flaky: unplugged')
        self._left -= 1
        time.sleep(0.002)
        return np.full((2, 4, 3), self.connect_calls, np.uint8), time.time_ns()

    def close(self):
        self.close_calls += 1
        self.connected = False


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.005)
    return pred()


def test_missing_device_is_retried_and_recovers():
    src = FlakySource(absent_connects=2, frames_per_session=10**6)
    frames, logs = [], []
    runner = frame_reader(src, lambda f, t: frames.append(int(f[0, 0, 0])), backoff_s=0.01,
                          backoff_max_s=0.02, log=lambda level, msg: logs.append((level, msg)))
    runner.start()
    try:
        assert _wait(lambda: len(frames) >= 5)
        assert runner.state == 'streaming'
        st = runner.status()
        assert st['state'] == 'streaming' and st['frames'] >= 5 and st['errors'] == 2
        assert st['reconnects'] == 0 and st['actual_width'] == 4 and 0 <= st['frame_age_s'] < 5.0
    finally:
        runner.stop()
    assert src.connect_calls == 3 and frames[0] == 3
    assert runner.monitor.errors == 2 and 'no such device' in runner.monitor.last_error
    assert [lvl for lvl, _ in logs].count('error') == 2
    assert runner.state == 'stopped' and not src.connected


def test_unplug_closes_and_reconnects():
    src = FlakySource(absent_connects=0, frames_per_session=3)
    frames = []
    runner = frame_reader(src, lambda f, t: frames.append(int(f[0, 0, 0])), backoff_s=0.01,
                          backoff_max_s=0.01)
    runner.start()
    try:
        assert _wait(lambda: len(frames) >= 7)
    finally:
        runner.stop()
    assert frames[:7] == [1, 1, 1, 2, 2, 2, 3]
    assert runner.reconnects >= 2 and 'unplugged' in runner.monitor.last_error
    assert src.close_calls >= 3


def test_stale_frames_are_dropped_and_counted():
    class OldFrames(FlakySource):
        def read(self, timeout_s=None):
            frame, _ = super().read(timeout_s)
            return frame, time.time_ns() - 2_000_000_000

    src = OldFrames(absent_connects=0, frames_per_session=10**6)
    frames = []
    runner = frame_reader(src, lambda f, t: frames.append(f), max_age_s=0.5)
    runner.start()
    try:
        assert _wait(lambda: runner.monitor.drops >= 5)
    finally:
        runner.stop()
    assert frames == []


def test_a_failing_frame_handler_is_reported_not_fatal():
    src = FlakySource(absent_connects=0, frames_per_session=10**6)
    calls = []

    def handler(frame, stamp):
        calls.append(stamp)
        if len(calls) == 1:
            raise RuntimeError('publish failed')

    runner = frame_reader(src, handler)
    runner.start()
    try:
        assert _wait(lambda: len(calls) >= 3)
    finally:
        runner.stop()
    assert 'publish failed' in runner.monitor.last_error and src.connect_calls == 1


def test_finished_file_stops_the_loop(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((4, 4, 3), np.uint8))
    frames, logs = [], []
    runner = frame_reader(ImageFolderSource(str(tmp_path), 500.0, loop=False),
                          lambda f, t: frames.append(f), log=lambda level, msg: logs.append((level, msg)))
    runner.start()
    assert _wait(lambda: runner.state == 'finished')
    runner.stop()
    assert len(frames) == 1 and runner.state == 'finished'
    # The end of a replay is no failure: no error counted or logged, the reason reported.
    status = runner.status()
    assert status['errors'] == 0 and status['last_error'] == ''
    assert 'image folder' in runner.finished_reason and status['finished'] == runner.finished_reason
    assert [level for level, _ in logs] == ['info', 'info'] and 'finished' in logs[-1][1]


def test_retry_delays_double_up_to_the_cap_and_are_logged():
    src = FlakySource(absent_connects=10**6, frames_per_session=0)
    logs = []
    runner = frame_reader(src, lambda f, t: None, backoff_s=0.1, backoff_max_s=0.4,
                          log=lambda level, msg: logs.append(msg))
    runner.start()
    try:
        assert _wait(lambda: len(logs) >= 4)
    finally:
        runner.stop()
    delays = [float(re.search(r'retrying in ([0-9.]+) s', m).group(1)) for m in logs[:4]]
    # The logged figure is the time left when the message is written: a hair under the delay.
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.4], abs=0.05)
    assert all('no such device' in m for m in logs[:4]) and runner.monitor.errors >= 4


def test_stop_interrupts_a_long_backoff():
    src = FlakySource(absent_connects=10**6, frames_per_session=0)
    runner = frame_reader(src, lambda f, t: None, backoff_s=30.0, backoff_max_s=30.0)
    runner.start()
    assert _wait(lambda: runner.state == 'waiting')
    t0 = time.monotonic()
    runner.stop()
    assert time.monotonic() - t0 < 10.0  # far below the 30 s backoff it interrupted
    assert not any('flaky' in t.name for t in threading.enumerate())
