"""policy node in its own process with the reference bundle: windows in, commands and chunks out."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fuse_core.bundle import read_manifest, resolve_bundle_path
from support.ros_harness import ProbeNode, wait_for

pytestmark = pytest.mark.integration

INSTRUCTION = 'pick up the cup'


def make_window(manifest, tick: int, stamp_ns: int, arrays, window_cls, tensor_cls):
    """A window that carries every step's data (as to a receiver that has seen nothing)."""
    from fuse_core.sync import TensorWindow
    from fuse_nodes.common import ns_to_time
    from fuse_nodes.conversions import tensor_to_msg

    W = manifest.window_size
    msg = window_cls()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.tick_index = tick
    msg.window_size = W
    msg.step_stamps = [ns_to_time(stamp_ns - (W - 1 - i) * 200_000_000) for i in range(W)]
    msg.timestep_pad_mask = [True] * W
    sample_stamps = [stamp_ns - (W - 1 - i) * 200_000_000 - 5_000_000 for i in range(W)]
    msg.tensors = [
        tensor_to_msg(TensorWindow(spec.name, arrays[spec.name].dtype, arrays[spec.name].shape[1:],
                                   list(arrays[spec.name]), [True] * W, sample_stamps,
                                   [tick * W + i + 1 for i in range(W)]), tensor_cls(check_fields=True))
        for spec in manifest.inputs
    ]
    msg.newest_sample_stamp = ns_to_time(sample_stamps[-1])
    return msg


def random_arrays(manifest, seed):
    """One window of every manifest input, random within the ranges the sensors produce."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in manifest.inputs:
        shape = (manifest.window_size, *spec.shape)
        if spec.dtype == 'uint8':
            arrays[spec.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec.dtype == 'int16':
            arrays[spec.name] = rng.integers(-10, 11, shape).astype(np.int16)
        else:
            arrays[spec.name] = rng.uniform(-80, 0, shape).astype(np.float32)
    return arrays


class PolicyClient(ProbeNode):
    """This test's side of the policy node: window publisher, command / chunk / diagnostics subscribers."""

    def __init__(self, rclpy_context, name):
        from diagnostic_msgs.msg import DiagnosticArray
        from fuse_interfaces.msg import ActionChunk, DeltaEECommand, ObservationWindow
        from fuse_nodes.common import CONTROL_QOS

        super().__init__(rclpy_context, name)
        self.commands, self.chunks, self.diags = {}, {}, []
        self.node.create_subscription(
            DeltaEECommand, '/policy/command', lambda m: self.commands.__setitem__(m.tick_index, m), CONTROL_QOS
        )
        self.node.create_subscription(
            ActionChunk, '/policy/action_chunk', lambda m: self.chunks.__setitem__(m.tick_index, m), CONTROL_QOS
        )
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)
        self.pub = self.node.create_publisher(ObservationWindow, '/sync/window', CONTROL_QOS)

    def now_ns(self):
        return self.node.get_clock().now().nanoseconds


#: Generous limits: the test machine is small and shared; freshness is tested with a 10 s old window.
POLICY_PARAMS = {'instruction': INSTRUCTION, 'max_window_age_s': 2.0, 'tick_deadline_s': 3.0,
                 'intra_op_threads': 1, 'providers': 'cpu'}


def start_policy(launch_node, rclpy_context, client_name, **params):
    """The policy node (POLICY_PARAMS, then `params`) and this test's client of it."""
    proc = launch_node('fuse_nodes.policy_node', 'policy', params={**POLICY_PARAMS, **params})
    return proc, PolicyClient(rclpy_context, client_name)


def stop_cleanly(proc):
    """Ctrl-C the node; it exits 0 without a traceback. Returns its log."""
    code = proc.stop()
    log = proc.log()
    assert code == 0, log
    assert 'Traceback' not in log, log
    return log


def test_policy_node_end_to_end(launch_node, rclpy_context):
    from fuse_interfaces.msg import ObservationTensor, ObservationWindow
    from fuse_interfaces.srv import Describe, SetInstruction
    from fuse_nodes.common import time_to_ns

    manifest = read_manifest(resolve_bundle_path(''))
    proc, client = start_policy(launch_node, rclpy_context, 'policy_test')
    node, spin, pub = client.node, client.spin, client.pub
    commands, chunks, diags = client.commands, client.chunks, client.diags
    set_cli = node.create_client(SetInstruction, '/policy/set_instruction')
    describe_cli = node.create_client(Describe, '/policy/describe')
    try:
        assert wait_for(
            lambda: set_cli.service_is_ready() and pub.get_subscription_count() > 0, 20.0, spin
        ), f'policy node did not come up:\n{proc.log()}'

        arrays = random_arrays(manifest, 0)

        def now_ns():
            return node.get_clock().now().nanoseconds

        # Fresh windows at 5 Hz: every one gets a chunk and a command.
        sent = {}
        for tick in range(1, 7):
            t0 = time.monotonic()
            stamp = now_ns()
            msg = make_window(manifest, tick, stamp, arrays, ObservationWindow, ObservationTensor)
            sent[tick] = msg
            pub.publish(msg)
            assert wait_for(lambda: tick in commands and tick in chunks, 10.0, spin), (
                f'no command for tick {tick}:\n{proc.log()}'
            )
            while time.monotonic() - t0 < 0.2:
                spin()
        for tick, msg in sent.items():
            cmd, chunk = commands[tick], chunks[tick]
            assert cmd.header.frame_id == 'wx250s/base_link'
            assert time_to_ns(cmd.header.stamp) == time_to_ns(msg.header.stamp)
            assert time_to_ns(cmd.newest_sample_stamp) == time_to_ns(msg.newest_sample_stamp)
            assert time_to_ns(cmd.valid_until) > time_to_ns(cmd.header.stamp)
            assert cmd.gripper in (0.0, 1.0)
            assert np.all(np.isfinite(cmd.translation)) and np.all(np.isfinite(cmd.rotation))
            assert (chunk.horizon, chunk.action_dim) == (manifest.action.horizon, manifest.action.dim)
            actions = np.array(chunk.actions).reshape(chunk.horizon, chunk.action_dim)
            np.testing.assert_allclose(cmd.translation, actions[0, :3], rtol=1e-5, atol=1e-7)
            assert chunk.inference_ms > 0

        # A window whose tick is 10 s old is late: no motion command and no chunk, only an
        # explicit hold naming the reason, and the node keeps going.
        late_tick = 100
        pub.publish(
            make_window(
                manifest, late_tick, now_ns() - 10_000_000_000, arrays, ObservationWindow, ObservationTensor
            )
        )
        assert wait_for(lambda: late_tick in commands, 5.0, spin)
        assert commands[late_tick].hold and 'late' in commands[late_tick].reason
        assert late_tick not in chunks

        # A window naming a newest camera sample whose data never arrived (as if the window
        # that carried it was lost): the step is masked, never guessed, and the tick holds.
        lost_tick = 101
        msg = make_window(manifest, lost_tick, now_ns(), arrays, ObservationWindow, ObservationTensor)
        cam = next(t for t in msg.tensors if t.name == 'image_primary')
        cam.data_steps = [0]
        cam.data = cam.data[:len(cam.data) // 2]
        cam.sample_ids = [cam.sample_ids[0], 999_999]
        pub.publish(msg)
        assert wait_for(lambda: lost_tick in commands, 5.0, spin), proc.log()
        assert commands[lost_tick].hold and 'camera_primary' in commands[lost_tick].reason
        assert lost_tick not in chunks

        # Instruction service: a good one is taken, an empty one is refused with a reason.
        future = set_cli.call_async(SetInstruction.Request(instruction='push the sponge'))
        assert wait_for(future.done, 10.0, spin)
        assert future.result().success, future.result().message
        future = set_cli.call_async(SetInstruction.Request(instruction='  '))
        assert wait_for(future.done, 10.0, spin)
        assert not future.result().success and 'empty' in future.result().message

        pub.publish(make_window(manifest, 7, now_ns(), arrays, ObservationWindow, ObservationTensor))
        assert wait_for(lambda: 7 in commands, 10.0, spin), proc.log()

        future = describe_cli.call_async(Describe.Request(modalities=['tactile']))
        assert wait_for(future.done, 10.0, spin)
        assert not future.result().success and 'generative head' in future.result().message

        def policy_status():
            for arr in diags:
                for st in arr.status:
                    if st.name == 'policy: policy':
                        values = {kv.key: kv.value for kv in st.values}
                        if values.get('commands_sent') == '7':
                            return values
            return None

        assert wait_for(lambda: policy_status() is not None, 5.0, spin), diags[-1:]
        values = policy_status()
        assert values['windows_received'] == '9' and values['late_windows'] == '1'
        assert values['stale_windows'] == '1' and values['window_steps_lost'] == '1'
        # where the node's time per window goes is reported
        for key in ('decode_p50_ms', 'check_p50_ms', 'process_p99_ms', 'publish_command_p50_ms',
                    'window_to_command_p99_ms'):
            assert float(values[key]) >= 0.0, key
        assert values['instruction'] == 'push the sponge'
    finally:
        node.destroy_node()
    stop_cleanly(proc)


def test_policy_node_async_execution(launch_node, rclpy_context):
    """execution: async: the first tick holds (no chunk yet), later ticks execute earlier chunks."""
    from fuse_interfaces.msg import ObservationTensor, ObservationWindow
    from fuse_nodes.common import time_to_ns

    manifest = read_manifest(resolve_bundle_path(''))
    proc, client = start_policy(launch_node, rclpy_context, 'policy_async_test', execution='async',
                                async_aggregate='blend')
    node, spin, pub, commands, chunks = client.node, client.spin, client.pub, client.commands, client.chunks
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 20.0, spin), proc.log()
        arrays = random_arrays(manifest, 1)
        sent = {}
        for tick in range(1, 9):
            t0 = time.monotonic()
            msg = make_window(
                manifest, tick, node.get_clock().now().nanoseconds, arrays, ObservationWindow, ObservationTensor
            )
            sent[tick] = msg
            pub.publish(msg)
            # every tick is answered at once, with a command or a hold, never after the inference
            assert wait_for(lambda: tick in commands, 10.0, spin), f'no answer for tick {tick}:\n{proc.log()}'
            while time.monotonic() - t0 < 0.2:
                spin()
        assert commands[1].hold and 'no action chunk covers tick 1' in commands[1].reason
        moved = [t for t, c in commands.items() if not c.hold]
        assert moved, {t: c.reason for t, c in commands.items()}
        for tick in moved:
            cmd = commands[tick]
            # the action comes from an earlier window's chunk, and says so in newest_sample_stamp
            stamp = time_to_ns(cmd.newest_sample_stamp)
            source = [s for s, m in sent.items() if time_to_ns(m.newest_sample_stamp) == stamp]
            assert source and source[0] < tick
            assert cmd.gripper in (0.0, 1.0) and np.all(np.isfinite(cmd.translation))
        for tick, chunk in chunks.items():
            assert time_to_ns(chunk.header.stamp) == time_to_ns(sent[tick].header.stamp)
            assert (chunk.horizon, chunk.action_dim) == (manifest.action.horizon, manifest.action.dim)
    finally:
        node.destroy_node()
    assert 'inference off the tick' in stop_cleanly(proc)


def test_policy_node_async_ticks_on_its_own_clock(launch_node, rclpy_context):
    """async_tick_source clock: every tick's command is stamped on the windows' grid and runs from
    the chunks of earlier windows, without waiting for its own; one tick after the last window
    still runs, the next one holds naming the missing window."""
    from fuse_interfaces.msg import ObservationTensor, ObservationWindow
    from fuse_nodes.common import time_to_ns

    manifest = read_manifest(resolve_bundle_path(''))
    period = 200_000_000
    proc, client = start_policy(launch_node, rclpy_context, 'policy_clock_test', execution='async',
                                async_tick_source='clock')
    node, spin, pub, commands = client.node, client.spin, client.pub, client.commands
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 20.0, spin), proc.log()
        arrays = random_arrays(manifest, 2)
        base = client.now_ns() + period
        for tick in range(1, 9):
            due = base + (tick - 1) * period
            while client.now_ns() < due:
                spin()
            pub.publish(make_window(manifest, tick, due, arrays, ObservationWindow, ObservationTensor))
        assert wait_for(lambda: 10 in commands, 10.0, spin), f'{sorted(commands)}\n{proc.log()}'
        assert 1 not in commands  # the first window only starts an inference: no tick before it
        for tick, cmd in commands.items():
            assert time_to_ns(cmd.header.stamp) == base + (tick - 1) * period, tick
        moved = [t for t, c in commands.items() if not c.hold]
        # tick 9 had no window of its own: it ran on the clock from the chunks of window 8 (or 7)
        assert 9 in moved, {t: c.reason for t, c in commands.items()}
        assert commands[10].hold and 'late' in commands[10].reason and 'no window of tick 9' in commands[10].reason
        for tick in moved:
            assert commands[tick].gripper in (0.0, 1.0) and np.all(np.isfinite(commands[tick].translation))
    finally:
        node.destroy_node()
    assert 'inference off the tick' in stop_cleanly(proc)


def test_policy_gated_by_the_episode_manager_commands_only_while_it_records(launch_node, rclpy_context):
    """episodes_topic (robot evaluation): a hold naming the manager's state, and no inference, until it
    records; then commands; a hold again once the recording ends."""
    from fuse_interfaces.msg import EpisodeState, ObservationTensor, ObservationWindow
    from fuse_nodes.common import STATE_QOS

    manifest = read_manifest(resolve_bundle_path(''))
    proc, client = start_policy(launch_node, rclpy_context, 'policy_gate_test', episodes_topic='/episodes/state')
    spin, commands, chunks = client.spin, client.commands, client.chunks
    states = client.node.create_publisher(EpisodeState, '/episodes/state', STATE_QOS)
    arrays = random_arrays(manifest, 1)
    tick = [0]

    def window():
        tick[0] += 1
        client.pub.publish(make_window(manifest, tick[0], client.now_ns(), arrays, ObservationWindow,
                                       ObservationTensor))
        assert wait_for(lambda: tick[0] in commands, 10.0, spin), proc.log()
        return commands[tick[0]]

    def manager(state, episode_id=''):
        states.publish(EpisodeState(state=state, episode_id=episode_id))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:       # let the state arrive before the next window
            spin()

    try:
        assert wait_for(lambda: client.pub.get_subscription_count() > 0 and states.get_subscription_count() > 0,
                        20.0, spin), proc.log()
        c = window()
        assert c.hold and c.reason == 'episode manager not seen: not recording'
        manager('ready')
        c = window()
        assert c.hold and c.reason == 'episode ready: not recording'
        assert not chunks                        # nothing was inferred while not recording
        manager('recording', 'episode_x_0001')
        recorded = set()
        for _ in range(3):
            c = window()
            assert not c.hold, c.reason
            recorded.add(tick[0])
        # The chunks follow their commands (best effort: a loaded machine may drop one), and every
        # one of them comes from a window of the recording.
        assert wait_for(lambda: len(chunks) >= 1, 5.0, spin)
        assert set(chunks) <= recorded, sorted(chunks)
        manager('idle')
        c = window()
        assert c.hold and c.reason == 'episode idle: not recording'
        spin()
        assert set(chunks) <= recorded, sorted(chunks)
    finally:
        client.node.destroy_node()
    assert proc.stop() == 0, proc.log()
