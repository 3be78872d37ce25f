"""The replay check on an expert episode the twin recorded (./run.sh collect, lockstep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('mujoco')

from fuse_core.evaluation import replay  # noqa: E402
from fuse_core.export.steps import read_episode  # noqa: E402
from support.ros_harness import fresh_domain_id, node_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def collect_one(tmp_path_factory, task: str, seed: int) -> Path:
    """One expert episode of `task` from `seed`, collected in lockstep by ./run.sh collect."""
    out = tmp_path_factory.mktemp(f'collected_{task}')
    res = subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'collect', '--task', task,
                          '--teleop', 'expert', '--episodes', '1', '--mode', 'lockstep', '--seed', str(seed),
                          '--out', str(out / 'episodes'), '--log-dir', str(out / 'log'), '--no-status'],
                         env=node_env(fresh_domain_id()), cwd=REPO, capture_output=True, text=True, timeout=300)
    logs = '\n'.join(f.read_text(errors='replace')[-1500:] for f in sorted((out / 'log').glob('*.log')))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:] + logs
    bags = sorted(p for p in (out / 'episodes').iterdir() if (p / 'episode.json').is_file())
    done = [b for b in bags if json.loads((b / 'episode.json').read_text())['status'] == 'complete']
    assert done, f'no complete episode in {bags}'
    return done[0]


@pytest.fixture(scope='module')
def expert_episode(tmp_path_factory):
    return collect_one(tmp_path_factory, 'pick_cube', 5)


def test_replay_check_of_a_recorded_expert_episode(expert_episode, tmp_path):
    out = tmp_path / 'replay'
    res = subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'replay-check', '--bundle',
                          'models/reference', str(expert_episode), '--out', str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads((out / replay.REPORT_JSON).read_text())
    steps = len(read_episode(expert_episode).stamps_ns)
    correct = report['scores']['correct']
    # Every recorded command is compared, or skipped for a stale sample: on a loaded machine a
    # best-effort sensor message can miss the recorder, and the check must not guess it.
    skipped = correct['skipped']
    assert correct['steps'] + sum(skipped.values()) == steps, report['scores']
    assert set(skipped) <= {'stale'} and correct['steps'] >= 0.8 * steps, report['scores']
    assert correct['nmse'] is not None and correct['nmse'] >= 0
    # The broken pipelines reach the model: the reference bundle's actions change with each.
    predicted = {v: report['per_episode'][v][0]['predicted'] for v in report['variants']}
    for v in ('bgr', 'unit_scale', 'no_background'):
        assert predicted[v] != predicted['correct'], v
    assert (out / replay.REPORT_HTML).read_text().count('<svg') == 7


def _replay(bundle, episode, out, variants):
    res = subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'replay-check', '--bundle', str(bundle),
                          str(episode), '--variants', ','.join(variants), '--out', str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {v: s['nmse'] for v, s in _scores(out).items()}


def _scores(out):
    return json.loads((out / replay.REPORT_JSON).read_text())['scores']


def test_the_twin_trained_bundle_scores_clearly_worse_with_broken_camera_preprocessing(expert_episode, tmp_path):
    # models/twin_pick_cube on single pick_cube expert episodes (seeds 0-5): correct 0.12-0.28,
    # bgr 1.8-3.7 x correct, unit_scale 2.8-8 x correct; the bounds keep a margin below those.
    nmse = _replay(REPO / 'models' / 'twin_pick_cube', expert_episode, tmp_path / 'replay',
                   ('correct', 'bgr', 'unit_scale'))
    assert nmse['correct'] < 0.5, nmse
    assert nmse['bgr'] > 1.4 * nmse['correct'], nmse
    assert nmse['unit_scale'] > 2.0 * nmse['correct'], nmse


@pytest.fixture(scope='module')
def soft_episode(tmp_path_factory):
    return collect_one(tmp_path_factory, 'pick_soft', 1)


def test_the_touch_bundle_scores_clearly_worse_without_the_background_subtraction(soft_episode, tmp_path):
    # models/twin_pick_soft (cameras and both DIGITs, action loss only) on single pick_soft expert
    # episodes of seeds 0-7: gripper agreement 0.85-1.0 correct vs 0.67-0.88 without the DIGIT
    # background subtraction (0.09-0.26 lower in every one; seed 1: 1.0 vs 0.79), nmse higher
    # in every one (seed 1: 0.162 vs 0.234). The squeeze decides lift or let go, and the bundle
    # reads it from the DIGITs: the bounds keep a margin below those figures.
    _replay(REPO / 'models' / 'twin_pick_soft', soft_episode, tmp_path / 'replay', ('correct', 'no_background'))
    scores = _scores(tmp_path / 'replay')
    correct, broken = scores['correct'], scores['no_background']
    assert correct['gripper_agreement'] >= 0.7, scores
    assert broken['gripper_agreement'] <= correct['gripper_agreement'] - 0.05, scores
    assert broken['nmse'] > correct['nmse'], scores


def test_the_fuse_finetuned_bundle_describes_the_soft_cube_from_touch(soft_episode, tmp_path):
    # models/twin_fuse on the chain's 3 held-out pick_soft episodes: from touch alone its
    # generative head says "pick up the cube that feels soft" in 0.97 of the steps (README,
    # describe-from-touch table); the bound keeps a margin.
    out = tmp_path / 'replay'
    res = subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'replay-check', '--bundle',
                          str(REPO / 'models' / 'twin_fuse'), str(soft_episode), '--variants', 'correct',
                          '--describe', 'tactile', '--out', str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    described = json.loads((out / replay.REPORT_JSON).read_text())['descriptions']['correct']['tactile']
    soft = described['by_expected']['pick up the cube that feels soft']
    assert soft['names_property'] >= 0.7, described
