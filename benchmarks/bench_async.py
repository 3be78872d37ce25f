"""Synchronous vs asynchronous chunk execution on the same windows, in real time at the bundle's rate.

    .venv/bin/python benchmarks/bench_async.py [--bundle models/reference | --full-size [--precision P]]
        [--slow-ms 0] [--seconds 30] [--threads 2] [--modes receding_horizon,async:latest,async:blend]

Runs fuse_core's PolicyController (the policy node's logic, without ROS) with the real bundle
in ONNX Runtime. A 5 Hz wall-clock tick feeds it the same sequence of windows in every mode
(consecutive windows share a step, as the sync node's do). In receding_horizon the tick waits
for inference, so a tick that starts late because the previous inference ran long is counted
as missed; in async the tick only picks the action for itself from the chunks that cover it.

Per mode it prints: motion commands per second, holds by reason, missed ticks, tick -> decision
latency, inference time, the per-chunk delay in ticks (async), and the smoothness of the
commanded end-effector path (integrated translation deltas; holds add nothing): mean squared
jerk, and the largest action step at chunk boundaries (ticks whose action comes from another
chunk than the tick before). --full-size uses models/full_size.py's random-weight Octo-small-FuSe
(built on first use, ~1 min): its actions mean nothing, so its smoothness figures only compare
the modes with each other. --slow-ms adds a sleep to every inference (a slower model or a remote
one, without the CPU load).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_policy import windows  # noqa: E402

from fuse_core.bundle import PolicyRunner, load_bundle, resolve_bundle_path  # noqa: E402
from fuse_core.bundle.policy import PolicyConfig, PolicyController, WindowInput  # noqa: E402
from fuse_core.timing import percentiles  # noqa: E402

INSTRUCTION = 'pick up the cup'


class SlowedRunner:
    """A PolicyRunner whose infer() sleeps `extra_ms` first (slower model, no extra CPU)."""

    def __init__(self, runner: PolicyRunner, extra_ms: float) -> None:
        self._runner, self._extra_s = runner, extra_ms / 1e3

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def infer(self, obs, **kw):
        time.sleep(self._extra_s)
        return self._runner.infer(obs, **kw)


def parse_mode(text: str):
    execution, _, aggregate = text.partition(':')
    if execution not in ('receding_horizon', 'temporal_ensemble', 'async'):
        raise SystemExit(f'bench_async: unknown mode {text!r}')
    return execution, aggregate or 'latest'


def run_mode(runner, wins, execution: str, aggregate: str, seconds: float) -> dict:
    m = runner.manifest
    period_ns = int(1e9 / m.control_rate_hz)
    cfg = PolicyConfig(execution=execution, async_aggregate=aggregate, instruction=INSTRUCTION)
    runner.clear_cache()
    ctl = PolicyController(runner, cfg, time.time_ns)
    n_ticks = int(seconds * m.control_rate_hz)
    records = []
    start = time.time_ns() + period_ns
    tick = 0
    try:
        while tick < n_ticks:
            scheduled = start + tick * period_ns
            now = time.time_ns()
            if now < scheduled:
                time.sleep((scheduled - now) / 1e9)
            elif now - scheduled >= period_ns:
                # The previous tick ran past this slot: no window was processed for it.
                records.append({'tick': tick, 'outcome': 'missed'})
                tick += 1
                continue
            obs = wins[tick % len(wins)]
            W = m.window_size
            win = WindowInput(
                tick_index=tick, stamp_ns=scheduled, newest_sample_ns=scheduled - 5_000_000,
                tensors=obs.tensors, timestep_pad_mask=obs.timestep_pad_mask,
                valid={n: [True] * W for n in m.input_names},
                sample_stamps={n: [scheduled - (W - 1 - t) * period_ns for t in range(W)] for n in m.input_names},
            )
            d = ctl.process(win)
            done = time.time_ns()
            records.append({'tick': tick, 'outcome': str(d.outcome), 'message': d.message,
                            'action': None if d.action is None else d.action.copy(),
                            'source': d.action_newest_sample_ns or scheduled,
                            'latency_ms': (done - scheduled) / 1e6})
            tick += 1
        delays = list(ctl._delay_ticks)
        inference = list(ctl._inference_ms)
    finally:
        ctl.close()
    return analyse(records, delays, inference, m.control_rate_hz, execution, aggregate)


def analyse(records, delays, inference, rate_hz: float, execution: str, aggregate: str) -> dict:
    dt = 1.0 / rate_hz
    n = len(records)
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r['outcome']] = outcomes.get(r['outcome'], 0) + 1
    moving = [r for r in records if r['outcome'] == 'command']
    path = np.zeros((n + 1, 3))
    for i, r in enumerate(records):
        step = r['action'][:3] if r.get('action') is not None else np.zeros(3)
        path[i + 1] = path[i] + step
    jerk = np.diff(path, n=3, axis=0) / dt**3 if n >= 4 else np.zeros((0, 3))
    steps = []
    for a, b in zip(records, records[1:]):
        if a['outcome'] == b['outcome'] == 'command' and a['source'] != b['source']:
            steps.append(float(np.linalg.norm(b['action'][:6] - a['action'][:6])))
    lat = percentiles([r['latency_ms'] for r in records if 'latency_ms' in r])
    inf = percentiles(inference)
    return {
        'mode': execution + (f':{aggregate}' if execution == 'async' else ''),
        'ticks': n,
        'motion_commands': len(moving),
        'command_rate_hz': len(moving) * rate_hz / n if n else float('nan'),
        'outcomes': outcomes,
        'tick_to_decision_ms': lat,
        'inference_ms': inf,
        'chunk_delay_ticks': {str(k): delays.count(k) for k in sorted(set(delays))},
        'path_mean_squared_jerk': float(np.mean(np.sum(jerk**2, axis=1))) if len(jerk) else float('nan'),
        'largest_step_at_chunk_boundary': max(steps) if steps else float('nan'),
        'chunk_boundaries': len(steps),
        'first_hold': next((r['message'] for r in records if r['outcome'] not in ('command',)), ''),
    }


def fmt(x, width=14):
    if isinstance(x, float):
        return f'{x:{width}.4g}' if x == x else f'{"--":>{width}s}'
    return f'{x!s:>{width}s}'


def report(title: str, results: list[dict]) -> None:
    print()
    print(title)
    width = 44
    print(f'{"":<{width}s}' + ''.join(fmt(r['mode'], 22) for r in results))
    rows = [
        ('motion commands / ticks', lambda r: f'{r["motion_commands"]} / {r["ticks"]}'),
        ('motion commands per second', lambda r: r['command_rate_hz']),
        ('tick -> decision p50 (ms)', lambda r: r['tick_to_decision_ms']['p50']),
        ('tick -> decision p99 (ms)', lambda r: r['tick_to_decision_ms']['p99']),
        ('inference p50 (ms)', lambda r: r['inference_ms']['p50']),
        ('inference p99 (ms)', lambda r: r['inference_ms']['p99']),
        ('chunk delay in ticks {delay: chunks}', lambda r: json.dumps(r['chunk_delay_ticks']).replace(' ', '')),
        ('commanded path mean squared jerk (m^2/s^6)', lambda r: r['path_mean_squared_jerk']),
        ('largest action step at a chunk boundary', lambda r: r['largest_step_at_chunk_boundary']),
        ('chunk boundaries between two commands', lambda r: r['chunk_boundaries']),
    ]
    for label, fn in rows:
        print(f'{label:<{width}s}' + ''.join(fmt(fn(r), 22) for r in results))
    for r in results:
        others = {k: v for k, v in r['outcomes'].items() if k != 'command'}
        print(f'  {r["mode"]}: ticks without motion {others or "none"}'
              + (f'; first: {r["first_hold"][:150]}' if r['first_hold'] else ''))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument('--bundle', default=None, help='bundle directory (default models/reference)')
    src.add_argument('--full-size', action='store_true', help='the random-weight full-size FuSe bundle')
    ap.add_argument('--precision', default='float32', choices=['float32', 'float16', 'int8'],
                    help='with --full-size: which cached export')
    ap.add_argument('--slow-ms', type=float, default=0.0, help='sleep this long in every inference')
    ap.add_argument('--seconds', type=float, default=30.0, help='real time per mode (default 30)')
    ap.add_argument('--threads', type=int, default=2, help='ONNX Runtime intra-op threads (default 2)')
    ap.add_argument('--providers', default='cpu', help='cpu (default), cuda, auto')
    ap.add_argument('--modes', default='receding_horizon,async:latest,async:blend')
    ap.add_argument('--json', metavar='PATH', help='also write the results to PATH')
    args = ap.parse_args(argv)
    if args.full_size:
        from models.full_size import cached_full_size

        path = cached_full_size(args.precision, keep_over_bound=True)
    else:
        path = resolve_bundle_path(args.bundle or '')
    t0 = time.perf_counter()
    runner = PolicyRunner(load_bundle(path, providers=args.providers, threads=args.threads))
    load_s = time.perf_counter() - t0
    runner.set_instruction(INSTRUCTION)
    n_windows = int(args.seconds * runner.manifest.control_rate_hz) + 2
    wins = list(windows(runner, n_windows))
    for obs in wins[:2]:  # warm-up: first-run kernels and allocations
        runner.infer(obs)
    used = SlowedRunner(runner, args.slow_ms) if args.slow_ms > 0 else runner
    results = [run_mode(used, wins, *parse_mode(m), args.seconds) for m in args.modes.split(',') if m]
    try:
        import os

        load = os.getloadavg()[0]
    except OSError:
        load = float('nan')
    title = (f'bench_async: {runner.manifest.name} ({path}), {",".join(runner.bundle.providers)}, '
             f'{args.threads} threads, {args.seconds:g} s per mode at {runner.manifest.control_rate_hz:g} Hz'
             + (f', every inference slowed by {args.slow_ms:g} ms' if args.slow_ms else '')
             + f'; bundle loaded in {load_s:.1f} s; load average (1 min) at the end {load:.2f} on '
             f'{os.cpu_count()} cores')
    report(title, results)
    if args.json:
        Path(args.json).write_text(json.dumps({'title': title, 'results': results}, default=float) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
