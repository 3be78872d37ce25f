"""Each sample once on the wire: WindowSender's carried steps, WindowReceiver's rebuild (loss, duplicates,
reordering, replaced data, value checks) and the ROS message round trip."""

import numpy as np
import pytest

from fuse_core.sync import TensorWindow, Window, WindowReceiver, WindowSender, WireError
from test_sync_window import MS, T0, camera, digit, feed_all, make_builder

SLOW = {'camera_primary': 1.0, 'digit_left': 1.0, 'audio': 1.0}
DT = 200 * MS


def ticks(n, max_age=SLOW, window_size=2):
    """n consecutive windows of a builder fed fresh samples (values 1, 2, ...) before each tick."""
    b = make_builder(window_size=window_size, max_age=max_age)
    b.set_background('digit_left', digit(0), 'bgr8')
    out = []
    for k in range(n):
        feed_all(b, T0 + k * DT - 10 * MS, value=k + 1)
        out.append(b.build(T0 + k * DT))
    return b, out


def assert_same(rebuilt: Window, built: Window):
    assert rebuilt.tick_index == built.tick_index and rebuilt.stamp_ns == built.stamp_ns
    assert rebuilt.timestep_pad_mask == built.timestep_pad_mask
    assert rebuilt.stale_streams == built.stale_streams
    for r, b in zip(rebuilt.tensors, built.tensors):
        assert (r.name, r.valid, r.sample_stamps_ns) == (b.name, b.valid, b.sample_stamps_ns)
        assert r.sample_ids == b.sample_ids
        np.testing.assert_array_equal(r.array, b.array)
        assert r.array.dtype == b.array.dtype


def carried_steps(w: Window):
    return {t.name: [j for j, s in enumerate(t.steps) if s is not None] for t in w.tensors}


def test_rebuilt_windows_equal_the_built_ones_and_each_sample_travels_once():
    _, built = ticks(5)
    sender, receiver = WindowSender(), WindowReceiver()
    for k, w in enumerate(built):
        wire = sender.carried(w)
        # The first window after start is padded (its older step repeats the newest): one step
        # carried; every later one carries only its newest step.
        assert carried_steps(wire) == {t.name: [1] for t in w.tensors}, k
        assert_same(receiver.receive(wire), w)
    assert receiver.lost_steps == 0 and receiver.not_newer == 0
    assert sender.steps_referenced == 3 * 4 and sender.steps_carried == 3 * 5


def test_a_lost_window_masks_the_step_it_carried_never_guesses_it():
    _, built = ticks(5)
    sender, receiver = WindowSender(), WindowReceiver()
    receiver.receive(sender.carried(built[0]))
    receiver.receive(sender.carried(built[1]))
    sender.carried(built[2])                                     # lost in delivery
    w3 = receiver.receive(sender.carried(built[3]))
    for t, b in zip(w3.tensors, built[3].tensors):
        assert t.valid == [False, True] and t.sample_stamps_ns[0] == 0 and t.sample_ids[0] == 0
        assert not t.array[0].any()                              # zeros, not window 1's data
        np.testing.assert_array_equal(t.array[1], b.array[1])
    assert receiver.lost_steps == 3 and 'window 3' in receiver.last_lost and 'not received' in receiver.last_lost
    # The next window finds window 3's newest samples: nothing is masked any more.
    assert_same(receiver.receive(sender.carried(built[4])), built[4])
    assert receiver.lost_steps == 3


def test_the_newest_step_always_travels_so_a_missed_window_never_costs_it():
    b = make_builder(max_age=SLOW)
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0 - 10 * MS)
    sender, receiver = WindowSender(), WindowReceiver()
    receiver.receive(sender.carried(b.build(T0)))
    sender.carried(b.build(T0 + DT))             # lost; no sample arrived since: same samples
    w = b.build(T0 + 2 * DT)
    rebuilt = receiver.receive(sender.carried(w))
    assert_same(rebuilt, w)                      # its newest step came with it; step 0 refers to it
    assert receiver.lost_steps == 0


def test_a_window_received_twice_is_rebuilt_once_more_and_keeps_the_samples():
    _, built = ticks(3)
    sender, receiver = WindowSender(), WindowReceiver()
    receiver.receive(sender.carried(built[0]))
    wire = sender.carried(built[1])
    first, again = receiver.receive(wire), receiver.receive(wire)
    assert_same(first, built[1])
    assert_same(again, built[1])
    assert receiver.not_newer == 1 and receiver.lost_steps == 0
    assert_same(receiver.receive(sender.carried(built[2])), built[2])
    # What the receiver keeps is one window's samples, not one entry per arrival.
    assert receiver.kept_samples == 3 * 2


def test_a_window_overtaken_in_delivery_does_not_evict_the_newer_samples():
    _, built = ticks(4)
    sender, receiver = WindowSender(), WindowReceiver()
    receiver.receive(sender.carried(built[0]))
    wire1, wire2 = sender.carried(built[1]), sender.carried(built[2])
    w2 = receiver.receive(wire2)                                 # overtakes window 1
    assert [t.valid for t in w2.tensors] == [[False, True]] * 3  # its older step came with window 1
    w1 = receiver.receive(wire1)                                 # late, older: rebuilt, not kept
    for t, b in zip(w1.tensors, built[1].tensors):
        assert t.valid == [False, True]                          # window 0's samples are gone
        np.testing.assert_array_equal(t.array[1], b.array[1])
    assert receiver.not_newer == 1
    assert_same(receiver.receive(sender.carried(built[3])), built[3])


def test_a_slow_stream_sample_in_both_steps_travels_once():
    b = make_builder(max_age=SLOW)
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0 - 10 * MS)
    b.build(T0)
    b.add_sample('camera_primary', T0 + 150 * MS, camera(9), 'bgr8')   # only the camera is new
    w = b.build(T0 + DT)
    assert w.tensor('image_digit_left').sample_ids[0] == w.tensor('image_digit_left').sample_ids[1]
    wire = WindowSender().carried(w)                             # a sender that never sent before
    assert carried_steps(wire) == {'image_primary': [0, 1], 'image_digit_left': [1], 'mel_spectro': [1]}
    assert_same(WindowReceiver().receive(wire), w)


def test_data_replaced_under_the_same_stamp_is_sent_again_and_a_lost_resend_masks():
    b, built = ticks(1)
    sender, delivered, missed = WindowSender(), WindowReceiver(), WindowReceiver()
    wire = sender.carried(built[0])
    delivered.receive(wire)
    missed.receive(wire)
    b.set_background('digit_left', digit(7), 'bgr8')          # the same DIGIT sample, a new value
    w1 = b.build(T0 + DT)                                      # (no new samples: both steps have it)
    new, old = w1.tensor('image_digit_left'), built[0].tensor('image_digit_left')
    assert new.sample_stamps_ns[1] == old.sample_stamps_ns[1] and new.sample_ids[1] != old.sample_ids[1]
    wire = sender.carried(w1)
    assert carried_steps(wire)['image_digit_left'] == [1]      # sent again once, step 0 refers to it
    assert_same(delivered.receive(wire), w1)                   # (the other receiver misses it)
    b.add_sample('digit_left', T0 + 2 * DT - 10 * MS, digit(3), 'bgr8')
    w2 = b.build(T0 + 2 * DT)
    wire = sender.carried(w2)
    assert carried_steps(wire)['image_digit_left'] == [1]      # step 0 is w1's new value: a reference
    assert_same(delivered.receive(wire), w2)
    # The receiver that missed w1 holds the old value under that stamp, and never uses it.
    tactile = missed.receive(wire).tensor('image_digit_left')
    assert tactile.valid == [False, True] and not tactile.array[0].any()
    assert missed.lost_steps == 1


def test_data_that_fails_its_check_is_refused_whole_and_never_kept():
    receiver = WindowReceiver(value_ranges={'mel': (-300.0, 200.0)})

    def window(tick, values, ids):
        steps = [np.full((2, 2), v, np.float32) if v is not None else None for v in values]
        t = TensorWindow('mel', np.dtype(np.float32), (2, 2), steps, [True, True], [tick * 10, tick * 10 + 1],
                         ids)
        return Window(tick, tick * DT, [tick * DT - DT, tick * DT], [True, True], [t], tick * 10 + 1, [])

    receiver.receive(window(1, [1.0, 2.0], [1, 2]))
    with pytest.raises(WireError, match="outside the manifest's value_range"):
        receiver.receive(window(2, [None, 500.0], [2, 3]))
    with pytest.raises(WireError, match='non-finite'):
        receiver.receive(window(2, [None, np.nan], [2, 3]))
    # A later window naming the refused sample finds nothing: that step is invalid.
    later = Window(3, 3 * DT, [2 * DT, 3 * DT], [True, True],
                   [TensorWindow('mel', np.dtype(np.float32), (2, 2), [None, np.zeros((2, 2), np.float32)],
                                 [True, True], [21, 31], [3, 4])], 31, [])
    assert receiver.receive(later).tensor('mel').valid == [False, True]


@pytest.mark.parametrize('mutate, fragment', [
    (lambda t: t.valid.__setitem__(1, False), 'carries data but is marked invalid'),
    (lambda t: t.sample_ids.pop(), '1 sample ids for a window of 2 steps'),
    (lambda t: t.steps.__setitem__(1, np.zeros((3, 3), np.float32)), r'is float32 \[3, 3\]'),
])
def test_inconsistent_tensors_are_refused_naming_them(mutate, fragment):
    t = TensorWindow('mel', np.dtype(np.float32), (2, 2), [None, np.zeros((2, 2), np.float32)], [True, True],
                     [1, 2], [1, 2])
    mutate(t)
    w = Window(1, DT, [0, DT], [True, True], [t], 2, [])
    with pytest.raises(WireError, match=fragment):
        WindowReceiver().receive(w)


def test_duplicate_tensor_names_are_refused():
    t = TensorWindow('mel', np.dtype(np.float32), (2, 2), [None, None], [False, False], [0, 0], [0, 0])
    with pytest.raises(WireError, match='appears twice'):
        WindowReceiver().receive(Window(1, DT, [0, DT], [True, True], [t, t], 0, []))


def test_ros_message_round_trip_rebuilds_the_windows():
    from rclpy.serialization import deserialize_message, serialize_message

    from fuse_interfaces.msg import ObservationWindow
    from fuse_nodes.conversions import msg_to_window, window_to_msg

    _, built = ticks(3)
    sender, receiver = WindowSender(), WindowReceiver()
    sizes = []
    for w in built:
        raw = serialize_message(window_to_msg(sender.carried(w), 'base'))
        sizes.append(len(raw))
        assert_same(receiver.receive(msg_to_window(deserialize_message(raw, ObservationWindow))), w)
    one_step = sum(t.array[0].nbytes for t in built[0].tensors)
    assert all(one_step < n < 1.5 * one_step for n in sizes), (sizes, one_step)
