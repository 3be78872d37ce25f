"""What one policy tick came to: the outcome names, whether the arm must hold, and how bad it is."""

from __future__ import annotations

import enum

from fuse_core.severity import Severity

__all__ = ['PolicyOutcome', 'Severity']


class PolicyOutcome(enum.StrEnum):
    """One tick's outcome. The value is the name published in hold reasons and reports.

    ``must_hold``: the tick commands no motion and the arm is told to hold at once (instead of
    leaving it to the arm's watchdog). ``severity``: WARN for degraded operation (late, stale,
    nothing covers the tick), ERROR for a fault (bad window, bad chunk, failed inference).
    ``keeps_chunks``: in asynchronous execution the chunks planned so far stay valid; any
    other outcome means the window was not trusted, so no old chunk may resume.
    """

    must_hold: bool
    severity: Severity
    keeps_chunks: bool

    def __new__(cls, value: str, must_hold: bool, severity: Severity, keeps_chunks: bool = False):
        member = str.__new__(cls, value)
        member._value_ = value
        member.must_hold = must_hold
        member.severity = severity
        member.keeps_chunks = keeps_chunks
        return member

    COMMAND = 'command', False, Severity.OK, True
    # No instruction yet: the operator's to fix, not a fault; the arm's watchdog holds.
    NO_INSTRUCTION = 'no_instruction', False, Severity.WARN
    LATE = 'late', True, Severity.WARN
    STALE = 'stale', True, Severity.WARN
    OVERRUN = 'overrun', True, Severity.WARN
    UNCOVERED = 'uncovered', True, Severity.WARN, True
    MISMATCH = 'mismatch', True, Severity.ERROR
    REJECTED = 'rejected', True, Severity.ERROR
    ERROR = 'error', True, Severity.ERROR
