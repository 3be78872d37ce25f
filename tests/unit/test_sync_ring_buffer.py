"""StampedRingBuffer: at-or-before look-up, out-of-order insertion, capacity and time span."""

import pytest

from fuse_core.sync.ring_buffer import StampedRingBuffer


def test_latest_at_or_before_picks_greatest_stamp_not_after_t():
    buf = StampedRingBuffer(10)
    for t in (100, 200, 300):
        buf.insert(t, f's{t}')
    assert buf.latest_at_or_before(99) is None
    assert buf.latest_at_or_before(100) == (100, 's100')
    assert buf.latest_at_or_before(250) == (200, 's200')
    assert buf.latest_at_or_before(300) == (300, 's300')
    assert buf.latest_at_or_before(10_000) == (300, 's300')


def test_out_of_order_insertion_is_placed_by_stamp():
    buf = StampedRingBuffer(10)
    for t in (100, 300, 200, 400, 350):
        buf.insert(t, t)
    assert buf.stamps() == [100, 200, 300, 350, 400]
    assert buf.latest_at_or_before(360) == (350, 350)
    assert buf.out_of_order == 2


def test_same_stamp_replaces_instead_of_duplicating():
    buf = StampedRingBuffer(10)
    buf.insert(100, 'a')
    buf.insert(100, 'b')
    assert len(buf) == 1
    assert buf.latest_at_or_before(100) == (100, 'b')


def test_capacity_evicts_oldest_and_refuses_older_than_kept():
    buf = StampedRingBuffer(3)
    for t in (10, 20, 30, 40):
        buf.insert(t, t)
    assert buf.stamps() == [20, 30, 40]
    assert buf.insert(5, 5) is False          # older than everything a full buffer holds
    assert buf.stamps() == [20, 30, 40]
    assert buf.rejected_too_old == 1
    assert buf.insert(25, 25) is True         # late but inside the kept range: oldest goes
    assert buf.stamps() == [25, 30, 40]


def test_time_span_drops_samples_older_than_span_before_newest():
    buf = StampedRingBuffer(100, span_ns=1000)
    for t in (0, 500, 1000, 1500, 2000):
        buf.insert(t, t)
    assert buf.stamps() == [1000, 1500, 2000]
    assert buf.insert(900, 900) is False
    assert buf.newest() == (2000, 2000)


def test_clear_and_bad_capacity():
    buf = StampedRingBuffer(2)
    buf.insert(1, 1)
    buf.clear()
    assert len(buf) == 0 and buf.newest() is None
    with pytest.raises(ValueError):
        StampedRingBuffer(0)
