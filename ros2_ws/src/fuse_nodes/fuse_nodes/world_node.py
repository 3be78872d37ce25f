"""World node: the MuJoCo twin; publishes the drivers' sensor topics, joint states, task state and /clock."""

from __future__ import annotations

import sys
import time
from typing import Dict, List, Optional

import numpy as np
from geometry_msgs.msg import Point
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState, MagneticField
from std_msgs.msg import String

from fuse_core.arm.kinematics import FINGER_NAMES, JOINT_NAMES
from fuse_core.audio.config import AudioConfig
from fuse_core.episodes.modalities import to_lists
from fuse_core.errors import ConfigError, DeviceError
from fuse_core.timing import percentiles
from fuse_interfaces.msg import AudioChunk, TaskState
from fuse_interfaces.srv import CaptureBackground, ResetTask
from fuse_nodes.common import (LATCHED_QOS, OK, SENSOR_QOS, STATE_QOS, WARN, Diagnostics, declare_config,
                               ns_to_time, run_node)
from fuse_nodes.conversions import array_to_image, fill_imu, fill_mag
from fuse_sim.audio import AudioSynth
from fuse_sim.config import WorldConfig
from fuse_sim.sensors import DigitSimulator, ImuSimulator, SceneRenderer, primary_and_wrist
from fuse_sim.tasks import TASKS
from fuse_sim.world import World

#: Physics steps per loop iteration (2 x 2.5 ms): the finest output period is the IMU's 5 ms.
STEPS_PER_ITERATION = 2
CAMERAS = {'camera_primary': 'primary', 'camera_wrist': 'wrist'}
DIGITS = {'digit_left': 'digit_left', 'digit_right': 'digit_right'}


class _Schedule:
    """Fires every `period` of sim time; counts how often."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.next = 0.0
        self.count = 0

    def due(self, t: float) -> bool:
        if t + 1e-9 >= self.next:
            self.next = max(self.next + self.period, t - self.period)
            self.count += 1
            return True
        return False


class WorldNode(Node):
    """Thin shell around fuse_sim.World: parameters, publishers, the reset service, pacing."""

    def __init__(self) -> None:
        super().__init__('world')
        cfg = self.cfg = declare_config(self, WorldConfig)
        self.world = World(cfg, render_size=(max(cfg.camera_width, 320), max(cfg.camera_height, 240)))
        self.audio_cfg = AudioConfig(block_size=cfg.audio_block_size, spectrogram_rate_hz=cfg.spectrogram_rate_hz)
        self._spectrogram = self.audio_cfg.spectrogram()
        self.synth = AudioSynth(self.audio_cfg.sample_rate, seed=cfg.seed)
        self.imu = ImuSimulator(seed=cfg.seed)
        self._renderer: Optional[SceneRenderer] = None
        self._digits: Dict[str, DigitSimulator] = {}
        self._render_ms: Dict[str, List[float]] = {}
        self._model_id = id(self.world.model)
        if cfg.render:
            self._build_sensors()
        # Publishers: the same topics, types, QoS and frame_ids as the drivers.
        self.pub_joints = self.create_publisher(JointState, '~/joint_states', STATE_QOS)
        self.pub_task = self.create_publisher(TaskState, '~/task_state', STATE_QOS)
        self.pub_clock = self.create_publisher(Clock, '/clock', 10)
        self.pub_cam = {n: self.create_publisher(Image, f'/{n}/image_raw', SENSOR_QOS) for n in CAMERAS}
        self.pub_info = {n: self.create_publisher(CameraInfo, f'/{n}/camera_info', SENSOR_QOS) for n in CAMERAS}
        self.pub_digit = {n: self.create_publisher(Image, f'/{n}/image_raw', SENSOR_QOS) for n in DIGITS}
        self.pub_bg = {n: self.create_publisher(Image, f'/{n}/background', LATCHED_QOS) for n in DIGITS}
        self.pub_chunk = self.create_publisher(AudioChunk, '/audio/chunk', SENSOR_QOS)
        self.pub_spec = self.create_publisher(Image, '/audio/mel_spectrogram', SENSOR_QOS)
        self.pub_imu = self.create_publisher(Imu, '/imu/data', SENSOR_QOS)
        self.pub_mag = self.create_publisher(MagneticField, '/imu/mag', SENSOR_QOS)
        self.create_subscription(JointState, '~/joint_targets', self._on_targets, STATE_QOS)
        self.pub_instruction = (self.create_publisher(String, cfg.instruction_topic, LATCHED_QOS)
                                if cfg.instruction_topic else None)
        # Lockstep: the world runs at most lockstep_max_lead_s ahead of the arm's clock, so the arm
        # (and through its watchdog, its commander) is never starved, however slow the machine.
        self._follow_stamp: Optional[float] = None
        self._follow_wall = 0.0
        self._waits = 0
        if cfg.mode == 'lockstep' and cfg.lockstep_follow_topic:
            self.create_subscription(JointState, cfg.lockstep_follow_topic, self._on_follow, STATE_QOS)
        self.create_service(ResetTask, '~/reset', self._on_reset)
        self._capture = {n: self.create_service(CaptureBackground, f'/{n}/capture_background',
                                                lambda req, res, n=n: self._on_capture(n, req, res))
                         for n in DIGITS}
        self._sched = {
            'joints': _Schedule(cfg.joint_state_rate_hz), 'task': _Schedule(cfg.task_state_rate_hz),
            'clock': _Schedule(cfg.clock_rate_hz), 'imu': _Schedule(cfg.imu_rate_hz),
            'camera': _Schedule(cfg.camera_rate_hz), 'digit': _Schedule(cfg.digit_rate_hz),
            'spectrogram': _Schedule(cfg.spectrogram_rate_hz),
        }
        self._audio_ring = np.zeros(self._spectrogram.window_samples, np.float32)
        self._audio_pending = np.zeros(0, np.float32)
        self._audio_index = 0
        # Stamps: lockstep counts from zero (every node on use_sim_time, /clock is the time);
        # real time anchors sim time to the wall clock so stamps read like a driver's.
        self._epoch_ns = 0 if cfg.mode == 'lockstep' else time.time_ns()
        self._wall0 = time.monotonic()
        self._sim0 = self.world.time_s
        self._start_wall, self._start_sim = self._wall0, self._sim0
        self._late = 0
        self._lost_s = 0.0
        self._iterations = 0
        self._rtf_window = (time.monotonic(), self.world.time_s)
        self.real_time_factor = 0.0
        self._publish_backgrounds()
        self._publish_instruction()
        self.diagnostics = Diagnostics(self, hardware_id='MuJoCo twin (synthetic)')
        self.diagnostics.add('world', self._status)
        self.get_logger().warning(f'SYNTHETIC world: MuJoCo twin, task {cfg.task} seed {cfg.seed}, mode {cfg.mode}, '
                                  f'rendering {"on" if cfg.render else "off"}')
        self.get_logger().info(f'instruction: {self.world.instruction!r}')
        self._timer = self.create_timer(0.0 if cfg.mode == 'lockstep' else 0.005, self._loop)

    # --- sensors ------------------------------------------------------------------------------
    def _build_sensors(self) -> None:
        for d in self._digits.values():
            d.close()
        if self._renderer is not None:
            self._renderer.close()
        try:
            self._renderer = SceneRenderer(self.world.model, primary_and_wrist(self.cfg.camera_width,
                                                                               self.cfg.camera_height))
            self._digits = {n: DigitSimulator(self.world.model, cam, seed=i)
                            for i, (n, cam) in enumerate(DIGITS.items())}
        except DeviceError as exc:
            raise ConfigError(f'world: rendering is on but {exc}') from exc
        self._model_id = id(self.world.model)

    def _publish_backgrounds(self) -> None:
        stamp = self._stamp()
        for n, d in self._digits.items():
            self.pub_bg[n].publish(array_to_image(d.background, 'bgr8', stamp=stamp, frame_id=f'{n}_frame'))

    def _publish_instruction(self) -> None:
        if self.pub_instruction is not None:
            self.pub_instruction.publish(String(data=self.world.instruction))

    def _stamp(self):
        return ns_to_time(self._epoch_ns + int(round(self.world.time_s * 1e9)))

    # --- the loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        w = self.world
        if self.cfg.mode == 'realtime':
            # Run as many iterations as the wall clock asks for; falling behind is counted.
            target = self._sim0 + (time.monotonic() - self._wall0)
            behind = target - w.time_s
            if behind > 0.1:
                self._late += 1
                self._lost_s += behind
                self._sim0 -= behind           # re-anchor: sim time runs on from here,
                self._epoch_ns += int(behind * 1e9)   # and stamps jump with the wall clock
                target = w.time_s
            budget = 0
            while w.time_s < target - 1e-9 and budget < 20:
                self._iterate()
                budget += 1
        else:
            cap = self.cfg.lockstep_real_time_factor
            if cap > 0.0 and w.time_s - self._sim0 > cap * (time.monotonic() - self._wall0):
                return
            if self._follow_stamp is not None and w.time_s - self._follow_stamp > self.cfg.lockstep_max_lead_s \
                    and time.monotonic() - self._follow_wall < self.cfg.lockstep_follow_timeout_s:
                self._waits += 1
                time.sleep(0.0005)
                return
            self._iterate()
        now = time.monotonic()
        t0, s0 = self._rtf_window
        if now - t0 >= 2.0:
            self.real_time_factor = (w.time_s - s0) / (now - t0)
            self._rtf_window = (now, w.time_s)

    def _iterate(self) -> None:
        w = self.world
        w.step(STEPS_PER_ITERATION)
        self._iterations += 1
        t = w.time_s
        stamp = self._stamp()
        for ev in w.take_events():
            self.synth.add_event(ev.time_s, ev.material, ev.speed)
        self._audio(t, stamp)
        s = self._sched
        if s['clock'].due(t):
            self.pub_clock.publish(Clock(clock=stamp))
        if s['joints'].due(t):
            self._publish_joints(stamp)
        if s['imu'].due(t):
            self._publish_imu(stamp)
        if s['task'].due(t):
            self._publish_task(stamp)
        if self.cfg.render:
            if id(w.model) != self._model_id:
                self._build_sensors()
            if s['camera'].due(t):
                for n, cam in CAMERAS.items():
                    t0 = time.perf_counter()
                    img = self._renderer.render(w.data, cam)
                    self._timed(cam, t0)
                    self.pub_cam[n].publish(array_to_image(img, 'bgr8', stamp=stamp, frame_id=f'{n}_optical_frame'))
                    self.pub_info[n].publish(self._camera_info(n, cam, stamp))
            if s['digit'].due(t):
                for n, d in self._digits.items():
                    t0 = time.perf_counter()
                    img = d.render(w.data)
                    self._timed('digit', t0)
                    self.pub_digit[n].publish(array_to_image(img, 'bgr8', stamp=stamp, frame_id=f'{n}_frame'))

    def _timed(self, key: str, t0: float) -> None:
        buf = self._render_ms.setdefault(key, [])
        buf.append((time.perf_counter() - t0) * 1e3)
        if len(buf) > 200:
            del buf[:100]

    def _camera_info(self, node: str, cam: str, stamp) -> CameraInfo:
        k = self._renderer.intrinsics(cam)
        msg = CameraInfo()
        msg.header.stamp, msg.header.frame_id = stamp, f'{node}_optical_frame'
        msg.width, msg.height = self.cfg.camera_width, self.cfg.camera_height
        msg.distortion_model = 'plumb_bob'
        msg.d = [0.0] * 5
        msg.k = [float(x) for x in k.reshape(-1)]
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        msg.p = [float(k[0, 0]), 0.0, float(k[0, 2]), 0.0, 0.0, float(k[1, 1]), float(k[1, 2]), 0.0,
                 0.0, 0.0, 1.0, 0.0]
        return msg

    def _audio(self, t: float, stamp) -> None:
        w = self.world
        block = self.synth.render_until(t, float(np.abs(w.joint_velocities()).sum()),
                                        float(np.abs(w.finger_velocities()).sum()))
        pending = np.concatenate([self._audio_pending, block])
        n = self.cfg.audio_block_size
        sr = self.audio_cfg.sample_rate
        while pending.size >= n:
            chunk, pending = pending[:n], pending[n:]
            first = self._audio_index
            msg = AudioChunk()
            start_s = (self.synth.next_index - pending.size - n) / sr
            msg.header.stamp = ns_to_time(self._epoch_ns + int(round(start_s * 1e9)))
            msg.header.frame_id = self.audio_cfg.frame_id
            msg.sample_rate, msg.channels = sr, 1
            msg.first_sample_index = first
            msg.samples = chunk.tolist()
            self.pub_chunk.publish(msg)
            self._audio_index += n
            self._audio_ring = np.concatenate([self._audio_ring[n:], chunk])
        self._audio_pending = pending
        if self._sched['spectrogram'].due(t):
            db = self._spectrogram(self._audio_ring).astype(np.float32)
            self.pub_spec.publish(array_to_image(db, '32FC1', stamp=stamp, frame_id=self.audio_cfg.frame_id))

    def _publish_joints(self, stamp) -> None:
        w = self.world
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(JOINT_NAMES) + list(FINGER_NAMES)
        fingers = w.finger_positions()
        msg.position = [float(x) for x in w.joint_positions()] + [float(fingers[0]), -float(fingers[1])]
        fv = w.finger_velocities()
        msg.velocity = [float(x) for x in w.joint_velocities()] + [float(fv[0]), -float(fv[1])]
        self.pub_joints.publish(msg)

    def _publish_imu(self, stamp) -> None:
        s = self.imu.sample(self.world)
        imu = Imu()
        imu.header.stamp, imu.header.frame_id = stamp, 'imu_link'
        fill_imu(imu, s['acc'], s['gyro'], None, accel_cov=self.imu.accel_std ** 2,
                 gyro_cov=self.imu.gyro_std ** 2)
        self.pub_imu.publish(imu)
        mag = MagneticField()
        mag.header.stamp, mag.header.frame_id = stamp, 'imu_link'
        fill_mag(mag, s['mag'], self.imu.mag_std ** 2)
        self.pub_mag.publish(mag)

    def _publish_task(self, stamp) -> None:
        w = self.world
        msg = TaskState()
        msg.header.stamp, msg.header.frame_id = stamp, self.cfg.base_frame
        msg.task, msg.seed, msg.episode = w.task.name, int(w.seed), int(w.counters.resets)
        msg.instruction = w.instruction
        msg.state, msg.detail = w.status.state, w.status.detail
        msg.modality_combinations, msg.modality_instructions = to_lists(w.modality_instructions)
        msg.episode_time_s = float(w.episode_time_s)
        msg.time_left_s = float(w.status.time_left_s)
        msg.time_limit_s = float(w.task.time_limit_s)
        objects = w.task.visible_objects(w)
        msg.object_names = list(objects)
        msg.object_colours = [o.colour for o in objects.values()]
        msg.object_positions = [Point(x=float(o.position[0]), y=float(o.position[1]), z=float(o.position[2]))
                                for o in objects.values()]
        self.pub_task.publish(msg)

    # --- inputs ---------------------------------------------------------------------------------
    def _on_targets(self, msg: JointState) -> None:
        names = list(msg.name)
        pos = list(msg.position)
        if len(names) != len(pos):
            self.world.refuse(f'joint targets: {len(names)} names but {len(pos)} positions')
            return
        target = dict(zip(names, pos))
        unknown = sorted(set(target) - set(JOINT_NAMES) - set(FINGER_NAMES))
        if unknown:
            self.world.refuse(f'joint targets name unknown joints {unknown}')
            return
        arm = [n for n in JOINT_NAMES if n in target]
        if arm and len(arm) != len(JOINT_NAMES):
            self.world.refuse(f'joint targets need all of {list(JOINT_NAMES)} or none, got {arm}')
            return
        if arm:
            self.world.set_joint_targets([target[n] for n in JOINT_NAMES])
        if 'left_finger' in target:
            self.world.set_finger_target(float(target['left_finger']))

    def _on_follow(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - self._epoch_ns * 1e-9
        self._follow_stamp = stamp if self._follow_stamp is None else max(self._follow_stamp, stamp)
        self._follow_wall = time.monotonic()

    def _on_reset(self, request, response):
        response.tasks = sorted(TASKS)
        seed = int(request.seed) if request.seed >= 0 else None
        try:
            response.instruction = self.world.reset(request.task or None, seed)
        except ConfigError as exc:
            response.success, response.message = False, str(exc)
            return response
        w = self.world
        self.synth.reset(int(w.seed), w.time_s)
        if self.cfg.render and id(w.model) != self._model_id:
            self._build_sensors()
            self._publish_backgrounds()
        for sched in self._sched.values():      # the first frames of every episode at the same offsets
            sched.next = w.time_s
        response.success, response.task, response.seed = True, w.task.name, int(w.seed)
        response.modality_combinations, response.modality_instructions = to_lists(w.modality_instructions)
        response.message = f'episode {w.counters.resets}: {w.task.name} seed {w.seed}'
        self.get_logger().info(f'reset: {response.message}: {w.instruction!r}')
        self._publish_instruction()
        self._publish_task(self._stamp())
        return response

    def _on_capture(self, name: str, request, response):
        # The twin's gel background is the rendered frame with nothing touching: latch it again.
        d = self._digits.get(name)
        if d is None:
            response.success, response.message = False, 'rendering is off: no DIGIT images'
            return response
        self.pub_bg[name].publish(array_to_image(d.background, 'bgr8', stamp=self._stamp(), frame_id=f'{name}_frame'))
        response.success = True
        response.message = f'background latched on /{name}/background'
        return response

    # --- diagnostics ------------------------------------------------------------------------------
    def _status(self):
        w = self.world
        values = {'task': w.task.name, 'seed': w.seed, 'state': w.status.state, 'episode_time_s': w.episode_time_s,
                  'mode': self.cfg.mode, 'real_time_factor': self.real_time_factor,
                  'real_time_factor_since_start':
                      (w.time_s - self._start_sim) / max(1e-9, time.monotonic() - self._start_wall),
                  'late_iterations': self._late, 'lockstep_waits': self._waits,
                  'lost_time_s': self._lost_s, 'targets_received': w.counters.targets_received,
                  'targets_refused': w.counters.targets_refused, 'last_refusal': w.counters.last_refusal}
        for key, buf in self._render_ms.items():
            values[f'render_{key}_ms_p50'] = percentiles(buf)['p50']
        for key in ('camera', 'digit', 'imu', 'joints'):
            values[f'{key}_messages'] = self._sched[key].count
        if self.cfg.mode == 'realtime' and self._late:
            return WARN, f'SYNTHETIC world; behind real time {self._late} times ({self._lost_s:.2f} s lost), ' \
                         f'real-time factor {self.real_time_factor:.2f}', values
        if w.counters.targets_refused:
            return WARN, f'SYNTHETIC world; {w.counters.targets_refused} joint targets refused', values
        return OK, f'SYNTHETIC world: {w.task.name} {w.status.state}', values

    def close(self) -> None:
        for d in self._digits.values():
            d.close()
        if self._renderer is not None:
            self._renderer.close()


def main(args=None):
    return run_node(WorldNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())

