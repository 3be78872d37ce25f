"""The shipped reference bundle: loads, runs, and makes preprocessing mistakes visible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fuse_core.bundle import Observation, ObservationError, PolicyRunner, load_bundle, resolve_bundle_path

W = 2


@pytest.fixture(scope='module')
def runner():
    r = PolicyRunner(load_bundle(resolve_bundle_path(''), providers='cpu', threads=1))
    r.set_instruction('pick up the cup')
    return r


def scene(seed=0, primary_rgb=(200, 90, 30), contact=False):
    """A window like the training scenes: coloured cameras, quiet or touched DIGITs, -40 dB audio."""
    rng = np.random.default_rng(seed)
    primary = np.clip(np.array(primary_rgb) + rng.integers(-20, 21, (W, 256, 256, 3)), 0, 255).astype(
        np.uint8
    )
    wrist = np.clip(120 + rng.integers(-20, 21, (W, 128, 128, 3)), 0, 255).astype(np.uint8)
    left = rng.integers(-4, 5, (W, 224, 224, 3)).astype(np.int16)
    right = rng.integers(-4, 5, (W, 224, 224, 3)).astype(np.int16)
    if contact:
        left[:, 60:124, 60:124] += 70
    spec = (-40 + rng.normal(0, 3, (W, 128, 128))).astype(np.float32)
    tensors = {
        'image_primary': primary,
        'image_wrist': wrist,
        'image_digit_left': left,
        'image_digit_right': right,
        'mel_spectro': spec,
    }
    stamps = [1000 + 10 * seed, 2000 + 10 * seed]
    return Observation(tensors, np.ones(W, dtype=bool), {k: list(stamps) for k in tensors})


def test_manifest_follows_fuse_spec(runner):
    m = runner.manifest
    shapes = {s.name: (tuple(s.shape), s.dtype) for s in m.inputs}
    assert shapes == {
        'image_primary': ((256, 256, 3), 'uint8'),
        'image_wrist': ((128, 128, 3), 'uint8'),
        'image_digit_left': ((224, 224, 3), 'int16'),
        'image_digit_right': ((224, 224, 3), 'int16'),
        'mel_spectro': ((128, 128), 'float32'),
    }
    assert m.window_size == 2 and m.control_rate_hz == 5.0
    assert (m.action.horizon, m.action.dim) == (4, 7)
    assert m.language.max_length == 24 and m.language.tokenizer.type == 'hash_words'
    assert m.action.normalization.mask == (True,) * 6 + (False,)
    assert runner.bundle.has_encoder and set(runner.bundle.sessions) == {
        'policy',
        'observation_encoder',
        'language',
    }


def test_statistics_file_is_octo_layout(runner):
    stats = json.loads((runner.bundle.path / 'dataset_statistics.json').read_text())
    assert set(stats['action']) >= {'mean', 'std', 'max', 'min', 'p99', 'p01', 'mask'}
    assert {'num_transitions', 'num_trajectories'} <= set(stats)


def test_bundle_is_small():
    root = resolve_bundle_path('')
    assert sum(f.stat().st_size for f in root.iterdir()) < 5_000_000


def test_runs_and_returns_a_finite_chunk(runner):
    res = runner.infer(scene())
    assert res.actions.shape == (4, 7) and res.actions.dtype == np.float32
    assert np.all(np.isfinite(res.actions))
    assert np.all(np.abs(res.normalized) <= 1.0)  # tanh-squashed head
    m = runner.manifest.action.normalization
    np.testing.assert_allclose(
        res.actions[:, :6],
        res.normalized[:, :6] * np.array(m.std[:6]) + np.array(m.mean[:6]),
        rtol=1e-5,
        atol=1e-9,
    )


def test_encoder_reuse_does_not_change_the_output(runner):
    obs = scene(seed=4)
    a = runner.infer(obs)
    b = runner.infer(obs)
    assert b.encoder_reused == 2 and b.encoder_runs == 0
    np.testing.assert_array_equal(a.normalized, b.normalized)
    c = runner.infer(obs, reuse_encodings=False)
    np.testing.assert_allclose(a.normalized, c.normalized, rtol=1e-6)


def test_bgr_instead_of_rgb_is_visible(runner):
    rgb = scene(seed=1)
    bgr = scene(seed=1)
    bgr.tensors['image_primary'] = np.ascontiguousarray(rgb.tensors['image_primary'][..., ::-1])
    a = runner.infer(rgb, reuse_encodings=False).normalized
    b = runner.infer(bgr, reuse_encodings=False).normalized
    assert a[0, 0] > 0.3 and b[0, 0] < -0.3, (a[0], b[0])  # dx follows red minus blue


def test_zero_to_one_images_are_refused_or_visible(runner):
    obs = scene(seed=2)
    floats = scene(seed=2)
    floats.tensors['image_primary'] = obs.tensors['image_primary'].astype(np.float32) / 255.0
    with pytest.raises(ObservationError, match="'image_primary': expected uint8"):
        runner.infer(floats)
    # the same mistake hidden behind a cast to uint8: a black image, and a very different action
    dark = scene(seed=2)
    dark.tensors['image_primary'] = (obs.tensors['image_primary'] / 255.0).astype(np.uint8)
    a = runner.infer(obs, reuse_encodings=False).normalized
    b = runner.infer(dark, reuse_encodings=False).normalized
    assert np.abs(a - b).max() > 0.3, (a[0], b[0])


def test_touch_closes_the_gripper(runner):
    free = runner.infer(scene(seed=3), reuse_encodings=False).actions
    touched = runner.infer(scene(seed=3, contact=True), reuse_encodings=False).actions
    assert free[0, 6] > 0.5 > touched[0, 6], (free[0, 6], touched[0, 6])


def test_instruction_reaches_the_action(runner):
    obs = scene(seed=5)
    try:
        runner.set_instruction('pick up the cup on the left')
        left = runner.infer(obs).normalized
        runner.set_instruction('pick up the cup on the right')
        right = runner.infer(obs).normalized
    finally:
        runner.set_instruction('pick up the cup')
    assert left[0, 4] > 0.3 and right[0, 4] < -0.3, (left[0], right[0])     # dpitch follows left/right
