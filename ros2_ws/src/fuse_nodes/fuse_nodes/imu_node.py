"""IMU node: publishes ~/data (Imu) and ~/mag (MagneticField) from a serial, replayed or synthetic IMU."""

from __future__ import annotations

import sys
from functools import partial
from typing import List

from rclpy.node import Node
from sensor_msgs.msg import Imu, MagneticField

from fuse_core.imu.config import ImuConfig
from fuse_core.imu.reader import ImuReader
from fuse_core.imu.sample import ImuSample
from fuse_core.imu.sources import make_source
from fuse_core.timing import wall_ns
from fuse_nodes.common import (ERROR, OK, SENSOR_QOS, WARN, Diagnostics, SensorStamp, declare_config,
                               log_at, run_node)
from fuse_nodes.conversions import fill_imu, fill_mag


class ImuNode(Node):
    """Thin shell around fuse_core.imu: parameters, publishers, diagnostics.

    Samples are published from the reader thread as soon as they are decoded. At 200 Hz a
    queue drained by a timer would add up to a timer period of latency and wake the executor
    200 times a second for nothing else; rclpy publishers may be used from any thread, and
    the reader thread is the only one publishing on these topics.
    """

    def __init__(self) -> None:
        super().__init__('imu')
        self.cfg = declare_config(self, ImuConfig)
        self._stamp = SensorStamp(self)
        self.source = make_source(self.cfg)
        self.pub_data = self.create_publisher(Imu, '~/data', SENSOR_QOS)
        self.pub_mag = self.create_publisher(MagneticField, '~/mag', SENSOR_QOS)
        self.reader = ImuReader(self.source, self._publish, backoff_s=self.cfg.reconnect_backoff_s,
                                log=partial(log_at, self.get_logger()))
        self.diagnostics = Diagnostics(self, hardware_id=self.source.describe())
        self.diagnostics.add('imu', self._status)
        if self.source.synthetic:
            self.get_logger().warning(f'SYNTHETIC source: {self.source.describe()} '
                                      '(generated motion, not sensor data)')
        self.get_logger().info(f'{self.source.describe()}, frame_id {self.cfg.frame_id}')
        self.reader.start()

    def _publish(self, samples: List[ImuSample]) -> None:
        cfg = self.cfg
        for s in samples:
            stamp = self._stamp(s.stamp_ns)
            imu = Imu()
            imu.header.stamp = stamp
            imu.header.frame_id = cfg.frame_id
            fill_imu(imu, s.accel, s.gyro, s.orientation, accel_cov=cfg.accel_variance,
                     gyro_cov=cfg.gyro_variance, orientation_cov=cfg.orientation_variance)
            mag = None
            if s.mag is not None:
                mag = MagneticField()
                mag.header.stamp = stamp
                mag.header.frame_id = cfg.frame_id
                fill_mag(mag, s.mag, cfg.mag_variance)
            try:
                self.pub_data.publish(imu)
                if mag is not None:
                    self.pub_mag.publish(mag)
            except Exception:
                # Ctrl-C shuts the context down before close() stops the reader thread;
                # a sample caught in between is simply not published.
                if self.context.ok():
                    raise
                return

    def _status(self):
        values = self.reader.status()
        values['target_hz'] = self.cfg.rate_hz
        values['frame_id'] = self.cfg.frame_id
        if self.reader.last_stamp_ns is not None:
            values['sample_age_s'] = (wall_ns() - self.reader.last_stamp_ns) / 1e9
        prefix = 'SYNTHETIC source; ' if self.source.synthetic else ''
        state = self.reader.state
        if state == 'finished':  # a non-looping replay ended: done, not failed
            return OK, prefix + f'finished: {self.reader.finished_reason}', values
        if state != 'connected':
            return ERROR, prefix + f'{state}: {values["last_error"] or "no device yet"}', values
        age = values.get('sample_age_s')
        if age is None or age > max(0.5, 5.0 / self.cfg.rate_hz):
            return WARN, prefix + 'connected but no recent samples', values
        return OK, prefix + 'streaming', values

    def close(self) -> None:
        self.reader.stop()


def main(args=None):
    return run_node(ImuNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
