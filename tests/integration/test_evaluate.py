"""./run.sh eval end to end in the twin (lockstep): the expert's episodes, the report, resume and refusals."""

from __future__ import annotations

import json
import shutil
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


def test_expert_episodes_of_pick_cube_give_counts_interval_and_report(tmp_path):
    out = tmp_path / 'report'
    p = _eval(['--expert', '--task', 'pick_cube', '--episodes', '2', '--seed', '3', '--out', str(out)])
    logs = '\n'.join(f'--- {f.name}\n{f.read_text(errors="replace")[-2000:]}'
                     for f in sorted((out / 'logs').glob('*.log'))) if (out / 'logs').is_dir() else ''
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:] + logs
    # Progress: one line per episode.
    assert p.stdout.count('[eval] episode ') == 2, p.stdout
    s = json.loads((out / 'summary.json').read_text())
    assert (s['status'], s['episodes_planned'], s['episodes_finished'], s['episodes_missing']) == \
        ('complete', 2, 2, 0)
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
    assert '2 of 2' in page and 'seed' in page and '<svg' in page and 'src="http' not in page
    # The same directory again: refused; with --resume nothing is left to play (no graph started).
    again = _eval(['--expert', '--task', 'pick_cube', '--episodes', '2', '--seed', '3', '--out', str(out)], 60)
    assert again.returncode == 2 and 'exists: pass --resume' in again.stderr, again.stderr
    resumed = _eval(['--expert', '--task', 'pick_cube', '--episodes', '2', '--seed', '3', '--out', str(out),
                     '--resume'], 60)
    assert resumed.returncode == 0 and 'nothing to play' in resumed.stdout, resumed.stdout + resumed.stderr


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
