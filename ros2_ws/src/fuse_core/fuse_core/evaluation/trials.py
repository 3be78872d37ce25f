"""Operator-marked trials on the robot: the episode manager's states in, counted trials and retries out.

The episode manager (fuse_nodes.episodes_node) publishes its state on every change. One try of
a trial is one of its recordings (an episode id), which the operator ends with a key:
success or failure counts (the trial becomes an EpisodeResult with outcome_source 'operator',
and the next trial index is due); discard, or an abort, does not count: the same index is
played again and the try is kept in that trial's `retries`. A recording that began before the
evaluation saw it start (it attached mid-try) is not counted either. Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from fuse_core.evaluation.report import EpisodeResult, EvaluationReport, wilson_interval

RECORDING = 'recording'
COUNTED = ('success', 'failure')
#: Outcomes of a try that is played again (the manager's 'discard' key, its abort).
RETRIED = ('discard', 'aborted')
#: The manager's seed on the robot (no world seed there).
NO_SEED = -1


@dataclass(frozen=True)
class ManagerState:
    """The fields of fuse_interfaces/EpisodeState that the bookkeeping reads."""

    state: str
    episode_id: str = ''
    last_episode_id: str = ''
    last_outcome: str = ''
    task: str = ''
    instruction: str = ''


@dataclass
class TrialEvent:
    """Something the runner shows or records: a try started, a trial counted, a try to play again."""

    kind: str                        # started | counted | retry | ignored
    index: int                       # the trial (0-based)
    episode_id: str
    text: str                        # one line for the operator
    result: Optional[EpisodeResult] = None   # counted: what goes into the report


@dataclass
class _Try:
    episode_id: str
    started: float


@dataclass
class OperatorTrials:
    """The trials still to play (`pending`, in order) and the try in progress."""

    pending: List[int]
    planned: int
    task: str
    instruction: str = ''
    operator: str = ''
    # The operator's note sent with an episode's end, by episode id ('' if none).
    note_of: Callable[[str], str] = lambda _episode_id: ''
    now: float = 0.0                 # when the first pending trial became due
    retries: List[Dict[str, Any]] = field(default_factory=list)   # earlier tries of the current trial
    current_try: Optional[_Try] = None
    _ignored: str = ''               # a recording that began before we saw it start
    _seen: bool = False

    def __post_init__(self) -> None:
        self.pending = list(self.pending)
        self._due_since = self.now

    @property
    def index(self) -> Optional[int]:
        """The trial being played or due next; None when every trial is done."""
        return self.pending[0] if self.pending else None

    @property
    def done(self) -> bool:
        return not self.pending

    def label(self, index: Optional[int] = None) -> str:
        index = self.index if index is None else index
        return f'trial {index + 1}/{self.planned}'

    def update(self, st: ManagerState, now: float) -> List[TrialEvent]:
        """Feed one state (in the order they came); returns what happened."""
        events: List[TrialEvent] = []
        first, self._seen = not self._seen, True
        t = self.current_try
        if t is not None and (st.state != RECORDING or st.episode_id != t.episode_id):
            events.append(self._end(t, st, now))
        if st.state == RECORDING and self._ignored and st.episode_id != self._ignored:
            self._ignored = ''
        if st.state == RECORDING and self.current_try is None and st.episode_id != self._ignored and not self.done:
            if first:
                self._ignored = st.episode_id
                events.append(TrialEvent('ignored', self.index, st.episode_id,
                                         f'{st.episode_id} was already recording when the evaluation began: it is '
                                         'not counted; end it ([3] discard), then [r] reset and [enter] start'))
            else:
                self.current_try = _Try(st.episode_id, now)
                events.append(TrialEvent('started', self.index, st.episode_id,
                                         f'{self.label()} running ({st.episode_id}): [1] success  [2] failure  '
                                         '[3] discard  [x] abort'))
        return events

    def _end(self, t: _Try, st: ManagerState, now: float) -> TrialEvent:
        self.current_try = None
        index = self.index
        outcome = st.last_outcome if st.last_episode_id == t.episode_id else ''
        note = self.note_of(t.episode_id) or ''
        duration = round(now - t.started, 3)
        if outcome not in COUNTED:
            outcome = outcome if outcome in RETRIED else 'aborted'
            self.retries.append({'episode_id': t.episode_id, 'outcome': outcome, 'note': note,
                                 'duration_s': duration})
            return TrialEvent('retry', index, t.episode_id,
                              f'{self.label(index)}: {outcome}' + (f' ({note})' if note else '') +
                              ', not counted: play it again ([r] reset, [enter] start)')
        retries, self.retries = self.retries, []
        detail = f'marked {outcome}' + (f' by {self.operator}' if self.operator else '')
        if note:
            detail += f': {note}'
        if retries:
            detail += f' (after {retry_text(retries)})'
        result = EpisodeResult(index=index, seed=NO_SEED, task=st.task or self.task, outcome=outcome,
                               outcome_source='operator', operator=self.operator, episode_id=t.episode_id,
                               retries=retries, detail=detail, duration_s=duration,
                               wall_s=round(now - self._due_since, 3),
                               instruction=st.instruction or self.instruction)
        self.pending.pop(0)
        self._due_since = now
        return TrialEvent('counted', index, t.episode_id, '', result)


def retry_text(retries: Sequence[Dict[str, Any]]) -> str:
    """'1 discard, 2 aborted' for a trial's retries."""
    counts: Dict[str, int] = {}
    for r in retries:
        counts[r['outcome']] = counts.get(r['outcome'], 0) + 1
    return ', '.join(f'{n} {outcome}' for outcome, n in sorted(counts.items()))


def running_rate(report: EvaluationReport) -> str:
    """'3/4 success, 75 % [30 %, 95 %]': the counted trials so far and their 95 % Wilson interval."""
    done = list(report.results.values())
    k = sum(1 for e in done if e.outcome == 'success')
    if not done:
        return '0 counted'
    lo, hi = wilson_interval(k, len(done))
    return f'{k}/{len(done)} success, {100 * k / len(done):.0f} % [{100 * lo:.0f} %, {100 * hi:.0f} %]'
