"""Deterministic synthetic IMU motion: gravity, a slow rotation, sensor noise (seeded)."""

from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np

from fuse_core.imu.sample import (STANDARD_GRAVITY, ImuSample, Quat, quat_from_euler_zyx,
                                  quat_multiply, quat_rotate_inverse)

#: Earth's field in East-North-Up, tesla (about mid-latitude Europe: 22 uT north, 42 uT down).
EARTH_FIELD_ENU = (0.0, 22e-6, -42e-6)


class SyntheticImuModel:
    """Sample k of a seeded IMU at ``rate_hz``: the same seed gives the same sequence.

    Motion: yaw turns at ``yaw_rate`` rad/s, roll and pitch sway slowly by a few degrees.
    Readings are in ROS frames (body FLU, world ENU): accel is the specific force (gravity
    reaction, +9.81 up at rest) plus white noise, gyro the body rate plus noise, mag the
    Earth's field in the body frame plus noise.
    """

    def __init__(self, rate_hz: float = 200.0, seed: int = 0, yaw_rate: float = 0.3,
                 accel_noise: float = 0.02, gyro_noise: float = 0.002, mag_noise: float = 0.3e-6) -> None:
        if not (rate_hz > 0 and math.isfinite(rate_hz)):
            raise ValueError(f'rate_hz must be positive, got {rate_hz}')
        self.rate_hz = float(rate_hz)
        self.yaw_rate = yaw_rate
        self._noise = (accel_noise, gyro_noise, mag_noise)
        self._rng = np.random.default_rng(seed)
        self.index = 0

    def orientation_at(self, t: float) -> Quat:
        roll = 0.10 * math.sin(2 * math.pi * 0.20 * t)
        pitch = 0.05 * math.sin(2 * math.pi * 0.13 * t)
        return quat_from_euler_zyx(self.yaw_rate * t, pitch, roll)

    def body_rate_at(self, t: float, dt: float = 1e-4) -> tuple:
        q0, q1 = self.orientation_at(t - dt / 2), self.orientation_at(t + dt / 2)
        x, y, z, w = quat_multiply((-q0[0], -q0[1], -q0[2], q0[3]), q1)
        # Small-angle: the rotation vector of the increment is 2 * its vector part.
        s = 2.0 / dt if w >= 0 else -2.0 / dt
        return (x * s, y * s, z * s)

    def next_sample(self) -> ImuSample:
        t = self.index / self.rate_hz
        self.index += 1
        q = self.orientation_at(t)
        an, gn, mn = self._noise
        noise = self._rng.standard_normal(9)
        accel = quat_rotate_inverse(q, (0.0, 0.0, STANDARD_GRAVITY))
        gyro = self.body_rate_at(t)
        mag = quat_rotate_inverse(q, EARTH_FIELD_ENU)
        return ImuSample(
            stamp_ns=0,
            accel=tuple(float(a + an * n) for a, n in zip(accel, noise[0:3])),
            gyro=tuple(float(g + gn * n) for g, n in zip(gyro, noise[3:6])),
            mag=tuple(float(m + mn * n) for m, n in zip(mag, noise[6:9])),
            orientation=q,
            temperature=25.0,
            device_time_us=int(round(t * 1e6)),
        )

    def samples(self, n: Optional[int] = None) -> Iterator[ImuSample]:
        k = 0
        while n is None or k < n:
            yield self.next_sample()
            k += 1
