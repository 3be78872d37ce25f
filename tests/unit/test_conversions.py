"""numpy <-> sensor_msgs/Image conversions: round trips, row padding, byte order, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from fuse_nodes.conversions import ENCODINGS, ConversionError, array_to_image, image_to_array


def _sample(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(sorted(ENCODINGS).index(encoding))
    if np.issubdtype(dtype, np.floating):
        arr = rng.normal(0, 100, (h, w, channels)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, (h, w, channels), endpoint=True, dtype=dtype)
    return arr


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    arr = _sample(encoding)
    msg = array_to_image(arr, encoding, stamp=Time(sec=3, nanosec=4), frame_id='f')
    dtype, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * msg.height
    assert msg.header.frame_id == 'f' and msg.header.stamp.sec == 3 and msg.header.stamp.nanosec == 4
    back = image_to_array(msg)
    assert back.dtype == dtype and back.shape == (5, 7, channels)
    np.testing.assert_array_equal(back, arr)


def test_two_dimensional_mono_input_round_trips():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    back = image_to_array(array_to_image(arr, 'mono8'))
    np.testing.assert_array_equal(back[:, :, 0], arr)


def test_non_contiguous_input_is_converted_correctly():
    base = _sample('bgr8', 10, 12)
    view = base[::2, ::3]
    np.testing.assert_array_equal(image_to_array(array_to_image(view, 'bgr8')), view)


@pytest.mark.parametrize('encoding,pad', [('bgr8', 4), ('mono16', 6), ('32FC1', 8), ('rgb8', 1)])
def test_row_padding_is_skipped(encoding, pad):
    arr = _sample(encoding, 4, 6)
    row = arr.shape[1] * arr.shape[2] * arr.dtype.itemsize
    padded = np.full((arr.shape[0], row + pad), 0xAB, np.uint8)
    padded[:, :row] = arr.reshape(arr.shape[0], -1).view(np.uint8)
    msg = Image(height=4, width=6, encoding=encoding, is_bigendian=0, step=row + pad)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_array(msg), arr)
    assert image_to_array(msg, copy=True).flags['C_CONTIGUOUS']


def test_big_endian_mono16_is_read_in_native_order():
    values = np.array([[1, 256, 0xFFFE], [4660, 0, 65535]], np.uint16)
    msg = Image(height=2, width=3, encoding='mono16', is_bigendian=1, step=6)
    msg.data = values.astype('>u2').tobytes()
    back = image_to_array(msg)
    assert back.dtype == np.uint16 and back.dtype.byteorder in ('=', '<', '|')
    np.testing.assert_array_equal(back[:, :, 0], values)


def test_wrong_dtype_is_refused():
    with pytest.raises(ConversionError, match='uint8'):
        array_to_image(np.zeros((2, 2, 3), np.float32), 'bgr8')


def test_wrong_channel_count_is_refused():
    with pytest.raises(ConversionError, match='3 channel'):
        array_to_image(np.zeros((2, 2, 4), np.uint8), 'bgr8')


def test_unknown_encoding_is_refused():
    with pytest.raises(ConversionError, match='bayer_rggb8'):
        array_to_image(np.zeros((2, 2), np.uint8), 'bayer_rggb8')
    with pytest.raises(ConversionError, match='yuv422'):
        image_to_array(Image(height=1, width=1, encoding='yuv422', step=2))


def test_short_data_is_refused():
    msg = array_to_image(np.zeros((4, 5, 3), np.uint8), 'bgr8')
    msg.data = bytes(len(msg.data) - 1)
    with pytest.raises(ConversionError, match='bytes'):
        image_to_array(msg)


def test_step_smaller_than_row_is_refused():
    msg = array_to_image(np.zeros((4, 5, 3), np.uint8), 'bgr8')
    msg.step = 14
    with pytest.raises(ConversionError, match='step'):
        image_to_array(msg)


def test_reusing_a_message_overwrites_every_field():
    msg = array_to_image(np.ones((8, 8, 3), np.uint8), 'bgr8', frame_id='a')
    small = np.full((2, 3), 7, np.uint16)
    array_to_image(small, 'mono16', frame_id='b', msg=msg)
    assert (msg.height, msg.width, msg.step, msg.header.frame_id) == (2, 3, 6, 'b')
    np.testing.assert_array_equal(image_to_array(msg)[:, :, 0], small)


@pytest.mark.parametrize('encoding', ['bgr8', 'mono16', '32FC3'])
def test_survives_serialisation(encoding):
    from rclpy.serialization import deserialize_message, serialize_message
    arr = _sample(encoding, 6, 9)
    msg = array_to_image(arr, encoding, stamp=Time(sec=1, nanosec=2), frame_id='cam')
    back = deserialize_message(serialize_message(msg), Image)
    assert back.header.frame_id == 'cam' and back.step == msg.step
    np.testing.assert_array_equal(image_to_array(back), arr)


def test_pixel_data_is_handed_over_as_a_byte_array():
    # An array.array('B') is what the generated setter stores without re-copying or
    # checking each element (ROS_PYTHON_CHECK_FIELDS=1 would make bytes cost ~170 ms).
    msg = array_to_image(np.zeros((4, 4, 3), np.uint8), 'bgr8')
    assert msg.data.typecode == 'B' and len(msg.data) == 48
