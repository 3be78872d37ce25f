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


def test_timing_percentiles_per_episode_and_pooled_and_the_expert_has_none(tmp_path):
    import numpy as np
    from fuse_core.evaluation.report import EXPERT_TIMING, LATENCY_MEASURE
    cfg = dict(CONFIG, action_source='bundle:/m', episodes=2)
    r = EvaluationReport.open(tmp_path / 'bundle', cfg)
    lat0, lat1 = [float(x) for x in range(1, 101)], [200.0, 400.0]
    r.record(_result(0, latency_samples_ms=lat0, inference_samples_ms=[5.0, 7.0, 9.0]))
    r.record(_result(1, latency_samples_ms=lat1, inference_samples_ms=[]))
    s = r.finish()
    e0 = s['episodes'][0]
    assert 'latency_samples_ms' not in e0 and 'inference_samples_ms' not in e0
    for q in (50, 95, 99):
        assert e0['latency_ms'][f'p{q}'] == pytest.approx(np.percentile(lat0, q), abs=1e-3)
        assert s['latency_ms'][f'p{q}'] == pytest.approx(np.percentile(lat0 + lat1, q), abs=1e-3)
    assert (e0['latency_ms']['count'], e0['latency_ms']['max'], e0['inference_ms']['p50']) == (100, 100.0, 7.0)
    assert s['episodes'][1]['inference_ms'] == {'count': 0, 'p50': None, 'p95': None, 'p99': None,
                                                'mean': None, 'max': None}
    assert s['latency_ms']['count'] == 102 and s['inference_ms']['count'] == 3
    assert s['latency_measure'] == LATENCY_MEASURE
    # The raw samples stay in episodes.jsonl, so a resumed run pools them again.
    again = EvaluationReport.open(tmp_path / 'bundle', dict(cfg, episodes=3), resume=True)
    assert again.summary()['latency_ms']['count'] == 102
    expert = EvaluationReport.open(tmp_path / 'expert', CONFIG)
    expert.record(_result(0))
    s = expert.finish()
    assert s['latency_ms'] is None and s['inference_ms'] is None and s['episodes'][0]['latency_ms'] is None
    assert s['latency_measure'] == s['inference_measure'] == EXPERT_TIMING


def test_trace_keeps_one_pose_per_period_marks_holds_and_round_trips(tmp_path):
    from fuse_core.evaluation.trace import EpisodeTrace
    t0 = 10_000_000_000
    ee = [[t0 + k * 10_000_000, 0.1 + 0.001 * k, 0.0, 0.2] for k in range(101)]          # 100 Hz for 1 s
    cmds = [[t0 + 200_000_000, 0.01, 0.0, -0.01, 0.0, 0.0, 0.02, 1.0], [t0 + 400_000_000] + [None] * 7]
    tr = EpisodeTrace.from_stamps(ee, cmds)
    assert len(tr.ee) == 21 and tr.ee[0] == [0.0, 0.1, 0.0, 0.2] and tr.ee[-1][0] == pytest.approx(1.0)
    assert tr.times() == [0.2, 0.4] and tr.action_series()['dyaw'] == [0.02, None]
    tr.write(tmp_path)
    back = EpisodeTrace.read(tmp_path)
    assert (back.ee, back.actions) == (tr.ee, tr.actions)
    assert EpisodeTrace.read(tmp_path / 'nothing') is None
    (tmp_path / 'trace.json').write_text('{"ee": [[0, 1]], "actions": []}')
    with pytest.raises(EvaluationError, match='rows of the wrong length'):
        EpisodeTrace.read(tmp_path)


def _points(polyline: str):
    import re
    pts = re.search(r'points="([^"]*)"', polyline).group(1).split()
    return [tuple(float(v) for v in p.split(',')) for p in pts]


def test_line_svg_breaks_at_missing_values_and_keeps_equal_scale():
    import re
    from fuse_core.evaluation.html import line_svg
    page = line_svg({'a': [0.0, 1.0, None, 2.0, 3.0, float('nan'), 1.0]}, 'gap')
    lines = re.findall(r'<polyline[^>]*>', page)
    assert len(lines) == 2 and page.count('<circle') == 1          # the last point stands alone
    # A top view: x spans 2 m, y 1 m; the same pixels per metre on both axes.
    page = line_svg({'path': ([0.0, 2.0, 2.0], [0.0, 0.0, 1.0])}, 'top', width=400, height=400, equal_scale=True)
    (x0, y0), (x1, _), (_, y2) = _points(re.findall(r'<polyline[^>]*>', page)[0])
    assert (x1 - x0) == pytest.approx(2 * (y0 - y2), rel=1e-3)
    assert 'no data' in line_svg({'a': [1.0]}, 'one point')


def test_report_page_plots_paths_and_actions_and_links_bag_and_video(tmp_path):
    import re
    from fuse_core.evaluation.html import write_html
    from fuse_core.evaluation.trace import EpisodeTrace
    from fuse_core.evaluation.video import VIDEO_ERROR_FILE, VIDEO_FILE
    out = tmp_path / 'report'
    r = EvaluationReport.open(out, dict(CONFIG, action_source='bundle:/m', episodes=3))
    t0 = 10**9
    for i, outcome in enumerate(('success', 'failure')):
        d = r.episode_dir(i)
        EpisodeTrace.from_stamps([[t0 + k * 10**8, 0.2 + 0.01 * k, 0.01 * i * k, 0.1] for k in range(10)],
                                 [[t0 + k * 2 * 10**8, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] if k != 2
                                  else [t0 + k * 2 * 10**8] + [None] * 7 for k in range(5)]).write(d)
        (d / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
        r.record(_result(i, outcome, episode_id=f'episode_{i:04d}', bag=True,
                         latency_samples_ms=[10.0, 12.0, 30.0], inference_samples_ms=[4.0, 6.0]))
    (r.episode_dir(0) / VIDEO_FILE).write_bytes(b'not really a video')
    (r.episode_dir(1) / VIDEO_ERROR_FILE).write_text('OpenCV cannot write VP8\n')
    r.finish('interrupted')
    page = write_html(out).read_text()
    # Links relative to the report directory: the page works wherever the directory is copied.
    assert '<video src="episodes/episode_0000/video.webm"' in page and '<a href="episodes/episode_0000/">bag' in page
    assert '<a href="episodes/episode_0001/">bag' in page and 'no video: OpenCV cannot write VP8' in page
    assert 'file://' not in page and str(tmp_path) not in page
    svgs = re.findall(r'<svg.*?</svg>', page, re.S)
    top = next(s for s in svgs if 'top view' in s)
    assert top.count('<polyline') == 2 and 'stroke="#3a3"' in top and 'stroke="#c33"' in top
    action_plots = [s for s in svgs if re.search(r'aria-label="(dx|dy|dz|droll|dpitch|dyaw|gripper) \(', s)]
    assert len(action_plots) == 2 * 7
    # The hold in the middle of the commands breaks each line in two.
    assert all(s.count('<polyline') == 2 for s in action_plots)
    assert '10.0 / 29.6' not in page and '12.0 / 29.6' in page      # latency p50 / p99 per episode
    assert 'window → command' in page and 'DDS source timestamps' in page


def test_hold_reasons_of_one_kind_count_together():
    from fuse_core.evaluation.report import reason_kind
    a = reason_kind('late: window 10 arrived 280 ms after its tick (limit 200 ms)')
    assert a == reason_kind('late: window 11 arrived 335 ms after its tick (limit 200 ms)')
    assert a == 'late: window # arrived # ms after its tick (limit # ms)'
    assert reason_kind('stale: camera_wrist silent for 0.52 s') == 'stale: camera_wrist silent for # s'
    assert reason_kind('watchdog_s 0.5') == 'watchdog_s #' and reason_kind('') == ''
