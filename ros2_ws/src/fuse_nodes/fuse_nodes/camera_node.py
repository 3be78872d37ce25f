"""Camera node: publishes ~/image_raw (bgr8) from a real, replayed or synthetic frame source."""

from __future__ import annotations

import sys

from sensor_msgs.msg import CameraInfo, Image

from fuse_core.camera import CameraConfig, make_camera_source
from fuse_core.camera.calibration import CalibrationError, CameraCalibration, check_size, load_calibration
from fuse_nodes.common import OK, SENSOR_QOS, WARN, run_node
from fuse_nodes.conversions import array_to_image
from fuse_nodes.sensor_node import SensorNode


class CameraNode(SensorNode):
    """~/image_raw, and ~/camera_info (same stamp and frame_id) when calibrated."""

    config_class = CameraConfig
    frame_id_suffix = '_optical_frame'
    synthetic_note = 'test pattern, not camera data'

    def __init__(self) -> None:
        super().__init__('camera')
        cfg = self.cfg
        self.pub = self.create_publisher(Image, '~/image_raw', SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, '~/camera_info', SENSOR_QOS)
        self.calibration, self.calibration_status = self._load_calibration()
        self.start(f'{self.source.describe()}: {cfg.image_width}x{cfg.image_height} @ {cfg.framerate:g} Hz, '
                   f'frame_id {self.frame_id}')

    def make_source(self):
        return make_camera_source(self.cfg, name=self.get_name())

    def _load_calibration(self):
        """(CameraInfo or None, what to say about it); a bad file leaves the camera streaming."""
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

    def on_item(self, item) -> None:
        frame, stamp_ns = item
        stamp = self.stamp(stamp_ns)
        image = array_to_image(frame, 'bgr8', stamp=stamp, frame_id=self.frame_id)
        if self.guarded_publish(self.pub, image) and self.calibration is not None:
            # The same stamp and frame_id as the image it describes (image_transport pairs them).
            self.calibration.header.stamp = stamp
            self.guarded_publish(self.pub_info, self.calibration)

    def status_values(self):
        return dict(target_hz=self.cfg.framerate, frame_id=self.frame_id, calibration=self.calibration_status)

    def late_after_s(self):
        return max(self.cfg.max_frame_age_s, 3.0 / self.cfg.framerate)

    def streaming_status(self, values):
        level, message = super().streaming_status(values)
        if level != OK:
            return level, message
        if self.calibration is None and self.cfg.camera_info_url:
            return WARN, f'streaming; {self.calibration_status}'
        return OK, 'streaming' + ('' if self.calibration is not None else '; uncalibrated')


def main(args=None):
    return run_node(CameraNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
