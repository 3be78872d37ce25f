"""Small synthetic episode bags (real MCAP, real CDR from rclpy) for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOPIC_TYPES = {
    '/camera_primary/image_raw': 'sensor_msgs/msg/Image', '/camera_wrist/image_raw': 'sensor_msgs/msg/Image',
    '/digit_left/image_raw': 'sensor_msgs/msg/Image', '/digit_right/image_raw': 'sensor_msgs/msg/Image',
    '/digit_left/background': 'sensor_msgs/msg/Image', '/digit_right/background': 'sensor_msgs/msg/Image',
    '/audio/mel_spectrogram': 'sensor_msgs/msg/Image', '/audio/chunk': 'fuse_interfaces/msg/AudioChunk',
    '/arm/applied_command': 'fuse_interfaces/msg/DeltaEECommand',
    '/policy/command': 'fuse_interfaces/msg/DeltaEECommand',
    '/arm/ee_pose': 'geometry_msgs/msg/PoseStamped', '/arm/joint_states': 'sensor_msgs/msg/JointState',
}
#: What the twin's expert reads (fuse_sim.relabel), written with expert_topics=True.
EXPERT_TOPIC_TYPES = {'/world/task_state': 'fuse_interfaces/msg/TaskState',
                      '/arm/status': 'fuse_interfaces/msg/ArmStatus'}
#: The red cube of an expert_topics bag (base frame, m).
RED_CUBE = (0.3, 0.02, 0.02)


def ee_x(k: int) -> float:
    """The end effector's x at sensor tick k (it moves along x at 1 mm a tick, y 0, z 0.15)."""
    return 0.2 + 0.001 * k
T0 = 1_800_000_000_000_000_000


def mic_ramp(index) -> np.ndarray:
    """The synthetic microphone's sample at each running index (float32, tells every sample apart)."""
    return (np.asarray(index, dtype=np.float64) / 1e5).astype(np.float32)


def make_episode_bag(root: Path, episode_id: str, *, steps: int = 10, seed: int = 0,
                     instruction: str = 'pick up the red cube', outcome: str = 'success',
                     skip_topics=(), clock_jump_at: int = -1, cam_size=(240, 320), modalities=None,
                     mic_rate: int = 44100, mic_lost=(), mic_index_back_at: int = -1,
                     expert_topics: bool = False, world: str = 'twin', ee_at=None, opening_at=None,
                     status_after_commands: bool = False) -> Path:
    """An episode recorded as the recorder writes it: sensors at 10 Hz, commands at 5 Hz.

    The microphone sends a 0.1 s chunk at each sensor tick, contiguous from T0: sample i, captured
    at T0 + i / mic_rate, is mic_ramp(i). mic_lost: chunk numbers never sent (lost input: a gap in
    the indices); mic_index_back_at: that chunk's first_sample_index goes back one chunk.
    expert_topics: also /world/task_state (a red and a blue cube, running) and /arm/status
    (tracking, the commanded target 1 cm ahead of the measured pose in x) at each sensor tick.
    ee_at(k) -> (x, y, z) and opening_at(k) -> m: the end effector's path and finger opening
    (default: ee_x(k), 0, 0.15 and open). Each status counts the motion commands stamped before it
    (commands_applied; a hold is not applied). status_after_commands: also a status stamped with
    each motion command's own stamp that already counts it, its target 20 cm further in x (as the
    arm publishes one in lockstep, the sim clock standing still while it applies the command).
    """
    from fuse_interfaces.msg import ArmStatus, AudioChunk, DeltaEECommand, TaskState
    from geometry_msgs.msg import Point
    from geometry_msgs.msg import PoseStamped
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    from fuse_core.bag import BagWriter
    from fuse_core.episodes import COMPLETE, EpisodeMetadata, write_episode
    from fuse_nodes.common import ns_to_time
    from fuse_nodes.conversions import array_to_image
    rng = np.random.default_rng(seed)
    bag_dir = root / episode_id
    md = EpisodeMetadata(episode_id=episode_id, task='pick_cube', instruction=instruction,
                         action_source='expert', world=world, seed=seed, status=COMPLETE, outcome=outcome,
                         modalities=dict(modalities or {}))
    w = BagWriter(bag_dir, custom_data={'fuse_episode': md.to_json()})
    for t, ty in {**TOPIC_TYPES, **(EXPERT_TOPIC_TYPES if expert_topics else {})}.items():
        if t not in skip_topics:
            w.add_topic(t, ty)

    def put(topic, msg, t_ns):
        if topic not in skip_topics:
            w.write(topic, serialize_message(msg), t_ns)
    for side in ('left', 'right'):
        bg = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        put(f'/digit_{side}/background', array_to_image(bg, 'bgr8', ns_to_time(T0 - 10**8)), T0)
    dt_sensor, dt_cmd = 100_000_000, 200_000_000
    cmd_ns = [T0 + dt_sensor // 2 + i * dt_cmd for i in range(steps)]
    for k in range(2 * steps + 2):
        t = T0 + k * dt_sensor
        stamp = ns_to_time(t)
        put('/camera_primary/image_raw', array_to_image(rng.integers(0, 256, (*cam_size, 3), dtype=np.uint8),
                                                        'bgr8', stamp), t)
        put('/camera_wrist/image_raw', array_to_image(rng.integers(0, 256, (*cam_size, 3), dtype=np.uint8),
                                                      'bgr8', stamp), t)
        for side in ('left', 'right'):
            put(f'/digit_{side}/image_raw', array_to_image(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
                                                          'bgr8', stamp), t)
        put('/audio/mel_spectrogram', array_to_image(rng.normal(-40, 10, (128, 128)).astype(np.float32),
                                                     '32FC1', stamp), t)
        n = mic_rate // 10
        if k not in mic_lost:
            chunk = AudioChunk()
            chunk.header.stamp = stamp
            chunk.sample_rate, chunk.channels = mic_rate, 1
            chunk.first_sample_index = k * n - (n if k == mic_index_back_at else 0)
            chunk.samples = mic_ramp(np.arange(k * n, (k + 1) * n)).tolist()
            put('/audio/chunk', chunk, t)
        ps = PoseStamped()
        ps.header.stamp = stamp
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = ee_at(k) if ee_at else (ee_x(k), 0.0, 0.15)
        ps.pose.orientation.y, ps.pose.orientation.w = 0.7071067811865476, 0.7071067811865476
        put('/arm/ee_pose', ps, t)
        js = JointState()
        js.header.stamp = stamp
        js.name = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
                   'left_finger', 'right_finger']
        js.position = [0.0] * 6 + [0.037, -0.037]
        put('/arm/joint_states', js, t)
        if expert_topics:
            ts = TaskState(task='pick_cube', seed=seed, episode=1, instruction=instruction, state='running',
                           episode_time_s=k * 0.1, time_left_s=20.0 - k * 0.1, time_limit_s=20.0,
                           object_names=['cube_0', 'cube_1'], object_colours=['red', 'blue'],
                           object_positions=[Point(x=RED_CUBE[0], y=RED_CUBE[1], z=RED_CUBE[2]),
                                             Point(x=0.3, y=-0.1, z=0.02)])
            ts.header.stamp = stamp
            put('/world/task_state', ts, t)
            st = ArmStatus(backend='sim', state='tracking', gripper_opening=opening_at(k) if opening_at else 0.037)
            st.header.stamp = stamp
            st.ee_pose = ps.pose
            st.target_pose.position.x, st.target_pose.position.z = ee_x(k) + 0.01, 0.15
            st.commands_applied = sum(1 for i, c in enumerate(cmd_ns) if c <= t and i != 3)
            put('/arm/status', st, t)
            if status_after_commands and k % 2 == 0 and k // 2 < steps and k // 2 != 3:
                after = ArmStatus(backend='sim', state='tracking', gripper_opening=st.gripper_opening)
                after.header.stamp = ns_to_time(cmd_ns[k // 2])
                after.ee_pose = ps.pose
                after.target_pose.position.x, after.target_pose.position.z = ee_x(k) + 0.21, 0.15
                after.commands_applied = st.commands_applied + 1
                put('/arm/status', after, cmd_ns[k // 2] + 500)
    for i in range(steps):
        t = t_log = T0 + dt_sensor // 2 + i * dt_cmd
        if i == clock_jump_at:  # the sender's clock jumps back; arrival (log) time does not
            t -= 5 * dt_cmd
        for topic, hold in (('/policy/command', False), ('/arm/applied_command', i == 3)):
            c = DeltaEECommand()
            c.header.stamp = ns_to_time(t)
            c.tick_index = i
            c.hold = hold
            c.reason = 'dead-man released' if hold else ''
            c.translation = [0.0, 0.0, 0.0] if hold else [0.01 * (i + 1), -0.002 * i, 0.001]
            c.rotation = [0.0, 0.0, 0.0] if hold else [0.0, 0.0, 0.01 * i]
            c.gripper = 1.0 if i < 6 else 0.0
            put(topic, c, t_log + 1000)
    w.close()
    write_episode(bag_dir, md)
    return bag_dir
