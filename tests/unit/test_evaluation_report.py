"""Evaluation report directory: Wilson interval against hand values, refusal, resume, interruption."""

from __future__ import annotations

import json

import pytest

from fuse_core.errors import EvaluationError
from fuse_core.evaluation import EPISODES_FILE, SUMMARY_FILE, EpisodeResult, EvaluationReport, wilson_interval

CONFIG = {'task': 'pick_cube', 'action_source': 'expert', 'world': 'twin', 'seed': 10, 'episodes': 4,
          'bundle': ''}


@pytest.mark.parametrize('k, n, lo, hi', [
    # Worked by hand: centre = (p + z^2/2n) / (1 + z^2/n), half = z/(1 + z^2/n) sqrt(p(1-p)/n + z^2/4n^2).
    (8, 10, 0.4902, 0.9433),
    (2, 2, 0.3424, 1.0),
    (0, 5, 0.0, 0.4345),
    (5, 10, 0.2366, 0.7634),
    (1, 1, 0.2065, 1.0),
])
def test_wilson_interval_matches_hand_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-4)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(3, 7)
    assert 0.0 < lo < 3 / 7 < hi < 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _result(i: int, outcome: str = 'success', **kw) -> EpisodeResult:
    return EpisodeResult(index=i, seed=10 + i, task='pick_cube', outcome=outcome, duration_s=3.0 + i, **kw)


def test_existing_directory_is_refused_unless_resume_or_overwrite(tmp_path):
    out = tmp_path / 'report'
    EvaluationReport.open(out, CONFIG)
    with pytest.raises(EvaluationError, match='exists: pass --resume .* or --overwrite'):
        EvaluationReport.open(out, CONFIG)
    with pytest.raises(EvaluationError, match='exclude each other'):
        EvaluationReport.open(out, CONFIG, resume=True, overwrite=True)
    # An empty directory is not a report: it is used.
    empty = tmp_path / 'empty'
    empty.mkdir()
    EvaluationReport.open(empty, CONFIG)


def test_overwrite_replaces_the_report(tmp_path):
    out = tmp_path / 'report'
    r = EvaluationReport.open(out, CONFIG)
    r.record(_result(0))
    (out / 'stray.txt').write_text('x')
    r2 = EvaluationReport.open(out, CONFIG, overwrite=True)
    assert r2.pending() == [0, 1, 2, 3]
    assert not (out / 'stray.txt').exists()
    assert json.loads((out / SUMMARY_FILE).read_text())['episodes_finished'] == 0


def test_interrupted_run_keeps_finished_episodes_and_resume_plays_only_the_missing(tmp_path):
    out = tmp_path / 'report'
    r = EvaluationReport.open(out, CONFIG)
    assert [r.seed_of(i) for i in r.pending()] == [10, 11, 12, 13]
    r.record(_result(0, holds={'stale': 2}))
    r.record(_result(1, 'failure', detail='time limit 20 s reached', holds={'stale': 1, 'late': 3}))
    s = r.finish('interrupted (Ctrl-C)')
    assert (s['status'], s['episodes_finished'], s['episodes_missing']) == ('incomplete', 2, 2)
    assert s['missing_reason'] == 'interrupted (Ctrl-C)'
    assert s['holds_by_reason'] == {'late': 3, 'stale': 3}
    assert s['success_rate'] == 0.5 and s['wilson_95'] == pytest.approx(list(wilson_interval(1, 2)))
    on_disk = json.loads((out / SUMMARY_FILE).read_text())
    assert on_disk['episodes_missing'] == 2 and on_disk['missing_reason'] == 'interrupted (Ctrl-C)'
    # A kill mid-write leaves a torn last line: it is dropped, the episodes before it kept.
    with open(out / EPISODES_FILE, 'a') as f:
        f.write('{"index": 2, "seed": 12, "ta')
    r2 = EvaluationReport.open(out, CONFIG, resume=True)
    assert r2.pending() == [2, 3]
    assert [r2.seed_of(i) for i in r2.pending()] == [12, 13]
    r2.record(_result(2))
    r2.record(_result(3))
    s2 = r2.finish()
    assert (s2['status'], s2['episodes_finished'], s2['successes'], s2['missing_reason']) == ('complete', 4, 3, '')
    assert [e['index'] for e in s2['episodes']] == [0, 1, 2, 3]
    assert len((out / EPISODES_FILE).read_text().splitlines()) == 4
    with pytest.raises(EvaluationError, match='already in the report'):
        r2.record(_result(3))


def test_resume_with_another_configuration_is_refused_naming_the_key(tmp_path):
    out = tmp_path / 'report'
    EvaluationReport.open(out, CONFIG).record(_result(0))
    with pytest.raises(EvaluationError, match="task: 'pick_cube' there, 'press_beep' now"):
        EvaluationReport.open(out, dict(CONFIG, task='press_beep'), resume=True)
    # More episodes than before: the run is extended.
    r = EvaluationReport.open(out, dict(CONFIG, episodes=6), resume=True)
    assert r.pending() == [1, 2, 3, 4, 5]


def test_resume_of_a_directory_without_summary_is_refused(tmp_path):
    out = tmp_path / 'report'
    out.mkdir()
    (out / 'other.txt').write_text('not a report')
    with pytest.raises(EvaluationError, match='summary.json is missing or unreadable'):
        EvaluationReport.open(out, CONFIG, resume=True)


def test_bad_outcome_and_episode_count_are_refused(tmp_path):
    with pytest.raises(EvaluationError, match="outcome 'maybe'"):
        _result(0, 'maybe')
    with pytest.raises(EvaluationError, match='at least 1'):
        EvaluationReport.open(tmp_path / 'r', dict(CONFIG, episodes=0))


def test_report_page_is_self_contained_and_shows_rate_interval_and_episodes(tmp_path):
    from fuse_core.evaluation.html import write_html
    out = tmp_path / 'report'
    r = EvaluationReport.open(out, CONFIG)
    r.record(_result(0, holds={'stale': 2}))
    r.record(_result(1, 'failure', detail='time limit <20 s> reached'))
    r.finish('node world exited with code 1')
    page = write_html(out).read_text()
    lo, hi = wilson_interval(1, 2)
    assert '50.0 %' in page and f'{100 * lo:.1f} %' in page and f'{100 * hi:.1f} %' in page
    assert '2 of 4 episodes missing: node world exited with code 1' in page
    assert 'time limit &lt;20 s&gt; reached' in page and 'stale: 2' in page
    assert page.count('<rect') == 2 and 'http://' not in page.replace('http://www.w3.org/2000/svg', '')


def test_compare_puts_reports_side_by_side_and_refuses_a_non_report(tmp_path):
    from fuse_core.evaluation import compare
    a = EvaluationReport.open(tmp_path / 'a', CONFIG)
    for i in range(4):
        a.record(_result(i))
    a.finish()
    b = EvaluationReport.open(tmp_path / 'b', dict(CONFIG, action_source='bundle:/m'))
    b.record(_result(0, 'failure'))
    b.finish('interrupted')
    summaries = compare.read_summaries([tmp_path / 'a', tmp_path / 'b'])
    table = compare.rows(summaries)
    lo, hi = wilson_interval(4, 4)
    assert table[0][1:] == ['expert', 'pick_cube', '10', '4', '0', '4', '100.0 %',
                            f'{100 * lo:.1f} - {100 * hi:.1f} %', '4.50']
    assert table[1][1] == 'bundle:/m' and table[1][4:8] == ['1', '3', '0', '0.0 %']
    assert 'bundle:/m' in compare.text_table(summaries) and compare.html_page(summaries).count('<tr>') == 3
    (tmp_path / 'c').mkdir()
    with pytest.raises(EvaluationError, match='not an evaluation report'):
        compare.read_summaries([tmp_path / 'a', tmp_path / 'c'])
    with pytest.raises(EvaluationError, match='two or more'):
        compare.read_summaries([tmp_path / 'a'])
