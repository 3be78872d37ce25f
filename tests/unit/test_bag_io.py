"""BagWriter/BagReader: round trip, rosbag2 metadata, validation of damaged and incomplete bags."""

from __future__ import annotations

import os
import random

import pytest
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, Imu

from fuse_core.bag import BagError, BagReader, BagWriter, QosProfile
from fuse_core.bag.definitions import DELIMITER

T0 = 1_700_000_000_000_000_000
SENSOR = QosProfile(history='keep_last', depth=5, reliability='best_effort', durability='volatile')
LATCHED = QosProfile(history='keep_last', depth=1, reliability='reliable',
                     durability='transient_local')


def imu_bytes(i: int) -> bytes:
    m = Imu()
    m.header.stamp.sec, m.header.stamp.nanosec = 1_700_000_000 + i // 100, (i % 100) * 10_000_000
    m.header.frame_id = 'imu_link'
    m.linear_acceleration.z = 9.81 + i
    return serialize_message(m)


def image_bytes(i: int, size=(24, 32)) -> bytes:
    m = Image(height=size[0], width=size[1], encoding='bgr8', step=size[1] * 3)
    m.header.frame_id = 'camera_primary_optical_frame'
    m.data = bytes([(i * 7 + k) % 256 for k in range(size[0] * size[1] * 3)])
    return serialize_message(m)


def make_bag(path, n_imu=50, n_img=10, compression='zstd', chunk_size=1 << 20):
    """IMU at 100 Hz and images at 20 Hz interleaved by time; returns what was written."""
    written = []
    with BagWriter(path, compression=compression, chunk_size=chunk_size) as w:
        w.add_topic('/imu/data', 'sensor_msgs/msg/Imu', [SENSOR])
        w.add_topic('/camera_primary/image_raw', 'sensor_msgs/Image', [SENSOR])
        w.add_topic('/digit_left/background', 'sensor_msgs/msg/Image', [LATCHED])
        bg = image_bytes(999)
        w.write('/digit_left/background', bg, T0)
        written.append(('/digit_left/background', bg, T0))
        for i in range(n_imu):
            t = T0 + 1 + i * 10_000_000
            d = imu_bytes(i)
            w.write('/imu/data', d, t, publish_time_ns=t - 1000)
            written.append(('/imu/data', d, t))
            if i % 5 == 0 and i // 5 < n_img:
                d = image_bytes(i)
                w.write('/camera_primary/image_raw', d, t + 2)
                written.append(('/camera_primary/image_raw', d, t + 2))
    return written


@pytest.mark.parametrize('compression', ['zstd', 'lz4', 'none'])
def test_round_trip_keeps_types_counts_order_and_bytes(tmp_path, compression):
    bag = tmp_path / 'bag'
    written = make_bag(bag, compression=compression, chunk_size=4096)
    r = BagReader(bag, verify=True)
    assert r.topics['/imu/data'].type == 'sensor_msgs/msg/Imu'
    assert r.topics['/camera_primary/image_raw'].type == 'sensor_msgs/msg/Image'
    assert {t: i.message_count for t, i in r.topics.items()} == {
        '/imu/data': 50, '/camera_primary/image_raw': 10, '/digit_left/background': 1}
    got = list(r.messages())
    assert [(m.topic, m.data, m.log_time_ns) for m in got] == written
    assert [m.log_time_ns for m in got] == sorted(m.log_time_ns for m in got)
    assert r.start_ns == T0 and r.end_ns == written[-1][2]
    imu = [m for m in got if m.topic == '/imu/data']
    assert imu[3].publish_time_ns == imu[3].log_time_ns - 1000
    assert deserialize_message(imu[3].data, Imu).linear_acceleration.z == pytest.approx(12.81)
    assert r.topics['/digit_left/background'].offered_qos_profiles == [LATCHED]
    assert not r.truncated


def test_messages_can_be_filtered_by_topic(tmp_path):
    make_bag(tmp_path / 'bag')
    got = list(BagReader(tmp_path / 'bag').messages(['/camera_primary/image_raw']))
    assert len(got) == 10 and {m.topic for m in got} == {'/camera_primary/image_raw'}


def test_metadata_yaml_has_rosbag2_version_9_fields(tmp_path):
    make_bag(tmp_path / 'bag')
    doc = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    md = doc['rosbag2_bagfile_information']
    assert md['version'] == 9
    assert md['storage_identifier'] == 'mcap'
    assert md['relative_file_paths'] == ['bag_0.mcap']
    assert md['message_count'] == 61
    assert md['starting_time']['nanoseconds_since_epoch'] == T0
    assert md['duration']['nanoseconds'] == 1 + 49 * 10_000_000
    assert md['files'][0]['path'] == 'bag_0.mcap' and md['files'][0]['message_count'] == 61
    assert md['compression_format'] == '' and md['compression_mode'] == ''
    assert 'ros_distro' in md and 'custom_data' in md
    topics = {t['topic_metadata']['name']: t for t in md['topics_with_message_count']}
    imu = topics['/imu/data']
    assert imu['message_count'] == 50
    tm = imu['topic_metadata']
    assert tm['type'] == 'sensor_msgs/msg/Imu' and tm['serialization_format'] == 'cdr'
    assert tm['type_description_hash'].startswith('RIHS01_')
    qos = tm['offered_qos_profiles'][0]
    assert qos['reliability'] == 'best_effort' and qos['history'] == 'keep_last'
    assert qos['depth'] == 5 and qos['durability'] == 'volatile'
    assert set(qos['deadline']) == {'sec', 'nsec'}
    bg = topics['/digit_left/background']['topic_metadata']['offered_qos_profiles'][0]
    assert bg['durability'] == 'transient_local'


def test_mcap_file_has_ros2_schemas_channels_and_rosbag2_record(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    make_bag(tmp_path / 'bag')
    with open(tmp_path / 'bag' / 'bag_0.mcap', 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        imu = schemas['sensor_msgs/msg/Imu']
        assert imu.encoding == 'ros2msg'
        text = imu.data.decode()
        assert text.startswith('# This is a message to hold data from an IMU')
        assert '\n' + DELIMITER + 'MSG: std_msgs/Header\n' in text
        assert '\n' + DELIMITER + 'MSG: builtin_interfaces/Time\n' in text
        assert text.count('MSG: std_msgs/Header') == 1
        for ch in summary.channels.values():
            assert ch.message_encoding == 'cdr'
            assert yaml.safe_load(ch.metadata['offered_qos_profiles'])[0]['depth'] in (1, 5)
            assert ch.metadata['topic_type_hash'].startswith('RIHS01_')
        # A generic decoder rebuilds the messages from the stored definitions alone.
        decoded = [(c.topic, m) for _s, c, _m, m in reader.iter_decoded_messages()]
        assert decoded[1][1].header.frame_id == 'imu_link'
        meta = [m for m in reader.iter_metadata() if m.name == 'rosbag2']
        assert len(meta) == 1
        embedded = yaml.safe_load(meta[0].metadata['serialized_metadata'])
        assert embedded['version'] == 9 and embedded['message_count'] == 61


def test_missing_path_is_a_bag_error_naming_it(tmp_path):
    with pytest.raises(BagError, match='nowhere'):
        BagReader(tmp_path / 'nowhere')


def test_random_bytes_are_a_bag_error_naming_the_file(tmp_path):
    f = tmp_path / 'noise.mcap'
    f.write_bytes(random.Random(1).randbytes(5000))
    with pytest.raises(BagError, match='noise.mcap.*not an MCAP file'):
        BagReader(f)


def test_random_bytes_after_valid_magic_are_a_bag_error(tmp_path):
    f = tmp_path / 'fake.mcap'
    f.write_bytes(b'\x89MCAP0\r\n' + random.Random(2).randbytes(5000))
    with pytest.raises(BagError, match='fake.mcap.*nothing readable'):
        BagReader(f, recover=True)
    with pytest.raises(BagError, match='fake.mcap.*truncated or corrupt'):
        BagReader(f)


def test_truncated_bag_is_an_error_unless_recovering(tmp_path):
    bag = tmp_path / 'bag'
    written = make_bag(bag, n_imu=400, n_img=80, chunk_size=8192)
    mcap_file = bag / 'bag_0.mcap'
    data = mcap_file.read_bytes()
    mcap_file.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(BagError, match='bag_0.mcap.*truncated'):
        BagReader(bag)
    r = BagReader(bag, recover=True)
    got = list(r.messages())
    assert 0 < len(got) < len(written)
    assert r.truncated
    # What is readable is exactly the start of what was written.
    assert [(m.topic, m.data, m.log_time_ns) for m in got] == written[:len(got)]


def test_corrupt_chunk_in_the_middle_is_found_by_verify(tmp_path):
    bag = tmp_path / 'bag'
    make_bag(bag, n_imu=400, n_img=80, chunk_size=8192, compression='none')
    mcap_file = bag / 'bag_0.mcap'
    data = bytearray(mcap_file.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    mcap_file.write_bytes(bytes(data))
    with pytest.raises(BagError, match='bag_0.mcap.*corrupt'):
        BagReader(bag, verify=True)


def test_bag_without_metadata_yaml_needs_recover(tmp_path):
    bag = tmp_path / 'bag'
    make_bag(bag)
    (bag / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match='no metadata.yaml.*recover=True'):
        BagReader(bag)
    assert BagReader(bag, recover=True).message_count == 61


def test_missing_required_topic_names_it(tmp_path):
    make_bag(tmp_path / 'bag')
    with pytest.raises(BagError, match=r"\['/audio/chunk'\] not in the bag"):
        BagReader(tmp_path / 'bag', required_topics=['/imu/data', '/audio/chunk'])
    BagReader(tmp_path / 'bag', required_topics=['/imu/data'])


def test_required_topic_without_messages_is_an_error(tmp_path):
    with BagWriter(tmp_path / 'bag') as w:
        w.add_topic('/imu/data', 'sensor_msgs/msg/Imu')
        w.add_topic('/imu/mag', 'sensor_msgs/msg/MagneticField')
        w.write('/imu/data', imu_bytes(0), T0)
    with pytest.raises(BagError, match=r"\['/imu/mag'\] have no messages"):
        BagReader(tmp_path / 'bag', required_topics=['/imu/mag'])


def test_writer_refuses_existing_recording_and_bad_input(tmp_path):
    make_bag(tmp_path / 'bag')
    with pytest.raises(BagError, match='already exists'):
        BagWriter(tmp_path / 'bag')
    with pytest.raises(BagError, match='compression'):
        BagWriter(tmp_path / 'b2', compression='gzip')
    with BagWriter(tmp_path / 'b3') as w:
        with pytest.raises(BagError, match='/nope: not declared'):
            w.write('/nope', b'1234', T0)
        with pytest.raises(BagError, match='absolute'):
            w.add_topic('imu', 'sensor_msgs/msg/Imu')
        with pytest.raises(BagError, match='no definition of nope_msgs/msg/Thing'):
            w.add_topic('/x', 'nope_msgs/msg/Thing')
        w.add_topic('/imu', 'sensor_msgs/msg/Imu')
        with pytest.raises(BagError, match='already recorded as sensor_msgs/msg/Imu'):
            w.add_topic('/imu', 'sensor_msgs/msg/Image')


def test_context_manager_closes_the_bag_on_ctrl_c(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(tmp_path / 'bag') as w:
            w.add_topic('/imu/data', 'sensor_msgs/msg/Imu')
            for i in range(20):
                w.write('/imu/data', imu_bytes(i), T0 + i)
            raise KeyboardInterrupt
    assert BagReader(tmp_path / 'bag', verify=True).message_count == 20


def test_writer_that_dies_leaves_complete_chunks_readable(tmp_path):
    """A child process writes and is killed (os._exit: no close, no summary, no metadata.yaml)."""
    import subprocess
    import sys
    code = f'''
import os
from fuse_core.bag import BagWriter
from tests_helper import imu_bytes
w = BagWriter({str(tmp_path / "bag")!r}, chunk_size=4096)
w.add_topic("/imu/data", "sensor_msgs/msg/Imu")
for i in range(300):
    w.write("/imu/data", imu_bytes(i), {T0} + i)
os._exit(9)
'''
    (tmp_path / 'tests_helper.py').write_text(
        'from rclpy.serialization import serialize_message\nfrom sensor_msgs.msg import Imu\n'
        'def imu_bytes(i):\n    m = Imu()\n    m.header.frame_id = "imu_link"\n'
        '    m.linear_acceleration.z = float(i)\n    return serialize_message(m)\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    assert subprocess.run([sys.executable, '-c', code], env=env, timeout=60).returncode == 9
    assert not (tmp_path / 'bag' / 'metadata.yaml').exists()
    r = BagReader(tmp_path / 'bag', recover=True)
    got = list(r.messages())
    assert 200 < len(got) < 300
    assert [m.log_time_ns for m in got] == [T0 + i for i in range(len(got))]
    assert deserialize_message(got[-1].data, Imu).linear_acceleration.z == len(got) - 1
