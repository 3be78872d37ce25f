"""Image messages (anything with the sensor_msgs/Image fields) <-> numpy, without ROS."""

from __future__ import annotations

import numpy as np

from fuse_core.errors import FuseError

# encoding -> (dtype, channels)
ENCODINGS = {
    'bgr8': (np.uint8, 3), 'rgb8': (np.uint8, 3), 'bgra8': (np.uint8, 4), 'rgba8': (np.uint8, 4),
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3),
    'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1), '16SC1': (np.int16, 1),
    '16SC3': (np.int16, 3), '32FC1': (np.float32, 1), '32FC3': (np.float32, 3),
}


class ConversionError(FuseError, ValueError):
    """A message cannot be turned into an array (or back); the message says why."""


def image_to_array(msg, copy: bool = False) -> np.ndarray:
    """View a sensor_msgs/Image as an array of shape (H, W, C); honours row padding (step).

    Returns a view on the message buffer unless copy=True.
    """
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f'unsupported image encoding {msg.encoding!r}')
    dtype, channels = ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    row_bytes = msg.width * channels * dt.itemsize
    if msg.step < row_bytes:
        raise ConversionError(f'image step {msg.step} is smaller than a row '
                              f'({msg.width} px * {channels} ch * {dt.itemsize} B = {row_bytes})')
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if buf.size < msg.step * msg.height:
        raise ConversionError(f'image data has {buf.size} bytes, expected step*height = '
                              f'{msg.step * msg.height}')
    rows = buf[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    arr = rows.view(dt).reshape(msg.height, msg.width, channels)
    if dt.byteorder == '>':
        arr = arr.astype(dt.newbyteorder('='))
    return arr.copy() if copy else arr
