"""The report directory of one evaluation: per-episode results, Wilson interval, summary.json.

Layout of DIR:
  episodes.jsonl   one line per finished episode, appended and flushed as each one ends (a
                   killed run keeps every episode that finished before it);
  summary.json     the configuration, the counts, the success rate with its 95 % Wilson
                   interval, how many episodes are missing and why; rewritten atomically after
                   every episode and when the run stops;
  report.html      the same, as a page (fuse_core.evaluation.html);
  episodes/<id>/   per episode (id episode_NNNN, N the index): the recorder's bag (metadata.yaml,
                   the .mcap, episode.json), trace.json (end-effector path and commands,
                   fuse_core.evaluation.trace) and video.webm (fuse_core.evaluation.video).

A directory that exists is refused unless the run resumes it (same configuration; episodes
already in episodes.jsonl are skipped) or overwrites it. Episode i of a run with base seed S
uses seed S + i, so a resumed run plays exactly the episodes that are missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from fuse_core.errors import EvaluationError
from fuse_core.timing import percentiles

EPISODES_FILE = 'episodes.jsonl'
SUMMARY_FILE = 'summary.json'
EPISODES_DIR = 'episodes'
SCHEMA_VERSION = 1
#: Two-sided 95 % standard normal quantile.
Z95 = 1.959963984540054
OUTCOMES = ('success', 'failure')
#: Configuration keys that may differ between a run and the one it resumes.
RESUMABLE = ('episodes',)
#: What the timing figures measure (written into summary.json beside them).
LATENCY_MEASURE = ('window -> command: from the sync node publishing a window to the policy node publishing '
                   'the command for it (the DDS source timestamps of both, wall clock, matched by the tick '
                   'stamp): decode, inference and publish, plus the window\'s transport; holds included')
INFERENCE_MEASURE = 'model time per action chunk as the policy node reports it (/policy/action_chunk inference_ms)'
EXPERT_TIMING = ('not measured: the scripted expert commands from its own 5 Hz timer, not from windows, '
                 'and runs no model')
#: Sample lists kept in episodes.jsonl; summary.json has their percentiles instead.
_SAMPLES = {'latency_samples_ms': 'latency_ms', 'inference_samples_ms': 'inference_ms'}


def wilson_interval(successes: int, n: int, z: float = Z95) -> Tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there is no trial."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f'wilson_interval: need 0 <= successes <= n, got {successes} of {n}')
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


_NUMBER = re.compile(r'(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?')


def reason_kind(reason: str) -> str:
    """A hold reason with its numbers masked ('late: window # arrived # ms after its tick'), so
    that holds of one kind count together."""
    return _NUMBER.sub('#', reason)


def sample_stats(samples: Optional[Sequence[float]]) -> Optional[Dict[str, Any]]:
    """p50 / p95 / p99 / mean / max / count of a sample list; None when nothing was measured."""
    if samples is None:
        return None
    if len(samples) == 0:
        return {'count': 0, 'p50': None, 'p95': None, 'p99': None, 'mean': None, 'max': None}
    p = percentiles(samples, (50, 95, 99))
    return {'count': len(samples), **{k: round(v, 3) for k, v in p.items()},
            'mean': round(float(sum(samples)) / len(samples), 3), 'max': round(float(max(samples)), 3)}


def episode_name(index: int) -> str:
    """The name of episode `index`'s directory under OUT/episodes (bag, trace, video)."""
    return f'episode_{int(index):04d}'


def episode_seed(base_seed: int, index: int) -> int:
    """The world seed of episode `index` (0-based) of a run with base seed `base_seed`."""
    return int(base_seed) + int(index)


#: Who decides an episode's outcome: the twin's task, or the operator's key on the robot.
OUTCOME_SOURCES = ('task', 'operator')


@dataclass
class EpisodeResult:
    """How one evaluated episode ended."""

    index: int                       # 0-based position in the run
    seed: int
    task: str
    outcome: str                     # success | failure
    outcome_source: str = 'task'     # task | operator (OUTCOME_SOURCES; fuse_core.evaluation.trials)
    operator: str = ''               # robot: who marked it
    retries: List[Dict[str, Any]] = field(default_factory=list)  # robot: earlier tries, discarded or aborted
    detail: str = ''                 # the task's reason (e.g. "cube_1 lifted", "time limit 20 s reached")
    duration_s: float = 0.0          # episode time at the outcome (sim time in the twin)
    wall_s: float = 0.0              # wall-clock time the episode took, reset included
    commands: int = 0                # motion commands the commander sent
    holds: Dict[str, int] = field(default_factory=dict)   # hold commands by reason
    instruction: str = ''
    finished_utc: str = ''
    episode_id: str = ''             # its directory under episodes/ ('' in reports made before there was one)
    bag: bool = False                # the episode's bag was recorded (episodes/<episode_id>/)
    # Window -> command per tick and model time per chunk (LATENCY_MEASURE, INFERENCE_MEASURE), ms;
    # None: not measured (the expert has no windows nor model).
    latency_samples_ms: Optional[List[float]] = None
    inference_samples_ms: Optional[List[float]] = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise EvaluationError(f'episode {self.index}: outcome {self.outcome!r} is not one of {list(OUTCOMES)}')
        if self.outcome_source not in OUTCOME_SOURCES:
            raise EvaluationError(f'episode {self.index}: outcome_source {self.outcome_source!r} is not one of '
                                  f'{list(OUTCOME_SOURCES)}')

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def summary_dict(self) -> Dict[str, Any]:
        """As in summary.json: the sample lists replaced by their percentiles."""
        out = self.to_dict()
        for samples, stats in _SAMPLES.items():
            out[stats] = sample_stats(out.pop(samples))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'EpisodeResult':
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class EvaluationReport:
    """One run's report directory. Use `EvaluationReport.open(...)`."""

    def __init__(self, directory: Path, config: Dict[str, Any], results: List[EpisodeResult]) -> None:
        self.directory = directory
        self.config = config
        self.results: Dict[int, EpisodeResult] = {r.index: r for r in results}
        self.status = 'running'
        self.missing_reason = ''
        self.started_utc = _utc()

    @property
    def planned(self) -> int:
        return int(self.config['episodes'])

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, directory, config: Mapping[str, Any], resume: bool = False,
             overwrite: bool = False) -> 'EvaluationReport':
        """Create DIR, or resume/overwrite it; anything else with an existing DIR is refused."""
        directory = Path(directory)
        config = dict(config)
        if int(config.get('episodes', 0)) < 1:
            raise EvaluationError(f'episodes must be at least 1, got {config.get("episodes")!r}')
        if resume and overwrite:
            raise EvaluationError('--resume and --overwrite exclude each other')
        exists = directory.exists() and (not directory.is_dir() or any(directory.iterdir()))
        if exists and not (resume or overwrite):
            raise EvaluationError(f'report directory {directory} exists: pass --resume to continue it '
                                  f'or --overwrite to replace it')
        if exists and not directory.is_dir():
            raise EvaluationError(f'report directory {directory} exists and is not a directory')
        if exists and overwrite:
            shutil.rmtree(directory)
        results: List[EpisodeResult] = []
        if exists and resume:
            results = cls._read_previous(directory, config)
        directory.mkdir(parents=True, exist_ok=True)
        report = cls(directory, config, results)
        report.write_summary()
        return report

    @staticmethod
    def _read_previous(directory: Path, config: Mapping[str, Any]) -> List[EpisodeResult]:
        summary_path = directory / SUMMARY_FILE
        try:
            previous = json.loads(summary_path.read_text())
            old = previous['config']
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(f'cannot resume {directory}: {summary_path.name} is missing or unreadable '
                                  f'({exc}); pass --overwrite to replace the directory') from exc
        differ = sorted(k for k in set(old) | set(config)
                        if k not in RESUMABLE and old.get(k) != config.get(k))
        if differ:
            details = ', '.join(f'{k}: {old.get(k)!r} there, {config.get(k)!r} now' for k in differ)
            raise EvaluationError(f'cannot resume {directory}: it was made with another configuration '
                                  f'({details}); pass --overwrite to replace it')
        results: List[EpisodeResult] = []
        path = directory / EPISODES_FILE
        if path.exists():
            lines = path.read_text().splitlines()
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    results.append(EpisodeResult.from_dict(json.loads(line)))
                except (ValueError, TypeError) as exc:
                    # A line cut short by a kill: everything before it is kept, the rest replays.
                    if n == len(lines):
                        break
                    raise EvaluationError(f'cannot resume {directory}: {EPISODES_FILE} line {n} is '
                                          f'unreadable ({exc})') from exc
        # Rewrite the file from what was read (drops a torn last line).
        _atomic_write(path, ''.join(json.dumps(r.to_dict()) + '\n' for r in results))
        return results

    # --- running ----------------------------------------------------------------------------
    def pending(self) -> List[int]:
        """Episode indices still to play, in order."""
        return [i for i in range(self.planned) if i not in self.results]

    def seed_of(self, index: int) -> int:
        return episode_seed(int(self.config.get('seed', 0)), index)

    def episode_dir(self, index: int) -> Path:
        """episodes/episode_NNNN: the episode's bag, trace and video."""
        return self.directory / EPISODES_DIR / episode_name(index)

    def record(self, result: EpisodeResult) -> None:
        if result.index in self.results:
            raise EvaluationError(f'episode {result.index} is already in the report')
        if not result.finished_utc:
            result.finished_utc = _utc()
        with open(self.directory / EPISODES_FILE, 'a') as f:
            f.write(json.dumps(result.to_dict()) + '\n')
            f.flush()
            os.fsync(f.fileno())
        self.results[result.index] = result
        self.write_summary()

    def finish(self, reason: str = '') -> Dict[str, Any]:
        """Close the run: complete if every planned episode finished, else incomplete with `reason`."""
        missing = len(self.pending())
        self.status = 'complete' if missing == 0 else 'incomplete'
        self.missing_reason = '' if missing == 0 else (reason or 'the run stopped early')
        return self.write_summary()

    # --- summary ----------------------------------------------------------------------------
    def summary(self) -> Dict[str, Any]:
        done = [self.results[i] for i in sorted(self.results)]
        n = len(done)
        k = sum(1 for r in done if r.outcome == 'success')
        lo, hi = wilson_interval(k, n)
        holds: Dict[str, int] = {}
        for r in done:
            for reason, count in r.holds.items():
                holds[reason] = holds.get(reason, 0) + int(count)
        durations = [r.duration_s for r in done]
        pooled = {}
        for samples, stats in _SAMPLES.items():
            lists = [getattr(r, samples) for r in done if getattr(r, samples) is not None]
            pooled[stats] = sample_stats([x for xs in lists for x in xs]) if lists else None
        unmeasured = EXPERT_TIMING if self.config.get('action_source') == 'expert' else 'not measured'
        return {
            'schema_version': SCHEMA_VERSION,
            'config': self.config,
            'status': self.status,
            'started_utc': self.started_utc,
            'updated_utc': _utc(),
            'episodes_planned': self.planned,
            'episodes_finished': n,
            'episodes_missing': self.planned - n,
            'missing_reason': self.missing_reason,
            'successes': k,
            'failures': n - k,
            'success_rate': k / n if n else None,
            'wilson_95': [lo, hi],
            'mean_duration_s': sum(durations) / n if n else None,
            'holds_by_reason': dict(sorted(holds.items())),
            'latency_ms': pooled['latency_ms'],
            'latency_measure': LATENCY_MEASURE if pooled['latency_ms'] is not None else unmeasured,
            'inference_ms': pooled['inference_ms'],
            'inference_measure': INFERENCE_MEASURE if pooled['inference_ms'] is not None else unmeasured,
            'episodes': [r.summary_dict() for r in done],
        }

    def write_summary(self) -> Dict[str, Any]:
        data = self.summary()
        _atomic_write(self.directory / SUMMARY_FILE, json.dumps(data, indent=2) + '\n')
        return data


def _utc() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
