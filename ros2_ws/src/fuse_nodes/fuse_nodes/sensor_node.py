"""The base of every sensor node: parameters, stamps, the supervised reader, guarded publish, diagnostics."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from rclpy.node import Node

from fuse_core.acquisition import SensorReader, Source, SourceConfig
from fuse_nodes.common import ERROR, OK, WARN, Diagnostics, SensorStamp, declare_config, log_at


class SensorNode(Node):
    """What the camera, DIGIT, IMU and audio nodes share; each adds only its messages.

    The base declares the parameters of ``config_class`` (``self.cfg``; every sensor config has
    a ``frame_id``, empty = the node name + ``frame_id_suffix``), builds the source
    (``make_source``) and a :class:`~fuse_core.acquisition.SensorReader` that hands every item
    to ``on_item`` on the reader thread, and reports the reader on /diagnostics under
    ``status_name`` (default: the node name). A subclass creates its publishers, then calls
    :meth:`start`.

    Items are published from the reader thread the moment they are captured: a timer would
    add up to a period of latency (and beat against the device's own clock); rclpy publishers
    may be used from any thread, and the reader thread is the only one publishing its topics.
    Stamps come from ``self.stamp`` (:class:`~fuse_nodes.common.SensorStamp`, the one policy of
    every sensor: capture time, or the node clock under use_sim_time).
    """

    config_class: Type[SourceConfig] = SourceConfig
    #: The diagnostics task name ('<node>: <status_name>'); '' = the node's name.
    status_name = ''
    frame_id_suffix = '_frame'
    #: What a synthetic source's data is, for the start-up warning.
    synthetic_note = 'generated data, not sensor data'

    def __init__(self, node_name: str, **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, self.config_class)
        self.frame_id = self.cfg.frame_id or f'{self.get_name()}{self.frame_id_suffix}'
        self.stamp = SensorStamp(self)
        self.source = self.make_source()
        self.reader = SensorReader(self.source, self.on_item, self.cfg.reader_settings(), log=self.log)
        self.diagnostics = Diagnostics(self, hardware_id=self.source.describe())
        self.diagnostics.add(self.status_name or node_name, self.status)

    # --- what a sensor supplies --------------------------------------------------------------
    def make_source(self) -> Source:
        """The device, recording or generated stream this node reads (from ``self.cfg``)."""
        raise NotImplementedError

    def on_item(self, item: Any) -> None:
        """Build and publish the messages of one item (runs on the reader thread)."""
        raise NotImplementedError

    def status_values(self) -> Dict[str, Any]:
        """Node-specific diagnostics values, added to the reader's."""
        return {}

    def late_after_s(self) -> Optional[float]:
        """Newest sample older than this while streaming = late (WARN); None = no such check."""
        return None

    def streaming_status(self, values: Dict[str, Any]) -> Tuple[int, str]:
        """(level, message) while the source streams; refine for what else a sensor checks."""
        limit, item = self.late_after_s(), self.source.item
        age = values.get(f'{item}_age_s')
        if limit is not None and (age is None or age > limit):
            return WARN, f'streaming but {item}s are late'
        return OK, 'streaming'

    # --- shared ------------------------------------------------------------------------------
    def start(self, summary: str) -> None:
        """Log what is read (loudly if synthetic) and start the reader."""
        if self.source.synthetic:
            self.get_logger().warning(f'SYNTHETIC source: {self.source.describe()} ({self.synthetic_note})')
        self.get_logger().info(summary)
        self.reader.start()

    def log(self, level: str, message: str) -> None:
        if self.context.ok():  # after Ctrl-C the logger's /rosout publisher is gone
            log_at(self.get_logger(), level, message)

    def guarded_publish(self, publisher, msg) -> bool:
        """Publish; False, not an exception, once the context is shut down.

        Ctrl-C shuts the context down before close() stops the reader thread; an item caught
        in between is simply not published.
        """
        try:
            publisher.publish(msg)
        except Exception:
            if self.context.ok():
                raise
            return False
        return True

    def status(self) -> Tuple[int, str, Dict[str, Any]]:
        reader = self.reader
        values = reader.status()
        values.update(self.status_values())
        prefix = 'SYNTHETIC source; ' if self.source.synthetic else ''
        if reader.finished:  # a non-looping replay ended: done, not failed
            return OK, prefix + f'finished: {reader.finished_reason}', values
        if not reader.connected:
            return ERROR, prefix + f'{reader.state}: {values["last_error"] or "no device yet"}', values
        level, message = self.streaming_status(values)
        return level, prefix + message, values

    def close(self) -> None:
        """Stop the reader and release the device (run_node calls it on shutdown)."""
        self.reader.stop()
