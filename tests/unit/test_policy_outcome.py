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


def test_outcome_log_logs_each_change_and_a_repeated_hold_once_per_second():
    from fuse_core.bundle.outcome import OutcomeLog
    t = [0.0]
    log = OutcomeLog(clock=lambda: t[0])
    P = PolicyOutcome
    assert log.last is None
    assert log.line(P.COMMAND, '', 5) == ('info', 'tick 5: publishing commands')
    assert log.line(P.COMMAND, '', 6) is None
    assert log.line(P.STALE, 'stale: cam', 7) == ('warn', 'stale: cam')      # a change: always
    assert log.line(P.STALE, 'stale: cam', 8) == ('warn', 'stale: cam')      # first repeat
    t[0] = 0.5
    assert log.line(P.STALE, 'stale: cam', 9) is None                          # within the second
    assert log.line(P.ERROR, 'inference failed', 10) == ('error', 'inference failed')
    t[0] = 1.2
    assert log.line(P.LATE, 'late: 300 ms', 11) == ('warn', 'late: 300 ms')
    assert log.line(P.LATE, 'late: 310 ms', 12) == ('warn', 'late: 310 ms')
    assert log.line(P.NO_INSTRUCTION, 'no instruction set', 13) == ('warn', 'no instruction set')
    assert log.line(P.NO_INSTRUCTION, 'no instruction set', 14) is None
    assert log.last is P.NO_INSTRUCTION
