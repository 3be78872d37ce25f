"""Replays a rosbag2 MCAP bag: its topics on their recorded names and QoS, optionally /clock."""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Deque, Dict

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from std_srvs.srv import SetBool

from fuse_core.bag import BagReader
from fuse_core.bag.cdr import header_stamp_ns, with_header_stamp
from fuse_core.bag.config import BagPlayerConfig, default_recording_path
from fuse_core.bag.definitions import first_field_is_header
from fuse_core.bag.playback import PlaybackClock
from fuse_core.bag.qos import adapted_profile
from fuse_core.errors import BagError, ConfigError
from fuse_core.timing import RateMonitor, percentiles
from fuse_nodes.common import ERROR, OK, WARN, Diagnostics, declare_config, ns_to_time, run_node
from fuse_nodes.layout import shipped_roots
from fuse_nodes.recorder_node import message_class, qos_to_rclpy

# Sleep at most this long at a time, so pause, stop and /clock stay responsive.
_MAX_SLEEP_S = 0.05


class BagPlayerNode(Node):
    """Publishes a bag's messages on schedule (rate-scaled, looping, pausable) from one thread."""

    def __init__(self) -> None:
        super().__init__('bag_player')
        self.cfg = declare_config(self, BagPlayerConfig)
        try:
            path = self.cfg.bag_path or str(default_recording_path(shipped_roots()))
            self.reader = BagReader(path, required_topics=self.cfg.required_topics,
                                    verify=self.cfg.verify_on_start)
        except BagError as exc:
            raise ConfigError(f'{self.get_name()}: bag_path: {exc}') from exc
        unknown = [t for t in self.cfg.topics if t not in self.reader.topics]
        if unknown:
            raise ConfigError(f'{self.get_name()}: topics: {unknown} not in {path} '
                              f'(it has: {sorted(self.reader.topics)})')
        self.topics = list(self.cfg.topics) or sorted(self.reader.topics)
        if sum(self.reader.topics[t].message_count for t in self.topics) == 0:
            raise ConfigError(f'{self.get_name()}: bag_path: {path}: no messages to play')

        self._pubs = {}
        self._has_header: Dict[str, bool] = {}
        for topic in self.topics:
            info = self.reader.topics[topic]
            qos = qos_to_rclpy(adapted_profile(info.offered_qos_profiles, depth=5))
            self._pubs[topic] = self.create_publisher(message_class(info.type), topic, qos)
            self._has_header[topic] = first_field_is_header(self.reader.definition(topic))
        self._clock_pub = (self.create_publisher(Clock, '/clock', QoSProfile(depth=1))
                           if self.cfg.publish_clock else None)

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rates = {t: RateMonitor() for t in self.topics}
        self._errors = RateMonitor()
        self._lags_ms: Deque[float] = collections.deque(maxlen=500)
        self._loop = 0
        self._finished = False
        mono, wall = time.monotonic_ns(), time.time_ns()
        self.clock = PlaybackClock(self.reader.start_ns, self.reader.end_ns, self.cfg.rate,
                                   self.cfg.restamp, mono, wall)
        if self.cfg.start_paused:
            self.clock.pause(mono)
        self.create_service(SetBool, '~/set_paused', self._on_set_paused)
        self._diag = Diagnostics(self)
        self._diag.add('playback', self._status)
        self.get_logger().info(
            f'playing {path}: {len(self.topics)} topic(s), {self.reader.duration_ns / 1e9:.2f} s, '
            f'rate {self.cfg.rate}, loop {self.cfg.loop}, restamp {self.cfg.restamp}, '
            f'/clock {self.cfg.publish_clock}' + (' (paused)' if self.cfg.start_paused else ''))
        self._thread = threading.Thread(target=self._run, name='bag_playback', daemon=True)
        self._thread.start()

    # --- control -----------------------------------------------------------------------
    def _on_set_paused(self, request, response):
        with self._lock:
            if request.data:
                self.clock.pause(time.monotonic_ns())
            else:
                self.clock.resume(time.monotonic_ns())
        self._wake.set()
        response.success = True
        response.message = 'paused' if request.data else 'playing'
        return response

    # --- playback thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self.reader.messages(self.topics):
                    if not self._wait_until_due(msg.log_time_ns):
                        return
                    self._publish(msg)
                if not self.cfg.loop:
                    break
                with self._lock:
                    self._loop += 1
            self._finished = True
            self.get_logger().info(f'end of bag after {self._loop + 1} pass(es)')
        except BagError as exc:
            # A corrupt bag found during playback (verify_on_start false) ends the node with an
            # error, as one found at start-up does, instead of idling forever.
            self._errors.error(str(exc))
            self.get_logger().error(f'playback stopped: {exc}; exiting')
            self.exit_code = 1
            rclpy.try_shutdown(context=self.context)
            return
        # Like `ros2 bag play`: the node is done when the bag is (unless it loops).
        rclpy.try_shutdown(context=self.context)

    def _wait_until_due(self, log_time_ns: int) -> bool:
        """Sleep until the message is due, publishing /clock meanwhile; False when stopping."""
        period_ns = int(1e9 / self.cfg.clock_rate_hz)
        next_clock = time.monotonic_ns()
        while not self._stop.is_set():
            now = time.monotonic_ns()
            with self._lock:
                paused = self.clock.paused
                due = self.clock.due_mono_ns(log_time_ns, self._loop)
            if self._clock_pub is not None and now >= next_clock:
                with self._lock:
                    sim = self.clock.clock_ns(now)
                self._clock_pub.publish(Clock(clock=ns_to_time(sim)))
                next_clock = now + period_ns
            if not paused and now >= due:
                return True
            wake = min(due if not paused else now + int(_MAX_SLEEP_S * 1e9),
                       next_clock if self._clock_pub is not None else now + int(_MAX_SLEEP_S * 1e9))
            self._wake.wait(min(_MAX_SLEEP_S, max(0.0, (wake - now) / 1e9)))
            self._wake.clear()
        return False

    def _publish(self, msg) -> None:
        data = msg.data
        with self._lock:
            loop = self._loop
            if self._has_header[msg.topic] and (self.cfg.restamp or loop > 0):
                data = with_header_stamp(data, self.clock.stamp_ns(header_stamp_ns(data), loop))
            due = self.clock.due_mono_ns(msg.log_time_ns, loop)
        self._pubs[msg.topic].publish(data)
        self._lags_ms.append((time.monotonic_ns() - due) / 1e6)
        self._rates[msg.topic].tick()

    # --- diagnostics -------------------------------------------------------------------
    def _status(self):
        with self._lock:
            loop, into_s = self.clock.position(time.monotonic_ns())
            paused = self.clock.paused
        lag = percentiles(list(self._lags_ms))
        values = {'bag': str(self.reader.path), 'loop': loop, 'position_s': into_s,
                  'duration_s': self.reader.duration_ns / 1e9, 'rate': self.cfg.rate,
                  'time_model': 'restamp to wall time' if self.cfg.restamp else
                  ('bag time + /clock' if self.cfg.publish_clock else 'bag time'),
                  'lag_p50_ms': lag['p50'], 'lag_p99_ms': lag['p99']}
        for t in self.topics:
            values[f'{t} rate_hz'] = self._rates[t].rate_hz()
            values[f'{t} count'] = self._rates[t].count
        if self._errors.errors:
            values['last_error'] = self._errors.last_error
            return ERROR, self._errors.last_error, values
        if paused:
            return OK, 'paused', values
        if self._finished:
            return OK, 'finished', values
        if lag['p99'] == lag['p99'] and lag['p99'] > 100.0:
            return WARN, f'{lag["p99"]:.0f} ms behind schedule (p99)', values
        return OK, f'playing (loop {loop}, {into_s:.1f} s)', values

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


def main(args=None):
    return run_node(BagPlayerNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
