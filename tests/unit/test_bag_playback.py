"""Replay timing, in-place header restamping, and the recorder/player configs."""

from __future__ import annotations

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu, MagneticField

from fuse_core.bag import BagError, MessageDefinitions
from fuse_core.bag.cdr import header_stamp_ns, with_header_stamp
from fuse_core.bag.config import SENSOR_TOPICS, BagPlayerConfig, RecorderConfig
from fuse_core.bag.definitions import first_field_is_header
from fuse_core.bag.playback import LOOP_GAP_NS, PlaybackClock
from fuse_core.bag.qos import QosProfile, adapted_profile, dump_profiles, load_profiles
from fuse_core.config import from_mapping
from fuse_core.errors import ConfigError
from fuse_interfaces.msg import AudioChunk

S = 1_000_000_000


@pytest.mark.parametrize('msg', [
    Image(height=2, width=3, encoding='bgr8', step=9, data=bytes(range(18))),
    Imu(), MagneticField(), AudioChunk(sample_rate=44100, channels=1, samples=[0.5, -0.5]),
])
def test_restamp_rewrites_only_the_header_stamp(msg):
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 456_789
    msg.header.frame_id = 'some_frame'
    data = serialize_message(msg)
    assert header_stamp_ns(data) == 1_700_000_123 * S + 456_789
    out = deserialize_message(with_header_stamp(data, 1_800_000_000 * S + 42), type(msg))
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1_800_000_000, 42)
    msg.header.stamp = out.header.stamp
    assert out == msg


def test_restamp_rejects_what_is_not_a_cdr_message():
    with pytest.raises(BagError, match='too short'):
        with_header_stamp(b'\x00\x01\x00\x00', 5)
    with pytest.raises(BagError, match='encapsulation'):
        header_stamp_ns(b'\x7f\x7f' + bytes(20))


def test_header_detection_from_definitions():
    defs = MessageDefinitions()
    assert first_field_is_header(defs.full_text('sensor_msgs/msg/Image'))
    assert first_field_is_header(defs.full_text('fuse_interfaces/msg/AudioChunk'))
    assert not first_field_is_header(defs.full_text('rosgraph_msgs/msg/Clock'))
    assert not first_field_is_header(defs.full_text('std_msgs/msg/Header'))
    assert not first_field_is_header('uint8 A=1\nstd_msgs/Header other\n')
    assert first_field_is_header('# c\nuint8 A=1  # constant\nstd_msgs/Header header\n')
    assert Clock  # Clock has no header: the player publishes it as is


def test_full_definition_lists_each_dependency_once_depth_first():
    text = MessageDefinitions().full_text('sensor_msgs/Image')
    parts = text.split('=' * 80 + '\n')
    assert [p.splitlines()[0] for p in parts[1:]] == ['MSG: std_msgs/Header',
                                                    'MSG: builtin_interfaces/Time']


def clock(rate=1.0, restamp=True, start=100 * S, end=110 * S):
    return PlaybackClock(start, end, rate, restamp, mono_anchor_ns=5 * S, wall_anchor_ns=2000 * S)


def test_schedule_follows_rate_and_loops():
    c = clock(rate=2.0)
    assert c.due_mono_ns(100 * S, 0) == 5 * S
    assert c.due_mono_ns(104 * S, 0) == 7 * S
    span = 10 * S + LOOP_GAP_NS
    assert c.loop_span_ns == span
    assert c.due_mono_ns(100 * S, 1) == 5 * S + span // 2
    assert c.due_mono_ns(104 * S, 1) > c.due_mono_ns(110 * S, 0)


def test_restamped_stamps_follow_the_wall_clock_and_never_go_back_across_loops():
    c = clock(restamp=True)
    assert c.stamp_ns(100 * S, 0) == 2000 * S
    assert c.stamp_ns(103 * S, 0) == 2003 * S
    last_of_loop0 = c.stamp_ns(110 * S, 0)
    first_of_loop1 = c.stamp_ns(100 * S, 1)
    assert first_of_loop1 > last_of_loop0
    # stamp - due time is the same in every loop: stamps stay consistent with arrival.
    d0 = c.stamp_ns(103 * S, 0) - c.due_mono_ns(103 * S, 0)
    d3 = c.stamp_ns(103 * S, 3) - c.due_mono_ns(103 * S, 3)
    assert d0 == d3


def test_bag_time_mode_shifts_stamps_and_clock_by_whole_loops():
    c = clock(restamp=False)
    assert c.stamp_ns(103 * S, 0) == 103 * S
    assert c.stamp_ns(103 * S, 2) == 103 * S + 2 * c.loop_span_ns
    # /clock keeps increasing through the loop boundary.
    times = [c.clock_ns(5 * S + k * S // 10) for k in range(0, 250)]
    assert times == sorted(times) and times[0] == 100 * S
    assert c.clock_ns(5 * S + c.loop_span_ns + 3 * S) == 100 * S + c.loop_span_ns + 3 * S
    assert c.position(5 * S + c.loop_span_ns + 3 * S) == (1, pytest.approx(3.0))


def test_pause_freezes_clock_and_shifts_the_schedule():
    c = clock(restamp=True)
    c.pause(6 * S)
    assert c.paused and c.clock_ns(9 * S) == c.clock_ns(6 * S)
    c.resume(9 * S)
    assert not c.paused
    assert c.due_mono_ns(101 * S, 0) == 9 * S
    assert c.stamp_ns(101 * S, 0) == 2004 * S


def test_bad_schedule_is_rejected():
    with pytest.raises(BagError, match='rate'):
        clock(rate=0.0)
    with pytest.raises(BagError, match='before it starts'):
        clock(start=5 * S, end=4 * S)


def test_qos_yaml_round_trip_and_adaptation():
    sensor = QosProfile(depth=5, reliability='best_effort')
    latched = QosProfile(depth=1, durability='transient_local')
    assert load_profiles(dump_profiles([sensor, latched])) == [sensor, latched]
    assert load_profiles('') == []
    # Integer policies of metadata version <= 8 are understood too.
    old = {'history': 1, 'depth': 5, 'reliability': 2, 'durability': 2,
           'deadline': {'sec': 2147483647, 'nsec': 4294967295}}
    assert load_profiles([old])[0].reliability == 'best_effort'
    assert load_profiles([old])[0].deadline_ns == 2**63 - 1
    assert adapted_profile([sensor, QosProfile()]).reliability == 'best_effort'
    assert adapted_profile([QosProfile(), QosProfile()]).reliability == 'reliable'
    assert adapted_profile([latched]).durability == 'transient_local'
    assert adapted_profile([latched, QosProfile()]).durability == 'volatile'
    assert adapted_profile([]).reliability == 'best_effort'
    with pytest.raises(BagError, match='invalid QoS'):
        load_profiles([{'history': 'sometimes', 'reliability': 'reliable', 'durability': 'volatile'}])


def test_player_config_rejects_contradicting_time_models_and_bad_topics():
    assert BagPlayerConfig().restamp and not BagPlayerConfig().publish_clock
    with pytest.raises(ConfigError, match="'restamp' and 'publish_clock'"):
        from_mapping(BagPlayerConfig, {'restamp': True, 'publish_clock': True})
    from_mapping(BagPlayerConfig, {'restamp': False, 'publish_clock': True})
    with pytest.raises(ConfigError, match="'required_topics'.*'imu/data'"):
        from_mapping(BagPlayerConfig, {'required_topics': ['imu/data']})
    with pytest.raises(ConfigError, match="'rate'"):
        from_mapping(BagPlayerConfig, {'rate': 0.0})


def test_recorder_config_defaults_and_validation():
    assert RecorderConfig().topics == SENSOR_TOPICS and len(SENSOR_TOPICS) == 10
    with pytest.raises(ConfigError, match="'topics' is empty"):
        from_mapping(RecorderConfig, {'topics': []})
    with pytest.raises(ConfigError, match='more than once'):
        from_mapping(RecorderConfig, {'topics': ['/a', '/a']})
    with pytest.raises(ConfigError, match="'compression'"):
        from_mapping(RecorderConfig, {'compression': 'gzip'})
    # ~/ready waits for what the export needs; a ready topic that is not recorded is a clear error.
    from fuse_core.bag.config import EXPORT_TOPICS
    from fuse_core.export.steps import REQUIRED_TOPICS
    assert sorted(EXPORT_TOPICS) == sorted(REQUIRED_TOPICS) == sorted(RecorderConfig().ready_topics)
    from_mapping(RecorderConfig, {'mode': 'episodes'})
    with pytest.raises(ConfigError, match=r"ready_topics \['/camera_primary/image_raw'\] are not recorded"):
        from_mapping(RecorderConfig, {'mode': 'episodes', 'topics': [t for t in SENSOR_TOPICS
                                                                     if t != '/camera_primary/image_raw']})
