"""The one place where numpy arrays become ROS messages and back (images, IMU, tensors).

Images are converted without per-pixel Python: the array's bytes are handed to the message
in one copy, and reading honours ``step`` (row padding) with a strided view.
"""

from __future__ import annotations

import array as _array
import sys
from typing import Optional, Tuple

import numpy as np
from sensor_msgs.msg import Image, Imu, MagneticField

# The encodings table, ConversionError and image_to_array live in fuse_core.images (the dataset
# exporter reads bag images without ROS); re-exported here for the nodes.
from fuse_core.images import ENCODINGS, ConversionError, image_to_array  # noqa: F401


def array_to_image(array: np.ndarray, encoding: str, stamp=None, frame_id: str = '',
                   msg: Optional[Image] = None) -> Image:
    """Build a sensor_msgs/Image from an (H, W) or (H, W, C) array; step = W * C * itemsize."""
    if encoding not in ENCODINGS:
        raise ConversionError(f'unsupported image encoding {encoding!r}')
    dtype, channels = ENCODINGS[encoding]
    if array.dtype != dtype:
        raise ConversionError(f'encoding {encoding} needs dtype {np.dtype(dtype).name}, '
                              f'got {array.dtype.name}')
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ConversionError(f'encoding {encoding} needs {channels} channel(s), got shape {array.shape}')
    h, w, _ = array.shape
    # check_fields=True makes the data setter keep our array.array instead of copying it
    # again (the copy costs ~1 ms at 640x480); the other fields' checks are cheap.
    msg = msg if msg is not None else Image(check_fields=True)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(w * channels * array.dtype.itemsize)
    msg.data = _byte_array(array)
    return msg


def _byte_array(values: np.ndarray) -> _array.array:
    """The array's bytes as array.array('B'), in one copy.

    A generated uint8[] setter with field checks on keeps an array.array('B') as it is;
    given bytes it checks every element in Python (~170 ms for a 640x480 bgr8 image).
    """
    out = _array.array('B')
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return out


def fill_imu(msg: Imu, accel: Tuple[float, float, float], gyro: Tuple[float, float, float],
             orientation: Optional[Tuple[float, float, float, float]] = None,
             accel_cov: float = 0.0, gyro_cov: float = 0.0, orientation_cov: float = 0.0) -> Imu:
    """Fill sensor_msgs/Imu in SI units (m/s^2, rad/s, quaternion x y z w).

    Covariance convention (REP 145): all zeros = unknown; element 0 = -1 = not provided
    (used for orientation when the IMU gives none). A positive variance is put on the diagonal.
    """
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = map(float, accel)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, gyro)
    msg.linear_acceleration_covariance = _diag(accel_cov)
    msg.angular_velocity_covariance = _diag(gyro_cov)
    if orientation is None:
        msg.orientation.x = msg.orientation.y = msg.orientation.z = 0.0
        msg.orientation.w = 0.0
        cov = [0.0] * 9
        cov[0] = -1.0
        msg.orientation_covariance = cov
    else:
        (msg.orientation.x, msg.orientation.y, msg.orientation.z,
         msg.orientation.w) = map(float, orientation)
        msg.orientation_covariance = _diag(orientation_cov)
    return msg


def fill_mag(msg: MagneticField, field_tesla: Tuple[float, float, float], cov: float = 0.0) -> MagneticField:
    """Fill sensor_msgs/MagneticField (tesla)."""
    msg.magnetic_field.x, msg.magnetic_field.y, msg.magnetic_field.z = map(float, field_tesla)
    msg.magnetic_field_covariance = _diag(cov)
    return msg


def _diag(var: float):
    return [float(var), 0.0, 0.0, 0.0, float(var), 0.0, 0.0, 0.0, float(var)]


def array_to_tensor(msg, name: str, array: np.ndarray, valid, sample_stamps):
    """Fill a fuse_interfaces/ObservationTensor from a (W, ...) array."""
    msg.name = name
    msg.dtype = array.dtype.name
    msg.shape = [int(s) for s in array.shape]
    msg.data = _byte_array(array)
    msg.valid = [bool(v) for v in valid]
    msg.sample_stamps = list(sample_stamps)
    return msg


#: Largest tensor one observation window may carry (bytes); FuSe's biggest input is ~400 kB.
MAX_TENSOR_BYTES = 64 * 1024 * 1024
_DTYPES = ('uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'int64', 'uint64', 'float16', 'float32',
           'float64', 'bool')


def _dtype_label(dt: np.dtype) -> str:
    native = f'{sys.byteorder}-endian'
    order = {'<': 'little-endian', '>': 'big-endian', '=': native, '|': 'no byte order'}[dt.byteorder]
    return f'{dt.name} ({order})'


def tensor_to_array(msg) -> np.ndarray:
    """View a fuse_interfaces/ObservationTensor as an array of its declared dtype and shape.

    Every malformed tensor is a ConversionError naming the problem: unknown or non-native dtypes
    (with the byte order in the message), a shape whose byte count would overflow or exceed
    MAX_TENSOR_BYTES (computed with Python integers, so [65536] x 4 is not 0), and data of
    the wrong length.
    """
    name = str(msg.name)[:64]
    try:
        dt = np.dtype(msg.dtype)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f'tensor {name!r}: unknown dtype {str(msg.dtype)[:32]!r}') from exc
    if dt.name not in _DTYPES or dt.hasobject:
        raise ConversionError(f'tensor {name!r}: dtype {str(msg.dtype)[:32]!r} is not a plain numeric type')
    if dt.byteorder not in ('=', '|') and dt.byteorder != np.dtype(dt.name).byteorder:
        raise ConversionError(f'tensor {name!r}: dtype {_dtype_label(dt)}, expected '
                              f'{_dtype_label(np.dtype(dt.name))}')
    shape = tuple(int(s) for s in msg.shape)
    if len(shape) > 8:
        raise ConversionError(f'tensor {name!r}: {len(shape)} dimensions (at most 8)')
    expected, extent = dt.itemsize, dt.itemsize
    for dim in shape:
        expected *= dim          # Python int: no wrap-around
        extent *= max(dim, 1)    # an empty axis next to huge ones is refused too
        if extent > MAX_TENSOR_BYTES:
            raise ConversionError(f'tensor {name!r}: shape {list(shape)[:8]} {dt.name} is over '
                                  f'{MAX_TENSOR_BYTES} bytes')
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if buf.size != expected:
        raise ConversionError(f'tensor {name!r}: {buf.size} bytes for shape {shape} '
                              f'{dt.name} (expected {expected})')
    return buf.view(dt).reshape(shape)
