"""Teleop node: a device (keyboard, SpaceMouse, gamepad, scripted, fake) -> DeltaEECommand at 5 Hz."""

from __future__ import annotations

import sys
import time
from typing import Optional

from fuse_interfaces.msg import DeltaEECommand, EpisodeState
from rclpy.node import Node
from std_msgs.msg import String

from fuse_core.errors import DeviceError
from fuse_core.teleop.mapper import TeleopConfig, TeleopMapper, TeleopStep
from fuse_core.teleop.scripted import make_source
from fuse_nodes.common import (CONTROL_QOS, ERROR, OK, STATE_QOS, WARN, Diagnostics, declare_config,
                               ns_to_time, run_node)


class TeleopNode(Node):
    """Publishes on the policy's command topic through the arm's safety filter.

    Every tick is either a motion or an explicit hold naming why (dead-man released, device lost,
    not recording). Episode buttons go to ~/episode_key (std_msgs/String) for the episode manager;
    a lost device sends `device_lost: <why>` there too, and the node retries to open it.
    """

    def __init__(self) -> None:
        super().__init__('teleop')
        cfg = self.cfg = declare_config(self, TeleopConfig)
        try:
            source = make_source(cfg)
        except DeviceError as exc:
            from fuse_core.errors import ConfigError
            raise ConfigError(f'teleop: {exc}') from exc
        self.mapper = TeleopMapper(source, cfg)
        self.pub = self.create_publisher(DeltaEECommand, cfg.command_topic, CONTROL_QOS)
        self.key_pub = self.create_publisher(String, '~/episode_key', STATE_QOS)
        self.episode_state: Optional[str] = None
        self.create_subscription(EpisodeState, '/episodes/state', self._on_episode, STATE_QOS)
        self._tick = 0
        self._sent = self._holds = 0
        self._last_reason = ''
        self._next_connect = 0.0
        if not self.mapper.connect():
            self.get_logger().error(f'{source.name}: {self.mapper.last_error}; retrying every '
                                    f'{cfg.reconnect_s} s (the arm holds meanwhile)')
        elif source.synthetic:
            self.get_logger().warning(f'teleop source {source.name} is SYNTHETIC (tests/simulation only)')
        self._diag = Diagnostics(self, hardware_id=f'{source.name}{" (synthetic)" if source.synthetic else ""}')
        self._diag.add('teleop', self._status)
        self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
        if cfg.device == 'keyboard':
            from fuse_core.teleop.keyboard import HELP
            self.get_logger().info(f'keyboard: {HELP}')
        self.get_logger().info(f'teleop {source.name} -> {cfg.command_topic} at {cfg.rate_hz} Hz'
                               + (', only while recording' if cfg.require_recording else ''))

    def _on_episode(self, msg: EpisodeState) -> None:
        self.episode_state = msg.state

    def _on_tick(self) -> None:
        m = self.mapper
        if not m.connected and time.monotonic() >= self._next_connect:
            self._next_connect = time.monotonic() + self.cfg.reconnect_s
            if m.connect():
                self.get_logger().info(f'{m.source.name}: connected')
        step: TeleopStep = m.tick()
        if step.device_lost:
            self.get_logger().error(f'{m.source.name}: device lost ({step.device_lost}); holding')
            self.key_pub.publish(String(data=f'device_lost: {step.device_lost}'))
            self._next_connect = time.monotonic() + self.cfg.reconnect_s
        for key in step.episode_keys:
            self.key_pub.publish(String(data=key))
        if self.cfg.require_recording and self.episode_state != 'recording' and not step.hold:
            step = TeleopStep(None, f'episode {self.episode_state or "manager not seen"}: not recording')
        self._publish(step)

    def _publish(self, step: TeleopStep) -> None:
        now = self.get_clock().now().nanoseconds
        msg = DeltaEECommand()
        msg.header.stamp = ns_to_time(now)
        msg.header.frame_id = 'wx250s/base_link'
        self._tick += 1
        msg.tick_index = self._tick
        msg.newest_sample_stamp = ns_to_time(now)
        msg.valid_until = ns_to_time(now + int(self.cfg.command_valid_s * 1e9))
        msg.gripper = float(self.mapper.gripper)
        if step.hold:
            msg.hold, msg.reason = True, step.reason
            self._holds += 1
            if step.reason != self._last_reason:
                self.get_logger().info(f'hold: {step.reason}')
        else:
            msg.translation = [float(v) for v in step.action[:3]]
            msg.rotation = [float(v) for v in step.action[3:6]]
            msg.gripper = float(step.action[6])
            self._sent += 1
        self._last_reason = step.reason
        self.pub.publish(msg)

    def _status(self):
        m = self.mapper
        values = {'device': m.source.name, 'synthetic': m.source.synthetic, 'connected': m.connected,
                  'commands': self._sent, 'holds': self._holds, 'speed': m.speed, 'gripper': m.gripper,
                  'devices_lost': m.lost_count, 'last_error': m.last_error,
                  'hold_reason': self._last_reason}
        if not m.connected:
            return ERROR, f'{m.source.name} not connected: {m.last_error}', values
        if self._last_reason:
            return WARN, f'holding: {self._last_reason}', values
        return OK, 'commanding', values

    def close(self) -> None:
        for t in list(self.timers):
            t.cancel()
        self.mapper.close()


def main(args=None):
    return run_node(TeleopNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
