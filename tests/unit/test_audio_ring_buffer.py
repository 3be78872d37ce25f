"""SampleRingBuffer: newest-n reads, wrap-around, capture times, gaps and lapping."""

import threading

import numpy as np
import pytest

from fuse_core.audio.ring_buffer import SampleRingBuffer

RATE = 1000.0  # 1 ms per sample keeps the time arithmetic readable


def ramp(start, n):
    # Modulo 2**16 keeps every value exact in float32 however long the writer runs.
    return (np.arange(start, start + n) % 65536).astype(np.float32)


def test_read_before_enough_samples_is_none():
    rb = SampleRingBuffer(10, RATE)
    assert rb.read_latest(1) is None
    rb.write(ramp(0, 3), first_sample_time_ns=0)
    assert rb.read_latest(4) is None
    assert rb.read_latest(3).samples.tolist() == [0, 1, 2]


def test_newest_time_and_index_follow_the_last_sample():
    rb = SampleRingBuffer(10, RATE)
    rb.write(ramp(0, 4), first_sample_time_ns=5_000_000_000)
    latest = rb.read_latest(2)
    assert latest.samples.tolist() == [2, 3]
    assert latest.newest_index == 3
    assert latest.newest_time_ns == 5_000_000_000 + 3_000_000  # 3 samples after the first
    assert rb.newest_time_ns == latest.newest_time_ns and rb.total_written == 4


@pytest.mark.parametrize('block', [1, 3, 7, 10, 13, 25])
def test_wrap_around_keeps_the_newest_samples_in_order(block):
    rb = SampleRingBuffer(10, RATE)
    written = 0
    for _ in range(9):
        rb.write(ramp(written, block), first_sample_time_ns=written * 1_000_000)
        written += block
        for n in (1, min(written, 10)):
            latest = rb.read_latest(n)
            np.testing.assert_array_equal(latest.samples, ramp(written - n, n))
            assert latest.newest_index == written - 1
            assert latest.newest_time_ns == (written - 1) * 1_000_000


def test_index_gap_is_filled_with_zeros():
    rb = SampleRingBuffer(10, RATE)
    rb.write(np.ones(3, np.float32), 0, first_sample_index=0)
    rb.write(np.full(2, 5, np.float32), 0, first_sample_index=6)  # samples 3..5 were lost
    latest = rb.read_latest(8)
    assert latest.samples.tolist() == [1, 1, 1, 0, 0, 0, 5, 5]
    assert latest.newest_index == 7


def test_read_larger_than_capacity_is_refused():
    rb = SampleRingBuffer(10, RATE)
    with pytest.raises(ValueError, match='capacity'):
        rb.read_latest(11)
    with pytest.raises(ValueError):
        SampleRingBuffer(0, RATE)


def test_concurrent_writer_never_yields_torn_reads():
    rb = SampleRingBuffer(4096, RATE)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            rb.write(ramp(i, 97), first_sample_time_ns=i)
            i += 97

    t = threading.Thread(target=writer)
    t.start()
    try:
        reads = 0
        while reads < 2000:
            latest = rb.read_latest(1024)
            if latest is None:
                continue
            # A consistent read is a contiguous ramp ending at the reported newest index.
            np.testing.assert_array_equal(latest.samples, ramp(latest.newest_index - 1023, 1024))
            reads += 1
    finally:
        stop.set()
        t.join()
