"""Records configured topics (serialized, never deserialised) into a rosbag2 MCAP bag."""

from __future__ import annotations

import importlib
import sys
import time
from functools import partial
from typing import Dict, List

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile,
                       ReliabilityPolicy)

from fuse_core.bag import BagWriter, QosProfile
from fuse_core.bag.config import RecorderConfig
from fuse_core.bag.qos import INFINITE_NS, adapted_profile
from fuse_core.errors import BagError, ConfigError
from fuse_core.timing import RateMonitor
from fuse_nodes.common import ERROR, OK, WARN, Diagnostics, declare_config, run_node


# --- QoS between rclpy and the bag's representation (the player uses these too) -----------
def qos_from_rclpy(q: QoSProfile) -> QosProfile:
    """rclpy QoSProfile (e.g. a publisher's, from the graph) -> the bag's QosProfile."""
    def ns(d: Duration) -> int:
        return min(int(d.nanoseconds), INFINITE_NS)
    return QosProfile(history=HistoryPolicy(q.history).name.lower(), depth=int(q.depth),
                      reliability=ReliabilityPolicy(q.reliability).name.lower(),
                      durability=DurabilityPolicy(q.durability).name.lower(),
                      deadline_ns=ns(q.deadline), lifespan_ns=ns(q.lifespan),
                      liveliness=LivelinessPolicy(q.liveliness).name.lower(),
                      liveliness_lease_duration_ns=ns(q.liveliness_lease_duration),
                      avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions))


def qos_to_rclpy(p: QosProfile) -> QoSProfile:
    """The bag's QosProfile -> an rclpy QoSProfile (history, depth, reliability, durability).

    Deadline, lifespan and liveliness are left at their defaults: recorded values describe
    the original publisher and would only make the replay incompatible with its readers.
    """
    history = HistoryPolicy.KEEP_ALL if p.history == 'keep_all' else HistoryPolicy.KEEP_LAST
    return QoSProfile(history=history, depth=max(1, int(p.depth)),
                      reliability=ReliabilityPolicy[p.reliability.upper()],
                      durability=DurabilityPolicy[p.durability.upper()])


def message_class(type_name: str):
    """'pkg/msg/Type' -> the rclpy message class; ConfigError if the package is not installed."""
    try:
        pkg, kind, name = type_name.split('/')
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfigError(f'message type {type_name!r} is not available here: {exc}') from exc


class RecorderNode(Node):
    """Subscribes (raw) to each configured topic once it appears and writes it to a bag."""

    def __init__(self) -> None:
        super().__init__('recorder')
        self.cfg = declare_config(self, RecorderConfig)
        self.bag_dir = self.cfg.bag_dir()
        try:
            self._writer = BagWriter(self.bag_dir, compression=self.cfg.compression,
                                     chunk_size=self.cfg.chunk_size_kb * 1024)
        except BagError as exc:
            raise ConfigError(f'{self.get_name()}: output_dir: {exc}') from exc
        self._pending: List[str] = list(self.cfg.topics)
        self._subs: Dict[str, object] = {}
        self._rates: Dict[str, RateMonitor] = {t: RateMonitor() for t in self.cfg.topics}
        self._errors = RateMonitor()
        self._first_mono = None
        self._stopped = False
        self._discover_timer = self.create_timer(self.cfg.discovery_period_s, self._discover)
        self._diag = Diagnostics(self)
        self._diag.add('recording', self._status)
        self.get_logger().info(f'recording {len(self.cfg.topics)} topic(s) to {self.bag_dir} '
                               f'({self.cfg.compression})')
        self._discover()

    # --- discovery ---------------------------------------------------------------------
    def _discover(self) -> None:
        if self._stopped:
            return
        self._check_duration()
        if not self._pending:
            return
        graph = dict(self.get_topic_names_and_types())
        for topic in list(self._pending):
            types = graph.get(topic)
            if not types:
                continue
            if len(types) > 1:
                self._errors.error(f'{topic} is published with several types {types}; not recorded')
                self.get_logger().error(self._errors.last_error, throttle_duration_sec=10.0)
                continue
            try:
                self._subscribe(topic, types[0])
            except (BagError, ConfigError) as exc:
                self._errors.error(f'{topic}: {exc}')
                self.get_logger().error(f'{topic}: {exc}', throttle_duration_sec=10.0)
                continue
            self._pending.remove(topic)

    def _subscribe(self, topic: str, type_name: str) -> None:
        msg_cls = message_class(type_name)
        offered = [qos_from_rclpy(info.qos_profile)
                   for info in self.get_publishers_info_by_topic(topic)]
        self._writer.add_topic(topic, type_name, offered)
        qos = qos_to_rclpy(adapted_profile(offered))
        # raw=True hands the callback the CDR bytes exactly as they arrived.
        self._subs[topic] = self.create_subscription(msg_cls, topic, partial(self._on_message, topic),
                                                     qos, raw=True)
        self.get_logger().info(f'recording {topic} [{type_name}] ({qos.reliability.name.lower()}, '
                               f'{qos.durability.name.lower()})')

    # --- messages ----------------------------------------------------------------------
    def _on_message(self, topic: str, data: bytes, info) -> None:
        if self._stopped:
            return
        now_ns = self.get_clock().now().nanoseconds
        publish_ns = info.get('source_timestamp') or now_ns
        try:
            self._writer.write(topic, data, now_ns, publish_ns)
        except BagError as exc:
            self._errors.error(str(exc))
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)
            return
        self._rates[topic].tick()
        if self._first_mono is None:
            self._first_mono = time.monotonic()
        self._check_duration()

    def _check_duration(self) -> None:
        if (self.cfg.max_duration_s > 0 and self._first_mono is not None and not self._stopped
                and time.monotonic() - self._first_mono >= self.cfg.max_duration_s):
            self.get_logger().info(f'max_duration_s {self.cfg.max_duration_s} reached')
            self.close()
            rclpy.try_shutdown(context=self.context)

    # --- diagnostics -------------------------------------------------------------------
    def _status(self):
        counts = self._writer.topic_counts()
        sizes = self._writer.topic_bytes()
        values = {'bag': str(self.bag_dir), 'messages': self._writer.message_count,
                  'file_bytes': self._writer.file_size(),
                  'missing_topics': ','.join(self._pending) or 'none'}
        for t in self.cfg.topics:
            values[f'{t} count'] = counts.get(t, 0)
            values[f'{t} bytes'] = sizes.get(t, 0)
            values[f'{t} rate_hz'] = self._rates[t].rate_hz()
        if self._stopped:
            return OK, 'stopped, bag closed', values
        if self._errors.errors:
            values['last_error'] = self._errors.last_error
            return ERROR, f'{self._errors.errors} error(s): {self._errors.last_error}', values
        if self._pending:
            return WARN, f'waiting for {len(self._pending)} topic(s): {", ".join(self._pending)}', values
        return OK, f'recording {len(self._subs)} topic(s)', values

    # --- shutdown ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the bag (summary + metadata.yaml); called on Ctrl-C by run_node."""
        if self._stopped:
            return
        self._stopped = True
        md = self._writer.close()
        self.get_logger().info(f'bag closed: {self.bag_dir} ({md.message_count} messages, '
                               f'{md.duration_ns / 1e9:.2f} s)')
        if self._pending:
            self.get_logger().warning(f'never appeared: {", ".join(self._pending)}')


def main(args=None):
    return run_node(RecorderNode, args)


if __name__ == '__main__':
    sys.exit(main())
