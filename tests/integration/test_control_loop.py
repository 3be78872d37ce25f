"""The 5 Hz loop end to end: test-published sensors -> sync -> policy -> mock arm, each its own process.

The test process plays the sensors (so it can silence one at will) and watches the control
path over DDS. sync, policy and arm are started from the shared graph description with the
simulation's parameter files, exactly as `./run.sh sim` and sim.launch.py start them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fuse_bringup import graph
from support.ros_harness import fresh_domain_id, make_test_node, node_env, wait_for

pytestmark = pytest.mark.integration

TICK_S = 0.2


class SensorPlayer:
    """Publishes camera, DIGIT and spectrogram streams from the test process at 10 Hz."""

    STREAMS = {
        '/camera_primary/image_raw': ((240, 320, 3), 'bgr8'),
        '/camera_wrist/image_raw': ((240, 320, 3), 'bgr8'),
        '/digit_left/image_raw': ((320, 240, 3), 'bgr8'),
        '/digit_right/image_raw': ((320, 240, 3), 'bgr8'),
        '/audio/mel_spectrogram': ((128, 128), '32FC1'),
    }

    def __init__(self, node) -> None:
        from sensor_msgs.msg import Image
        from fuse_nodes.common import LATCHED_QOS, SENSOR_QOS
        from fuse_nodes.conversions import array_to_image
        self.node = node
        self.silenced = set()
        rng = np.random.default_rng(0)
        self.frames = {}
        for topic, (shape, enc) in self.STREAMS.items():
            if enc == '32FC1':
                self.frames[topic] = (rng.uniform(-80, 0, shape).astype(np.float32), enc)
            else:
                self.frames[topic] = (rng.integers(0, 255, shape, dtype=np.uint8), enc)
        self.pubs = {t: node.create_publisher(Image, t, SENSOR_QOS) for t in self.STREAMS}
        # DIGIT backgrounds are latched, as the digit nodes publish them.
        for side in ('left', 'right'):
            pub = node.create_publisher(Image, f'/digit_{side}/background', LATCHED_QOS)
            bg = self.frames[f'/digit_{side}/image_raw'][0] // 2
            pub.publish(array_to_image(bg, 'bgr8', stamp=node.get_clock().now().to_msg(),
                                       frame_id=f'digit_{side}_frame'))
            setattr(self, f'bg_{side}', pub)
        self._to_image = array_to_image
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(0.1):
            k += 1
            stamp = self.node.get_clock().now().to_msg()
            for topic, (frame, enc) in self.frames.items():
                if topic in self.silenced:
                    continue
                shifted = np.roll(frame, k, axis=1)
                self.pubs[topic].publish(self._to_image(shifted, enc, stamp=stamp, frame_id='test'))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class ControlPathWatcher:
    """Records windows, commands and arm status as they arrive."""

    def __init__(self, node) -> None:
        from fuse_interfaces.msg import ArmStatus, DeltaEECommand, ObservationWindow
        from fuse_nodes.common import CONTROL_QOS, STATE_QOS
        self.windows, self.commands, self.status = [], [], []
        self.lock = threading.Lock()
        node.create_subscription(ObservationWindow, '/sync/window', self._rec(self.windows), CONTROL_QOS)
        node.create_subscription(DeltaEECommand, '/policy/command', self._rec(self.commands), CONTROL_QOS)
        node.create_subscription(ArmStatus, '/arm/status', self._rec(self.status), STATE_QOS)

    def _rec(self, store):
        def cb(msg):
            with self.lock:
                store.append((time.monotonic(), msg))
        return cb

    def since(self, store, t0):
        with self.lock:
            return [m for t, m in store if t >= t0]


def stamp_s(t) -> float:
    return t.sec + t.nanosec * 1e-9


@pytest.fixture(scope='module')
def loop(tmp_path_factory):
    import rclpy
    from fuse_bringup.runner import GraphProcesses

    domain = fresh_domain_id()
    log_dir = tmp_path_factory.mktemp('loop_logs')
    specs = graph.control_nodes(graph.default_bundle_path(), 'pick up the red block', 'mock', 'wx250s',
                                False, ('sim.yaml',))
    procs = GraphProcesses(specs, node_env(domain), log_dir)
    procs.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    # One thread: rclpy's MultiThreadedExecutor polls busily and would starve this process.
    node, executor = make_test_node(ctx, 'loop_test')
    watcher = ControlPathWatcher(node)
    player = SensorPlayer(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    def logs():
        return '\n'.join(f'--- {p.name}.log ---\n' + (log_dir / f'{p.name}.log').read_text(errors='replace')[-3000:]
                         for p in specs)

    ok = wait_for(lambda: len(watcher.commands) >= 5, timeout=60)
    assert ok, 'the loop produced no commands within 60 s\n' + logs()
    yield {'node': node, 'watcher': watcher, 'player': player, 'procs': procs, 'logs': logs, 'ctx': ctx}
    player.close()
    executor.shutdown()
    codes = procs.stop()
    node.destroy_node()
    ctx.try_shutdown()
    # Clean shutdown: every node exits on Ctrl-C with status 0.
    assert all(c == 0 for c in codes.values()), f'exit codes {codes}\n' + logs()


def test_windows_tick_at_5hz(loop):
    w = loop['watcher']
    t0 = time.monotonic()
    time.sleep(6.0)
    windows = w.since(w.windows, t0)
    stamps = np.array([stamp_s(m.header.stamp) for m in windows])
    ticks = np.array([m.tick_index for m in windows])
    assert len(stamps) >= 15, (ticks, loop['logs']())
    # Tick stamps come from the node clock's timer: their spacing is the control period.
    span = stamps[-1] - stamps[0]
    rate = (ticks[-1] - ticks[0]) / span
    assert abs(rate - 5.0) / 5.0 < 0.02, f'tick rate {rate:.3f} Hz'
    assert np.all(np.diff(ticks) >= 1)
    # Delivery to this (Python, busy) test process: keep-last-1 may drop a window it reads late.
    assert len(windows) >= 0.9 * (ticks[-1] - ticks[0] + 1), ticks


def test_commands_come_only_from_fresh_windows(loop):
    w = loop['watcher']
    t0 = time.monotonic()
    time.sleep(3.0)
    windows = {m.tick_index: m for m in w.since(w.windows, t0 - 1.0)}
    commands = [m for m in w.since(w.commands, t0) if not m.hold]
    assert len(commands) >= 10, loop['logs']()
    for cmd in commands:
        win = windows.get(cmd.tick_index)
        assert win is not None, f'command for tick {cmd.tick_index} without a window'
        assert list(win.stale_streams) == []
        assert all(all(t.valid[-1:]) for t in win.tensors)
        # The command is for this window's data and not older than one control period.
        assert stamp_s(cmd.newest_sample_stamp) == pytest.approx(stamp_s(win.newest_sample_stamp))
        assert stamp_s(cmd.header.stamp) == pytest.approx(stamp_s(win.header.stamp))
        assert stamp_s(cmd.valid_until) > stamp_s(cmd.header.stamp)
        assert all(np.isfinite(cmd.translation)) and all(np.isfinite(cmd.rotation))
        assert cmd.gripper in (0.0, 1.0)


def test_arm_tracks_commands(loop):
    w = loop['watcher']
    assert wait_for(lambda: any(m.state == 'tracking' for m in w.since(w.status, time.monotonic() - 1.0)), 10), \
        loop['logs']()
    first = w.since(w.status, time.monotonic() - 0.5)[-1]
    time.sleep(2.0)
    last = w.since(w.status, time.monotonic() - 0.5)[-1]
    assert last.commands_applied > first.commands_applied
    assert not last.estop_latched


def test_arm_holds_within_one_tick_of_a_silenced_sensor(loop):
    w, player = loop['watcher'], loop['player']
    player.silenced.add('/camera_wrist/image_raw')
    try:
        t0 = time.monotonic()
        assert wait_for(lambda: any('camera_wrist' in m.stale_streams for m in w.since(w.windows, t0)), 5), \
            'sync never flagged the silenced wrist camera\n' + loop['logs']()
        stale_tick = next(m for m in w.since(w.windows, t0) if 'camera_wrist' in m.stale_streams)
        # From that tick on the policy asks the arm to hold, naming the sensor ...
        assert wait_for(lambda: any(c.hold and 'camera_wrist' in c.reason and c.tick_index >= stale_tick.tick_index
                                    for c in w.since(w.commands, t0)), 2 * TICK_S + 1.0), loop['logs']()
        hold_cmd = next(c for c in w.since(w.commands, t0) if c.hold)
        assert hold_cmd.tick_index == stale_tick.tick_index, 'hold must come from the first stale tick'
        # ... and the arm reports holding with that reason.
        assert wait_for(lambda: any(m.state == 'holding' and 'camera_wrist' in m.hold_reason
                                    for m in w.since(w.status, t0)), 2.0), loop['logs']()
        # No motion command is sent while the sensor is silent.
        t1 = time.monotonic()
        time.sleep(1.0)
        assert not [c for c in w.since(w.commands, t1) if not c.hold]
    finally:
        player.silenced.clear()
    t2 = time.monotonic()
    assert wait_for(lambda: any(not c.hold for c in w.since(w.commands, t2)), 5), 'the loop did not resume'


def test_estop_latches_until_reset(loop):
    from std_srvs.srv import Trigger
    node, w = loop['node'], loop['watcher']
    estop = node.create_client(Trigger, '/arm/estop')
    reset = node.create_client(Trigger, '/arm/reset_estop')
    assert estop.wait_for_service(timeout_sec=10) and reset.wait_for_service(timeout_sec=10)

    def call(client):
        fut = client.call_async(Trigger.Request())
        assert wait_for(fut.done, 10)
        return fut.result()

    assert call(estop).success
    assert wait_for(lambda: any(m.estop_latched and m.state == 'estop'
                                for m in w.since(w.status, time.monotonic() - 0.3)), 3)
    latched = w.since(w.status, time.monotonic() - 0.3)[-1]
    time.sleep(2.0)  # commands keep arriving meanwhile
    # The newest status after the pause (on a loaded machine none may have come in the last 0.3 s).
    t_after = time.monotonic()
    assert wait_for(lambda: w.since(w.status, t_after), 3), 'no arm status after the pause'
    later = w.since(w.status, t_after)[-1]
    assert later.estop_latched and later.state == 'estop'
    assert later.commands_applied == latched.commands_applied
    p0, p1 = latched.target_pose.position, later.target_pose.position
    assert (p0.x, p0.y, p0.z) == (p1.x, p1.y, p1.z)
    assert call(reset).success
    t0 = time.monotonic()
    # Released: commands are taken again (applied, or held for a reason of their own, such
    # as an IK failure, but no longer refused for the e-stop).
    assert wait_for(lambda: any(not m.estop_latched and m.state != 'estop'
                                and m.commands_received > later.commands_received + 2
                                for m in w.since(w.status, t0)), 5), loop['logs']()
    # Re-arm: the policy's stream was live through the e-stop, so the arm keeps holding ...
    released = w.since(w.status, t0)[-1]
    assert released.state == 'holding' and 're-arm' in released.hold_reason, released.hold_reason
    time.sleep(1.0)
    assert w.since(w.status, time.monotonic() - 0.3)[-1].commands_applied == later.commands_applied
    # ... until the commander stops moving it (a silenced camera: the policy holds) for
    # rearm_gap_s, then starts a new sequence when the camera is back.
    loop['player'].silenced.add('/camera_wrist/image_raw')
    try:
        time.sleep(2.0)
    finally:
        loop['player'].silenced.clear()
    t1 = time.monotonic()
    assert wait_for(lambda: any(m.commands_applied > later.commands_applied for m in w.since(w.status, t1)),
                    10), loop['logs']()
