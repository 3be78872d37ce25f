"""DIGIT frame processing: glitch detection and background averaging."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fuse_core.digit import BackgroundCapture, GlitchDetector, SyntheticDigitSource, average_frames
from fuse_core.digit.glitch import row_gradient


@pytest.fixture(scope='module')
def clean_frames():
    src = SyntheticDigitSource(240, 320, 60.0, seed=11)
    return [src.frame(n) for n in range(0, 240, 4)]


def test_clean_frames_are_not_glitched(clean_frames):
    detector = GlitchDetector(25.0, min_rows=2)
    assert [detector.count_rows(f) for f in clean_frames] == [0] * len(clean_frames)
    assert not any(detector.is_glitched(f) for f in clean_frames)


def test_garbage_band_is_glitched(clean_frames):
    frame = clean_frames[3].copy()
    frame[100:104] = np.random.default_rng(0).integers(0, 256, (4, 320, 3), dtype=np.uint8)
    detector = GlitchDetector(25.0, min_rows=2)
    assert detector.count_rows(frame) >= 2
    assert detector.is_glitched(frame)


def test_torn_frame_is_glitched(clean_frames):
    # A tear: the lower part shifted sideways and coloured like a half-decoded buffer.
    frame = clean_frames[5].copy()
    frame[150:] = np.roll(frame[150:], 80, axis=1)
    frame[150:, :, 1] = 255
    assert GlitchDetector(25.0, min_rows=1).is_glitched(frame)


def test_min_rows_and_disabled_detector(clean_frames):
    frame = clean_frames[0].copy()
    frame[120] = 255 - frame[120]  # one inverted row: two seams
    assert GlitchDetector(25.0, min_rows=2).is_glitched(frame)
    assert not GlitchDetector(25.0, min_rows=3).is_glitched(frame)
    assert not GlitchDetector(0.0).is_glitched(frame)


def test_row_gradient_values():
    frame = np.zeros((3, 4, 3), np.uint8)
    frame[1] = 10
    frame[2] = 40
    np.testing.assert_allclose(row_gradient(frame), [10.0, 30.0])
    np.testing.assert_allclose(row_gradient(frame[:, :, 0]), [10.0, 30.0])


def test_average_frames_rounds_per_pixel():
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (0, 1, 255)]
    np.testing.assert_array_equal(average_frames(frames), np.full((2, 2, 3), 85, np.uint8))
    np.testing.assert_array_equal(average_frames([np.full((1, 1, 3), 1, np.uint8),
                                                  np.full((1, 1, 3), 2, np.uint8)]), [[[2, 2, 2]]])
    with pytest.raises(ValueError):
        average_frames([])
    with pytest.raises(ValueError, match='shape'):
        average_frames([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])


def test_background_averaging_removes_sensor_noise():
    src = SyntheticDigitSource(240, 320, 60.0, seed=3, contacts=0)
    truth = np.clip(src._background, 0, 255)
    single = np.abs(src.frame(0) - truth).mean()
    averaged = np.abs(average_frames(src.frame(n) for n in range(8)) - truth).mean()
    assert averaged < 0.6 * single


def test_background_capture_takes_the_next_n_frames():
    cap = BackgroundCapture()
    assert cap.offer(np.zeros((2, 2, 3), np.uint8), 1) is None  # nothing requested
    ticket = cap.request(3)
    assert cap.active
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 60)]
    assert cap.offer(frames[0], 100) is None
    assert cap.offer(frames[1], 200) is None
    result = cap.offer(frames[2], 300)
    np.testing.assert_array_equal(result, average_frames(frames))
    assert not cap.active and cap.latest_stamp_ns == 300
    np.testing.assert_array_equal(cap.wait(ticket, 0.1), result)


def test_background_capture_across_threads():
    cap = BackgroundCapture()
    ticket = cap.request(5)
    src = SyntheticDigitSource(240, 320, 60.0, seed=1)
    frames = [src.frame(n) for n in range(5)]

    def feed():
        for n, frame in enumerate(frames):
            cap.offer(frame, n)

    threading.Thread(target=feed).start()
    result = cap.wait(ticket, 10.0)
    np.testing.assert_array_equal(result, average_frames(frames))


def test_background_capture_times_out_and_a_new_request_replaces_the_old():
    cap = BackgroundCapture()
    first = cap.request(5)
    cap.offer(np.zeros((2, 2, 3), np.uint8), 1)
    assert cap.wait(first, 0.01) is None
    second = cap.request(1)
    cap.offer(np.full((2, 2, 3), 9, np.uint8), 2)
    assert cap.wait(first, 0.01) is None
    assert int(cap.wait(second, 0.01)[0, 0, 0]) == 9
    with pytest.raises(ValueError):
        cap.request(0)


def test_background_capture_restarts_when_the_frame_size_changes():
    cap = BackgroundCapture()
    cap.request(2)
    cap.offer(np.zeros((2, 2, 3), np.uint8), 1)
    assert cap.offer(np.full((3, 3, 3), 4, np.uint8), 2) is None
    np.testing.assert_array_equal(cap.offer(np.full((3, 3, 3), 6, np.uint8), 3),
                                  np.full((3, 3, 3), 5, np.uint8))
