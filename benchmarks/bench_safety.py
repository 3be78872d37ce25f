"""Arm safety figures: path-check cost, worst excursion per attack scenario (target-only filter
vs the path-checked one), arm node rates under command floods, time to hold after commander faults.

    python benchmarks/bench_safety.py                 # everything (about 1.5 min)
    python benchmarks/bench_safety.py --skip-ros      # only the in-process sections
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from fuse_bringup.runner import GraphObserver  # noqa: E402
from fuse_core.arm.backends import MockArm  # noqa: E402
from fuse_core.arm.kinematics import SLEEP_JOINTS, WX250S, bridge_state_to_pose  # noqa: E402
from fuse_core.arm.path import PathResult  # noqa: E402
from fuse_core.arm.safety import APPLY, SafetyFilter, SafetyLimits  # noqa: E402
from fuse_core.timing import percentiles  # noqa: E402

S = 1_000_000_000
LO, HI = np.array([0.10, -0.15, -0.01]), np.array([0.45, 0.25, 0.25])
START = (0.118, -0.016, 0.233)
ATTACKER = REPO / 'tests' / 'support' / 'arm_attacker.py'


class _NoPathCheck:
    """Today's target-only behaviour: every joint-space segment accepted as it is."""

    def check(self, q0, q1):
        return PathResult(1.0, np.asarray(q1, dtype=float), '', 0, 0.0, 0.0)


class LegacyMockArm(MockArm):
    """The mock's previous motion law: each joint clipped to its velocity limit on its own, so
    the executed joint path bends away from the straight segment when joints saturate."""

    def step(self, dt: float) -> None:
        if dt <= 0.0:
            return
        with self._lock:
            gain = min(1.0, dt / self.time_constant_s)
            limit = self.kinematics.velocity * dt
            self._q = self._q + np.clip((self._target - self._q) * gain, -limit, limit)


def target_only_filter() -> SafetyFilter:
    f = SafetyFilter(SafetyLimits(max_linear_speed=1e3, max_angular_speed=1e3, max_joint_step=10.0))
    f._path = _NoPathCheck()
    return f


def start_joints():
    return WX250S.ik(bridge_state_to_pose(START, (0, 0, 0)), SLEEP_JOINTS, max_iterations=200).joints


def excursion(points: np.ndarray) -> float:
    return float(np.maximum(np.maximum(LO - points, points - HI), 0.0).max(initial=0.0))


def run_scenario(make_filter, commands, control_hz=100.0, joints=None):
    """Commands (t_s, translation, rotation, valid_for_s, publisher) through a filter in front of
    the mock arm stepping at control_hz; the newest commander command per tick wins (as the
    node's gate does; the target-only filter takes every command, as the node did).
    Returns the worst EE excursion outside the box along the executed path (m) and the
    largest commanded target speed (m/s over 0.2 s)."""
    f = make_filter()
    gated = not isinstance(f._path, _NoPathCheck)
    arm = (MockArm if gated else LegacyMockArm)(start_joints() if joints is None else joints)
    arm.connect()
    dt = 1.0 / control_hz
    t, i, worst, targets = 0.0, 0, 0.0, []
    end = commands[-1][0] + 1.0
    while t < end:
        batch = []
        while i < len(commands) and commands[i][0] <= t:
            batch.append(commands[i])
            i += 1
        if gated:
            foreign = [c for c in batch if c[4] != 'commander']
            batch = [] if foreign else batch[-1:]
        for ts, tr, rot, valid, _ in batch:
            now = int(t * S)
            d = f.command(tr, rot, 1.0, arm.joint_positions(), now, stamp_ns=now,
                          valid_until_ns=now + int(valid * S))
            if d.kind == APPLY:
                arm.set_joint_targets(d.joints)
                targets.append((t, d.target[:3, 3].copy()))
        q0 = arm.joint_positions()
        arm.step(dt)
        q1 = arm.joint_positions()
        s = np.linspace(0.0, 1.0, 9)[:, None]
        worst = max(worst, excursion(WX250S.point_positions(q0 + s * (q1 - q0))[:, -1]))
        t += dt
    speed = 0.0
    for k in range(len(targets)):
        for m in range(k + 1, len(targets)):
            if targets[m][0] - targets[k][0] >= 0.2:
                speed = max(speed, np.linalg.norm(targets[m][1] - targets[k][1]) / (targets[m][0] - targets[k][0]))
                break
    return worst, speed


def scenarios():
    down = [(0.2 * k, (0, 0, -0.05), (0, 0, 0), 0.5, 'commander') for k in range(40)]
    up = [(0.01 * k, (0, 0, 0.005), (0, 0, 0), 0.3, 'commander') for k in range(400)]
    fight = sorted([(0.02 * k, (0.02, 0, 0), (0, 0, 0), 0.3, 'commander') for k in range(200)]
                   + [(0.02 * k + 0.01, (-0.02, 0.05, 0), (0, 0, 0), 0.3, 'rogue') for k in range(200)])
    swing = [(0.2 * k, (0.0, 0.05 * (1 if (k // 8) % 2 == 0 else -1), -0.01), (0, 0, 0.25), 0.5, 'commander')
             for k in range(64)]
    far = WX250S.ik(bridge_state_to_pose((0.43, -0.14, 0.05), (0, 0, 0)), start_joints(), max_iterations=200).joints
    return [('5 cm steps down at 5 Hz', down, None), ('5 mm steps up at 100 Hz', up, None),
            ('two publishers at 50 Hz each, opposite x', fight, None),
            ('y sweeps with yaw at 5 Hz from the far corner', swing, far)]


def section_scenarios():
    print('\n== worst excursion outside the box along the executed path (mock arm, in process) ==')
    print(f'{"scenario":48s} {"target-only filter":>22s} {"path-checked filter":>22s}')
    for name, cmds, q in scenarios():
        old = run_scenario(target_only_filter, cmds, joints=q)
        new = run_scenario(SafetyFilter, cmds, joints=q)
        print(f'{name:48s} {old[0] * 1e3:9.2f} mm {old[1]:6.2f} m/s  {new[0] * 1e3:9.3f} mm {new[1]:6.2f} m/s')
    print('(second figure: fastest commanded target motion over 0.2 s; the limit is 0.25 m/s)')


def section_cost():
    print('\n== cost per command (filter.command incl. IK + path check; path check alone) ==')
    rng = np.random.default_rng(0)
    for label, scale, period in (('5 Hz policy steps (~1 cm)', 0.01, 0.2), ('100 Hz steps (~2.5 mm)', 0.0025, 0.01),
                                 ('clipped 5 cm steps toward the box faces', 0.08, 0.2)):
        f = SafetyFilter()
        q = start_joints()
        total, path = [], []
        now = 10 * S
        for _ in range(400):
            now += int(period * S)
            t0 = time.perf_counter()
            d = f.command(rng.normal(0, scale, 3), rng.normal(0, scale * 3, 3), 1.0, q, now, stamp_ns=now,
                          valid_until_ns=now + S // 2)
            total.append((time.perf_counter() - t0) * 1e3)
            if d.kind == APPLY:
                t0 = time.perf_counter()
                f.path_checker.check(q, d.joints)
                path.append((time.perf_counter() - t0) * 1e3)
                q = d.joints
        pt, pp = percentiles(total).values(), percentiles(path).values()
        pt, pp = list(pt), list(pp)
        print(f'{label:42s} command p50 {pt[0]:.2f} / p99 {pt[1]:.2f} ms | path check p50 {pp[0]:.2f} / '
              f'p99 {pp[1]:.2f} ms ({len(path)} applied)')


# --- ROS sections -------------------------------------------------------------------------------
class Watcher(GraphObserver):
    def __init__(self, domain):
        from diagnostic_msgs.msg import DiagnosticArray
        from fuse_interfaces.msg import ArmStatus
        from sensor_msgs.msg import JointState

        from fuse_nodes.common import STATE_QOS
        super().__init__(domain, 'bench_safety_watch')
        self.js, self.status, self.diag = [], [], {}
        self.node.create_subscription(JointState, '/arm/joint_states', lambda m: self.js.append(time.monotonic()),
                                      STATE_QOS)
        self.node.create_subscription(ArmStatus, '/arm/status', lambda m: self.status.append((time.monotonic(), m)),
                                      STATE_QOS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.spin()

    def _on_diag(self, msg):
        for st in msg.status:
            if st.name.startswith('arm'):
                self.diag = {kv.key: kv.value for kv in st.values}

    def wait_tracking(self, timeout_s: float, poll_s: float) -> None:
        """Until the arm reports tracking after this call (or timeout_s passes)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s and not any(
                t > started and m.state == 'tracking' for t, m in list(self.status)[-5:]):
            time.sleep(poll_s)


def section_ros():
    from fuse_bringup.dds import dds_environment
    from support.ros_harness import NodeProcess
    domain = 190 + os.getpid() % 40
    env = dds_environment(domain_id=domain)
    # This process talks over the same transport as the nodes.
    os.environ.update({k: v for k, v in env.items() if k.startswith(('RMW_', 'FASTDDS_', 'ROS_'))})
    logs = Path(tempfile.mkdtemp(prefix='bench_safety_'))
    arm = NodeProcess('fuse_nodes.arm_node', 'arm', env, logs, params={
        'backend': 'mock', 'mock_initial_pose': 'start', 'commander': '/bench_commander'})
    w = Watcher(domain)
    try:
        t0 = time.monotonic()
        while len(w.js) < 50 and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        print('\n== arm node under command floods (joint states received here; control loop from /diagnostics) ==')
        def counts():
            d = dict(w.diag)
            return {k: int(d.get(k, 0)) for k in ('commands_offered', 'commands_received', 'commands_superseded')}

        for rate in (0, 50, 100, 1000):
            dur = 6.0
            before = counts()
            if rate:
                p = subprocess.Popen([sys.executable, str(ATTACKER), 'publish', '--name', 'bench_commander',
                                      '--rate', str(rate), '--duration', str(dur), '--step', '0', '0.0005', '0'],
                                     env=env, stdout=subprocess.PIPE, text=True)
                time.sleep(0.7)
            start = time.monotonic()
            time.sleep(dur - 1.2)
            stop = time.monotonic()
            stamps = [t for t in w.js if start <= t <= stop]
            gaps = np.diff(stamps) * 1e3 if len(stamps) > 1 else np.array([np.nan])
            diag = dict(w.diag)
            sent = '-'
            if rate:
                sent = p.communicate(timeout=30)[0].strip().split()[-1]
            time.sleep(1.5)  # the next diagnostics
            after = counts()
            got, filtered, superseded = (after[k] - before[k] for k in after)
            print(f'flood {rate:5d} Hz: joint states {len(stamps) / (stop - start):6.1f} Hz, largest gap '
                  f'{np.nanmax(gaps):6.1f} ms | control loop {float(diag.get("control_rate_hz", "nan")):6.1f} Hz | '
                  f'commands sent {sent}, received {got}, filtered {filtered}, superseded {superseded}')
        print('\n== time to hold after a commander fault (5 Hz commander; status at 10 Hz) ==')
        for fault, sig in (('SIGKILL', signal.SIGKILL), ('SIGSTOP (hung)', signal.SIGSTOP),
                           ('Ctrl-C', signal.SIGINT)):
            p = subprocess.Popen([sys.executable, str(ATTACKER), 'publish', '--name', 'bench_commander', '--rate',
                                  '5', '--duration', '30', '--step', '0', '0', '0'], env=env,
                                 stdout=subprocess.DEVNULL)
            w.wait_tracking(15, 0.05)
            time.sleep(1.0)
            t_fault = time.monotonic()
            p.send_signal(sig)
            held = None
            while time.monotonic() - t_fault < 5 and held is None:
                held = next((t for t, m in list(w.status) if t > t_fault and m.state == 'holding'), None)
                time.sleep(0.01)
            if sig == signal.SIGSTOP:
                p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()
            print(f'{fault:16s} -> holding after {(held - t_fault) * 1e3 if held else float("nan"):6.0f} ms '
                  '(watchdog_s 0.5)')
            time.sleep(1.5)
    finally:
        w.close()
        arm.stop()


def section_graph():
    """The simulation graph (bag player, sync, policy, mock arm): time from a fault to the arm holding."""
    from fuse_bringup import graph
    from fuse_bringup.dds import dds_environment
    from fuse_bringup.runner import GraphProcesses
    domain = 150 + os.getpid() % 40
    env = dds_environment(domain_id=domain)
    os.environ.update({k: v for k, v in env.items() if k.startswith(('RMW_', 'FASTDDS_', 'ROS_'))})
    print('\n== time to hold after a graph fault (./run.sh sim --world bag: bag replay, sync, policy, mock arm) ==')
    w = Watcher(domain)
    try:
        for label, node, sig in (('sync stopped (Ctrl-C)', 'sync', signal.SIGINT),
                                 ('sync hung (SIGSTOP)', 'sync', signal.SIGSTOP),
                                 ('policy killed (SIGKILL)', 'policy', signal.SIGKILL),
                                 ('bag player (all sensors) hung', 'bag_player', signal.SIGSTOP)):
            procs = GraphProcesses(graph.sim_graph(world='bag'), env,
                                   Path(tempfile.mkdtemp(prefix='bench_safety_graph_')))
            procs.start()
            try:
                w.wait_tracking(60, 0.1)
                time.sleep(2.0)
                t_fault = time.monotonic()
                procs.procs[node].send_signal(sig)
                time.sleep(3.0)
                after = [(t, m) for t, m in list(w.status) if t > t_fault]
                # From when on the arm holds for good (no tracking status until the end of the window).
                last_tracking = max((t for t, m in after if m.state == 'tracking'), default=t_fault)
                held = next(((t, m) for t, m in after if t > last_tracking and m.state == 'holding'), None)
                if sig == signal.SIGSTOP:
                    procs.procs[node].send_signal(signal.SIGCONT)
                ms = (held[0] - t_fault) * 1e3 if held else float('nan')
                print(f'{label:32s} -> holding for good after {ms:6.0f} ms: {held[1].hold_reason[:70] if held else ""}')
            finally:
                procs.stop()
    finally:
        w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--skip-ros', action='store_true')
    ap.add_argument('--only-graph', action='store_true', help='only the graph-fault section')
    args = ap.parse_args()
    print(f'bench_safety on {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} '
          '(figures under load if that is above ~0.5)')
    if args.only_graph:
        section_graph()
        return 0
    section_cost()
    section_scenarios()
    if not args.skip_ros:
        section_ros()
        section_graph()
    return 0


if __name__ == '__main__':
    sys.exit(main())
