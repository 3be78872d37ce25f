"""The trainer's LeRobotDataset v3 reader: windows, statistics, and bad datasets refused by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('pyarrow', reason="the trainer's dataset reader needs pyarrow: ./setup.sh --train")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.trainer.dataset import INSTRUCTIONS_FILE, LeRobotWindows, write_tiny_dataset  # noqa: E402
from models.trainer.errors import DatasetError  # noqa: E402


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp('ds') / 'tiny', episodes=3, length=5)


def _info(root):
    return json.loads((root / 'meta' / 'info.json').read_text())


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_windows_pad_the_history_and_the_chunk_at_episode_edges(tiny):
    data = LeRobotWindows(tiny)
    assert data.inputs == ('image_primary', 'image_wrist', 'image_digit_left', 'image_digit_right', 'mel_spectro')
    assert len(data) == 15 and data.episode_ids == [0, 1, 2]
    stats = data.action_statistics()
    assert stats['action']['mask'] == [True] * 6 + [False] and stats['num_trajectories'] == 3
    first = data.sample(0, stats)
    assert first['timestep_pad_mask'].tolist() == [False, True]
    assert first['image_primary'].shape == (2, 256, 256, 3) and first['image_primary'].dtype == np.uint8
    assert first['image_digit_left'].dtype == np.int16 and first['mel_spectro'].shape == (2, 128, 128)
    last = data.sample(4, stats)  # the episode's last frame: one real action, three padded
    assert last['action_mask'].tolist() == [True, False, False, False]
    raw = data.frames.action[4]
    a = stats['action']
    expected = (raw[:6] - np.array(a['mean'][:6])) / np.array(a['std'][:6])
    assert last['action'][0, :6] == pytest.approx(expected, abs=1e-5)
    assert last['action'][:, 6].tolist() == [0.0] * 4  # gripper closed in the second half, binarised
    mid = data.sample(1, stats)
    assert mid['timestep_pad_mask'].tolist() == [True, True]
    # a pressed DIGIT shows as frame minus background (soft episode 0, from frame 1 on)
    assert np.abs(mid['image_digit_left'][1]).max() > 30 and np.abs(first['image_digit_left'][1]).max() == 0


def test_instructions_come_from_the_task_and_the_modality_file(tiny):
    data = LeRobotWindows(tiny)
    assert data.instructions[0]['simple'] == 'pick up the soft cube'
    assert data.instructions[0]['tactile'] == 'pick up the cube that feels soft'
    counts = data.combination_counts()
    assert counts['tactile'] == 3 and counts['visual,audio'] == 0


def test_missing_feature_is_named(tiny, tmp_path):
    root = _copy(tiny, tmp_path / 'd')
    info = _info(root)
    del info['features']['observation.images.digit_0_background']
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match='digit_0_background'):
        LeRobotWindows(root)
    # asking only for inputs that are there works
    assert LeRobotWindows(root, inputs=['image_primary']).inputs == ('image_primary',)


def test_mismatched_shapes_and_video_features_are_refused(tiny, tmp_path):
    root = _copy(tiny, tmp_path / 'd')
    info = _info(root)
    info['features']['action']['shape'] = [6]
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"'action' has shape \[6\]"):
        LeRobotWindows(root)
    info['features']['action']['shape'] = [7]
    info['features']['observation.images.image_1']['dtype'] = 'video'
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match='stored as video'):
        LeRobotWindows(root)
    info['features']['observation.images.image_1']['dtype'] = 'image'
    info['features']['observation.mel_spectro']['shape'] = [64, 128]
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match='mel_spectro'):
        LeRobotWindows(root)


def test_column_missing_from_the_parquet_file_is_named(tmp_path):
    import pyarrow.parquet as pq

    root = write_tiny_dataset(tmp_path / 'd', episodes=2, length=3, inputs=['image_wrist'])
    f = root / 'data' / 'chunk-000' / 'file-000.parquet'
    pq.write_table(pq.read_table(f).drop(['observation.images.image_1']), f)
    with pytest.raises(DatasetError, match=r"column\(s\) \['observation.images.image_1'\] missing"):
        LeRobotWindows(root)


def test_no_modality_instructions_is_refused_for_the_auxiliary_losses(tmp_path):
    root = write_tiny_dataset(tmp_path / 'd', episodes=2, length=3, inputs=['image_wrist'], instructions=False)
    data = LeRobotWindows(root)
    data.require_instructions(['simple'], 'the contrastive loss')  # the task alone is enough for simple
    with pytest.raises(DatasetError, match=f'generative loss needs modality-specific.*{INSTRUCTIONS_FILE}'):
        data.require_instructions(['visual'], 'the generative loss')
    (root / INSTRUCTIONS_FILE).write_text(json.dumps({'tasks': {'pick up the soft cube': {'smell': 'x'}}}))
    with pytest.raises(DatasetError, match="unknown combination.*'smell'"):
        LeRobotWindows(root)


def test_not_a_v3_dataset_and_frame_gaps_are_refused(tiny, tmp_path):
    root = _copy(tiny, tmp_path / 'd')
    info = _info(root)
    info['codebase_version'] = 'v2.1'
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="'v2.1' is not a LeRobotDataset v3"):
        LeRobotWindows(root)
    import pyarrow.parquet as pq

    root = write_tiny_dataset(tmp_path / 'g', episodes=2, length=4, inputs=['image_wrist'])
    f = root / 'data' / 'chunk-000' / 'file-000.parquet'
    t = pq.read_table(f)
    pq.write_table(t.filter(np.arange(len(t)) != 2), f)
    with pytest.raises(DatasetError, match='episode 0 frame_index'):
        LeRobotWindows(root)



def test_each_distinct_image_is_decoded_once_and_samples_match_uncached(tiny, monkeypatch):
    import models.trainer.dataset as D

    calls = []
    decode = D._decode
    monkeypatch.setattr(D, '_decode', lambda data, what: calls.append(what) or decode(data, what))
    cached, plain = LeRobotWindows(tiny), LeRobotWindows(tiny, image_cache_bytes=0)
    stats = cached.action_statistics()
    for i in (1, 2, 1, 2, 7):
        a, b = cached.sample(i, stats), plain.sample(i, stats)
        for k in cached.inputs:
            assert np.array_equal(a[k], b[k]), k
    calls.clear()
    cached.sample(1, stats)                  # every image of this window was decoded before
    assert calls == []
    plain.sample(1, stats)                   # W=2 steps x (2 cameras + 2 DIGITs + 2 backgrounds)
    assert len(calls) == 2 * 6
    # one episode's DIGIT background is the same image on every frame: decoded once per DIGIT
    calls.clear()
    for i in range(5):
        cached.sample(i, stats)
    assert calls.count('observation.images.digit_0_background') <= 1


def test_the_image_cache_stays_within_its_budget(tiny):
    data = LeRobotWindows(tiny, image_cache_bytes=300_000)
    stats = data.action_statistics()
    for i in range(len(data)):
        data.sample(i, stats)
    assert 0 < data._image_bytes <= 300_000
    with pytest.raises(ValueError):
        data._images[next(iter(data._images))][0, 0, 0] = 1  # read-only: a batch can never alter it


def test_a_dimension_the_data_never_moves_is_pinned_by_its_statistics(tiny):
    """A constant action dimension (the twin expert's rotations) gets std CONSTANT_STD: its targets
    stay 0 and whatever the model predicts there denormalises to within 1e-6 of the constant; an
    std of 1 would pass the model's errors on in raw units (radians a tick)."""
    from models.trainer.dataset import CONSTANT_STD
    data = LeRobotWindows(tiny)
    a = data.frames.action = data.frames.action.copy()
    a[:, 3:6] = 0.0                           # demonstrations that never rotate
    full = data.action_statistics()
    stats = full['action']
    moving = [i for i in range(6) if np.ptp(a[:, i]) > 0]
    constant = [i for i in range(6) if np.ptp(a[:, i]) == 0]
    assert moving == [0, 1, 2] and constant == [3, 4, 5]
    assert all(stats['std'][i] == CONSTANT_STD for i in constant)
    assert all(stats['std'][i] == pytest.approx(a[:, i].std(), rel=1e-5) for i in moving)
    sample = data.sample(1, full)
    assert np.all(sample['action'][:, constant] == 0.0)
    predicted = 0.5                           # a model's error of half a unit, normalised
    assert abs(stats['mean'][constant[0]] + predicted * stats['std'][constant[0]]
               - a[0, constant[0]]) <= 1e-6


def test_several_datasets_read_as_one_with_their_episodes_numbered_on(tiny, tmp_path):
    other = write_tiny_dataset(tmp_path / 'other', episodes=2, length=4, seed=5, instructions=False)
    # an episode-specific text in the second dataset belongs to its own episode 1, not the first's
    (other / INSTRUCTIONS_FILE).write_text(json.dumps({'episodes': {'1': {'visual': 'pick up the dark cube'}}}))
    one, two = LeRobotWindows(tiny), LeRobotWindows(other)
    both = LeRobotWindows(f'{tiny},{other}')
    assert both.roots == [tiny, other] and LeRobotWindows([tiny, other]).episode_ids == [0, 1, 2, 3, 4]
    assert len(both) == len(one) + len(two) == 23 and both.episode_ids == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(both.frames.action, np.concatenate([one.frames.action, two.frames.action]))
    assert both.instructions[4] == {'simple': two.instructions[1]['simple'], 'visual': 'pick up the dark cube'}
    assert both.instructions[1] == one.instructions[1] and 'visual' not in both.instructions[3]
    stats = both.action_statistics()
    assert stats['num_trajectories'] == 5 and stats['num_transitions'] == 23
    # a window never reaches across the two datasets: the second's first frame is padded
    s = both.sample(len(one), stats)
    assert s['timestep_pad_mask'].tolist() == [False, True] and int(s['episode']) == 3
    np.testing.assert_array_equal(s['image_primary'], two.sample(0, two.action_statistics())['image_primary'])
    slow = _copy(other, tmp_path / 'slow')
    info = _info(slow)
    info['fps'] = 10
    (slow / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(DatasetError, match='different fps'):
        LeRobotWindows([tiny, slow])
    with pytest.raises(DatasetError, match='does not exist'):
        LeRobotWindows(f'{tiny},{tmp_path / "nowhere"}')


def test_grasp_points_are_where_each_episode_first_closes_the_gripper(tiny, tmp_path):
    data = LeRobotWindows(tiny, inputs=['image_wrist'])
    points, valid = data.grasp_points(min_distance=0.0)
    near, valid_far = data.grasp_points(min_distance=0.06)
    np.testing.assert_array_equal(near, points)
    for e in data.episode_ids:
        idx = np.flatnonzero(data.frames.episode == e)
        closes = idx[np.flatnonzero(data.frames.action[idx, 6] < 0.5)[0]]   # the tiny data closes halfway
        assert closes != idx[0]
        upto = idx[idx <= closes]
        np.testing.assert_allclose(points[upto], np.tile(data.frames.state[closes, :2], (len(upto), 1)))
        assert valid[idx[idx < closes]].all() and not valid[idx[idx >= closes]].any()
        # frames whose end effector is already near the grasp point have no target
        dist = np.hypot(*(data.frames.state[upto, :2] - data.frames.state[closes, :2]).T)
        np.testing.assert_array_equal(valid_far[upto], dist > 0.06)
        assert valid_far[upto].any() and not valid_far[upto].all()
    # a dataset without the state feature is refused naming it; its windows still read
    root = _copy(tiny, tmp_path / 'nostate')
    info = _info(root)
    del info['features']['observation.state']
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    bare = LeRobotWindows(root, inputs=['image_wrist'])
    assert bare.frames.state is None and len(bare) == len(data)
    with pytest.raises(DatasetError, match='observation.state'):
        bare.grasp_points()
