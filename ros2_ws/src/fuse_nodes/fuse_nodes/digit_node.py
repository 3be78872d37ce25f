"""DIGIT node: publishes ~/image_raw and a latched ~/background; ~/capture_background service."""

from __future__ import annotations

import sys
import threading
from functools import partial

from rclpy.node import Node
from sensor_msgs.msg import Image

from fuse_core.camera import SourceRunner
from fuse_core.digit import BackgroundCapture, DigitConfig, GlitchDetector, make_digit_source
from fuse_interfaces.srv import CaptureBackground
from fuse_nodes.common import (ERROR, OK, LATCHED_QOS, SENSOR_QOS, WARN, Diagnostics, SensorStamp,
                               declare_config, log_at, run_node)
from fuse_nodes.conversions import array_to_image


class DigitNode(Node):
    """Thin shell around fuse_core.digit: parameters, publishers, service, diagnostics.

    As in the camera node, frames are published from the acquisition thread as soon as they
    are read (no timer latency). Glitched frames are dropped before publishing and never
    enter a background average.
    """

    def __init__(self) -> None:
        super().__init__('digit')
        self.cfg = declare_config(self, DigitConfig)
        self.frame_id = self.cfg.frame_id or f'{self.get_name()}_frame'
        self._stamp = SensorStamp(self)
        self.source = make_digit_source(self.cfg, name=self.get_name())
        self.glitches = GlitchDetector(self.cfg.glitch_threshold, self.cfg.glitch_min_rows)
        self.glitched_frames = 0
        self.background = BackgroundCapture()
        self._background_lock = threading.Lock()
        self._backgrounds_published = 0
        self.pub = self.create_publisher(Image, '~/image_raw', SENSOR_QOS)
        self.background_pub = self.create_publisher(Image, '~/background', LATCHED_QOS)
        self.srv = self.create_service(CaptureBackground, '~/capture_background', self._capture)
        self.runner = SourceRunner(self.source, self._on_frame, backoff_s=self.cfg.reconnect_backoff_s,
                                   backoff_max_s=self.cfg.reconnect_backoff_max_s,
                                   read_timeout_s=self.cfg.read_timeout_s,
                                   max_age_s=self.cfg.max_frame_age_s,
                                   log=partial(log_at, self.get_logger()))
        self.diagnostics = Diagnostics(self, hardware_id=self.source.describe())
        self.diagnostics.add('digit', self._status)
        if self.source.synthetic:
            self.get_logger().warning(f'SYNTHETIC source: {self.source.describe()} '
                                      '(generated tactile images, not sensor data)')
        rows, cols, _ = self.cfg.shape
        self.get_logger().info(f'{self.source.describe()}: {self.cfg.resolution} {self.cfg.orientation} '
                               f'({rows} rows x {cols} cols) @ {self.cfg.framerate} Hz, '
                               f'frame_id {self.frame_id}')
        if self.cfg.capture_background_on_start:
            self.background.request(self.cfg.background_frames)
        self.runner.start()

    def _on_frame(self, frame, stamp_ns: int) -> None:
        if self.glitches.is_glitched(frame):
            self.glitched_frames += 1
            return
        msg = array_to_image(frame, 'bgr8', stamp=self._stamp(stamp_ns), frame_id=self.frame_id)
        try:
            self.pub.publish(msg)
        except Exception:
            # Ctrl-C shuts the context down before close() stops the acquisition thread;
            # a frame caught in between is simply not published.
            if self.context.ok():
                raise
            return
        background = self.background.offer(frame, stamp_ns)
        if background is not None:
            self._publish_background(background, stamp_ns)

    def _publish_background(self, background, stamp_ns: int) -> None:
        with self._background_lock:
            self.background_pub.publish(array_to_image(background, 'bgr8', stamp=self._stamp(stamp_ns),
                                                       frame_id=self.frame_id))
            self._backgrounds_published += 1
        self.get_logger().info(f'background captured and latched ({background.shape[0]}x'
                               f'{background.shape[1]})')

    def _capture(self, request, response):
        n = int(request.num_frames) or self.cfg.background_frames
        if not self.runner.streaming:
            response.success = False
            response.message = f'{self.source.describe()} is not streaming ({self.runner.state}: ' \
                               f'{self.runner.monitor.last_error or "no device yet"})'
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

    def _status(self):
        runner = self.runner
        mon = runner.monitor
        values = runner.status()
        values.update(target_hz=self.cfg.framerate, glitched_frames=self.glitched_frames,
                      orientation=self.cfg.orientation, frame_id=self.frame_id,
                      backgrounds_published=self._backgrounds_published)
        prefix = 'SYNTHETIC source; ' if self.source.synthetic else ''
        if runner.state == 'finished':  # a non-looping replay ended: done, not failed
            return OK, prefix + f'finished: {runner.finished_reason}', values
        if not runner.streaming:
            return ERROR, prefix + f'{runner.state}: {mon.last_error or "no device yet"}', values
        if self._backgrounds_published == 0:
            return WARN, prefix + 'streaming, no background captured yet', values
        return OK, prefix + 'streaming', values

    def close(self) -> None:
        self.runner.stop()


def main(args=None):
    return run_node(DigitNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
