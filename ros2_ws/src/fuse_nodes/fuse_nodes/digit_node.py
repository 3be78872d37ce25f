"""DIGIT node: publishes ~/image_raw and a latched ~/background; ~/capture_background service."""

from __future__ import annotations

import sys
import threading

from sensor_msgs.msg import Image

from fuse_core.digit import BackgroundCapture, DigitConfig, GlitchDetector, make_digit_source
from fuse_interfaces.srv import CaptureBackground
from fuse_nodes.common import LATCHED_QOS, OK, SENSOR_QOS, WARN, run_node
from fuse_nodes.conversions import array_to_image
from fuse_nodes.sensor_node import SensorNode


class DigitNode(SensorNode):
    """Tactile images; glitched frames are dropped before publishing and never enter a background."""

    config_class = DigitConfig
    synthetic_note = 'generated tactile images, not sensor data'

    def __init__(self) -> None:
        super().__init__('digit')
        cfg = self.cfg
        self.glitches = GlitchDetector(cfg.glitch_threshold, cfg.glitch_min_rows)
        self.glitched_frames = 0
        self.background = BackgroundCapture()
        self._background_lock = threading.Lock()
        self._backgrounds_published = 0
        self.pub = self.create_publisher(Image, '~/image_raw', SENSOR_QOS)
        self.background_pub = self.create_publisher(Image, '~/background', LATCHED_QOS)
        self.srv = self.create_service(CaptureBackground, '~/capture_background', self._capture)
        if cfg.capture_background_on_start:
            self.background.request(cfg.background_frames)
        rows, cols, _ = cfg.shape
        self.start(f'{self.source.describe()}: {cfg.resolution} {cfg.orientation} ({rows} rows x {cols} cols) '
                   f'@ {cfg.framerate} Hz, frame_id {self.frame_id}')

    def make_source(self):
        return make_digit_source(self.cfg, name=self.get_name())

    def _image(self, frame, stamp_ns: int) -> Image:
        return array_to_image(frame, 'bgr8', stamp=self.stamp(stamp_ns), frame_id=self.frame_id)

    def on_item(self, item) -> None:
        frame, stamp_ns = item
        if self.glitches.is_glitched(frame):
            self.glitched_frames += 1
            return
        if not self.guarded_publish(self.pub, self._image(frame, stamp_ns)):
            return
        background = self.background.offer(frame, stamp_ns)
        if background is not None:
            with self._background_lock:
                if not self.guarded_publish(self.background_pub, self._image(background, stamp_ns)):
                    return
                self._backgrounds_published += 1
            self.get_logger().info(f'background captured and latched ({background.shape[0]}x'
                                   f'{background.shape[1]})')

    def _capture(self, request, response):
        n = int(request.num_frames) or self.cfg.background_frames
        if not self.reader.connected:
            response.success = False
            response.message = f'{self.source.describe()} is not streaming ({self.reader.state}: ' \
                               f'{self.reader.monitor.last_error or "no device yet"})'
            return response
        ticket = self.background.request(n)
        # Room for glitched frames that are skipped, and for a slow start.
        timeout = 2.0 + 3.0 * n / self.cfg.framerate
        if self.background.wait(ticket, timeout) is None:
            self.background.cancel()
            response.success = False
            response.message = f'no {n} good frames within {timeout:.1f} s'
        else:
            response.success = True
            response.message = f'background averaged over {n} frames and latched on ' \
                               f'{self.background_pub.topic_name}'
        return response

    def status_values(self):
        return dict(target_hz=self.cfg.framerate, glitched_frames=self.glitched_frames,
                    orientation=self.cfg.orientation, frame_id=self.frame_id,
                    backgrounds_published=self._backgrounds_published)

    def streaming_status(self, values):
        if self._backgrounds_published == 0:
            return WARN, 'streaming, no background captured yet'
        return OK, 'streaming'


def main(args=None):
    return run_node(DigitNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
