"""What the viewer sends, without ROS: rate limits, JPEG frames, tactile differences, spectrogram, chunk path."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.viewer import (RateLimiter, chunk_actions, encode_jpeg, predicted_path, spectrogram_image,
                              tactile_difference)


def test_rate_limiter_passes_one_per_period_per_key_and_counts_the_rest():
    now = [0.0]
    rl = RateLimiter(5.0, clock=lambda: now[0])
    passed = 0
    for _ in range(300):                     # 30 Hz for 10 s
        passed += rl.ready('cam')
        rl.ready('other')
        now[0] += 1 / 30
    assert 49 <= passed <= 51
    assert rl.passed['cam'] + rl.dropped['cam'] == 300 and rl.passed['other'] == rl.passed['cam']
    now[0] += 100.0                          # a long pause gives one frame, not a burst
    assert rl.ready('cam') and not rl.ready('cam')


def test_jpeg_is_decodable_and_scaled_down():
    import cv2
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (480, 1280, 3), dtype=np.uint8)
    data = encode_jpeg(img, quality=80, max_width=640)
    assert data[:3] == b'\xff\xd8\xff'
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == (240, 640, 3)
    with pytest.raises(ValueError, match='uint8'):
        encode_jpeg(img.astype(np.float32))


def test_tactile_difference_shows_contact_only():
    bg = np.full((240, 320, 3), 100, np.uint8)
    frame = bg.copy()
    frame[100:120, 150:170] = 130
    diff = tactile_difference(frame, bg, gain=4.0)
    assert diff[110, 160].tolist() == [120, 120, 120] and diff[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match='differ in shape'):
        tactile_difference(frame, bg[:100])


def test_spectrogram_image_puts_low_frequencies_at_the_bottom():
    db = np.full((128, 128), -80.0, np.float32)
    db[0, :] = 0.0                           # loud lowest mel band
    img = spectrogram_image(db)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert img[-1].mean() > img[0].mean() + 100


def test_predicted_path_sums_the_chunk_from_the_commanded_target():
    actions = np.array([[0.01, 0.0, -0.02, 0, 0, 0, 1], [0.01, 0.01, 0.0, 0, 0, 0, 1],
                        [np.nan, 0, 0, 0, 0, 0, 1], [0.5, 0.5, 0.5, 0, 0, 0, 1]])
    path = predicted_path([0.2, 0.0, 0.2], actions)
    np.testing.assert_allclose(path, [[0.2, 0.0, 0.2], [0.21, 0.0, 0.18], [0.22, 0.01, 0.18]])
    assert chunk_actions(list(range(28)), 4, 7).shape == (4, 7)
    assert chunk_actions(list(range(27)), 4, 7) is None
