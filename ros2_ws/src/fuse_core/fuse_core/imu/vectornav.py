"""VectorNav ASCII ``$VNYMR`` output: parsing into ROS frames, and encoding.

Line: ``$VNYMR,yaw,pitch,roll,magX,magY,magZ,accelX,accelY,accelZ,gyroX,gyroY,gyroZ*CS``
with CS the 8-bit XOR of the bytes between '$' and '*' as 2 hex digits, or the CRC16-CCITT
as 4 hex digits. Units: angles degrees, magnetic field gauss (x 1e-4 -> tesla), acceleration
m/s^2, angular rate rad/s.

Frame conversion (the only one in the IMU pipeline): VectorNav reports vectors in its body
frame x forward, y right, z down (FRD) and the attitude as 3-2-1 Euler angles (yaw, pitch,
roll) from North-East-Down to that body frame. ROS (REP 103/145) wants body x forward,
y left, z up (FLU) and orientation relative to East-North-Up, so:
vectors (x, y, z)_FLU = (x, -y, -z)_FRD, and q_ENU<-FLU = q_ENU<-NED * q_NED<-FRD * q_FRD<-FLU
where q_ENU<-NED swaps x/y and negates z (a 180 deg turn about (1, 1, 0)/sqrt 2) and
q_FRD<-FLU is a 180 deg turn about x. Example: yaw 90 deg (nose east) gives the identity.
"""

from __future__ import annotations

import math
from typing import List

from fuse_core.imu.lines import ChecksummedLineParser, frame_line, parse_floats
from fuse_core.imu.sample import (ImuSample, Quat, Vec3, euler_zyx_from_quat, quat_from_euler_zyx,
                                  quat_multiply)

GAUSS_TO_TESLA = 1e-4
_S = math.sqrt(0.5)
Q_ENU_FROM_NED: Quat = (_S, _S, 0.0, 0.0)
Q_FRD_FROM_FLU: Quat = (1.0, 0.0, 0.0, 0.0)
_CONJ = (-1.0, -1.0, -1.0, 1.0)


def frd_to_flu(v: Vec3) -> Vec3:
    return (v[0], -v[1], -v[2])


def orientation_ned_frd_to_enu_flu(q_ned_frd: Quat) -> Quat:
    q = quat_multiply(quat_multiply(Q_ENU_FROM_NED, q_ned_frd), Q_FRD_FROM_FLU)
    return _canonical(q)


def orientation_enu_flu_to_ned_frd(q_enu_flu: Quat) -> Quat:
    inv_enu_ned = tuple(a * b for a, b in zip(Q_ENU_FROM_NED, _CONJ))
    inv_frd_flu = tuple(a * b for a, b in zip(Q_FRD_FROM_FLU, _CONJ))
    return _canonical(quat_multiply(quat_multiply(inv_enu_ned, q_enu_flu), inv_frd_flu))


def _canonical(q: Quat) -> Quat:
    """Unit quaternion with w >= 0 (q and -q are the same rotation)."""
    n = math.sqrt(sum(c * c for c in q))
    s = (1.0 if q[3] >= 0 else -1.0) / n
    return tuple(c * s for c in q)


class VectorNavParser(ChecksummedLineParser):
    """Parses ``$VNYMR`` lines; other ``$VN`` lines with a good checksum are valid but yield nothing."""

    protocol = 'vectornav'
    allow_crc16 = True

    def _decode(self, fields: List[str]):
        if not fields[0].startswith('VN'):
            return False
        if fields[0] != 'VNYMR':
            return None
        if len(fields) != 13:
            return False
        values = parse_floats(fields[1:])
        if values is None:
            return False
        yaw, pitch, roll = (math.radians(a) for a in values[0:3])
        q_ned_frd = quat_from_euler_zyx(yaw, pitch, roll)
        return ImuSample(
            stamp_ns=0,
            accel=frd_to_flu(values[6:9]),
            gyro=frd_to_flu(values[9:12]),
            mag=frd_to_flu(tuple(m * GAUSS_TO_TESLA for m in values[3:6])),
            orientation=orientation_ned_frd_to_enu_flu(q_ned_frd),
        )


def encode_vnymr(sample: ImuSample, crc16: bool = False) -> bytes:
    """The ``$VNYMR`` line a device would send for ``sample`` (given in ROS frames)."""
    q = sample.orientation if sample.orientation is not None else (0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5))
    yaw, pitch, roll = (math.degrees(a) for a in euler_zyx_from_quat(orientation_enu_flu_to_ned_frd(q)))
    mag = sample.mag if sample.mag is not None else (0.0, 0.0, 0.0)
    mx, my, mz = (m / GAUSS_TO_TESLA for m in frd_to_flu(mag))
    ax, ay, az = frd_to_flu(sample.accel)
    gx, gy, gz = frd_to_flu(sample.gyro)
    body = (f'VNYMR,{yaw:+08.3f},{pitch:+08.3f},{roll:+08.3f},{mx:+07.4f},{my:+07.4f},{mz:+07.4f},'
            f'{ax:+07.3f},{ay:+07.3f},{az:+07.3f},{gx:+09.6f},{gy:+09.6f},{gz:+09.6f}')
    return frame_line(body, crc16=crc16)
