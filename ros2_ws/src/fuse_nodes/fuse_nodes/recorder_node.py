"""Records configured topics (serialized, never deserialised) into rosbag2 MCAP bags.

mode continuous: one bag until Ctrl-C. mode episodes: one bag per episode under output_dir,
opened by ~/start and closed by ~/stop (fuse_interfaces/srv/RecordEpisode), each with its
episode metadata inside (rosbag2 custom_data `fuse_episode`) and beside it (episode.json).
"""

from __future__ import annotations

import importlib
import sys
import time
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import rclpy
from fuse_interfaces.srv import RecordEpisode
from std_srvs.srv import Trigger
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile,
                       ReliabilityPolicy)

from fuse_core.bag import BagWriter, QosProfile
from fuse_core.bag.config import RecorderConfig
from fuse_core.bag.qos import INFINITE_NS, adapted_profile
from fuse_core.episodes.metadata import (COMPLETE, INTERRUPTED, RECORDING_STATUS, EpisodeMetadata,
                                         write_episode)
from fuse_core.errors import BagError, ConfigError, EpisodeError
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
        self.episodes = self.cfg.mode == 'episodes'
        self.topics = self.cfg.recorded_topics()
        self.bag_dir = self.cfg.bag_dir()
        self._writer: Optional[BagWriter] = None
        self._episode: Optional[EpisodeMetadata] = None
        self._episode_dir: Optional[Path] = None
        self._declared: Dict[str, Tuple[str, list]] = {}   # topic -> (type, offered QoS)
        self._latched: Dict[str, Tuple[bytes, int]] = {}   # latched topic -> last message
        self._latched_topics: set = set()
        self._episodes_done = 0
        if self.episodes:
            try:
                self.bag_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f'{self.get_name()}: output_dir: {exc}') from exc
        else:
            self._writer = self._open(self.bag_dir)
        self._pending: List[str] = list(self.topics)
        self._subs: Dict[str, object] = {}
        self._rates: Dict[str, RateMonitor] = {t: RateMonitor() for t in self.topics}
        self._errors = RateMonitor()
        self._first_mono = None
        self._stopped = False
        self._discover_timer = self.create_timer(self.cfg.discovery_period_s, self._discover)
        if self.episodes:
            self.create_service(RecordEpisode, '~/start', self._srv_start)
            self.create_service(RecordEpisode, '~/stop', self._srv_stop)
            self.create_service(Trigger, '~/ready', self._srv_ready)
        self._diag = Diagnostics(self)
        self._diag.add('recording', self._status)
        what = ('one bag per episode (~/start, ~/stop) under' if self.episodes else 'to')
        self.get_logger().info(f'recording {len(self.topics)} topic(s) {what} {self.bag_dir} '
                               f'({self.cfg.compression})')
        self._discover()

    def _open(self, bag_dir: Path, custom_data: Optional[Dict[str, str]] = None) -> BagWriter:
        try:
            return BagWriter(bag_dir, compression=self.cfg.compression,
                             chunk_size=self.cfg.chunk_size_kb * 1024, custom_data=custom_data)
        except BagError as exc:
            raise ConfigError(f'{self.get_name()}: output_dir: {exc}') from exc

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
            if not self.get_publishers_info_by_topic(topic):
                # Known by name before its publisher's QoS: subscribing now would pick volatile
                # and miss a latched message (DIGIT backgrounds). Next round.
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
        if self._writer is not None:
            self._writer.add_topic(topic, type_name, offered)
        self._declared[topic] = (type_name, offered)
        qos = qos_to_rclpy(adapted_profile(offered))
        # Latched state (transient local, or a DIGIT background whose publisher was not yet
        # fully discovered): every episode bag starts with its last value.
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL or topic.endswith('/background'):
            self._latched_topics.add(topic)
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
        if self.episodes and topic in self._latched_topics:
            # Latched state (DIGIT backgrounds): every episode bag starts with its last value.
            self._latched[topic] = (bytes(data), publish_ns)
        if self._writer is None:
            return
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
        if (not self.episodes and self.cfg.max_duration_s > 0 and self._first_mono is not None and not self._stopped
                and time.monotonic() - self._first_mono >= self.cfg.max_duration_s):
            self.get_logger().info(f'max_duration_s {self.cfg.max_duration_s} reached')
            self.close()
            rclpy.try_shutdown(context=self.context)

    # --- episodes ----------------------------------------------------------------------
    def _srv_start(self, request, response):
        response.success, response.message = False, ''
        try:
            response.bag_path = str(self.start_episode(request.episode_id, request.metadata_json))
            response.success, response.message = True, f'recording episode {request.episode_id}'
        except (EpisodeError, BagError, ConfigError) as exc:
            response.message = str(exc)
            self.get_logger().error(f'start refused: {exc}')
        return response

    def _srv_stop(self, request, response):
        response.success, response.message = False, ''
        try:
            md, count = self.stop_episode(request.episode_id, request.metadata_json)
            response.bag_path, response.message_count = str(self._episode_dir_of(md)), count
            response.success = True
            response.message = f'episode {md.episode_id} {md.status} ({md.outcome}), {count} messages'
        except (EpisodeError, BagError) as exc:
            response.message = str(exc)
            self.get_logger().error(f'stop refused: {exc}')
        return response

    def readiness(self) -> Tuple[bool, str]:
        """(ready, why): ready once every ready topic is subscribed (an episode then holds them all)."""
        if self._stopped:
            return False, 'the recorder is shutting down'
        waiting = [t for t in self.cfg.ready_topics if t in self._pending]
        if waiting:
            return False, f'waiting for {len(waiting)} topic(s) to appear: {", ".join(waiting)}'
        return True, f'ready: {len(self._subs)} of {len(self.topics)} topic(s) subscribed'

    def _srv_ready(self, request, response):
        response.success, response.message = self.readiness()
        return response

    def _episode_dir_of(self, md: EpisodeMetadata) -> Path:
        return self.bag_dir / md.episode_id

    def start_episode(self, episode_id: str, metadata_json: str) -> Path:
        if self._stopped:
            raise EpisodeError('the recorder is shutting down')
        if self._episode is not None:
            raise EpisodeError(f'episode {self._episode.episode_id} is still recording; stop it first')
        md = (EpisodeMetadata.from_json(metadata_json) if metadata_json
              else EpisodeMetadata(episode_id=episode_id))
        if episode_id and md.episode_id != episode_id:
            raise EpisodeError(f'episode_id {episode_id!r} differs from the metadata\'s {md.episode_id!r}')
        md.status = RECORDING_STATUS
        bag_dir = self._episode_dir_of(md)
        writer = self._open(bag_dir, custom_data={'fuse_episode': md.to_json()})
        now_ns = self.get_clock().now().nanoseconds
        for topic, (type_name, offered) in self._declared.items():
            writer.add_topic(topic, type_name, offered)
        for topic, (data, publish_ns) in self._latched.items():
            writer.write(topic, data, now_ns, publish_ns)
        # The marker comes first: a recorder killed from here on leaves a bag marked recording.
        write_episode(bag_dir, md)
        self._writer, self._episode, self._episode_dir = writer, md, bag_dir
        self.get_logger().info(f'episode {md.episode_id}: recording to {bag_dir}')
        return bag_dir

    def stop_episode(self, episode_id: str, metadata_json: str,
                     interrupted: str = '') -> Tuple[EpisodeMetadata, int]:
        if self._episode is None:
            raise EpisodeError('no episode is recording')
        current = self._episode
        if episode_id and episode_id != current.episode_id:
            raise EpisodeError(f'episode {episode_id!r} is not the one recording ({current.episode_id})')
        md = EpisodeMetadata.from_json(metadata_json) if metadata_json else current
        if md.episode_id != current.episode_id:
            raise EpisodeError(f'metadata is for {md.episode_id!r}, recording {current.episode_id!r}')
        if interrupted:
            md.status = INTERRUPTED
            md.events.append({'event': 'recorder_stopped', 'detail': interrupted})
        elif md.status == RECORDING_STATUS:
            md.status = COMPLETE
        writer, bag_dir = self._writer, self._episode_dir
        self._writer, self._episode, self._episode_dir = None, None, None
        writer.set_custom_data('fuse_episode', md.to_json())
        closed = writer.close()
        # Marked complete only after the bag is closed: a crash in between reads as interrupted.
        write_episode(bag_dir, md)
        self._episodes_done += 1
        self.get_logger().info(f'episode {md.episode_id} {md.status} ({md.outcome or "no outcome"}): '
                               f'{closed.message_count} messages, {closed.duration_ns / 1e9:.2f} s')
        return md, closed.message_count

    # --- diagnostics -------------------------------------------------------------------
    def _status(self):
        w = self._writer
        counts = w.topic_counts() if w is not None else {}
        sizes = w.topic_bytes() if w is not None else {}
        values = {'bag': str(self._episode_dir or self.bag_dir),
                  'messages': w.message_count if w is not None else 0,
                  'file_bytes': w.file_size() if w is not None else 0,
                  'missing_topics': ','.join(self._pending) or 'none'}
        if self.episodes:
            values['episode'] = self._episode.episode_id if self._episode else ''
            values['episodes_recorded'] = self._episodes_done
        for t in self.topics:
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
        if self.episodes and self._episode is None:
            return OK, f'between episodes ({self._episodes_done} recorded)', values
        return OK, f'recording {len(self._subs)} topic(s)', values

    # --- shutdown ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the bag (summary + metadata.yaml); called on Ctrl-C by run_node."""
        if self._stopped:
            return
        self._stopped = True
        if self.episodes:
            if self._episode is not None:
                md, _ = self.stop_episode('', '', interrupted='recorder stopped mid-episode')
                self.get_logger().warning(f'episode {md.episode_id} was recording: closed and '
                                          'marked interrupted')
            return
        md = self._writer.close()
        self.get_logger().info(f'bag closed: {self.bag_dir} ({md.message_count} messages, '
                               f'{md.duration_ns / 1e9:.2f} s)')
        if self._pending:
            self.get_logger().warning(f'never appeared: {", ".join(self._pending)}')


def main(args=None):
    return run_node(RecorderNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
