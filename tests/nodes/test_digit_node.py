"""The DIGIT node in its own process: synthetic 320x240 at 60 Hz, background service, latching."""

from __future__ import annotations

import pytest

from support.ros_harness import make_probe, wait_for
from test_camera_node import ImageLog, assert_stream, measure_stream, start_image_stream

pytestmark = pytest.mark.integration


def test_synthetic_digit_streams_320x240_at_60hz(launch_node, rclpy_context):
    proc, node, executor, spin, log, diags = start_image_stream(
        launch_node, rclpy_context, 'fuse_nodes.digit_node', 'digit_left',
        {'source': 'synthetic', 'resolution': 'QVGA', 'framerate': 60, 'frame_id': 'digit_left_frame',
         'capture_background_on_start': False}, 'digit_test')
    items, duration = measure_stream(log, executor, 4.0)
    # Landscape, the sensor's own image: 240 rows x 320 columns.
    assert_stream(items, duration, 60.0, 240, 320, 'digit_left_frame')
    assert wait_for(lambda: len(diags.statuses) > 0, 5.0, spin=spin)
    level, message, values = diags.statuses[-1]
    assert 'SYNTHETIC' in message and values['glitched_frames'] == '0'
    assert values['orientation'] == 'landscape'
    node.destroy_node()


def test_capture_background_latches_for_late_subscribers(launch_node, rclpy_context):
    from sensor_msgs.msg import Image

    from fuse_interfaces.srv import CaptureBackground
    from fuse_nodes.common import LATCHED_QOS
    from fuse_nodes.conversions import image_to_array

    proc = launch_node('fuse_nodes.digit_node', 'digit_left',
                       params={'source': 'synthetic', 'framerate': 60, 'background_frames': 6,
                               'capture_background_on_start': False, 'orientation': 'portrait'})
    node, executor, spin = make_probe(rclpy_context, 'digit_bg_test')
    client = node.create_client(CaptureBackground, '/digit_left/capture_background')
    assert wait_for(client.service_is_ready, 20.0, spin=spin), proc.log()
    log = ImageLog(node, '/digit_left/image_raw')
    assert wait_for(lambda: len(log.items) >= 3, 10.0, spin=spin), proc.log()

    future = client.call_async(CaptureBackground.Request(num_frames=0))
    assert wait_for(future.done, 10.0, spin=spin)
    response = future.result()
    assert response.success, response.message
    assert '6 frames' in response.message

    # A subscriber that appears only now still gets the background (transient local).
    backgrounds = []
    node.create_subscription(Image, '/digit_left/background', backgrounds.append, LATCHED_QOS)
    assert wait_for(lambda: len(backgrounds) >= 1, 10.0, spin=spin), proc.log()
    bg = backgrounds[0]
    assert (bg.height, bg.width, bg.encoding, bg.step) == (320, 240, 'bgr8', 240 * 3)
    assert bg.header.frame_id == 'digit_left_frame'
    assert image_to_array(bg).std() > 1.0  # an image of the gel, not an empty buffer

    future = client.call_async(CaptureBackground.Request(num_frames=3))
    assert wait_for(future.done, 10.0, spin=spin)
    assert future.result().success and '3 frames' in future.result().message
    assert wait_for(lambda: len(backgrounds) >= 2, 10.0, spin=spin)
    node.destroy_node()


def test_background_captured_on_start_is_latched(launch_node, rclpy_context):
    from sensor_msgs.msg import Image

    from fuse_nodes.common import LATCHED_QOS

    proc = launch_node('fuse_nodes.digit_node', 'digit_right', params={'source': 'synthetic'})
    node, executor, spin = make_probe(rclpy_context, 'digit_start_bg_test')
    log = ImageLog(node, '/digit_right/image_raw')
    assert wait_for(lambda: len(log.items) >= 30, 20.0, spin=spin), proc.log()
    backgrounds = []
    node.create_subscription(Image, '/digit_right/background', backgrounds.append, LATCHED_QOS)
    assert wait_for(lambda: len(backgrounds) == 1, 10.0, spin=spin), proc.log()
    assert backgrounds[0].header.frame_id == 'digit_right_frame'
    assert (backgrounds[0].height, backgrounds[0].width) == (240, 320)
    node.destroy_node()


def test_unsupported_real_framerate_fails_at_startup_naming_it(launch_node):
    proc = launch_node('fuse_nodes.digit_node', 'digit_left',
                       params={'source': 'real', 'serial': 'D20001', 'framerate': 45})
    assert proc.proc.wait(20) == 2
    assert 'framerate' in proc.log()
