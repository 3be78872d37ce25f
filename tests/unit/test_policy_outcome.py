"""PolicyOutcome: the names on the wire, which outcomes hold the arm, and their severity."""

from __future__ import annotations

import json

from fuse_core.bundle.outcome import PolicyOutcome, Severity


def test_values_are_the_published_names():
    assert [o.value for o in PolicyOutcome] == ['command', 'no_instruction', 'late', 'stale', 'overrun',
                                                'uncovered', 'mismatch', 'rejected', 'error']
    assert PolicyOutcome('stale') is PolicyOutcome.STALE and PolicyOutcome.STALE == 'stale'
    # Hold reasons are formatted '<outcome>: <message>'; report keys stay plain strings.
    assert f'{PolicyOutcome.LATE}: window 3' == 'late: window 3'
    assert json.dumps({PolicyOutcome.STALE: 1}) == '{"stale": 1}'


def test_every_outcome_but_command_and_no_instruction_holds_the_arm():
    holding = {o.value for o in PolicyOutcome if o.must_hold}
    assert holding == {'stale', 'late', 'overrun', 'mismatch', 'rejected', 'error', 'uncovered'}


def test_severity_separates_degraded_operation_from_faults():
    by = {s: {o.value for o in PolicyOutcome if o.severity is s} for s in Severity}
    assert by[Severity.OK] == {'command'}
    assert by[Severity.WARN] == {'no_instruction', 'late', 'stale', 'overrun', 'uncovered'}
    assert by[Severity.ERROR] == {'mismatch', 'rejected', 'error'}
    assert (int(Severity.OK), int(Severity.WARN), int(Severity.ERROR)) == (0, 1, 2)  # DiagnosticStatus


def test_only_command_and_uncovered_keep_the_planned_chunks():
    assert {o.value for o in PolicyOutcome if o.keeps_chunks} == {'command', 'uncovered'}
