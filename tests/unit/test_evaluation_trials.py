"""Operator-marked trials (fuse_core.evaluation.trials): the episode manager's states -> counted
trials, discards and aborts retried with the same index, a try begun before the evaluation ignored."""

from __future__ import annotations

import pytest

from fuse_core.evaluation import EvaluationReport, wilson_interval
from fuse_core.evaluation.trials import ManagerState, OperatorTrials, retry_text, running_rate


def rec(eid, last='', outcome=''):
    return ManagerState('recording', episode_id=eid, last_episode_id=last, last_outcome=outcome, task='cup')


def idle(last, outcome):
    return ManagerState('idle', last_episode_id=last, last_outcome=outcome, task='cup')


def feed(trials, states, t0=0.0, step=1.0):
    events = []
    for i, st in enumerate(states):
        events += trials.update(st, t0 + i * step)
    return events


def test_success_counts_a_discard_and_an_abort_retry_the_same_index():
    notes = {'e2': 'cup fell over', 'e4': 'grasped the rim'}
    t = OperatorTrials([0, 1], 2, 'pick up the cup', 'pick up the red cup', 'ada', note_of=notes.get, now=0.0)
    assert t.index == 0 and t.label() == 'trial 1/2'
    states = [ManagerState('idle'), ManagerState('resetting'), ManagerState('ready'),
              rec('e1'), rec('e1'), idle('e1', 'success'),                           # t = 3 .. 5
              ManagerState('resetting'), ManagerState('ready'), rec('e2', 'e1', 'success'),
              idle('e2', 'discard'),                                                  # not counted
              rec('e3', 'e2', 'discard'), idle('e3', 'aborted'),                      # not counted either
              rec('e4', 'e3', 'aborted'), rec('e4', 'e3', 'aborted'), idle('e4', 'failure')]
    events = feed(t, states)
    kinds = [(e.kind, e.index, e.episode_id) for e in events]
    assert kinds == [('started', 0, 'e1'), ('counted', 0, 'e1'), ('started', 1, 'e2'), ('retry', 1, 'e2'),
                     ('started', 1, 'e3'), ('retry', 1, 'e3'), ('started', 1, 'e4'), ('counted', 1, 'e4')]
    first, second = [e.result for e in events if e.kind == 'counted']
    assert (first.index, first.outcome, first.outcome_source, first.operator, first.episode_id) == \
        (0, 'success', 'operator', 'ada', 'e1')
    assert first.duration_s == 2.0 and first.wall_s == 5.0 and first.retries == []
    assert first.seed == -1 and first.task == 'cup' and first.instruction == 'pick up the red cup'
    assert first.detail == 'marked success by ada'
    assert (second.index, second.outcome, second.episode_id) == (1, 'failure', 'e4')
    assert [(r['episode_id'], r['outcome'], r['note']) for r in second.retries] == \
        [('e2', 'discard', 'cup fell over'), ('e3', 'aborted', '')]
    assert second.duration_s == 2.0 and second.wall_s == 9.0      # from trial 1's end (t 5) to t 14
    assert second.detail == 'marked failure by ada: grasped the rim (after 1 aborted, 1 discard)'
    assert 'discard (cup fell over), not counted: play it again' in events[3].text
    assert t.done and t.index is None
    # Nothing more happens once every trial is counted.
    assert feed(t, [rec('e5'), idle('e5', 'success')], 20.0) == []


def test_a_try_already_recording_when_the_evaluation_attaches_is_not_counted():
    t = OperatorTrials([3], 5, 'cup')
    events = feed(t, [rec('old'), rec('old'), idle('old', 'success'), rec('new', 'old', 'success'),
                      idle('new', 'success')])
    assert [(e.kind, e.episode_id) for e in events] == [('ignored', 'old'), ('started', 'new'), ('counted', 'new')]
    assert 'already recording when the evaluation began' in events[0].text
    assert events[-1].result.index == 3 and t.done


def test_an_end_the_evaluation_did_not_see_is_an_abort():
    # The manager went from recording e1 straight to recording e2 (states in between lost).
    t = OperatorTrials([0, 1], 2, 'cup')
    events = feed(t, [ManagerState('ready'), rec('e1'), rec('e2', 'e1', 'success'), idle('e2', 'failure')])
    assert [(e.kind, e.episode_id) for e in events] == [('started', 'e1'), ('counted', 'e1'), ('started', 'e2'),
                                                         ('counted', 'e2')]
    # e1's outcome was on the state that already showed e2: counted as what it was.
    assert [e.result.outcome for e in events if e.kind == 'counted'] == ['success', 'failure']
    t = OperatorTrials([0], 1, 'cup')
    events = feed(t, [ManagerState('ready'), rec('e1'), idle('zz', 'success')])
    assert events[-1].kind == 'retry' and t.retries[0]['outcome'] == 'aborted' and t.index == 0


def test_counted_trials_go_into_the_report_with_the_interval(tmp_path):
    config = {'world': 'robot', 'task': 'cup', 'episodes': 3, 'outcome_source': 'operator'}
    report = EvaluationReport.open(tmp_path / 'r', config)
    assert running_rate(report) == '0 counted'
    t = OperatorTrials(report.pending(), report.planned, 'cup', operator='ada')
    states = [ManagerState('ready'), rec('a'), idle('a', 'success'), rec('b', 'a', 'success'), idle('b', 'discard'),
              rec('c', 'b', 'discard'), idle('c', 'success'), rec('d', 'c', 'success'), idle('d', 'failure')]
    for e in feed(t, states):
        if e.kind == 'counted':
            report.record(e.result)
    s = report.finish()
    assert (s['status'], s['episodes_finished'], s['successes'], s['failures']) == ('complete', 3, 2, 1)
    assert s['wilson_95'] == pytest.approx(list(wilson_interval(2, 3)))
    assert [e['outcome_source'] for e in s['episodes']] == ['operator'] * 3
    assert [len(e['retries']) for e in s['episodes']] == [0, 1, 0]
    assert running_rate(report) == '2/3 success, 67 % [21 %, 94 %]'
    # The trials survive a reload (resume reads them back, retries included).
    again = EvaluationReport.open(tmp_path / 'r', config, resume=True)
    assert again.pending() == [] and again.results[1].retries[0]['episode_id'] == 'b'
    assert again.results[1].operator == 'ada'


def test_retry_text_and_a_bad_outcome_source():
    assert retry_text([{'outcome': 'discard'}, {'outcome': 'aborted'}, {'outcome': 'discard'}]) == \
        '1 aborted, 2 discard'
    from fuse_core.errors import EvaluationError
    from fuse_core.evaluation import EpisodeResult
    with pytest.raises(EvaluationError, match="outcome_source 'keys' is not one of"):
        EpisodeResult(index=0, seed=-1, task='cup', outcome='success', outcome_source='keys')


def test_attaching_to_a_graph_that_runs_another_bundle_is_refused():
    from fuse_bringup.evaluate_robot import _check_attached
    from fuse_core.bundle import resolve_bundle_path
    from fuse_core.errors import EvaluationError
    ref = str(resolve_bundle_path('models/reference'))
    _check_attached(f'bundle:{ref}', ref)
    _check_attached('bundle:models/reference', ref)         # the launch's relative path, resolved
    with pytest.raises(EvaluationError, match="runs 'keyboard', not bundle:"):
        _check_attached('keyboard', ref)
    with pytest.raises(EvaluationError, match='launch it with bundle:='):
        _check_attached('bundle:/no/such/bundle', ref)
