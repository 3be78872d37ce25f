"""Camera node: publishes ~/image_raw (bgr8) from a real, replayed or synthetic frame source."""

from __future__ import annotations

import sys
from functools import partial

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from fuse_core.camera import CameraConfig, SourceRunner, make_camera_source
from fuse_core.camera.calibration import CalibrationError, CameraCalibration, check_size, load_calibration
from fuse_nodes.common import (ERROR, OK, SENSOR_QOS, WARN, Diagnostics, SensorStamp, declare_config,
                               log_at, run_node)
from fuse_nodes.conversions import array_to_image


class CameraNode(Node):
    """Thin shell around fuse_core.camera: parameters, publisher, diagnostics.

    Frames are published from the acquisition thread the moment they are captured. A timer
    would add up to one timer period of latency (and beat against the camera's own clock,
    duplicating or skipping frames); publishing from the reader thread adds none, and rclpy
    publishers may be used from any thread.
    """

    def __init__(self) -> None:
        super().__init__('camera')
        self.cfg = declare_config(self, CameraConfig)
        self.frame_id = self.cfg.frame_id or f'{self.get_name()}_optical_frame'
        self._stamp = SensorStamp(self)
        self.source = make_camera_source(self.cfg, name=self.get_name())
        self.pub = self.create_publisher(Image, '~/image_raw', SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, '~/camera_info', SENSOR_QOS)
        self.calibration, self.calibration_status = self._load_calibration()
        self.runner = SourceRunner(self.source, self._publish, backoff_s=self.cfg.reconnect_backoff_s,
                                   backoff_max_s=self.cfg.reconnect_backoff_max_s,
                                   read_timeout_s=self.cfg.read_timeout_s,
                                   max_age_s=self.cfg.max_frame_age_s,
                                   log=partial(log_at, self.get_logger()))
        self.diagnostics = Diagnostics(self, hardware_id=self.source.describe())
        self.diagnostics.add('camera', self._status)
        if self.source.synthetic:
            self.get_logger().warning(f'SYNTHETIC source: {self.source.describe()} '
                                      '(test pattern, not camera data)')
        self.get_logger().info(f'{self.source.describe()}: {self.cfg.image_width}x'
                               f'{self.cfg.image_height} @ {self.cfg.framerate:g} Hz, '
                               f'frame_id {self.frame_id}')
        self.runner.start()

    def _load_calibration(self):
        """(calibration or None, what to say about it); a bad file leaves the camera streaming."""
        url = self.cfg.camera_info_url
        if not url:
            self.get_logger().warning('uncalibrated: no camera_info_url, so no ~/camera_info')
            return None, 'uncalibrated (no camera_info_url)'
        try:
            cal = load_calibration(url)
            check_size(cal, self.cfg.image_width, self.cfg.image_height, f'{url}: ')
        except CalibrationError as exc:
            self.get_logger().error(f'no ~/camera_info: {exc}')
            return None, f'calibration refused: {exc}'
        self.get_logger().info(f'calibration from {url} ({cal.camera_name or "unnamed"}, '
                               f'fx {cal.k[0]:.1f} fy {cal.k[4]:.1f})')
        return self._info_msg(cal), f'calibrated from {url}'

    def _info_msg(self, cal: CameraCalibration) -> CameraInfo:
        msg = CameraInfo()
        msg.header.frame_id = self.frame_id
        msg.width, msg.height = cal.width, cal.height
        msg.distortion_model = cal.distortion_model
        msg.d, msg.k, msg.r, msg.p = list(cal.d), list(cal.k), list(cal.r), list(cal.p)
        return msg

    def _publish(self, frame, stamp_ns: int) -> None:
        stamp = self._stamp(stamp_ns)
        msg = array_to_image(frame, 'bgr8', stamp=stamp, frame_id=self.frame_id)
        try:
            self.pub.publish(msg)
            if self.calibration is not None:
                # The same stamp and frame_id as the image it describes (image_transport pairs them).
                self.calibration.header.stamp = stamp
                self.pub_info.publish(self.calibration)
        except Exception:
            # Ctrl-C shuts the context down before close() stops the acquisition thread;
            # a frame caught in between is simply not published.
            if self.context.ok():
                raise

    def _status(self):
        runner = self.runner
        mon = runner.monitor
        values = runner.status()
        values.update(target_hz=self.cfg.framerate, frame_id=self.frame_id,
                      calibration=self.calibration_status)
        prefix = 'SYNTHETIC source; ' if self.source.synthetic else ''
        if runner.state == 'finished':  # a non-looping replay ended: done, not failed
            return OK, prefix + f'finished: {runner.finished_reason}', values
        if not runner.streaming:
            return ERROR, prefix + f'{runner.state}: {mon.last_error or "no device yet"}', values
        age = values.get('frame_age_s')
        if age is None or age > max(self.cfg.max_frame_age_s, 3.0 / self.cfg.framerate):
            return WARN, prefix + 'streaming but frames are late', values
        if self.calibration is None and self.cfg.camera_info_url:
            return WARN, prefix + f'streaming; {self.calibration_status}', values
        return OK, prefix + 'streaming' + ('' if self.calibration is not None else '; uncalibrated'), values

    def close(self) -> None:
        self.runner.stop()


def main(args=None):
    return run_node(CameraNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
