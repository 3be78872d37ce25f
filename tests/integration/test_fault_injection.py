"""Fault injection against the arm node (mock arm), each attacker in its own process.

Every scenario watches the executed motion through ~/joint_states and forward kinematics and
counts unsafe events: the end effector more than 1 mm outside the workspace box, a checked
point below the floor, joint limits exceeded, motion faster than the speed limit allows, or
motion while a foreign publisher is active.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from support.ros_harness import NodeProcess, fresh_domain_id, make_test_node, node_env, wait_for

pytestmark = pytest.mark.integration

ATTACKER = Path(__file__).resolve().parents[1] / 'support' / 'arm_attacker.py'
LO, HI = np.array([0.10, -0.15, -0.01]), np.array([0.45, 0.25, 0.25])
FLOOR = -0.01
SPEED = 0.25


class Monitor:
    """Records joint states and status of the arm; computes the unsafe events."""

    def __init__(self, node):
        from fuse_interfaces.msg import ArmStatus
        from sensor_msgs.msg import JointState

        from fuse_nodes.common import STATE_QOS
        self.js, self.status = [], []
        self._lock = threading.Lock()
        node.create_subscription(JointState, '/arm/joint_states', self._on_js, STATE_QOS)
        node.create_subscription(ArmStatus, '/arm/status', lambda m: self.status.append((time.monotonic(), m)),
                                 STATE_QOS)

    def _on_js(self, msg):
        with self._lock:
            self.js.append((time.monotonic(), np.array(msg.position[:6])))

    def since(self, t0):
        with self._lock:
            rows = [(t, q) for t, q in self.js if t >= t0]
        return np.array([t for t, _ in rows]), np.array([q for _, q in rows]).reshape(-1, 6)

    def unsafe(self, t0):
        from fuse_core.arm.kinematics import WX250S
        t, q = self.since(t0)
        p = WX250S.point_positions(q)
        ee = p[:, -1]
        excursion = np.maximum(np.maximum(LO - ee, ee - HI), 0.0).max(initial=0.0)
        below = max(0.0, FLOOR - p[:, :, 2].min(initial=1.0))
        limits = np.maximum(np.maximum(WX250S.lower - q, q - WX250S.upper), 0.0).max(initial=0.0)
        # Speed over 0.4 s windows: the target moves at most SPEED; the mock lags it by ~0.1 s.
        fast = 0.0
        j = 0
        for i in range(len(t)):
            while j < len(t) and t[j] - t[i] < 0.4:
                j += 1
            if j < len(t):
                fast = max(fast, np.linalg.norm(ee[j] - ee[i]) - SPEED * (t[j] - t[i] + 0.1) - 1e-3)
        return {'excursion_m': float(excursion), 'below_floor_m': float(below), 'joint_limit_rad': float(limits),
                'over_speed_m': float(fast), 'samples': len(t),
                'max_gap_s': float(np.diff(t).max(initial=0.0)) if len(t) > 1 else float('inf'),
                'ee_first': ee[0] if len(ee) else None, 'ee_last': ee[-1] if len(ee) else None}


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    import rclpy
    domain = fresh_domain_id()
    env = node_env(domain)
    logs = tmp_path_factory.mktemp('fault_logs')
    arm = NodeProcess('fuse_nodes.arm_node', 'arm', env, logs, params={
        'backend': 'mock', 'mock_initial_pose': 'start', 'commander': '/fi_commander',
        'motion_services': False, 'watchdog_s': 0.5})
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node, ex = make_test_node(ctx, 'fi_monitor')
    mon = Monitor(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    assert wait_for(lambda: len(mon.js) > 10 and mon.status, 30), arm.log()

    def attack(mode, name, *args, wait=True):
        cmd = [sys.executable, str(ATTACKER), mode, '--name', name, *map(str, args)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not wait:
            return proc
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        return out.strip().splitlines()[-1]

    from std_srvs.srv import Trigger
    estop = node.create_client(Trigger, '/arm/estop')

    def call_estop():
        assert estop.wait_for_service(timeout_sec=10)
        fut = estop.call_async(Trigger.Request())
        assert wait_for(fut.done, 10)
        return fut.result()

    yield {'arm': arm, 'mon': mon, 'attack': attack, 'estop': call_estop}
    ex.shutdown()
    node.destroy_node()
    ctx.try_shutdown()
    assert arm.stop() == 0


def assert_safe(report, log):
    assert report['samples'] > 50, log
    assert report['excursion_m'] <= 1e-3, report
    assert report['below_floor_m'] <= 1e-3, report
    assert report['joint_limit_rad'] <= 1e-6, report
    assert report['over_speed_m'] <= 0.0, report


def test_flood_upward_at_100_hz_stays_in_the_box_and_within_the_speed(rig):
    """The issue's case: 5 mm steps up at 100 Hz went 35-57 mm above the box top."""
    t0 = time.monotonic()
    mon = rig['mon']
    flood = rig['attack']('publish', 'fi_commander', '--rate', 100, '--duration', 20.0, '--step', 0, 0, 0.005,
                          wait=False)
    try:
        # Up to the top of the box (how soon depends on how many commands a loaded machine lets
        # through in time), then a second more at the top, where the overshoot was.
        at_top = wait_for(lambda: len(mon.since(t0)[0]) > 0 and mon.unsafe(t0)['ee_last'][2] > 0.24, 15.0)
        time.sleep(1.0)
    finally:
        flood.send_signal(signal.SIGINT)
        out = flood.communicate(timeout=60)[0]
    time.sleep(0.3)
    report = mon.unsafe(t0)
    assert at_top, report
    assert_safe(report, rig['arm'].log())
    # The largest gap between joint states under the flood is a timing figure: bench_safety.py reports it.
    assert flood.returncode == 0 and out.strip().splitlines()[-1].startswith('sent'), out


def test_flood_at_1_khz_stays_safe_and_joint_states_keep_coming(rig):
    t0 = time.monotonic()
    rig['attack']('publish', 'fi_commander', '--rate', 1000, '--duration', 2.0, '--step', 0, -0.01, -0.01)
    t1 = time.monotonic()
    report = rig['mon'].unsafe(t0)
    assert_safe(report, rig['arm'].log())
    # Joint states during the flood (the attacker streams from t0 + ~0.5 s); how regularly they
    # come under load is a benchmark figure (bench_safety.py), not a timed assertion here.
    t, _ = rig['mon'].since(t0 + 0.6)
    assert np.count_nonzero(t < t1) > 0, report


def test_a_second_publisher_makes_the_arm_hold_and_is_named(rig):
    mon = rig['mon']
    t0 = time.monotonic()
    # Long streams, ended once the hold was seen: on a loaded machine discovery of the rogue's
    # node name can take seconds, and the test is about the hold, not how soon it comes.
    commander = rig['attack']('publish', 'fi_commander', '--rate', 50, '--duration', 20.0, '--step', 0.005, 0, 0,
                              wait=False)
    rogue = rig['attack']('publish', 'rogue', '--rate', 50, '--duration', 15.0, '--step', -0.005, 0, 0, wait=False)

    def held():
        return [m for t, m in list(mon.status) if t >= t0 and m.state == 'holding' and '/rogue' in m.hold_reason]
    try:
        named = wait_for(lambda: bool(held()), 15.0)
        time.sleep(0.5)  # the hold goes on while the rogue publishes
    finally:
        for p in (commander, rogue):
            p.send_signal(signal.SIGINT)
        outs = [p.communicate(timeout=60)[0] for p in (commander, rogue)]
    assert named, [m.hold_reason for t, m in mon.status if t >= t0][-5:]
    assert all(p.returncode == 0 for p in (commander, rogue)), outs
    # A fast hold leaves a short window: let the joint states it covers (and those since) arrive.
    wait_for(lambda: len(mon.since(t0)[0]) > 50, 10.0)
    report = mon.unsafe(t0)
    assert_safe(report, rig['arm'].log())


def test_forged_stamps_never_move_the_arm(rig):
    time.sleep(1.0)
    t0 = time.monotonic()
    rig['attack']('forge', 'fi_commander', '--rate', 50, '--duration', 1.5, '--step', 0, 0, -0.05)
    report = rig['mon'].unsafe(t0)
    assert np.linalg.norm(report['ee_last'] - report['ee_first']) < 1e-4, report


def test_motion_services_are_refused_on_the_robot_configuration(rig):
    out = rig['attack']('services', 'intruder')
    assert out.count('success=False') == 2 and 'motion_services' in out, out


def test_estop_stops_a_live_stream_and_nobody_can_reset_it(rig):
    """Last in the module: the arm stays e-stopped (motion_services false refuses the reset)."""
    mon = rig['mon']
    time.sleep(1.0)
    t_start = time.monotonic()
    streamer = rig['attack']('publish', 'fi_commander', '--rate', 20, '--duration', 12.0, '--step', 0.0, 0.004, 0.0,
                             wait=False)

    def moving():
        _, q = mon.since(time.monotonic() - 0.3)
        return len(q) > 5 and np.abs(q[-1] - q[0]).max() > 1e-3
    assert wait_for(moving, 10.0), 'the stream never moved the arm'
    assert time.monotonic() - t_start < 11.0
    t_moving = time.monotonic()
    assert rig['estop']().success
    t_latched = time.monotonic()
    out = rig['attack']('services', 'intruder')  # reset_estop refused while the stream goes on
    # Enough joint states after the latch to show the arm still (however slow a loaded machine is).
    wait_for(lambda: len(mon.since(t_latched + 0.05)[0]) > 50, 10.0)
    streamer.kill()
    streamer.communicate(timeout=60)
    t, q = mon.since(t_moving - 1.0)
    after = q[t > t_latched + 0.05]
    assert len(after) > 50
    assert np.abs(after - after[0]).max() < 1e-9, 'motion after the e-stop latched'
    assert 'success=False' in out and 'motion_services' in out
    assert mon.status[-1][1].estop_latched
