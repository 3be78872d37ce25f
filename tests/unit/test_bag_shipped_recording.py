"""The recording that ships for the simulation: every sensor stream, valid, small, marked synthetic."""

from __future__ import annotations

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from fuse_core.bag import BagReader
from fuse_core.bag.config import SENSOR_TOPICS, default_recording_path
from fuse_nodes.layout import shipped_roots

TYPES = {
    '/camera_primary/image_raw': 'sensor_msgs/msg/Image',
    '/camera_wrist/image_raw': 'sensor_msgs/msg/Image',
    '/digit_left/image_raw': 'sensor_msgs/msg/Image',
    '/digit_right/image_raw': 'sensor_msgs/msg/Image',
    '/digit_left/background': 'sensor_msgs/msg/Image',
    '/digit_right/background': 'sensor_msgs/msg/Image',
    '/audio/chunk': 'fuse_interfaces/msg/AudioChunk',
    '/audio/mel_spectrogram': 'sensor_msgs/msg/Image',
    '/imu/data': 'sensor_msgs/msg/Imu',
    '/imu/mag': 'sensor_msgs/msg/MagneticField',
}


def test_shipped_recording_has_every_sensor_topic_and_is_small():
    path = default_recording_path(shipped_roots())
    r = BagReader(path, required_topics=SENSOR_TOPICS, verify=True)
    assert {t: i.type for t, i in r.topics.items()} == TYPES
    assert 2.5 <= r.duration_ns / 1e9 <= 10.0
    assert sum(f.stat().st_size for f in path.iterdir()) < 9_000_000
    assert r.metadata is not None and r.metadata.custom_data.get('source') == 'synthetic'
    # Latched backgrounds come first, so a player delivers them before any DIGIT frame.
    first = {}
    for m in r.messages():
        first.setdefault(m.topic, m.log_time_ns)
    assert first['/digit_left/background'] <= first['/digit_left/image_raw']
    frame = deserialize_message(next(r.messages(['/digit_left/image_raw'])).data, Image)
    assert frame.encoding == 'bgr8' and frame.header.frame_id == 'digit_left_frame'
    spec = deserialize_message(next(r.messages(['/audio/mel_spectrogram'])).data, Image)
    assert (spec.height, spec.width, spec.encoding) == (128, 128, '32FC1')
