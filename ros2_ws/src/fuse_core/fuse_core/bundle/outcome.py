"""What one policy tick came to: the outcome names, whether the arm must hold, how bad it is, what to log."""

from __future__ import annotations

import enum
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from fuse_core.severity import Severity

__all__ = ['OutcomeLog', 'PolicyOutcome', 'Severity']


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


class OutcomeLog:
    """Which tick outcomes the policy logs, at which level: every change of outcome, and a
    repeated hold at most once per `throttle_s` per level (each one is counted anyway).

    Thread-safe; :attr:`last` is the last outcome (None before the first tick), for diagnostics.
    """

    def __init__(self, throttle_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.throttle_s = float(throttle_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Optional[PolicyOutcome] = None
        self._repeated: Dict[str, float] = {}

    @property
    def last(self) -> Optional[PolicyOutcome]:
        with self._lock:
            return self._last

    def line(self, outcome: PolicyOutcome, message: str, tick: int) -> Optional[Tuple[str, str]]:
        """(level 'info' | 'warn' | 'error', text) to log for this tick, or None."""
        with self._lock:
            changed = outcome is not self._last
            self._last = outcome
            if not outcome.must_hold:
                # The policy doing its job (or waiting for an instruction): logged when it changes.
                if not changed:
                    return None
                return ('info', f'tick {tick}: publishing commands') if outcome.severity is Severity.OK \
                    else ('warn', message)
            level = 'warn' if outcome.severity is Severity.WARN else 'error'
            if not changed:
                now = self._clock()
                last = self._repeated.get(level)
                if last is not None and now - last < self.throttle_s:
                    return None
                self._repeated[level] = now
            return level, message
