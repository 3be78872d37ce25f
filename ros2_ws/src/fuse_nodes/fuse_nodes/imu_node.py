"""IMU node: publishes ~/data (Imu) and ~/mag (MagneticField) from a serial, replayed or synthetic IMU."""

from __future__ import annotations

import sys
from typing import List

from sensor_msgs.msg import Imu, MagneticField

from fuse_core.imu.config import ImuConfig
from fuse_core.imu.sample import ImuSample
from fuse_core.imu.sources import make_source
from fuse_nodes.common import SENSOR_QOS, run_node
from fuse_nodes.conversions import fill_imu, fill_mag
from fuse_nodes.sensor_node import SensorNode


class ImuNode(SensorNode):
    """One Imu (and, where the device measures it, one MagneticField) per decoded sample.

    At 200 Hz publishing from the reader thread also spares the executor 200 wake-ups a second.
    """

    config_class = ImuConfig
    synthetic_note = 'generated motion, not sensor data'

    def __init__(self) -> None:
        super().__init__('imu')
        self.pub_data = self.create_publisher(Imu, '~/data', SENSOR_QOS)
        self.pub_mag = self.create_publisher(MagneticField, '~/mag', SENSOR_QOS)
        self.start(f'{self.source.describe()}, frame_id {self.cfg.frame_id}')

    def make_source(self):
        return make_source(self.cfg)

    def on_item(self, samples: List[ImuSample]) -> None:
        cfg = self.cfg
        for s in samples:
            stamp = self.stamp(s.stamp_ns)
            imu = Imu()
            imu.header.stamp = stamp
            imu.header.frame_id = self.frame_id
            fill_imu(imu, s.accel, s.gyro, s.orientation, accel_cov=cfg.accel_variance,
                     gyro_cov=cfg.gyro_variance, orientation_cov=cfg.orientation_variance)
            if not self.guarded_publish(self.pub_data, imu):
                return
            if s.mag is not None:
                mag = MagneticField()
                mag.header.stamp = stamp
                mag.header.frame_id = self.frame_id
                fill_mag(mag, s.mag, cfg.mag_variance)
                self.guarded_publish(self.pub_mag, mag)

    def status_values(self):
        return {'target_hz': self.cfg.rate_hz, 'frame_id': self.frame_id}

    def late_after_s(self):
        return max(0.5, 5.0 / self.cfg.rate_hz)


def main(args=None):
    return run_node(ImuNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
