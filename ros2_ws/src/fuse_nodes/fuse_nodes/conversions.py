"""The one place where numpy arrays become ROS messages and back (images, IMU, observation windows).

Images are converted without per-pixel Python: the array's bytes are handed to the message
in one copy, and reading honours ``step`` (row padding) with a strided view.
"""

from __future__ import annotations

import array as _array
import sys
from typing import List, Optional, Tuple

import numpy as np
from sensor_msgs.msg import Image, Imu, MagneticField

from fuse_core.sync.window import TensorWindow, Window
from fuse_interfaces.msg import ObservationTensor, ObservationWindow
from fuse_nodes.common import ns_to_time, time_to_ns

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


#: Largest tensor one observation window may describe (bytes, all W steps); FuSe's biggest
#: input is ~400 kB a step.
MAX_TENSOR_BYTES = 64 * 1024 * 1024
_DTYPES = ('uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'int64', 'uint64', 'float16', 'float32',
           'float64', 'bool')


def _dtype_label(dt: np.dtype) -> str:
    native = f'{sys.byteorder}-endian'
    order = {'<': 'little-endian', '>': 'big-endian', '=': native, '|': 'no byte order'}[dt.byteorder]
    return f'{dt.name} ({order})'


def tensor_to_msg(t: TensorWindow, msg: Optional[ObservationTensor] = None) -> ObservationTensor:
    """A TensorWindow as a fuse_interfaces/ObservationTensor: only the steps that are not None
    travel in `data` (see WindowSender), each in one copy."""
    # check_fields=True keeps our array.array for `data` instead of copying it again.
    msg = msg if msg is not None else ObservationTensor(check_fields=True)
    msg.name = t.name
    msg.dtype = np.dtype(t.dtype).name
    msg.shape = [len(t.steps), *(int(s) for s in t.shape)]
    carried = [j for j, step in enumerate(t.steps) if step is not None]
    msg.data_steps = carried
    data = _array.array('B')
    for j in carried:
        data.frombytes(np.ascontiguousarray(t.steps[j]).reshape(-1).view(np.uint8))
    msg.data = data
    msg.valid = [bool(v) for v in t.valid]
    msg.sample_stamps = [ns_to_time(s) for s in t.sample_stamps_ns]
    msg.sample_ids = [int(i) for i in t.sample_ids]
    return msg


def msg_to_tensor(msg) -> TensorWindow:
    """A fuse_interfaces/ObservationTensor as a TensorWindow whose uncarried steps are None.

    The carried steps are read-only views on the message's bytes. Every malformed tensor is a
    ConversionError naming the problem: unknown or non-native dtypes (with the byte order in
    the message), a shape whose byte count would overflow or exceed MAX_TENSOR_BYTES (computed
    with Python integers, so [65536] x 4 is not 0), data_steps out of order or range, and data
    of the wrong length.
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
    if not 1 <= len(shape) <= 8:
        raise ConversionError(f'tensor {name!r}: {len(shape)} dimensions (1 to 8: the window axis first)')
    step_bytes, extent = dt.itemsize, dt.itemsize
    for i, dim in enumerate(shape):
        if i:
            step_bytes *= dim    # Python int: no wrap-around
        extent *= max(dim, 1)    # an empty axis next to huge ones is refused too
        if extent > MAX_TENSOR_BYTES:
            raise ConversionError(f'tensor {name!r}: shape {list(shape)[:8]} {dt.name} is over '
                                  f'{MAX_TENSOR_BYTES} bytes')
    W, step_shape = shape[0], shape[1:]
    carried = [int(j) for j in msg.data_steps]
    if any(b <= a for a, b in zip(carried, carried[1:])) or any(j >= W for j in carried):
        raise ConversionError(f'tensor {name!r}: data_steps {carried[:8]} are not ascending steps '
                              f'of a {W}-step window')
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if buf.size != len(carried) * step_bytes:
        raise ConversionError(f'tensor {name!r}: {buf.size} bytes for {len(carried)} step(s) of shape '
                              f'{list(step_shape)} {dt.name} (expected {len(carried) * step_bytes})')
    steps: List[Optional[np.ndarray]] = [None] * W
    for k, j in enumerate(carried):
        step = buf[k * step_bytes:(k + 1) * step_bytes].view(dt).reshape(step_shape)
        step.flags.writeable = False
        steps[j] = step
    return TensorWindow(name=str(msg.name), dtype=dt, shape=step_shape, steps=steps,
                        valid=[bool(v) for v in msg.valid],
                        sample_stamps_ns=[time_to_ns(s) for s in msg.sample_stamps],
                        sample_ids=[int(i) for i in msg.sample_ids])


def window_to_msg(w: Window, frame_id: str) -> ObservationWindow:
    """A fuse_core Window, as WindowSender.carried leaves it, as a fuse_interfaces/ObservationWindow."""
    msg = ObservationWindow()
    msg.header.stamp = ns_to_time(w.stamp_ns)
    msg.header.frame_id = frame_id
    msg.tick_index = w.tick_index
    msg.window_size = w.window_size
    msg.step_stamps = [ns_to_time(s) for s in w.step_stamps_ns]
    msg.timestep_pad_mask = list(w.timestep_pad_mask)
    msg.tensors = [tensor_to_msg(t) for t in w.tensors]
    msg.newest_sample_stamp = ns_to_time(w.newest_sample_ns)
    msg.stale_streams = list(w.stale_streams)
    return msg


def msg_to_window(msg) -> Window:
    """A fuse_interfaces/ObservationWindow as a fuse_core Window for WindowReceiver.receive.

    Raises ConversionError for a malformed tensor or a window_size that disagrees with the
    step stamps or a tensor's window axis.
    """
    W = len(msg.step_stamps)
    if int(msg.window_size) != W:
        raise ConversionError(f'window_size {int(msg.window_size)} but {W} step stamps')
    tensors = [msg_to_tensor(t) for t in msg.tensors]
    for t in tensors:
        if len(t.steps) != W:
            raise ConversionError(f'tensor {t.name[:64]!r}: {len(t.steps)} steps in a window of {W}')
    return Window(tick_index=int(msg.tick_index), stamp_ns=time_to_ns(msg.header.stamp),
                  step_stamps_ns=[time_to_ns(s) for s in msg.step_stamps],
                  timestep_pad_mask=[bool(p) for p in msg.timestep_pad_mask], tensors=tensors,
                  newest_sample_ns=time_to_ns(msg.newest_sample_stamp),
                  stale_streams=[str(s) for s in msg.stale_streams])
