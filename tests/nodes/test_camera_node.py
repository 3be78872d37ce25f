"""The camera node in its own process: synthetic 640x480 at 30 Hz, stamps, rate, diagnostics, errors."""

from __future__ import annotations

import time

import pytest

from support.ros_harness import make_probe, wait_for

pytestmark = pytest.mark.integration

NS = 1_000_000_000


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


def start_image_stream(launch_node, rclpy_context, module, name, params, probe):
    """Start an image node and a probe logging its ~/image_raw and diagnostics; waits for 5 images."""
    proc = launch_node(module, name, params=params)
    node, executor, spin = make_probe(rclpy_context, probe)
    log = ImageLog(node, f'/{name}/image_raw')
    diags = DiagnosticsLog(node, name)
    assert wait_for(lambda: len(log.items) >= 5, 20.0, spin=spin), proc.log()
    return proc, node, executor, spin, log, diags


def test_synthetic_camera_streams_640x480_at_30hz(launch_node, rclpy_context):
    proc, node, executor, spin, log, diags = start_image_stream(
        launch_node, rclpy_context, 'fuse_nodes.camera_node', 'camera_primary',
        {'source': 'synthetic', 'image_width': 640, 'image_height': 480, 'framerate': 30.0,
         'frame_id': 'camera_primary_optical_frame'}, 'camera_test')
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


def test_missing_camera_keeps_the_node_up_and_reports_the_error(launch_node, rclpy_context):
    proc = launch_node('fuse_nodes.camera_node', 'camera_wrist',
                       params={'source': 'real', 'video_device': '/dev/video_fuse_missing',
                               'reconnect_backoff_s': 0.2, 'reconnect_backoff_max_s': 0.5})
    node, executor, spin = make_probe(rclpy_context, 'camera_missing_test')
    diags = DiagnosticsLog(node, 'camera_wrist')
    assert wait_for(lambda: any(int(v.get('errors', 0)) >= 2 for _, _, v in diags.statuses), 20.0,
                    spin=spin), proc.log()
    level, message, values = diags.statuses[-1]
    assert level == b'\x02' and '/dev/video_fuse_missing' in values['last_error']
    assert 'retrying' in proc.log() and proc.alive()
    node.destroy_node()


def test_bad_parameter_fails_at_startup_naming_it(launch_node):
    proc = launch_node('fuse_nodes.camera_node', 'camera_primary',
                       params={'source': 'synthetic', 'pixel_format': 'h264'})
    assert proc.proc.wait(20) == 2
    assert 'pixel_format' in proc.log()


CALIBRATION = """image_width: 320
image_height: 240
camera_name: camera_primary
camera_matrix: {rows: 3, cols: 3, data: [300.5, 0, 160.2, 0, 301.5, 119.8, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0.001, 0.002, 0.0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [302, 0, 160, 0, 0, 303, 120, 0, 0, 0, 1, 0]}
"""


def test_camera_info_beside_each_image_with_the_same_stamp_and_frame(launch_node, rclpy_context, tmp_path):
    from sensor_msgs.msg import CameraInfo

    from fuse_nodes.common import SENSOR_QOS, time_to_ns
    cal = tmp_path / 'camera_primary.yaml'
    cal.write_text(CALIBRATION)
    proc = launch_node('fuse_nodes.camera_node', 'camera_primary',
                       params={'source': 'synthetic', 'image_width': 320, 'image_height': 240, 'framerate': 15.0,
                               'camera_info_url': f'file://{cal}'})
    node, executor, spin = make_probe(rclpy_context, 'camera_info_test')
    images = ImageLog(node, '/camera_primary/image_raw')
    infos = []
    node.create_subscription(CameraInfo, '/camera_primary/camera_info', infos.append, SENSOR_QOS)
    assert wait_for(lambda: len(infos) >= 5 and len(images.items) >= 5, 20.0, spin=spin), proc.log()
    info = infos[-1]
    assert (info.width, info.height, info.distortion_model) == (320, 240, 'plumb_bob')
    assert list(info.k) == [300.5, 0, 160.2, 0, 301.5, 119.8, 0, 0, 1]
    assert list(info.d) == [0.1, -0.2, 0.001, 0.002, 0.0] and info.p[0] == 302
    assert info.header.frame_id == 'camera_primary_optical_frame'
    image_stamps = {it['stamp_ns'] for it in images.items}
    assert sum(time_to_ns(i.header.stamp) in image_stamps for i in infos) >= len(infos) - 2
    node.destroy_node()


def test_malformed_calibration_keeps_streaming_without_camera_info(launch_node, rclpy_context, tmp_path):
    from sensor_msgs.msg import CameraInfo

    from fuse_nodes.common import SENSOR_QOS
    cal = tmp_path / 'broken.yaml'
    cal.write_text(CALIBRATION.replace('data: [300.5, 0, 160.2, 0, 301.5, 119.8, 0, 0, 1]', 'data: [1, 2]'))
    proc = launch_node('fuse_nodes.camera_node', 'camera_wrist',
                       params={'source': 'synthetic', 'image_width': 320, 'image_height': 240, 'framerate': 15.0,
                               'camera_info_url': str(cal)})
    node, executor, spin = make_probe(rclpy_context, 'camera_info_bad_test')
    images = ImageLog(node, '/camera_wrist/image_raw')
    infos = []
    node.create_subscription(CameraInfo, '/camera_wrist/camera_info', infos.append, SENSOR_QOS)
    diags = DiagnosticsLog(node, 'camera_wrist')
    assert wait_for(lambda: len(images.items) >= 5 and diags.statuses, 20.0, spin=spin), proc.log()
    assert not infos
    level, message, values = diags.statuses[-1]
    assert level == b'\x01' and 'broken.yaml' in message and 'camera_matrix' in message
    assert 'no ~/camera_info' in proc.log() and 'broken.yaml' in proc.log()
    node.destroy_node()
