"""./run.sh eval end to end in the twin (lockstep): expert episodes, report, bags, videos, timing, resume, refusals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('mujoco')

from fuse_core.evaluation import wilson_interval  # noqa: E402
from support.ros_harness import fresh_domain_id, node_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _eval(args, timeout=240):
    env = node_env(fresh_domain_id())
    return subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'eval'] + args, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _logs(out: Path) -> str:
    logs = out / 'logs'
    return '\n'.join(f'--- {f.name}\n{f.read_text(errors="replace")[-2000:]}'
                     for f in sorted(logs.glob('*.log'))) if logs.is_dir() else ''


def test_expert_pick_cube_interrupted_then_resumed_gives_counts_interval_and_report(tmp_path):
    out = tmp_path / 'report'
    args = ['--expert', '--task', 'pick_cube', '--episodes', '2', '--seed', '3', '--out', str(out)]
    # Ctrl-C once the first episode is in: it stays in the report, which says one is missing and why.
    proc = subprocess.Popen([sys.executable, '-m', 'fuse_bringup.runner', 'eval'] + args,
                            env=node_env(fresh_domain_id()), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('[eval] episode 1/2'):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = ''.join(lines) + rest
    assert proc.returncode == 1, text + _logs(out)
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['episodes_finished'], s['episodes_missing']) == ('incomplete', 1, 1), text + _logs(out)
    assert 'interrupted' in s['missing_reason'] and '1 missing: interrupted' in text
    assert '1 of 2 episodes missing: interrupted' in (out / 'report.html').read_text()
    # The same directory again: refused; with --resume only the missing episode (seed 4) is played.
    again = _eval(args, 60)
    assert again.returncode == 2 and 'exists: pass --resume' in again.stderr, again.stderr
    p = _eval(args + ['--resume'])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:] + _logs(out)
    assert p.stdout.count('[eval] episode ') == 1 and '[eval] episode 2/2 seed 4' in p.stdout, p.stdout
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['episodes_planned'], s['episodes_finished'], s['episodes_missing'], s['missing_reason']) \
        == ('complete', 2, 2, 0, '')
    eps = s['episodes']
    assert [e['seed'] for e in eps] == [3, 4] and [e['index'] for e in eps] == [0, 1]
    k = sum(e['outcome'] == 'success' for e in eps)
    assert s['successes'] == k and s['failures'] == 2 - k
    assert s['wilson_95'] == pytest.approx(list(wilson_interval(k, 2)))
    # The scripted expert solves pick_cube.
    assert k == 2, eps
    for e in eps:
        assert e['task'] == 'pick_cube' and 0.0 < e['duration_s'] < 20.0 and e['commands'] > 5, e
    page = (out / 'report.html').read_text()
    assert '2 of 2' in page and 'missing' not in page and '<svg' in page and 'src="http' not in page
    # The expert has no windows nor model: no latency or inference time, and the summary says why.
    assert s['latency_ms'] is None and s['inference_ms'] is None and 'scripted expert' in s['latency_measure']
    # Every episode's bag (the interrupted one replayed from scratch), its trace and its video, linked.
    for e in eps:
        d = out / 'episodes' / e['episode_id']
        md = json.loads((d / 'episode.json').read_text())
        assert (md['status'], md['outcome'], md['seed'], e['bag']) == ('complete', 'success', e['seed'], True), md
        assert (d / 'metadata.yaml').is_file() and e['latency_ms'] is None
        trace = json.loads((d / 'trace.json').read_text())
        assert len(trace['ee']) > 10 and len(trace['actions']) >= e['commands'], e
        frames = _video_frames(d / 'video.webm')
        assert frames > 10, (d, frames)
        assert f'<video src="episodes/{e["episode_id"]}/video.webm"' in page
        assert f'href="episodes/{e["episode_id"]}/"' in page
    done = _eval(args + ['--resume'], 60)
    assert done.returncode == 0 and 'nothing to play' in done.stdout, done.stdout + done.stderr


def _video_frames(path: Path) -> int:
    import cv2
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_bundle_reading_a_stream_the_twin_lacks_is_refused_before_any_episode(tmp_path):
    bundle = tmp_path / 'bundle'
    shutil.copytree(REPO / 'models' / 'reference', bundle)
    manifest = json.loads((bundle / 'manifest.json').read_text())
    manifest['inputs'][1]['stream'] = 'thermal_camera'
    (bundle / 'manifest.json').write_text(json.dumps(manifest))
    out = tmp_path / 'report'
    p = _eval(['--bundle', str(bundle), '--task', 'pick_cube', '--episodes', '1', '--out', str(out)], 60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "input 'image_wrist' reads stream 'thermal_camera'" in p.stderr, p.stderr
    assert not out.exists()           # refused before the report (and any node) was made


def test_reference_bundle_episode_is_played_and_counted(tmp_path):
    """The shipped reference bundle drives the twin through sync -> policy -> arm; its outcome is counted."""
    out = tmp_path / 'report'
    p = _eval(['--bundle', str(REPO / 'models' / 'reference'), '--task', 'pick_cube', '--episodes', '1',
               '--seed', '5', '--out', str(out), '--no-bags'])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:] + _logs(out)
    s = json.loads((out / 'summary.json').read_text())
    assert s['config']['action_source'] == f'bundle:{REPO / "models" / "reference"}'
    assert (s['status'], s['episodes_finished']) == ('complete', 1)
    e = s['episodes'][0]
    assert e['seed'] == 5 and e['outcome'] in ('success', 'failure') and e['detail'], e
    k = int(e['outcome'] == 'success')
    assert (s['successes'], s['failures']) == (k, 1 - k)
    assert s['wilson_95'] == pytest.approx(list(wilson_interval(k, 1)))
    # The policy commanded the arm (motions or explicit holds) during the episode.
    assert e['commands'] + sum(e['holds'].values()) > 5, e
    # Window -> command latency and the model's inference time, per episode and pooled.
    for stats in (e['latency_ms'], e['inference_ms'], s['latency_ms'], s['inference_ms']):
        assert stats['count'] > 5 and 0.0 < stats['p50'] <= stats['p95'] <= stats['p99'] <= stats['max'], e
    # --no-bags: no bag and no video, but the path and the commands are plotted.
    d = out / 'episodes' / e['episode_id']
    assert not e['bag'] and not (d / 'metadata.yaml').exists() and not (d / 'video.webm').exists()
    assert len(json.loads((d / 'trace.json').read_text())['ee']) > 10
    assert 'no bag recorded (--no-bags)' in (out / 'report.html').read_text()
