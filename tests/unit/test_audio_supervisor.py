"""Supervisor (fuse_core/supervisor.py): reopen with backoff, fatal errors, thread lifecycle."""

import threading
import time

import pytest

from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError, SourceExhaustedError
from fuse_core.supervisor import (BACKOFF, CONNECTED, FAILED, FINISHED, STOPPED, Supervisor)


class FakeDevice:
    """A device that is missing for the first `missing` opens and then yields 1, 2, 3, ..."""

    def __init__(self, missing=0, fail_read_at=None, read_error=DeviceError('unplugged')):
        self.missing, self.fail_read_at, self.read_error = missing, fail_read_at, read_error
        self.opens = self.closes = 0
        self.counter = 0

    def open(self):
        self.opens += 1
        if self.opens <= self.missing:
            raise DeviceNotFoundError('no microphone')
        return self

    def read(self, handle):
        self.counter += 1
        if self.fail_read_at is not None and self.counter == self.fail_read_at:
            raise self.read_error
        return self.counter

    def close(self, handle):
        self.closes += 1


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make(dev, clock, **kwargs):
    return Supervisor(dev.open, dev.read, dev.close, name='mic', backoff_s=1.0, backoff_max_s=4.0,
                      clock=clock, **kwargs)


def test_missing_device_is_retried_with_doubling_backoff_then_recovers():
    dev, clock, errors = FakeDevice(missing=4), Clock(), []
    sup = make(dev, clock, on_error=errors.append)
    waits = []
    for _ in range(4):
        assert sup.poll() is None
        assert sup.state == BACKOFF and 'no microphone' in sup.last_error
        waits.append(sup.seconds_until_retry())
        assert sup.poll() is None and dev.opens == len(waits)  # not due yet: no new attempt
        clock.t += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at backoff_max_s
    assert len(errors) == 4 and all('DeviceNotFoundError' in e for e in errors)
    assert sup.poll() == 1 and sup.state == CONNECTED
    st = sup.status()
    assert (st.connects, st.failures, st.consecutive_failures) == (1, 4, 0)


def test_read_failure_closes_and_reopens_with_the_initial_backoff():
    dev, clock = FakeDevice(fail_read_at=3), Clock()
    sup = make(dev, clock)
    assert [sup.poll(), sup.poll()] == [1, 2]
    assert sup.poll() is None and sup.state == BACKOFF
    assert dev.closes == 1 and 'unplugged' in sup.last_error
    assert sup.seconds_until_retry() == 1.0
    clock.t += 1.0
    assert sup.poll() == 4 and dev.opens == 2


@pytest.mark.parametrize('exc, state', [(ConfigError('bad rate'), FAILED),
                                        (SourceExhaustedError('end of file'), FINISHED)])
def test_fatal_errors_end_supervision(exc, state):
    dev, clock = FakeDevice(fail_read_at=1, read_error=exc), Clock()
    sup = make(dev, clock)
    assert sup.poll() is None
    assert sup.state == state and sup.done
    clock.t += 100
    assert sup.poll() is None and dev.opens == 1
    sup.close()
    assert sup.state == state  # stays visible after close


def test_end_of_a_replay_is_a_finished_state_not_a_failure():
    dev, clock, errors, states = FakeDevice(fail_read_at=3, read_error=SourceExhaustedError('end of file')), \
        Clock(), [], []
    sup = make(dev, clock, on_error=errors.append, on_state=states.append)
    assert [sup.poll(), sup.poll(), sup.poll()] == [1, 2, None]
    st = sup.status()
    assert st.state == FINISHED and st.finished_reason == 'end of file' == sup.finished_reason
    assert (st.failures, st.consecutive_failures, st.last_error) == (0, 0, '')
    assert errors == [] and states[-1] == FINISHED and dev.closes == 1


def test_thread_delivers_items_and_stop_closes_promptly():
    dev = FakeDevice(missing=1)
    got, seen_two = [], threading.Event()

    def on_item(x):
        got.append(x)
        if len(got) >= 2:
            seen_two.set()
        time.sleep(0.001)

    sup = Supervisor(dev.open, dev.read, dev.close, backoff_s=0.01, backoff_max_s=0.02)
    sup.start(on_item)
    assert seen_two.wait(10.0)
    sup.stop()
    assert sup.state == STOPPED and dev.closes == 1
    assert got[:2] == [1, 2]


def test_stop_interrupts_a_long_backoff():
    dev = FakeDevice(missing=10**6)
    sup = Supervisor(dev.open, dev.read, dev.close, backoff_s=600.0, backoff_max_s=600.0)
    sup.start(lambda x: None)
    deadline = time.monotonic() + 10
    while sup.state != BACKOFF and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    sup.stop(timeout_s=30)
    assert time.monotonic() - t0 < 10  # not the 600 s backoff
    assert sup.state == STOPPED


def test_consumer_error_is_reported_and_the_loop_goes_on():
    dev, done = FakeDevice(), threading.Event()
    errors = []

    def on_item(x):
        if x == 1:
            raise RuntimeError('consumer bug')
        done.set()

    sup = Supervisor(dev.open, dev.read, dev.close, on_error=errors.append)
    sup.start(on_item)
    assert done.wait(10.0)
    sup.stop()
    assert sup.item_errors == 1 and 'consumer bug' in errors[0]
    assert dev.opens == 1  # the device was not reopened for a consumer error
