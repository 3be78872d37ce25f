"""The camera node in its own process: synthetic 640x480 at 30 Hz, stamps, rate, diagnostics, errors."""

from __future__ import annotations

import time

import pytest

from support.ros_harness import wait_for

NS = 1_000_000_000


def make_test_node(rclpy_context, name):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    node = rclpy.create_node(name, context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    return node, executor


class ImageLog:
    """Records what matters of each received Image without converting the pixels."""

    def __init__(self, node, topic):
        from sensor_msgs.msg import Image

        from fuse_nodes.common import SENSOR_QOS, time_to_ns
        self.items = []
        self._to_ns = time_to_ns
        node.create_subscription(Image, topic, self._on, SENSOR_QOS)

    def _on(self, msg):
        self.items.append({'recv_ns': time.time_ns(), 'stamp_ns': self._to_ns(msg.header.stamp),
                           'height': msg.height, 'width': msg.width, 'encoding': msg.encoding,
                           'step': msg.step, 'frame_id': msg.header.frame_id,
                           'bytes': len(msg.data)})


class DiagnosticsLog:
    def __init__(self, node, prefix):
        from diagnostic_msgs.msg import DiagnosticArray
        self.statuses = []
        self._prefix = prefix
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 10)

    def _on(self, msg):
        for st in msg.status:
            if st.name.startswith(self._prefix):
                self.statuses.append((st.level, st.message, {kv.key: kv.value for kv in st.values}))


def measure_stream(log, executor, seconds):
    """Spin for `seconds` after the first message; returns the messages received meanwhile."""
    t0 = time.monotonic()
    start = len(log.items)
    while time.monotonic() - t0 < seconds:
        executor.spin_once(timeout_sec=0.02)
    return log.items[start:], time.monotonic() - t0


def assert_stream(items, duration, rate_hz, height, width, frame_id):
    assert items, 'no images received'
    for it in items:
        assert (it['height'], it['width'], it['encoding']) == (height, width, 'bgr8')
        assert it['step'] == width * 3 and it['bytes'] == height * width * 3
        assert it['frame_id'] == frame_id
    stamps = [it['stamp_ns'] for it in items]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), 'stamps are not strictly increasing'
    latencies = [(it['recv_ns'] - it['stamp_ns']) / NS for it in items]
    assert min(latencies) > -0.01 and sorted(latencies)[len(latencies) // 2] < 0.2, latencies[:10]
    received_rate = len(items) / duration
    stamp_rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / NS)
    assert received_rate == pytest.approx(rate_hz, rel=0.1), received_rate
    assert stamp_rate == pytest.approx(rate_hz, rel=0.1), stamp_rate


@pytest.mark.integration
def test_synthetic_camera_streams_640x480_at_30hz(launch_node, rclpy_context):
    proc = launch_node('fuse_nodes.camera_node', 'camera_primary',
                       params={'source': 'synthetic', 'image_width': 640, 'image_height': 480,
                               'framerate': 30.0, 'frame_id': 'camera_primary_optical_frame'})
    node, executor = make_test_node(rclpy_context, 'camera_test')
    log = ImageLog(node, '/camera_primary/image_raw')
    diags = DiagnosticsLog(node, 'camera_primary')
    spin = lambda: executor.spin_once(timeout_sec=0.05)  # noqa: E731
    assert wait_for(lambda: len(log.items) >= 5, 20.0, spin=spin), proc.log()
    items, duration = measure_stream(log, executor, 5.0)
    assert_stream(items, duration, 30.0, 480, 640, 'camera_primary_optical_frame')
    assert wait_for(lambda: any(v.get('rate_hz') not in (None, '0') for _, _, v in diags.statuses),
                    5.0, spin=spin)
    level, message, values = diags.statuses[-1]
    assert 'SYNTHETIC' in message and values['source'] == 'synthetic'
    assert values['actual_width'] == '640' and values['actual_height'] == '480'
    assert float(values['rate_hz']) == pytest.approx(30.0, rel=0.15)
    assert 'SYNTHETIC' in proc.log()
    node.destroy_node()


@pytest.mark.integration
def test_missing_camera_keeps_the_node_up_and_reports_the_error(launch_node, rclpy_context):
    proc = launch_node('fuse_nodes.camera_node', 'camera_wrist',
                       params={'source': 'real', 'video_device': '/dev/video_fuse_missing',
                               'reconnect_backoff_s': 0.2, 'reconnect_backoff_max_s': 0.5})
    node, executor = make_test_node(rclpy_context, 'camera_missing_test')
    diags = DiagnosticsLog(node, 'camera_wrist')
    spin = lambda: executor.spin_once(timeout_sec=0.05)  # noqa: E731
    assert wait_for(lambda: any(int(v.get('errors', 0)) >= 2 for _, _, v in diags.statuses), 20.0,
                    spin=spin), proc.log()
    level, message, values = diags.statuses[-1]
    assert level == b'\x02' and '/dev/video_fuse_missing' in values['last_error']
    assert 'retrying' in proc.log() and proc.alive()
    node.destroy_node()


@pytest.mark.integration
def test_bad_parameter_fails_at_startup_naming_it(launch_node):
    proc = launch_node('fuse_nodes.camera_node', 'camera_primary',
                       params={'source': 'synthetic', 'pixel_format': 'h264'})
    assert proc.proc.wait(20) == 2
    assert 'pixel_format' in proc.log()
