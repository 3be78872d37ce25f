"""Per-sample preprocessing of model inputs: colour order, resizing, tactile difference, checks."""

import numpy as np
import pytest

from fuse_core.bundle.manifest import InputSpec, Preprocess
from fuse_core.errors import ConfigError
from fuse_core.sync.preprocess import PreprocessError, make_preprocessor, resize


def rgb_spec(size=(256, 256)):
    return InputSpec('image_primary', (*size, 3), 'uint8', 'camera_primary',
                     Preprocess('rgb_image', size=size, interpolation='lanczos'))


def tactile_spec(size=(224, 224)):
    return InputSpec('image_digit_left', (*size, 3), 'int16', 'digit_left',
                     Preprocess('tactile_minus_background', size=size, interpolation='lanczos'))


def spectro_spec():
    return InputSpec('mel_spectro', (128, 128), 'float32', 'audio', Preprocess('passthrough'))


def bgr_test_image(h=480, w=640):
    """Left half pure blue, right half pure red, in BGR channel order."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)      # blue in BGR
    img[:, w // 2:] = (0, 0, 255)       # red in BGR
    return img


def test_rgb_image_flips_bgr_to_rgb_and_resizes():
    pre = make_preprocessor(rgb_spec())
    out = pre.finish(pre.prepare(bgr_test_image(), 'bgr8'))
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    # Left is blue: RGB (0, 0, 255); right is red: RGB (255, 0, 0).
    assert tuple(out[128, 10]) == (0, 0, 255)
    assert tuple(out[128, 245]) == (255, 0, 0)
    assert out.flags['C_CONTIGUOUS']


def test_rgb8_input_is_not_flipped():
    pre = make_preprocessor(rgb_spec((4, 4)))
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 200
    out = pre.prepare(img, 'rgb8')
    assert tuple(out[0, 0]) == (200, 0, 0)


def test_unknown_encoding_is_refused_with_stream_name():
    pre = make_preprocessor(rgb_spec())
    with pytest.raises(PreprocessError, match='camera_primary.*mono8'):
        pre.prepare(np.zeros((480, 640, 3), np.uint8), 'mono8')


def test_downscale_is_antialiased():
    # A one-pixel checkerboard averages to mid grey when shrunk with antialiasing; a
    # point-sampling lanczos shrink would keep extreme values (aliasing).
    board = ((np.indices((480, 640)).sum(axis=0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[:, :, None], 3, axis=2)
    out = resize(img, (120, 160), 'lanczos')
    assert out.shape == (120, 160, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 1)


def test_upscale_uses_manifest_interpolation_and_keeps_size():
    img = np.full((64, 64, 3), 77, np.uint8)
    out = resize(img, (128, 96), 'lanczos')
    assert out.shape == (128, 96, 3) and np.all(out == 77)


def test_tactile_is_signed_int16_difference_of_resized_rgb():
    pre = make_preprocessor(tactile_spec())
    background = np.full((240, 320, 3), (10, 100, 200), np.uint8)     # BGR
    frame = np.full((240, 320, 3), (60, 40, 200), np.uint8)           # BGR
    pre.set_background(background, 'bgr8')
    out = pre.finish(pre.prepare(frame, 'bgr8'))
    assert out.shape == (224, 224, 3) and out.dtype == np.int16
    # RGB order: R = 200-200, G = 40-100 (negative), B = 60-10.
    assert tuple(out[100, 100]) == (0, -60, 50)


def test_tactile_full_range_difference_does_not_wrap():
    pre = make_preprocessor(tactile_spec((2, 2)))
    pre.set_background(np.full((2, 2, 3), 255, np.uint8), 'rgb8')
    out = pre.finish(pre.prepare(np.zeros((2, 2, 3), np.uint8), 'rgb8'))
    assert np.all(out == -255)


def test_tactile_without_background_is_unavailable_with_reason():
    pre = make_preprocessor(tactile_spec())
    prepared = pre.prepare(np.zeros((240, 320, 3), np.uint8), 'bgr8')
    assert pre.finish(prepared) is None
    assert pre.unavailable_reason() == 'no DIGIT background for digit_left'
    version = pre.version()
    pre.set_background(np.zeros((240, 320, 3), np.uint8), 'bgr8')
    assert pre.version() != version and pre.unavailable_reason() == ''
    assert pre.finish(prepared).dtype == np.int16


def test_passthrough_checks_shape_and_returns_float32():
    pre = make_preprocessor(spectro_spec())
    spec = np.linspace(-80, 0, 128 * 128, dtype=np.float32).reshape(128, 128, 1)
    out = pre.prepare(spec, '32FC1')
    assert out.shape == (128, 128) and out.dtype == np.float32
    np.testing.assert_array_equal(out, spec[:, :, 0])
    with pytest.raises(PreprocessError, match=r'mel_spectro.*\[128, 128\]'):
        pre.prepare(np.zeros((64, 128, 1), np.float32), '32FC1')
    with pytest.raises(PreprocessError, match='dtype'):
        pre.prepare(np.zeros((128, 128, 1), np.uint8), 'mono8')


def test_prepare_counts_calls():
    pre = make_preprocessor(rgb_spec((8, 8)))
    for _ in range(3):
        pre.prepare(np.zeros((16, 16, 3), np.uint8), 'bgr8')
    assert pre.prepare_calls == 3


def test_manifest_shape_disagreeing_with_op_is_a_config_error():
    bad = InputSpec('image_primary', (256, 256, 3), 'int16', 'camera_primary',
                    Preprocess('rgb_image', size=(256, 256)))
    with pytest.raises(ConfigError, match='image_primary'):
        make_preprocessor(bad)
    with pytest.raises(ConfigError, match="op 'blur'"):
        make_preprocessor({'name': 'x', 'shape': [1], 'dtype': 'uint8', 'stream': 's',
                           'preprocess': {'op': 'blur'}})
