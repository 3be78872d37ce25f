"""Sync node: sensor streams -> fixed-rate ObservationWindow messages on ~/window for the policy."""

# No `from __future__ import annotations` here: rclpy passes TimerInfo to a timer callback only
# when the parameter's annotation is the TimerInfo class itself, not a string.
import collections
import dataclasses
import sys
import time
from typing import Deque, Dict, Optional

from rclpy.node import Node
from rclpy.timer import TimerInfo
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from fuse_core.bundle import read_manifest, resolve_bundle_path
from fuse_core.errors import BundleError, ConfigError
from fuse_core.sync import (StreamConfig, SyncConfig, Window, WindowSender, builder_from, stream_config,
                            stream_defaults)
from fuse_core.sync.preprocess import PreprocessError
from fuse_core.timing import RateMonitor, percentiles
from fuse_interfaces.msg import ObservationWindow
from fuse_nodes.common import (CONTROL_QOS, ERROR, LATCHED_QOS, OK, SENSOR_QOS, WARN, Diagnostics,
                               declare_config, run_node, time_to_ns)
from fuse_nodes.conversions import ConversionError, image_to_array, window_to_msg
from fuse_nodes.layout import shipped_roots

#: Tick statistics kept for diagnostics (about 20 s at 5 Hz).
_HISTORY = 100


class SyncNode(Node):
    """Thin shell around fuse_core.sync.WindowBuilder: subscriptions, tick timer, publisher.

    Threading: one thread (a SingleThreadedExecutor, see common.run_node) runs the sensor
    callbacks, the tick timer and the reset service; a tick's stamp is the timer's scheduled
    time however late its callback runs (the delay shows as tick jitter).

    Preprocessing is lazy by default: a sample is converted at the first tick that uses it
    and cached, so it is still done once per sample. Both modes were measured. In isolation
    (benchmarks/bench_sync.py, reference bundle, sensors at real rates) an eager tick is
    cheaper (~4 ms build + serialise vs ~13 ms, since the resizes were done on arrival). In
    the running node (30 fps images, diagnostics over ~60 ticks, 2-core machine under load)
    the lazy tick published sooner after its scheduled time: median delay + build 12 ms and
    41 ms in two runs, against 37 ms and 77 ms eager, because eager callbacks queue ahead of
    the timer in the executor (median timer delay 25-59 ms vs 1-2 ms lazy).
    Lazy also spends less CPU (only the samples a window uses are converted: ~13 ms per
    tick vs ~37 ms eager). preprocess_mode: eager remains for machines with cores to spare.

    Each sample's data is published once (fuse_core.sync.WindowSender): a window carries the
    steps whose sample the previous window did not, and names the others by stamp and id.
    """

    def __init__(self) -> None:
        super().__init__('sync')
        self.cfg = declare_config(self, SyncConfig)
        try:
            self.bundle_dir = resolve_bundle_path(self.cfg.bundle_path, shipped_roots())
            self.manifest = read_manifest(self.bundle_dir)
        except BundleError as exc:
            raise ConfigError(f'{self.get_name()}: parameter bundle_path: {exc}') from exc
        streams = {name: self._declare_stream(name) for name in self.cfg.stream_names}
        self.streams = streams
        self.builder = builder_from(self.manifest, self.cfg, streams)
        self.dt_ns = self.builder.dt_ns

        # One thread: sensor callbacks only append to ring buffers (preprocessing is lazy, at
        # the tick), so the timer never waits long. rclpy's MultiThreadedExecutor was tried
        # and polls in a busy loop: it took 70-80 % of a core and stalled ticks by up to 1 s.
        self.monitors: Dict[str, RateMonitor] = {}
        self._subs = []
        for name in self.builder.stream_names:
            cfg = streams[name]
            self.monitors[name] = RateMonitor()
            self._subs.append(self.create_subscription(
                Image, cfg.topic, lambda msg, s=name: self._on_sample(s, msg), SENSOR_QOS))
        self._backgrounds_seen: Dict[str, int] = {}
        for name in self.builder.tactile_streams():
            self._subs.append(self.create_subscription(
                Image, streams[name].background_topic, lambda msg, s=name: self._on_background(s, msg),
                LATCHED_QOS))
        unused = sorted(set(streams) - set(self.builder.stream_names))

        self.pub = self.create_publisher(ObservationWindow, '~/window', CONTROL_QOS)
        self.sender = WindowSender()
        self.reset_srv = self.create_service(Trigger, '~/reset', self._on_reset)
        self.tick_monitor = RateMonitor()
        self._last_tick_ns: Optional[int] = None
        self._jitter_ms: Deque[float] = collections.deque(maxlen=_HISTORY)
        self._tick_ms: Deque[float] = collections.deque(maxlen=_HISTORY)
        self._last_window: Optional[Window] = None
        self.windows_published = 0
        self.missed_ticks = 0
        # The timer runs on the node clock: ROS time, which follows /clock with use_sim_time.
        self.timer = self.create_timer(self.dt_ns / 1e9, self._tick)

        self.diagnostics = Diagnostics(self, period_s=self.cfg.diagnostics_period_s)
        self.diagnostics.add('window', self._window_status)
        for name in self.builder.stream_names:
            self.diagnostics.add(f'stream {name}', lambda s=name: self._stream_status(s))

        summary = ', '.join(f'{ch.name}<-{ch.pre.stream}:{streams[ch.pre.stream].topic}'
                            for ch in self.builder.channels)
        self.get_logger().info(
            f'bundle {self.manifest.name!r} ({self.bundle_dir}): W={self.builder.window_size} at '
            f'{1e9 / self.dt_ns:g} Hz, preprocess {self.cfg.preprocess_mode}; {summary}'
            + (f'; configured but unused streams: {unused}' if unused else ''))

    # --- parameters ----------------------------------------------------------------------
    def _declare_stream(self, name: str) -> StreamConfig:
        """Declare streams.<name>.{topic,background_topic,max_age_s} (defaults per known stream)."""
        cfg = declare_config(self, StreamConfig, f'streams.{name}.', stream_defaults(name))
        try:
            return stream_config(name, dataclasses.asdict(cfg))
        except ConfigError as exc:
            raise ConfigError(f'{self.get_name()}: {exc}') from exc

    # --- input ---------------------------------------------------------------------------
    def _on_sample(self, stream: str, msg: Image) -> None:
        stamp_ns = time_to_ns(msg.header.stamp)
        mon = self.monitors[stream]
        try:
            if stamp_ns == 0:
                raise PreprocessError(f'{stream}: header.stamp is zero (sample has no capture time)')
            # A view on the message buffer: the message is never reused, so lazy mode may keep it.
            self.builder.add_sample(stream, stamp_ns, image_to_array(msg), msg.encoding)
        except (PreprocessError, ConversionError) as exc:
            mon.error(str(exc))
            self.get_logger().error(f'{stream}: sample dropped: {exc}', throttle_duration_sec=5.0)
            return
        mon.tick()

    def _on_background(self, stream: str, msg: Image) -> None:
        try:
            self.builder.set_background(stream, image_to_array(msg), msg.encoding)
        except (PreprocessError, ConversionError) as exc:
            self.monitors[stream].error(f'background: {exc}')
            self.get_logger().error(f'{stream}: background refused: {exc}')
            return
        self._backgrounds_seen[stream] = self._backgrounds_seen.get(stream, 0) + 1
        self.get_logger().info(f'{stream}: background {msg.width}x{msg.height} latched '
                               f'(stamp {time_to_ns(msg.header.stamp) / 1e9:.3f})')

    def _on_reset(self, request, response):
        self.builder.reset()
        response.success = True
        response.message = 'history cleared: the next window starts a new episode'
        self.get_logger().info('episode reset: history cleared')
        return response

    # --- ticks ---------------------------------------------------------------------------
    def _tick(self, info: TimerInfo) -> None:
        # The tick time is the timer's scheduled time, not the moment this callback got a
        # thread: ticks stay exactly dt apart on the node clock (wall or /clock) however busy
        # the executor is, and the window still holds only samples stamped at or before it.
        t_ns = info.expected_call_time.nanoseconds
        if t_ns <= 0:
            return  # simulated time before the first /clock message
        # A callback late by whole periods (a loaded machine, a jump of /clock) reports the
        # first missed slot; the tick is the newest slot on the same grid, so the window
        # holds the freshest samples and the skipped slots count as missed.
        late_ns = info.actual_call_time.nanoseconds - t_ns
        if late_ns >= self.dt_ns:
            t_ns += (late_ns // self.dt_ns) * self.dt_ns
        wall0 = time.perf_counter()
        if self._last_tick_ns is not None:
            if t_ns <= self._last_tick_ns:
                self.builder.reset()
                self.get_logger().warning(f'clock jumped back ({self._last_tick_ns / 1e9:.3f} s -> '
                                          f'{t_ns / 1e9:.3f} s): episode history cleared')
            else:
                self.missed_ticks += max(0, round((t_ns - self._last_tick_ns) / self.dt_ns) - 1)
        self._jitter_ms.append((info.actual_call_time.nanoseconds - t_ns) / 1e6)  # within one period
        window = self.builder.build(t_ns)
        self.pub.publish(window_to_msg(self.sender.carried(window), self.cfg.frame_id))
        self._tick_ms.append(1e3 * (time.perf_counter() - wall0))
        self.windows_published += 1
        self.tick_monitor.tick()
        self._last_tick_ns = t_ns
        self._last_window = window

    # --- diagnostics ---------------------------------------------------------------------
    def _window_status(self):
        jitter = list(self._jitter_ms)
        tick = percentiles(list(self._tick_ms))
        values = {
            'rate_hz': self.tick_monitor.rate_hz(), 'target_hz': 1e9 / self.dt_ns,
            'window_size': self.builder.window_size, 'windows_published': self.windows_published,
            'masked_steps': self.builder.masked_steps,
            # Steps sent with their data / as a reference to data an earlier window carried.
            'steps_carried': self.sender.steps_carried, 'steps_referenced': self.sender.steps_referenced,
            'missed_ticks': self.missed_ticks,
            # Jitter: how late each timer callback ran after its scheduled tick time.
            'tick_jitter_p50_ms': percentiles(jitter)['p50'] if jitter else 0.0,
            'tick_jitter_p99_ms': percentiles(jitter)['p99'] if jitter else 0.0,
            'tick_jitter_max_ms': max(jitter) if jitter else 0.0,
            'tick_build_publish_p50_ms': tick['p50'], 'tick_build_publish_p99_ms': tick['p99'],
            'preprocess_mode': self.cfg.preprocess_mode, 'bundle': self.manifest.name,
        }
        for name, st in self.builder.preprocess_stats().items():
            values[f'preprocess_{name}_mean_ms'] = st['mean_ms']
            values[f'preprocess_{name}_calls'] = st['calls']
        w = self._last_window
        if w is None:
            return WARN, 'no tick yet (waiting for the clock)', values
        if w.stale_streams:
            detail = '; '.join(w.reasons[s] for s in w.stale_streams)
            return WARN, f'masked at the newest step: {detail}', values
        return OK, 'all streams fresh', values

    def _stream_status(self, stream: str):
        st = self.builder.stats[stream]
        mon = self.monitors[stream]
        cfg = self.streams[stream]
        values = {'topic': cfg.topic, 'rate_hz': mon.rate_hz(), 'samples': st.samples,
                  'max_age_s': cfg.max_age_s, 'stale_ticks': st.stale_ticks, 'errors': mon.errors,
                  'last_error': mon.last_error}
        if st.newest_stamp_ns:
            values['age_s'] = (self.get_clock().now().nanoseconds - st.newest_stamp_ns) / 1e9
        if cfg.background_topic:
            values['background_topic'] = cfg.background_topic
            values['backgrounds_received'] = self._backgrounds_seen.get(stream, 0)
        w = self._last_window
        if w is not None and stream in w.reasons:
            return WARN, w.reasons[stream], values
        if mon.errors and mon.last_error_time is not None and time.monotonic() - mon.last_error_time < 5.0:
            return ERROR, mon.last_error, values
        return OK, 'fresh', values


def main(args=None):
    return run_node(SyncNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
