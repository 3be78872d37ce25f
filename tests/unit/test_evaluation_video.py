"""Episode videos: an episode bag -> one VP8/WebM video of the five tiles, read back with OpenCV."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.errors import EvaluationError
from fuse_core.evaluation import video
from support.episode_bags import make_episode_bag

cv2 = pytest.importorskip('cv2')


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(frame)


def test_episode_bag_becomes_a_webm_of_five_tiles(tmp_path):
    bag = make_episode_bag(tmp_path, 'ep_0', steps=6)
    info = video.episode_video(bag, fps=10.0)
    w, h = video.TILE_SIZE
    assert info.path == str(bag / video.VIDEO_FILE) and info.missing == []
    assert (info.width, info.height) == (5 * w, h + video.CAPTION_H)
    # The bag spans 1.3 s of sensors (10 Hz) and commands: one frame per 0.1 s from the first
    # moment every stream has a message.
    assert 12 <= info.frames <= 14
    frames = _frames(bag / video.VIDEO_FILE)
    assert len(frames) == info.frames and frames[0].shape == (h + video.CAPTION_H, 5 * w, 3)
    assert not list(bag.glob('*.tmp.webm'))
    # Every tile shows data: random camera images and DIGIT differences, a coloured spectrogram.
    for k in range(5):
        tile = frames[-1][video.CAPTION_H:, k * w:(k + 1) * w].astype(float)
        assert tile.std() > 20, k


def test_a_topic_the_bag_lacks_is_named_and_its_tile_says_so(tmp_path):
    bag = make_episode_bag(tmp_path, 'ep_0', steps=4, skip_topics=('/digit_right/background',))
    out = tmp_path / 'v.webm'
    info = video.episode_video(bag, out)
    assert info.missing == ['DIGIT right - background'] and out.is_file()
    w, _ = video.TILE_SIZE
    tile = _frames(out)[-1][video.CAPTION_H:, 3 * w:4 * w].astype(float)
    # The placeholder: flat dark grey with one line of text.
    assert np.median(tile) == pytest.approx(40, abs=3) and tile.std() < 30


def test_a_bag_without_any_video_topic_or_no_bag_is_refused(tmp_path):
    topics = ('/camera_primary/image_raw', '/camera_wrist/image_raw', '/digit_left/image_raw',
              '/digit_right/image_raw', '/digit_left/background', '/digit_right/background',
              '/audio/mel_spectrogram')
    bag = make_episode_bag(tmp_path, 'ep_0', steps=3, skip_topics=topics)
    with pytest.raises(EvaluationError, match="none of the video's topics"):
        video.episode_video(bag)
    with pytest.raises(EvaluationError, match='no video: .*no such bag'):
        video.episode_video(tmp_path / 'nothing')
    assert video.main([str(tmp_path / 'nothing')]) == 2
