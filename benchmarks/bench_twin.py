"""The MuJoCo twin: expert success per task, render time per sensor, real-time factor, CPU per node.

1. Scripted expert, in process (the arm's safety filter and IK, no DDS, no rendering): success
   rate and mean episode length over --episodes seeded episodes per task.
2. Render time per sensor (320x240 cameras, DIGIT 320x240 gel image), median of 50.
3. In-process world with every sensor on (cameras, DIGITs, audio + spectrogram, IMU) at the
   drivers' rates and at twin.yaml's rates: sim seconds per wall second.
4. The whole graph as `./run.sh sim` starts it (world, sync, arm, expert) in real-time and in
   lockstep mode for --graph-seconds each: the world's real-time factor from /diagnostics,
   CPU per node, episodes.

    .venv/bin/python benchmarks/bench_twin.py [--episodes 50] [--graph-seconds 60] [--skip-graph]

Figures measured while other work loads the machine must be reported as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import psutil
import yaml


def expert_success(episodes: int) -> None:
    from fuse_sim.rollout import EpisodeRunner
    from fuse_sim.tasks import TASKS
    print(f'== scripted expert, {episodes} seeded episodes per task (in process, cameras off)')
    for task in TASKS:
        runner = EpisodeRunner(task)
        t0 = time.perf_counter()
        results = [runner.run(seed) for seed in range(1000, 1000 + episodes)]
        wall = time.perf_counter() - t0
        ok = [r for r in results if r.success]
        lengths = [r.duration_s for r in results]
        fails = [f'seed {r.seed}: {r.detail}' for r in results if not r.success][:3]
        print(f'{task:14s} success {len(ok):3d}/{episodes} ({100.0 * len(ok) / episodes:5.1f} %)  '
              f'episode length mean {statistics.mean(lengths):5.2f} s (max {max(lengths):5.2f} s)  '
              f'wall {wall:5.1f} s' + (f'  failures: {fails}' if fails else ''))


def render_times() -> None:
    from fuse_sim.config import WorldConfig
    from fuse_sim.sensors import DigitSimulator, SceneRenderer, primary_and_wrist
    from fuse_sim.world import World
    w = World(WorldConfig(task='pick_cube', seed=1))
    cams = SceneRenderer(w.model, primary_and_wrist(320, 240))
    digit = DigitSimulator(w.model, 'digit_left')
    print('== render time per sensor (median of 50, MUJOCO_GL=%s)' % os.environ.get('MUJOCO_GL'))

    for name, fn in (('primary 320x240', lambda: cams.render(w.data, 'primary')),
                     ('wrist 320x240', lambda: cams.render(w.data, 'wrist')),
                     ('DIGIT 320x240, nothing touching', lambda: digit.render(w.data)),
                     ('DIGIT 320x240, squeezing a cube', lambda: digit.render(w.data))):
        if 'squeezing' in name:
            w.squeeze(w.task.target)
        fn()
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        print(f'{name:34s} {statistics.median(times):6.2f} ms')
    cams.close()
    digit.close()


def world_rtf(seconds: float) -> None:
    from fuse_core.audio.config import AudioConfig
    from fuse_sim.audio import AudioSynth
    from fuse_sim.config import WorldConfig
    from fuse_sim.sensors import DigitSimulator, ImuSimulator, SceneRenderer, primary_and_wrist
    from fuse_sim.world import World
    from fuse_bringup import graph
    twin = yaml.safe_load(graph.config_path('twin.yaml').read_text())['world']['ros__parameters']
    print(f'== in-process world, every sensor on, {seconds:.0f} s of sim time (no DDS)')
    for label, cam_hz, digit_hz in (('driver rates', 30.0, 60.0),
                                    ('twin.yaml rates', twin['camera_rate_hz'], twin['digit_rate_hz'])):
        w = World(WorldConfig(task='pick_cube', seed=2))
        cams = SceneRenderer(w.model, primary_and_wrist(320, 240))
        digits = [DigitSimulator(w.model, f'digit_{s}') for s in ('left', 'right')]
        spec = AudioConfig().spectrogram()
        synth, imu = AudioSynth(), ImuSimulator()
        dt = 0.005
        next_cam = next_digit = next_spec = 0.0
        t0 = time.perf_counter()
        while w.episode_time_s < seconds:
            w.step(2)
            t = w.episode_time_s
            imu.sample(w)
            synth.render_until(w.time_s)
            if t >= next_cam:
                next_cam += 1.0 / cam_hz
                cams.render(w.data, 'primary')
                cams.render(w.data, 'wrist')
            if t >= next_digit:
                next_digit += 1.0 / digit_hz
                for d in digits:
                    d.render(w.data)
            if t >= next_spec:
                next_spec += 0.1
                spec(np.zeros(spec.window_samples, np.float32))
        wall = time.perf_counter() - t0
        print(f'{label:16s} (cameras {cam_hz:g} Hz, DIGITs {digit_hz:g} Hz, IMU 200 Hz, audio): '
              f'real-time factor {seconds / wall:4.2f}  (step {dt * 1e3:.0f} ms)')
        cams.close()
        for d in digits:
            d.close()


def graph_run(seconds: float, warmup: float, mode: str) -> None:
    from fuse_bringup import graph
    from fuse_bringup.dds import dds_environment
    from fuse_bringup.runner import GraphProcesses
    domain = 150 + os.getpid() % 40
    env = dds_environment(domain_id=domain)
    specs = graph.sim_graph(world='twin', mode=mode)
    procs = GraphProcesses(specs, env, log_dir=None)
    os.environ.update(env)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from fuse_interfaces.msg import TaskState
    from fuse_nodes.common import STATE_QOS
    print(f'== whole graph (./run.sh sim --mode {mode}: {", ".join(s.name for s in specs)}), '
          f'{seconds:.0f} s after {warmup:.0f} s warm-up')
    procs.start()
    rclpy.init(domain_id=domain)
    node = rclpy.create_node('bench_twin')
    world_diag = {}
    outcomes = {}
    last_state = {}

    def on_diag(msg):
        for st in msg.status:
            if st.name.startswith('world:'):
                world_diag.update({kv.key: kv.value for kv in st.values})

    def on_task(msg):
        key = (msg.episode, msg.seed)
        if last_state.get(key) == 'running' and msg.state != 'running':
            outcomes[msg.state] = outcomes.get(msg.state, 0) + 1
        last_state[key] = msg.state

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    node.create_subscription(TaskState, '/world/task_state', on_task, STATE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        end = time.monotonic() + warmup
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        ps = {s.name: psutil.Process(procs.procs[s.name].pid) for s in specs}
        cpu0 = {n: p.cpu_times() for n, p in ps.items()}
        outcomes.clear()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            ex.spin_once(timeout_sec=0.05)
        wall = time.monotonic() - t0
        cpu = {n: ((p.cpu_times().user + p.cpu_times().system) - (cpu0[n].user + cpu0[n].system)) / wall * 100
               for n, p in ps.items()}
        dead = procs.exited()
    finally:
        codes = procs.stop()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print('CPU per node (% of one core): ' + ', '.join(f'{n} {c:.0f}' for n, c in cpu.items())
          + f'; total {sum(cpu.values()):.0f} % of {psutil.cpu_count()} cores')
    keys = ('real_time_factor', 'real_time_factor_since_start', 'late_iterations', 'lost_time_s', 'lockstep_waits',
            'render_primary_ms_p50', 'render_wrist_ms_p50',
            'render_digit_ms_p50', 'camera_messages', 'digit_messages', 'targets_refused')
    print('world diagnostics: ' + ', '.join(f'{k} {world_diag.get(k, "-")}' for k in keys))
    print(f'episodes ended in the window: {outcomes or "none"}; exit codes {codes}'
          + (f'; EXITED EARLY: {dead}' if dead else ''))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--rtf-seconds', type=float, default=10.0)
    ap.add_argument('--graph-seconds', type=float, default=60.0)
    ap.add_argument('--warmup', type=float, default=8.0)
    ap.add_argument('--skip-graph', action='store_true')
    ap.add_argument('--modes', default='realtime,lockstep', help='graph runs, comma-separated')
    args = ap.parse_args()
    import fuse_sim  # noqa: F401  (MUJOCO_GL before mujoco is imported)
    print(f'machine: {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start')
    expert_success(args.episodes)
    render_times()
    world_rtf(args.rtf_seconds)
    if not args.skip_graph:
        for mode in args.modes.split(','):
            graph_run(args.graph_seconds, args.warmup, mode)
    print(f'load average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__':
    main()
