"""End-to-end benchmark of the 5 Hz loop: six synthetic sensors -> sync -> policy -> mock arm.

Starts the simulation graph with live synthetic sensors (fuse_bringup.graph.sim_graph with
synthetic_sensors=True: camera_primary and camera_wrist 640x480 at 30 Hz, digit_left and
digit_right 320x240 at 60 Hz, audio, imu at 200 Hz, then sync, policy and arm), each node its
own process on a private ROS domain, lets it warm up, then listens to /sync/window,
/policy/action_chunk, /policy/command, /arm/status and /diagnostics from this process and
prints tick jitter, latencies, inference time, command counts and CPU per process. All
stamps are wall-clock nanoseconds (no sim time), so they compare across processes.

Receive times are the middleware's arrival stamps in this process (MessageInfo
received_timestamp), so this process's own scheduling delay under load is not counted;
"published" is the DDS source stamp of the writer. This process is one more reader of every
window (its serialised size is reported: about 0.9 MB at 5 Hz with the reference bundle, each
sample's data once); its CPU is listed apart from the nodes' total.

    .venv/bin/python benchmarks/bench_loop.py [--seconds 120] [--warmup 10] [--json out.json]
        [--execution receding_horizon,async,async:clock]

With several --execution modes the graph runs once per mode, one after the other, and a
side-by-side table of the main figures ends the output. In async mode a command's
newest_sample_stamp is that of the (earlier) window its chunk came from, so "newest sample ->
command" is the age of the observation behind the action, not only the loop's latency.

Node output goes to --log-dir (default log/bench_loop/<node>.log). The last line printed is
one JSON object with every figure, for notes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import psutil

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.runner import GraphObserver, GraphProcesses
from fuse_core.evaluation.report import reason_kind

DEFAULT_INSTRUCTION = 'pick up the blue cube'
#: A received_timestamp this far from the callback's wall clock is not wall-clock time.
_CLOCK_SANITY_NS = 1_000_000_000


#: Policy diagnostics counters of windows that got no command, by cause.
POLICY_REFUSALS = ('stale_windows', 'overruns', 'late_windows', 'no_instruction_windows', 'rejected_chunks',
                   'mismatched_windows', 'inference_errors', 'uncovered_ticks', 'refused_chunks')


#: Sync diagnostics counters reported over the measured interval.
SYNC_COUNTERS = ('windows_published', 'missed_ticks')


def counter_deltas(first: Optional[Dict[str, str]], last: Optional[Dict[str, str]],
                   keys) -> Dict[str, int]:
    """last - first of each diagnostics counter both snapshots carry."""
    out: Dict[str, int] = {}
    if not first or not last:
        return out
    for key in keys:
        try:
            out[key] = int(float(last[key]) - float(first[key]))
        except (KeyError, ValueError):
            pass
    return out


def stamp_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def pct(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float('nan')


def stats(values: List[float]) -> Dict[str, float]:
    return {'p50': pct(values, 50), 'p99': pct(values, 99),
            'max': float(max(values)) if values else float('nan'), 'n': len(values)}


class LoopListener(GraphObserver):
    """Records arrival and stamps of every control-path message, in this process."""

    def __init__(self, domain_id: int) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from fuse_interfaces.msg import ActionChunk, ArmStatus, DeltaEECommand, ObservationWindow
        from fuse_nodes.common import CONTROL_QOS, STATE_QOS

        super().__init__(domain_id, 'bench_loop')
        self.lock = threading.Lock()
        self.recording = False
        self.windows: List[dict] = []
        self.chunks: List[dict] = []
        self.commands: List[dict] = []
        self.arm_states: collections.Counter = collections.Counter()
        self.arm_hold_reasons: collections.Counter = collections.Counter()
        self.arm_first = None
        self.arm_last = None
        self.diag: Dict[str, Dict[str, str]] = {}
        self.diag_first: Dict[str, Dict[str, str]] = {}  # first snapshot while recording
        self.seen = collections.Counter()  # messages per topic since start, warm-up included
        self.receive_clock = 'dds'
        # raw: the serialised size is measured; the few fields used are deserialised here.
        self._window_type = ObservationWindow
        self.node.create_subscription(ObservationWindow, '/sync/window', self._on_window, CONTROL_QOS, raw=True)
        self.node.create_subscription(ActionChunk, '/policy/action_chunk', self._on_chunk, CONTROL_QOS)
        self.node.create_subscription(DeltaEECommand, '/policy/command', self._on_command, CONTROL_QOS)
        self.node.create_subscription(ArmStatus, '/arm/status', self._on_arm, STATE_QOS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, STATE_QOS)
        self.spin()

    def _receive_ns(self, info) -> int:
        """Middleware arrival time; this process's scheduling delay under load is not counted."""
        now = time.time_ns()
        received = int(info.get('received_timestamp') or 0) if info else 0
        if received and abs(now - received) < _CLOCK_SANITY_NS:
            return received
        self.receive_clock = 'callback'
        return now

    def _on_window(self, raw, info) -> None:
        from rclpy.serialization import deserialize_message
        rx = self._receive_ns(info)
        self.seen['window'] += 1
        if not self.recording:
            return
        msg = deserialize_message(raw, self._window_type)
        rec = {'tick': int(msg.tick_index), 'stamp': stamp_ns(msg.header.stamp), 'rx': rx,
               'newest': stamp_ns(msg.newest_sample_stamp), 'stale': list(msg.stale_streams),
               'bytes': len(raw), 'carried': sum(len(t.data_steps) for t in msg.tensors)}
        with self.lock:
            self.windows.append(rec)

    def _on_chunk(self, msg, info) -> None:
        rx = self._receive_ns(info)
        self.seen['chunk'] += 1
        if not self.recording:
            return
        with self.lock:
            self.chunks.append({'tick': int(msg.tick_index), 'rx': rx,
                                'inference_ms': float(msg.inference_ms)})

    def _on_command(self, msg, info) -> None:
        rx = self._receive_ns(info)
        self.seen['command'] += 1
        if not self.recording:
            return
        sent = int(info.get('source_timestamp') or 0) if info else 0
        rec = {'tick': int(msg.tick_index), 'rx': rx,
               'sent': sent if abs(rx - sent) < _CLOCK_SANITY_NS else 0,
               'stamp': stamp_ns(msg.header.stamp), 'newest': stamp_ns(msg.newest_sample_stamp),
               'valid_until': stamp_ns(msg.valid_until), 'hold': bool(msg.hold), 'reason': msg.reason}
        with self.lock:
            self.commands.append(rec)

    def _on_arm(self, msg) -> None:
        self.seen['arm_status'] += 1
        if not self.recording:
            return
        snapshot = {'state': msg.state, 'received': int(msg.commands_received),
                    'applied': int(msg.commands_applied), 'rejected': int(msg.commands_rejected),
                    'estop': bool(msg.estop_latched)}
        with self.lock:
            self.arm_states[msg.state] += 1
            if msg.hold_reason:
                self.arm_hold_reasons[reason_kind(msg.hold_reason)] += 1
            if self.arm_first is None:
                self.arm_first = snapshot
            self.arm_last = snapshot

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name in ('policy: policy', 'sync: window'):
                values = {kv.key: kv.value for kv in st.values}
                values['_message'] = st.message
                with self.lock:
                    self.diag[st.name] = values
                    if self.recording and st.name not in self.diag_first:
                        self.diag_first[st.name] = values


class CpuSampler:
    """CPU seconds (user + system) of each node process and of this one over an interval."""

    def __init__(self, pids: Dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.procs['(this benchmark)'] = psutil.Process()
        self.start: Dict[str, float] = {}
        self.t0 = 0.0

    def _cpu(self) -> Dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            try:
                t = p.cpu_times()
                out[name] = t.user + t.system
            except psutil.NoSuchProcess:
                out[name] = float('nan')
        return out

    def begin(self) -> None:
        self.start = self._cpu()
        self.t0 = time.monotonic()

    def end(self) -> Dict[str, float]:
        now = self._cpu()
        dt = max(1e-9, time.monotonic() - self.t0)
        return {n: 100.0 * (now[n] - self.start[n]) / dt for n in now}


def missing_pieces(specs: List[graph.NodeSpec]) -> List[str]:
    """Node modules and parameter files the graph needs but the checkout lacks, by node."""
    import importlib.util
    problems = []
    for spec in specs:
        module = f'{spec.package}.{spec.executable}'
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            problems.append(f'node {spec.name!r}: module {module} not found')
        for name in spec.params_files:
            if not graph.config_path(name).is_file():
                problems.append(f'node {spec.name!r}: parameter file {graph.config_path(name)} not found')
    return problems


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors='replace').splitlines()
    except OSError as exc:
        return f'    (no log: {exc})'
    return '\n'.join('    ' + ln for ln in text[-lines:]) or '    (log is empty)'


def analyse(listener: LoopListener, period_s: float, cpu: Dict[str, float], loads: List[tuple],
            measured_s: float, meta: dict) -> dict:
    with listener.lock:
        windows = sorted(listener.windows, key=lambda w: w['tick'])
        chunks = list(listener.chunks)
        commands = list(listener.commands)
        arm_states = dict(listener.arm_states)
        arm_holds = dict(listener.arm_hold_reasons)
        arm_first, arm_last = listener.arm_first, listener.arm_last
        diag = {k: dict(v) for k, v in listener.diag.items()}
        diag_first = {k: dict(v) for k, v in listener.diag_first.items()}
    period_ns = period_s * 1e9

    stamp_jitter, rx_jitter = [], []
    gaps = 0
    late_ticks = 0
    for a, b in zip(windows, windows[1:]):
        step = b['tick'] - a['tick']
        if step > 1:
            gaps += step - 1
        if step != 1:
            continue  # a period only between consecutive ticks; a gap is counted above
        d_stamp = b['stamp'] - a['stamp']
        stamp_jitter.append(abs(d_stamp - period_ns) / 1e6)
        rx_jitter.append(abs((b['rx'] - a['rx']) - period_ns) / 1e6)
        # The tick timer fired a period (or more) late: the node clock skipped a tick slot.
        late_ticks += max(0, int(round(d_stamp / period_ns)) - 1)

    window_by_tick = {w['tick']: w for w in windows}
    sample_to_tick = [(w['stamp'] - w['newest']) / 1e6 for w in windows if w['newest']]
    tick_to_window_rx = [(w['rx'] - w['stamp']) / 1e6 for w in windows]
    sample_to_cmd_rx = [(c['rx'] - c['newest']) / 1e6 for c in commands if c['newest']]
    sample_to_cmd_pub = [(c['sent'] - c['newest']) / 1e6 for c in commands if c['newest'] and c['sent']]
    tick_to_cmd_rx = [(c['rx'] - c['stamp']) / 1e6 for c in commands]
    window_rx_to_cmd_rx = [(c['rx'] - window_by_tick[c['tick']]['rx']) / 1e6
                           for c in commands if c['tick'] in window_by_tick]
    inference = [c['inference_ms'] for c in chunks]
    expired = sum(1 for c in commands if c['valid_until'] and c['rx'] > c['valid_until'])

    hold_reasons = collections.Counter(reason_kind(c['reason']) or '(no reason)'
                                       for c in commands if c['hold'])
    stale_by_stream = collections.Counter(s for w in windows for s in w['stale'])
    commanded_ticks = {c['tick'] for c in commands}
    no_command = sum(1 for w in windows if w['tick'] not in commanded_ticks)

    refusals = counter_deltas(diag_first.get('policy: policy'), diag.get('policy: policy'), POLICY_REFUSALS)
    sync_counts = counter_deltas(diag_first.get('sync: window'), diag.get('sync: window'), SYNC_COUNTERS)
    sync_diag = diag.get('sync: window', {})
    callback_lateness = {}
    for q in ('p50', 'p99', 'max'):
        try:
            callback_lateness[q] = float(sync_diag[f'tick_jitter_{q}_ms'])
        except (KeyError, ValueError):
            callback_lateness[q] = float('nan')
    callback_lateness['n'] = 0

    total_nodes = sum(v for k, v in cpu.items() if not k.startswith('(') and v == v)
    load = np.asarray(loads, dtype=float) if loads else np.full((1, 3), float('nan'))
    return {
        **meta,
        'measured_s': measured_s,
        'timing': {
            'tick_jitter_stamp_ms': stats(stamp_jitter),
            'tick_jitter_rx_ms': stats(rx_jitter),
            'sync_timer_lateness_ms': callback_lateness,
            'sample_to_tick_ms': stats(sample_to_tick),
            'tick_to_window_rx_ms': stats(tick_to_window_rx),
            'sample_to_command_rx_ms': stats(sample_to_cmd_rx),
            'sample_to_command_pub_ms': stats(sample_to_cmd_pub),
            'tick_to_command_rx_ms': stats(tick_to_cmd_rx),
            'window_rx_to_command_rx_ms': stats(window_rx_to_cmd_rx),
            'inference_ms': stats(inference),
        },
        'window_bytes': stats([w['bytes'] for w in windows]),
        'window_steps_carried': stats([w['carried'] for w in windows]),
        'counts': {
            'windows_received': len(windows),
            'window_rate_hz': len(windows) / measured_s if measured_s > 0 else float('nan'),
            'missed_ticks_index_gaps': gaps,
            'skipped_tick_slots': late_ticks,
            'action_chunks': len(chunks),
            'commands': len(commands),
            'hold_commands': sum(hold_reasons.values()),
            'hold_reasons': dict(hold_reasons),
            'windows_without_command': no_command,
            'commands_expired_on_arrival': expired,
            'windows_with_stale_streams': sum(1 for w in windows if w['stale']),
            'stale_by_stream': dict(stale_by_stream),
            'policy_refusals_from_diagnostics': refusals,
            'sync_counters_from_diagnostics': sync_counts,
        },
        'arm': {'status_states': arm_states, 'hold_reasons': arm_holds,
                'first': arm_first, 'last': arm_last},
        'cpu_percent_of_one_core': {k: round(v, 1) for k, v in cpu.items()},
        'cpu_nodes_total_percent': round(total_nodes, 1),
        'cores': psutil.cpu_count(),
        'loadavg_1m': {'min': float(np.nanmin(load[:, 0])), 'mean': float(np.nanmean(load[:, 0])),
                       'max': float(np.nanmax(load[:, 0]))},
        'loadavg_end': [float(x) for x in load[-1]],
        'diagnostics': diag,
    }


def json_safe(value):
    """NaN -> null, so the line is strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def fmt(x: float, width: int = 8) -> str:
    return f'{x:{width}.1f}' if x == x else ' ' * (width - 2) + '--'


def report(r: dict) -> None:
    t, c = r['timing'], r['counts']
    period = f'{1.0 / r["control_rate_hz"]:g} s'
    print()
    print(f'fuse-ros 5 Hz loop, synthetic sensors: {r["measured_s"]:.1f} s measured after '
          f'{r["warmup_s"]:g} s warm-up; {r["cores"]} cores; load average (1 min) '
          f'min {r["loadavg_1m"]["min"]:.2f} mean {r["loadavg_1m"]["mean"]:.2f} '
          f'max {r["loadavg_1m"]["max"]:.2f}; receive times from {r["receive_clock"]}')
    print(f'instruction {r["instruction"]!r}; bundle {r["bundle"]}; ROS domain {r["domain_id"]}')
    print()
    rows = [
        (f'tick jitter |period - {period}|, window header stamps (node clock)', 'tick_jitter_stamp_ms'),
        (f'tick jitter |period - {period}|, window receive times (this process)', 'tick_jitter_rx_ms'),
        ('sync timer callback lateness (sync /diagnostics, last 100 ticks)', 'sync_timer_lateness_ms'),
        ('newest sample -> tick (sample age at the tick)', 'sample_to_tick_ms'),
        ('tick -> window received (sync build + transport)', 'tick_to_window_rx_ms'),
        ('newest sample -> command received (end to end)', 'sample_to_command_rx_ms'),
        ('newest sample -> command published (DDS source stamp)', 'sample_to_command_pub_ms'),
        ('tick -> command received (sync + policy + transport)', 'tick_to_command_rx_ms'),
        ('window received -> command received (policy + transport)', 'window_rx_to_command_rx_ms'),
        ('inference_ms from /policy/action_chunk (model time)', 'inference_ms'),
    ]
    width = max(len(label) for label, _ in rows)
    print(f'{"timing (ms)":<{width}s}  {"p50":>8s}  {"p99":>8s}  {"max":>8s}  {"n":>5s}')
    for label, key in rows:
        s = t[key]
        n = f'{s["n"]:5d}' if s['n'] else '   --'
        print(f'{label:<{width}s}  {fmt(s["p50"])}  {fmt(s["p99"])}  {fmt(s["max"])}  {n}')
    print('  (header stamps are the ticks as the sync node stamps them; when it stamps the timer\'s '
          'scheduled time they\n   differ from the period only where a slot was skipped, and the '
          'callback lateness shows in the rows below them)')
    b, k = r['window_bytes'], r['window_steps_carried']
    print(f'window on the wire: {b["p50"] / 1e3:.0f} kB p50, {b["max"] / 1e3:.0f} kB max (serialised); '
          f'steps carrying data per window (all inputs) p50 {k["p50"]:g}, max {k["max"]:g}')
    print()
    print('counts')
    count_rows = [
        ('windows received (/sync/window)', f'{c["windows_received"]} ({c["window_rate_hz"]:.2f} Hz)'),
        ('missed ticks (gaps in tick_index)', c['missed_ticks_index_gaps']),
        ('skipped tick slots (header stamp step >= 1.5 periods)', c['skipped_tick_slots']),
        ('action chunks (/policy/action_chunk)', c['action_chunks']),
        ('commands (/policy/command)', c['commands']),
        ('  of which hold=True', c['hold_commands']),
        ('  expired on arrival (rx > valid_until)', c['commands_expired_on_arrival']),
        ('windows without a command', c['windows_without_command']),
        ('windows with stale_streams', c['windows_with_stale_streams']),
    ]
    for stream, n in sorted(c['stale_by_stream'].items()):
        count_rows.append((f'  stale stream: {stream}', n))
    if c['sync_counters_from_diagnostics']:
        count_rows.append(('sync (/diagnostics counters, 1 s snapshots)',
                           ', '.join(f'{k} {v}' for k, v in c['sync_counters_from_diagnostics'].items())))
    if c['policy_refusals_from_diagnostics']:
        count_rows.append(('policy refusals (/diagnostics counters, 1 s snapshots)',
                           ', '.join(f'{k} {v}' for k, v in c['policy_refusals_from_diagnostics'].items())))
    arm = r['arm']
    if arm['last'] is not None:
        first, last = arm['first'], arm['last']
        count_rows.append(('arm commands received / applied / rejected (interval)',
                           f'{last["received"] - first["received"]} / {last["applied"] - first["applied"]} / '
                           f'{last["rejected"] - first["rejected"]}'))
        states = ', '.join(f'{k}:{v}' for k, v in sorted(arm['status_states'].items()))
        count_rows.append(('arm status states', states))
    else:
        count_rows.append(('arm status', 'none received'))
    cw = max(len(str(k)) for k, _ in count_rows)
    for k, v in count_rows:
        print(f'  {k:<{cw}s}  {v}')
    for title, reasons in (('hold commands by reason (numbers shown as #)', c['hold_reasons']),
                           ('arm status messages by hold reason (numbers shown as #)', arm['hold_reasons'])):
        if reasons:
            print(f'  {title}:')
            for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                print(f'    {n:6d}  {reason}')
    print()
    print(f'CPU over the measured interval (% of one core; {r["cores"]} cores = {100 * r["cores"]}%)')
    for name, v in r['cpu_percent_of_one_core'].items():
        print(f'  {name:<18s} {fmt(v, 7)} %')
    print(f'  {"total (nodes)":<18s} {fmt(r["cpu_nodes_total_percent"], 7)} %')
    for name, values in sorted(r['diagnostics'].items()):
        keys = [k for k in values if k in (
            '_message', 'rate_hz', 'tick_jitter_p99_ms', 'tick_build_publish_p50_ms',
            'tick_build_publish_p99_ms', 'steps_carried', 'steps_referenced', 'check_p50_ms', 'check_p99_ms',
            'window_steps_lost',
            'inference_p50_ms', 'inference_p99_ms', 'windows_received', 'commands_sent', 'late_windows',
            'overruns', 'stale_windows', 'stale_streams', 'no_instruction_windows', 'inference_errors',
            'last_error', 'providers', 'execution', 'uncovered_ticks', 'refused_chunks',
            'chunk_delay_ticks_p50', 'chunk_delay_ticks_max', 'tick_p50_ms', 'tick_p99_ms',
            'decode_p50_ms', 'decode_p99_ms', 'process_p50_ms', 'process_p99_ms', 'publish_command_p50_ms',
            'publish_command_p99_ms', 'window_to_command_p50_ms', 'window_to_command_p99_ms')]
        if keys:
            pairs = '; '.join(f'{k.lstrip("_")}={values[k]}' for k in keys)
            print(f'last /diagnostics of {name!r}: {pairs}')


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=120.0, help='measured interval (default 120)')
    ap.add_argument('--warmup', type=float, default=10.0, help='seconds before measuring (default 10)')
    ap.add_argument('--instruction', default=DEFAULT_INSTRUCTION,
                    help=f'policy instruction (default {DEFAULT_INSTRUCTION!r}); '
                         'without one the policy sends nothing')
    ap.add_argument('--bundle', help='model bundle directory (default: models/reference)')
    ap.add_argument('--policy-param', action='append', default=[], metavar='NAME=VALUE',
                    help='extra policy node parameter for every mode, e.g. tick_thread_priority=50 (repeatable)')
    ap.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID (default: derived from the pid, 130..189)')
    ap.add_argument('--log-dir', default='log/bench_loop', help='per-node logs (default log/bench_loop)')
    ap.add_argument('--json', metavar='PATH', help='also write the JSON results to PATH (one line per mode)')
    ap.add_argument('--execution', default='receding_horizon,async,async:clock',
                    help='policy execution modes to run one after the other (default '
                         'receding_horizon,async,async:clock; async:clock = async with async_tick_source clock)')
    args = ap.parse_args(argv)
    try:
        args.policy_params = graph.parameter_overrides(args.policy_param)
    except ValueError as exc:
        ap.error(f'--policy-param {exc}')
    if args.seconds <= 0 or args.warmup < 0:
        ap.error('--seconds must be > 0 and --warmup >= 0')

    modes = [m.strip() for m in args.execution.split(',') if m.strip()]
    known = ('receding_horizon', 'temporal_ensemble', 'async', 'async:clock')
    if not modes or any(m not in known for m in modes):
        ap.error(f'--execution: comma-separated modes out of {list(known)}')
    domain = args.domain_id if args.domain_id is not None else 130 + os.getpid() % 60
    results, code = [], 0
    for mode in modes:
        log_dir = Path(args.log_dir) / mode.replace(':', '_') if len(modes) > 1 else Path(args.log_dir)
        rc, result = run_once(args, mode, domain, log_dir)
        code = code or rc
        if result is None:
            break
        results.append(result)
    if len(results) > 1:
        side_by_side(results)
    if args.json and results:
        Path(args.json).write_text(''.join(json.dumps(json_safe(r)) + '\n' for r in results))
    return code


SIDE_BY_SIDE = (
    ('tick -> command received p50 (ms)', 'timing', 'tick_to_command_rx_ms', 'p50'),
    ('tick -> command received p99 (ms)', 'timing', 'tick_to_command_rx_ms', 'p99'),
    ('newest sample -> command received p50 (ms)', 'timing', 'sample_to_command_rx_ms', 'p50'),
    ('newest sample -> command received p99 (ms)', 'timing', 'sample_to_command_rx_ms', 'p99'),
    ('window received -> command received p99 (ms)', 'timing', 'window_rx_to_command_rx_ms', 'p99'),
    ('inference p50 (ms)', 'timing', 'inference_ms', 'p50'),
    ('window on the wire p50 (kB)', 'window_bytes', None, 'p50'),
)


def side_by_side(results: List[dict]) -> None:
    """The main figures of every mode in one table (each mode measured in its own run)."""
    names = [r['execution'] for r in results]
    width = 46
    print()
    print('side by side (each mode its own run, one after the other; load average (1 min) mean: '
          + ', '.join(f'{r["execution"]} {r["loadavg_1m"]["mean"]:.2f}' for r in results) + ')')
    print(f'{"":<{width}s}' + ''.join(f'{n:>18s}' for n in names))
    for label, section, key, q in SIDE_BY_SIDE:
        values = [r[section][key][q] if key else r[section][q] / 1e3 for r in results]
        print(f'{label:<{width}s}' + ''.join(f'{fmt(v, 18)}' for v in values))
    for label, fn in (
        ('windows received', lambda r: r['counts']['windows_received']),
        ('missed ticks', lambda r: r['counts']['missed_ticks_index_gaps']),
        ('motion commands', lambda r: r['counts']['commands'] - r['counts']['hold_commands']),
        ('hold commands', lambda r: r['counts']['hold_commands']),
        ('windows without a command', lambda r: r['counts']['windows_without_command']),
        ('policy CPU (% of one core)', lambda r: r['cpu_percent_of_one_core'].get('policy', float('nan'))),
        ('policy decode p50 / p99 (ms, diagnostics)', lambda r: diag_pair(r, 'policy: policy', 'decode')),
        ('policy check p50 / p99 (ms, diagnostics)', lambda r: diag_pair(r, 'policy: policy', 'check')),
        ('policy publish p50 / p99 (ms, diagnostics)', lambda r: diag_pair(r, 'policy: policy', 'publish_command')),
        ('sync build + publish p50 / p99 (ms)', lambda r: diag_pair(r, 'sync: window', 'tick_build_publish')),
    ):
        print(f'{label:<{width}s}' + ''.join(f'{fn(r)!s:>18s}' for r in results))


def diag_pair(r: dict, status: str, name: str) -> str:
    """'p50 / p99' of a <name>_p50_ms / <name>_p99_ms pair in the last diagnostics of `status`."""
    values = r['diagnostics'].get(status, {})
    try:
        return f'{float(values[name + "_p50_ms"]):.1f} / {float(values[name + "_p99_ms"]):.1f}'
    except (KeyError, ValueError):
        return '--'


def run_once(args, mode: str, domain: int, log_dir: Path):
    """Start the graph with the policy in `mode`, measure, stop: (exit code, result or None)."""
    specs = graph.sim_graph(bundle_path=args.bundle, instruction=args.instruction, synthetic_sensors=True)
    execution, _, tick_source = mode.partition(':')
    policy_params = {**args.policy_params, 'execution': execution,
                     **({'async_tick_source': tick_source} if tick_source else {})}
    specs = graph.with_parameters(specs, 'policy', policy_params)
    bundle = next(s.parameters['bundle_path'] for s in specs if s.name == 'policy')
    try:
        with open(Path(bundle) / 'manifest.json') as f:
            rate_hz = float(json.load(f)['control_rate_hz'])
    except (OSError, KeyError, ValueError) as exc:
        print(f'bench_loop: cannot read control_rate_hz from {bundle}/manifest.json: {exc}', file=sys.stderr)
        return 2, None
    missing = missing_pieces(specs)
    if missing:
        for line in missing:
            print(f'bench_loop: {line}', file=sys.stderr)
        return 2, None
    env = dds_environment(domain_id=domain)
    env.setdefault('PYTHONUNBUFFERED', '1')
    # This process joins the same domain with the same transport as the nodes.
    os.environ.update({k: v for k, v in env.items() if k.startswith(('RMW_', 'FASTDDS_', 'ROS_'))})
    for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE',):
        os.environ.pop(k, None)
    procs = GraphProcesses(specs, env, log_dir)

    stop = threading.Event()
    interrupted = []

    def on_signal(signum, _frame):
        interrupted.append(signum)
        stop.set()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    print(f'[bench_loop] execution {mode}: starting {len(specs)} nodes on ROS domain {domain}: '
          f'{", ".join(s.name for s in specs)}; logs in {log_dir}/', flush=True)
    procs.start()
    listener = None
    early_exit: Dict[str, int] = {}
    loads: List[tuple] = []
    cpu: Dict[str, float] = {}
    measured_s = 0.0

    def watch(seconds: float, phase: str) -> bool:
        """Wait while every node runs; False when a node exited or the user interrupted."""
        end = time.monotonic() + seconds
        next_note = time.monotonic() + 10.0
        while not stop.is_set() and time.monotonic() < end:
            dead = procs.exited()
            if dead:
                early_exit.update(dead)
                return False
            if phase == 'measure':
                loads.append(os.getloadavg())
            if time.monotonic() >= next_note and listener is not None:
                next_note += 10.0
                s = listener.seen
                print(f'[bench_loop] {phase}: windows {s["window"]} chunks {s["chunk"]} '
                      f'commands {s["command"]} arm status {s["arm_status"]}; '
                      f'load {os.getloadavg()[0]:.2f}', flush=True)
            stop.wait(min(1.0, max(0.0, end - time.monotonic())))
        return not stop.is_set()

    code = 0
    try:
        listener = LoopListener(domain)
        if watch(args.warmup, 'warm-up'):
            sampler = CpuSampler({n: p.pid for n, p in procs.procs.items()})
            if listener.seen['window'] == 0:
                print(f'[bench_loop] warning: no /sync/window after {args.warmup:g} s of warm-up; '
                      f'measuring anyway', flush=True)
            sampler.begin()
            listener.recording = True
            t0 = time.monotonic()
            watch(args.seconds, 'measure')
            listener.recording = False
            measured_s = time.monotonic() - t0
            cpu = sampler.end()
        elif stop.is_set():
            print('[bench_loop] interrupted during warm-up; nothing measured', flush=True)
    finally:
        if listener is not None:
            listener.recording = False
        codes = procs.stop()
        if listener is not None:
            listener.close()
        print(f'[bench_loop] stopped (SIGINT). exit codes: {codes}', flush=True)

    if early_exit:
        for name, rc in early_exit.items():
            print(f'[bench_loop] FAILED: node {name!r} exited early with code {rc}; '
                  f'last lines of {log_dir / (name + ".log")}:', file=sys.stderr)
            print(tail(log_dir / f'{name}.log'), file=sys.stderr)
        return 1, None
    if measured_s <= 0:
        return (130 if interrupted else 1), None
    if interrupted:
        print(f'[bench_loop] interrupted: reporting the {measured_s:.1f} s measured', flush=True)
        code = 130

    meta = {'benchmark': 'bench_loop', 'execution': mode, 'policy_params': args.policy_params,
            'warmup_s': args.warmup, 'requested_s': args.seconds,
            'instruction': args.instruction, 'bundle': bundle, 'control_rate_hz': rate_hz,
            'domain_id': domain, 'receive_clock': listener.receive_clock,
            'exit_codes': codes, 'unix_time': time.time()}
    result = analyse(listener, 1.0 / rate_hz, cpu, loads, measured_s, meta)
    report(result)
    bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT)}
    if bad:
        print(f'[bench_loop] nodes that did not stop cleanly: {bad}', flush=True)
        code = code or 1
    print(json.dumps(json_safe(result)), flush=True)
    return code, (None if interrupted else result)


if __name__ == '__main__':
    sys.exit(main())
