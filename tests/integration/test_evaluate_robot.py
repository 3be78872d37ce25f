"""./run.sh eval --world robot end to end with scripted key presses on a pseudo-terminal: the robot
graph with synthetic sensors and the mock arm, the operator's keys through the episode manager's
front end (reset, start, success / failure / discard / abort, a note), the report with the counts
and the interval, Ctrl-C keeping the counted trials, and --resume playing only the missing one."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fuse_core.episodes import INTERRUPTED, load_episode
from fuse_core.evaluation import wilson_interval
from support.ros_harness import fresh_domain_id, node_env

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
TASK = 'pick up the red block'


class Terminal:
    """The runner on a pseudo-terminal: keys typed into it, what it printed."""

    def __init__(self, args, out: Path, domain: int = 0) -> None:
        master, slave = pty.openpty()
        self.master, self.out, self.pos = master, out, 0
        self.proc = subprocess.Popen([sys.executable, '-m', 'fuse_bringup.runner', 'eval'] + args, cwd=REPO,
                                     env=node_env(domain or fresh_domain_id()), stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self._chunks = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self._chunks.append(data.decode(errors='replace'))

    @property
    def text(self) -> str:
        return ''.join(self._chunks)

    def logs(self) -> str:
        d = self.out / 'logs'
        return self.text[-4000:] + ''.join(f'\n--- {f.name}\n{f.read_text(errors="replace")[-1500:]}'
                                           for f in sorted(d.glob('*.log'))) if d.is_dir() else self.text[-4000:]

    def expect(self, what: str, timeout: float = 60.0) -> None:
        """Until `what` is printed after what was expected before."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.text.find(what, self.pos)
            if i >= 0:
                self.pos = i + len(what)
                return
            if self.proc.poll() is not None:
                time.sleep(0.5)             # what it printed last
                if self.text.find(what, self.pos) >= 0:
                    continue
                break
            time.sleep(0.05)
        raise AssertionError(f'{what!r} not printed\n{self.logs()}')

    def key(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def start(self, label: str) -> None:
        """[r] reset, wait until ready, [enter] start (again while the last bag is still closing, as the
        manager asks)."""
        self.key('r')
        self.expect('\x1b[2Kready ', 60)
        for _ in range(20):
            self.key('\n')
            try:
                self.expect(f'[eval] {label} running', 3)
                return
            except AssertionError:
                if 'bag is still closing' not in self.text[self.pos:]:
                    raise
        raise AssertionError(f'{label} never started\n{self.logs()}')

    def trial(self, label: str, end: str, note: str = '', run_s: float = 0.0) -> None:
        """Start it, wait `run_s`, (a note), then the end key."""
        self.start(label)
        time.sleep(run_s)
        if note:
            self.key('n')
            self.expect('note: ', 10)
            self.key(note + '\n')
            self.expect('note kept for the next end', 10)
        self.key(end)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


def test_operator_marks_trials_with_keys_then_ctrl_c_and_resume(tmp_path):
    out = tmp_path / 'report'
    args = ['--world', 'robot', '--synthetic', '--bundle', str(REPO / 'models' / 'reference'), '--task', TASK,
            '--instruction', TASK, '--episodes', '3', '--operator', 'tester', '--out', str(out), '--no-videos']
    t = Terminal(args, out)
    try:
        t.expect('[eval] trial 1/3: set the scene', 180)
        t.trial('trial 1/3', '1', run_s=3.0)                          # success
        t.expect('[eval] trial 1/3: success (marked success by tester)')
        t.expect('1/1 success, 100 %')
        t.trial('trial 2/3', '3', note='the block was not on the table')   # discard: trial 2 again
        t.expect('[eval] trial 2/3: discard (the block was not on the table), not counted: play it again')
        t.trial('trial 2/3', '2', note='slipped')                     # failure
        t.expect('[eval] trial 2/3: failure (marked failure by tester: slipped (after 1 discard))')
        t.expect('1/2 success, 50 %')
        t.trial('trial 3/3', 'x')                                     # abort: trial 3 again
        t.expect('[eval] trial 3/3: aborted, not counted')
        t.start('trial 3/3')
        t.proc.send_signal(signal.SIGINT)                             # Ctrl-C in the middle of trial 3
        t.expect('[eval] stopped: interrupted (Ctrl-C or SIGTERM)')
        assert t.wait() == 1, t.logs()
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
    assert '1 missing: interrupted' in t.text, t.logs()
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['episodes_finished'], s['episodes_missing']) == ('incomplete', 2, 1)
    assert 'interrupted' in s['missing_reason']
    # Trial 3's tries (aborted with [x], then cut short by Ctrl-C): their bags are kept, marked
    # interrupted; the trial is not in the report.
    counted = {e['episode_id'] for e in s['episodes']} | {r['episode_id'] for e in s['episodes'] for r in e['retries']}
    cut = sorted(d for d in (out / 'episodes').iterdir() if d.name not in counted)
    assert [load_episode(d).status for d in cut] == [INTERRUPTED, INTERRUPTED], cut
    assert load_episode(cut[0]).outcome == 'aborted'

    # Resumed: only trial 3 is played.
    t = Terminal(args + ['--resume'], out)
    try:
        t.expect('(resuming: 1 to play)', 60)
        t.expect('[eval] trial 3/3: set the scene', 180)
        t.trial('trial 3/3', '1')
        t.expect('[eval] trial 3/3: success')
        t.expect('2/3 success, 67 % [21 %, 94 %]')
        assert t.wait() == 0, t.logs()
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
    assert t.text.count(' running (') == 1, t.logs()
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['episodes_planned'], s['episodes_finished'], s['missing_reason']) == ('complete', 3, 3, '')
    assert (s['successes'], s['failures']) == (2, 1)
    assert s['wilson_95'] == pytest.approx(list(wilson_interval(2, 3)))
    assert s['config']['world'] == 'robot' and s['config']['outcome_source'] == 'operator'
    eps = s['episodes']
    assert [e['index'] for e in eps] == [0, 1, 2] and [e['outcome'] for e in eps] == ['success', 'failure', 'success']
    assert {e['outcome_source'] for e in eps} == {'operator'} and {e['operator'] for e in eps} == {'tester'}
    assert [[r['outcome'] for r in e['retries']] for e in eps] == [[], ['discard'], []]
    assert eps[1]['retries'][0]['note'] == 'the block was not on the table'
    assert eps[1]['detail'] == 'marked failure by tester: slipped (after 1 discard)'
    # The policy commanded the arm during trial 1 (3 s at 5 Hz), timed per command and chunk.
    assert eps[0]['commands'] > 5 and eps[0]['latency_ms']['count'] > 5 and eps[0]['inference_ms']['count'] > 5
    for e in eps:
        bag = out / 'episodes' / e['episode_id']
        md = load_episode(bag)
        assert e['bag'] and (bag / 'metadata.yaml').is_file() and (bag / 'trace.json').is_file(), e
        # The bag's own metadata says the same: the outcome, the operator, the bundle.
        assert (md.outcome, md.operator, md.world, md.task) == (e['outcome'], 'tester', 'robot', TASK)
        assert md.action_source == f'bundle:{REPO / "models" / "reference"}'
    page = (out / 'report.html').read_text()
    assert 'marked failure by tester: slipped' in page and 'outcome_source' in page


def test_attach_marks_trials_on_a_graph_started_apart(tmp_path):
    """--attach (robot.launch.py eval:=true's graph, here started as processes): the runner starts and
    stops nothing; without bags the trace is still written."""
    from fuse_bringup import graph
    from fuse_bringup.runner import GraphProcesses
    domain = fresh_domain_id()
    specs = graph.robot_graph(bundle_path='models/reference', instruction=TASK, evaluate=True, task=TASK,
                              operator='tester', synthetic=True)
    procs = GraphProcesses(specs, node_env(domain), tmp_path / 'graph_logs')
    out = tmp_path / 'report'
    procs.start()
    try:
        t = Terminal(['--world', 'robot', '--attach', '--bundle', str(REPO / 'models' / 'reference'), '--task', TASK,
                      '--instruction', TASK, '--episodes', '1', '--operator', 'tester', '--out', str(out),
                      '--no-bags'], out, domain)
        try:
            t.expect('[eval] attaching to the graph of: ros2 launch fuse_bringup robot.launch.py eval:=true', 60)
            t.expect('[eval] trial 1/1: set the scene', 180)
            t.trial('trial 1/1', '2', run_s=1.0)
            t.expect('[eval] trial 1/1: failure (marked failure by tester)')
            assert t.wait() == 0, t.logs()
        finally:
            if t.proc.poll() is None:
                t.proc.kill()
        assert not procs.exited(), 'the runner stopped a node it did not start'
    finally:
        codes = procs.stop()
    assert all(c == 0 for c in codes.values()), codes
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['successes'], s['failures'], s['config']['mode']) == ('complete', 0, 1, 'hardware')
    e = s['episodes'][0]
    assert not e['bag'] and (out / 'episodes' / e['episode_id'] / 'trace.json').is_file()
    assert not (out / 'episodes' / e['episode_id'] / 'metadata.yaml').exists()


def _eval(args, timeout=60):
    return subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'eval'] + args, cwd=REPO,
                          env=node_env(fresh_domain_id()), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize('extra,why', [
    (['--instruction', TASK], 'needs a terminal: the operator marks every trial with keys'),
    ([], 'needs --instruction'),
    (['--instruction', TASK, '--attach', '--synthetic'], '--attach uses the graph robot.launch.py started'),
])
def test_robot_evaluation_refused_before_anything_starts(tmp_path, extra, why):
    out = tmp_path / 'report'
    p = _eval(['--world', 'robot', '--bundle', str(REPO / 'models' / 'reference'), '--task', TASK,
               '--episodes', '2', '--out', str(out)] + extra)
    assert p.returncode == 2 and why in p.stderr, p.stdout + p.stderr
    assert not out.exists()
