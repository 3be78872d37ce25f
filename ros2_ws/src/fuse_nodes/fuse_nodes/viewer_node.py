"""Viewer node: a Foxglove WebSocket server (foxglove-sdk, no ROS install needed) showing every modality live."""

from __future__ import annotations

import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import foxglove
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image, Imu
from tf2_msgs.msg import TFMessage

from fuse_core.arm.description import LINK_VISUALS
from fuse_core.errors import ConfigError
from fuse_core.viewer import (RateLimiter, ViewerConfig, chunk_actions, encode_jpeg, predicted_path,
                              spectrogram_image, tactile_difference)
from fuse_interfaces.msg import ActionChunk, ArmStatus, DeltaEECommand, EpisodeState, TaskState
from fuse_nodes.common import (CONTROL_QOS, LATCHED_QOS, OK, SENSOR_QOS, STATE_QOS, WARN, Diagnostics,
                               declare_config, run_node, time_to_ns)
from fuse_nodes.conversions import image_to_array
from fuse_nodes.robot_state_node import TF_QOS, TF_STATIC_QOS

CAMERAS = ('camera_primary', 'camera_wrist')
DIGITS = ('digit_left', 'digit_right')


def _ts(stamp):
    from foxglove.messages import Timestamp
    return Timestamp(int(stamp.sec), int(stamp.nanosec))


class _Subscriptions(foxglove.ServerListener):
    """foxglove ServerListener: which channels some client is subscribed to (nothing else is encoded)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.topics: Dict[str, int] = {}

    def on_subscribe(self, client, channel) -> None:
        with self._lock:
            self.topics[channel.topic] = self.topics.get(channel.topic, 0) + 1

    def on_unsubscribe(self, client, channel) -> None:
        with self._lock:
            self.topics[channel.topic] = max(0, self.topics.get(channel.topic, 0) - 1)

    def wanted(self, topic: str) -> bool:
        return self.topics.get(topic, 0) > 0


class ViewerNode(Node):
    """Subscribes to the graph's topics and republishes them as Foxglove messages.

    Images are JPEG-encoded at most `image_rate_hz` per topic and only while some client watches
    them; raw subscriptions defer deserialisation until an image is due, so skipped frames cost
    nothing but the DDS copy. The server queues `message_backlog` messages per client and drops
    the rest for a slow client; rclpy callbacks never wait for a client.
    """

    def __init__(self) -> None:
        super().__init__('viewer')
        cfg = self.cfg = declare_config(self, ViewerConfig)
        from foxglove import channels as fc
        self.subs = _Subscriptions()
        try:
            self.server = foxglove.start_server(name='fuse-ros', host=cfg.host, port=cfg.port,
                                                server_listener=self.subs,
                                                message_backlog_size=cfg.message_backlog)
        except RuntimeError as exc:
            raise ConfigError(f'viewer: cannot serve on {cfg.host}:{cfg.port}: {exc} '
                              '(is another viewer or foxglove_bridge running? set the port parameter)') from exc
        self.images = RateLimiter(cfg.image_rate_hz)
        self.plots = RateLimiter(cfg.plot_rate_hz)
        self.slow = RateLimiter(1.0)
        self.sent = 0
        self._backgrounds: Dict[str, np.ndarray] = {}
        self._static: Dict[str, object] = {}
        self._target_xyz: Optional[np.ndarray] = None
        prefix = f'{cfg.robot_model}/'
        self._prefix = prefix
        # ROS subscriptions that exist only while a client watches what they feed: an idle viewer
        # costs the graph (and itself) almost nothing.
        self._lazy_subs: List[list] = []

        self.ch_img = {}
        for cam in CAMERAS:
            self.ch_img[cam] = fc.CompressedImageChannel(f'/{cam}/image')
            self._lazy((f'/{cam}/image',), Image, f'/{cam}/image_raw',
                       lambda raw, c=cam: self._on_image(c, raw), SENSOR_QOS, raw=True)
        self.ch_cal = {cam: fc.CameraCalibrationChannel(f'/{cam}/calibration') for cam in CAMERAS}
        for cam in CAMERAS:
            self._lazy((f'/{cam}/calibration',), CameraInfo, f'/{cam}/camera_info',
                       lambda m, c=cam: self._on_info(c, m), SENSOR_QOS)
        for d in DIGITS:
            self.ch_img[d] = fc.CompressedImageChannel(f'/{d}/image')
            self.ch_img[f'{d}/difference'] = fc.CompressedImageChannel(f'/{d}/difference')
            self._lazy((f'/{d}/image', f'/{d}/difference'), Image, f'/{d}/image_raw',
                       lambda raw, n=d: self._on_digit(n, raw), SENSOR_QOS, raw=True)
            self.create_subscription(Image, f'/{d}/background', lambda m, n=d: self._on_background(n, m),
                                     LATCHED_QOS)
        self.ch_img['spectrogram'] = fc.CompressedImageChannel('/audio/spectrogram')
        self._lazy(('/audio/spectrogram',), Image, '/audio/mel_spectrogram', self._on_spectrogram, SENSOR_QOS,
                   raw=True)
        self.ch_tf = fc.FrameTransformsChannel('/tf')
        self._lazy(('/tf',), TFMessage, '/tf', self._on_tf, TF_QOS, raw=True)
        self.create_subscription(TFMessage, '/tf_static', self._on_tf_static, TF_STATIC_QOS)
        self.ch_arm = fc.SceneUpdateChannel('/arm/model')
        self.ch_path = fc.SceneUpdateChannel('/policy/predicted_path')
        self.ch_imu = foxglove.Channel('/imu', schema=_object_schema('acc', 'gyro', 'orientation'))
        self.ch_cmd = foxglove.Channel('/policy/command', schema=_object_schema(
            'tick_index', 'dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper', 'hold', 'reason', 'latency_ms'))
        self.ch_chunk = foxglove.Channel('/policy/action_chunk', schema=_object_schema(
            'tick_index', 'horizon', 'actions', 'inference_ms'))
        self.ch_arm_status = foxglove.Channel('/arm/status', schema=_object_schema(
            'state', 'hold_reason', 'backend', 'ee', 'target', 'gripper_opening', 'commands_applied',
            'commands_rejected', 'estop_latched'))
        self.ch_task = foxglove.Channel('/world/task_state', schema=_object_schema(
            'task', 'seed', 'episode', 'instruction', 'state', 'detail', 'episode_time_s', 'time_left_s'))
        self._lazy(('/imu',), Imu, '/imu/data', self._on_imu, SENSOR_QOS, raw=True)
        self._lazy(('/policy/command',), DeltaEECommand, '/policy/command', self._on_command, CONTROL_QOS)
        self.create_subscription(ActionChunk, '/policy/action_chunk', self._on_chunk, CONTROL_QOS)
        self.create_subscription(ArmStatus, '/arm/status', self._on_arm_status, STATE_QOS)
        if cfg.task_state_topic:
            self._lazy(('/world/task_state',), TaskState, cfg.task_state_topic, self._on_task, STATE_QOS)
        self.ch_episode = foxglove.Channel('/episodes/state', schema=_object_schema(
            'state', 'episode_id', 'task', 'seed', 'instruction', 'action_source', 'episodes_recorded',
            'last_episode_id', 'last_outcome', 'message', 'elapsed_s'))
        self._lazy(('/episodes/state',), EpisodeState, '/episodes/state', self._on_episode, STATE_QOS)
        # A new client gets the static frames and the arm model within a second.
        self.create_timer(1.0, self._on_slow_timer)
        self.create_timer(0.25, self._sync_subscriptions)
        self.diagnostics = Diagnostics(self)
        self.diagnostics.add('viewer', self._status)
        self.get_logger().info(f'Foxglove WebSocket server on ws://{cfg.host}:{self.server.port} '
                               f'(images at most {cfg.image_rate_hz:g} Hz, JPEG quality {cfg.jpeg_quality}); '
                               'open it in Foxglove with config/foxglove_layout.json')

    # --- subscriptions that follow the clients ----------------------------------------------------
    def _lazy(self, channels: Tuple[str, ...], msg_type, topic: str, callback, qos, raw: bool = False) -> None:
        self._lazy_subs.append([channels, (msg_type, topic, callback, qos, raw), None])

    def _sync_subscriptions(self) -> None:
        for entry in self._lazy_subs:
            channels, (msg_type, topic, callback, qos, raw), sub = entry
            wanted = any(self.subs.wanted(c) for c in channels)
            if wanted and sub is None:
                entry[2] = self.create_subscription(msg_type, topic, callback, qos, raw=raw)
            elif not wanted and sub is not None:
                self.destroy_subscription(sub)
                entry[2] = None

    def ros_subscriptions(self) -> int:
        return sum(e[2] is not None for e in self._lazy_subs)

    # --- images -----------------------------------------------------------------------------------
    def _due(self, key: str, topic: str) -> bool:
        return self.subs.wanted(topic) and self.images.ready(key)

    def _log(self, channel, msg, stamp_ns: Optional[int] = None) -> None:
        channel.log(msg, log_time=stamp_ns if stamp_ns is not None else time.time_ns())
        self.sent += 1

    def _send_jpeg(self, key: str, img: np.ndarray, stamp, frame_id: str) -> None:
        from foxglove.messages import CompressedImage
        data = encode_jpeg(img, self.cfg.jpeg_quality, self.cfg.image_max_width)
        self._log(self.ch_img[key], CompressedImage(timestamp=_ts(stamp), frame_id=frame_id, data=data,
                                                    format='jpeg'))

    def _on_image(self, cam: str, raw: bytes) -> None:
        if not self._due(cam, f'/{cam}/image'):
            return
        msg = deserialize_message(raw, Image)
        self._send_jpeg(cam, image_to_array(msg), msg.header.stamp, msg.header.frame_id)

    def _on_info(self, cam: str, msg: CameraInfo) -> None:
        if not (self.subs.wanted(f'/{cam}/calibration') and self.slow.ready(f'info/{cam}')):
            return
        from foxglove.messages import CameraCalibration
        self._log(self.ch_cal[cam], CameraCalibration(
            timestamp=_ts(msg.header.stamp), frame_id=msg.header.frame_id, width=msg.width, height=msg.height,
            distortion_model=msg.distortion_model, D=list(msg.d), K=list(msg.k), R=list(msg.r), P=list(msg.p)))

    def _on_background(self, name: str, msg: Image) -> None:
        self._backgrounds[name] = image_to_array(msg, copy=True)

    def _on_digit(self, name: str, raw: bytes) -> None:
        want_img = self.subs.wanted(f'/{name}/image')
        want_diff = self.subs.wanted(f'/{name}/difference')
        if not (want_img or want_diff) or not self.images.ready(name):
            return
        msg = deserialize_message(raw, Image)
        frame = image_to_array(msg)
        if want_img:
            self._send_jpeg(name, frame, msg.header.stamp, msg.header.frame_id)
        bg = self._backgrounds.get(name)
        if want_diff and bg is not None and bg.shape == frame.shape:
            self._send_jpeg(f'{name}/difference', tactile_difference(frame, bg, self.cfg.digit_gain),
                            msg.header.stamp, msg.header.frame_id)

    def _on_spectrogram(self, raw: bytes) -> None:
        if not self._due('spectrogram', '/audio/spectrogram'):
            return
        msg = deserialize_message(raw, Image)
        self._send_jpeg('spectrogram', spectrogram_image(image_to_array(msg)), msg.header.stamp,
                        msg.header.frame_id)

    # --- frames and the arm -----------------------------------------------------------------------
    @staticmethod
    def _frame_transform(t):
        from foxglove.messages import FrameTransform, Quaternion, Vector3
        tr, r = t.transform.translation, t.transform.rotation
        return FrameTransform(timestamp=_ts(t.header.stamp), parent_frame_id=t.header.frame_id,
                              child_frame_id=t.child_frame_id, translation=Vector3(x=tr.x, y=tr.y, z=tr.z),
                              rotation=Quaternion(x=r.x, y=r.y, z=r.z, w=r.w))

    def _on_tf(self, raw: bytes) -> None:
        if not (self.subs.wanted('/tf') and self.plots.ready('tf')):
            return
        msg = deserialize_message(raw, TFMessage)
        from foxglove.messages import FrameTransforms
        self._log(self.ch_tf, FrameTransforms(transforms=[self._frame_transform(t) for t in msg.transforms]))

    def _on_tf_static(self, msg: TFMessage) -> None:
        for t in msg.transforms:
            self._static[t.child_frame_id] = self._frame_transform(t)

    def _on_slow_timer(self) -> None:
        from foxglove.messages import FrameTransforms
        if self._static and self.subs.wanted('/tf'):
            self._log(self.ch_tf, FrameTransforms(transforms=list(self._static.values())))
        if self.subs.wanted('/arm/model'):
            self._log(self.ch_arm, self._arm_model())

    def _arm_model(self):
        """One entity per link, locked to its TF frame, so the 3D panel moves it with /tf."""
        from foxglove.messages import (Color, CubePrimitive, CylinderPrimitive, Pose, Quaternion, SceneEntity,
                                       SceneUpdate, Vector3)
        entities = []
        colour = Color(r=0.15, g=0.15, b=0.17, a=1.0)
        for link, (kind, size, origin) in LINK_VISUALS.items():
            pose = Pose(position=Vector3(x=origin[0], y=origin[1], z=origin[2]),
                        orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
            if kind == 'cylinder':
                dims = Vector3(x=2 * size[0], y=2 * size[0], z=size[1])
                prim = {'cylinders': [CylinderPrimitive(pose=pose, size=dims, bottom_scale=1.0, top_scale=1.0,
                                                        color=colour)]}
            else:
                prim = {'cubes': [CubePrimitive(pose=pose, size=Vector3(x=size[0], y=size[1], z=size[2]),
                                                color=colour)]}
            entities.append(SceneEntity(frame_id=self._prefix + link, id=link, frame_locked=True, **prim))
        return SceneUpdate(entities=entities)

    # --- control path -----------------------------------------------------------------------------
    def _on_imu(self, raw: bytes) -> None:
        if not (self.subs.wanted('/imu') and self.plots.ready('imu')):
            return
        msg = deserialize_message(raw, Imu)
        a, g, o = msg.linear_acceleration, msg.angular_velocity, msg.orientation
        self._log(self.ch_imu, {'acc': [a.x, a.y, a.z], 'gyro': [g.x, g.y, g.z],
                                'orientation': [o.x, o.y, o.z, o.w]}, time_to_ns(msg.header.stamp))

    def _on_command(self, msg: DeltaEECommand) -> None:
        if not self.subs.wanted('/policy/command'):
            return
        latency_ms = (time.time_ns() - time_to_ns(msg.newest_sample_stamp)) / 1e6
        t, r = msg.translation, msg.rotation
        self._log(self.ch_cmd, {'tick_index': int(msg.tick_index), 'dx': t[0], 'dy': t[1], 'dz': t[2],
                                'droll': r[0], 'dpitch': r[1], 'dyaw': r[2], 'gripper': msg.gripper,
                                'hold': bool(msg.hold), 'reason': msg.reason,
                                'latency_ms': latency_ms if msg.newest_sample_stamp.sec else None})

    def _on_chunk(self, msg: ActionChunk) -> None:
        actions = chunk_actions(msg.actions, int(msg.horizon), int(msg.action_dim))
        if actions is None:
            return
        if self.subs.wanted('/policy/action_chunk'):
            self._log(self.ch_chunk, {'tick_index': int(msg.tick_index), 'horizon': int(msg.horizon),
                                      'actions': actions.tolist(), 'inference_ms': float(msg.inference_ms)})
        if self._target_xyz is None or not self.subs.wanted('/policy/predicted_path'):
            return
        from foxglove.messages import (Color, LinePrimitive, LinePrimitiveLineType, Point3, Pose, Quaternion,
                                       SceneEntity, SceneUpdate, SpherePrimitive, Vector3)
        path = predicted_path(self._target_xyz, actions)
        identity = Pose(position=Vector3(x=0.0, y=0.0, z=0.0), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
        line = LinePrimitive(type=LinePrimitiveLineType.LineStrip, pose=identity, thickness=0.006,
                             scale_invariant=False, points=[Point3(x=p[0], y=p[1], z=p[2]) for p in path],
                             color=Color(r=1.0, g=0.55, b=0.0, a=1.0))
        dots = [SpherePrimitive(pose=Pose(position=Vector3(x=p[0], y=p[1], z=p[2]),
                                          orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
                                size=Vector3(x=0.012, y=0.012, z=0.012), color=Color(r=1.0, g=0.8, b=0.1, a=1.0))
                for p in path[1:]]
        self._log(self.ch_path, SceneUpdate(entities=[SceneEntity(
            timestamp=_ts(msg.header.stamp), frame_id=self._prefix + 'base_link', id='predicted_path',
            lines=[line], spheres=dots)]))

    def _on_arm_status(self, msg: ArmStatus) -> None:
        tp = msg.target_pose.position
        self._target_xyz = np.array([tp.x, tp.y, tp.z])
        if not self.subs.wanted('/arm/status'):
            return
        ep = msg.ee_pose.position
        self._log(self.ch_arm_status, {'state': msg.state, 'hold_reason': msg.hold_reason, 'backend': msg.backend,
                                       'ee': [ep.x, ep.y, ep.z], 'target': [tp.x, tp.y, tp.z],
                                       'gripper_opening': msg.gripper_opening,
                                       'commands_applied': int(msg.commands_applied),
                                       'commands_rejected': int(msg.commands_rejected),
                                       'estop_latched': bool(msg.estop_latched)})

    def _on_task(self, msg) -> None:
        if not self.subs.wanted('/world/task_state'):
            return
        self._log(self.ch_task, {'task': msg.task, 'seed': int(msg.seed), 'episode': int(msg.episode),
                                 'instruction': msg.instruction, 'state': msg.state, 'detail': msg.detail,
                                 'episode_time_s': msg.episode_time_s, 'time_left_s': msg.time_left_s})

    def _on_episode(self, msg: EpisodeState) -> None:
        self._log(self.ch_episode, {'state': msg.state, 'episode_id': msg.episode_id, 'task': msg.task,
                                    'seed': int(msg.seed), 'instruction': msg.instruction,
                                    'action_source': msg.action_source,
                                    'episodes_recorded': int(msg.episodes_recorded),
                                    'last_episode_id': msg.last_episode_id, 'last_outcome': msg.last_outcome,
                                    'message': msg.message, 'elapsed_s': msg.elapsed_s})

    def _status(self):
        subscribed = sorted(t for t, n in self.subs.topics.items() if n > 0)
        values = {'url': f'ws://{self.cfg.host}:{self.server.port}', 'messages_sent': self.sent,
                  'ros_subscriptions_on_demand': self.ros_subscriptions(),
                  'subscribed_channels': len(subscribed),
                  'images_sent': sum(self.images.passed.values()),
                  'images_skipped': sum(self.images.dropped.values())}
        if not subscribed:
            return OK, 'serving; no client subscribed', values
        if not self.sent:
            return WARN, 'client subscribed but nothing to send yet', values
        return OK, f'serving {len(subscribed)} channels', values

    def close(self) -> None:
        self.server.stop()


def _object_schema(*names: str) -> dict:
    return {'type': 'object', 'properties': {n: {} for n in names}}


def main(args=None):
    return run_node(ViewerNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
