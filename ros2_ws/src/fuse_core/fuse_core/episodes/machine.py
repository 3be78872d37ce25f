"""The episode state machine (pure; the clock is passed in): reset, instruction, record, outcome.

    idle --reset--> resetting --reset_done(ok)--> ready --start--> recording --end(outcome)--> idle
                         \\--reset_done(failed)--> idle        \\--abort(reason)--> idle
    (ready --reset--> resetting again; idle/ready --set_instruction; recording --mark(event))

Every step asked for in a state that does not allow it raises EpisodeError naming the state and
what is allowed, so the node's services answer with the reason instead of guessing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from fuse_core.episodes.metadata import COMPLETE, INTERRUPTED, EpisodeMetadata
from fuse_core.episodes.modalities import ModalityTable, check_modalities
from fuse_core.errors import EpisodeError

IDLE, RESETTING, READY, RECORDING = 'idle', 'resetting', 'ready', 'recording'
STATES = (IDLE, RESETTING, READY, RECORDING)
SUCCESS, FAILURE, DISCARD, ABORTED = 'success', 'failure', 'discard', 'aborted'
OUTCOMES = (SUCCESS, FAILURE, DISCARD)
MAX_INSTRUCTION_CHARS = 256
MAX_NOTE_CHARS = 1024


@dataclass
class EpisodeContext:
    """What every episode of a session shares (set once by the node from its parameters)."""

    operator: str = ''
    action_source: str = ''
    world: str = 'robot'
    robot: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeMachine:
    """Which step of an episode we are in, and the episode being made."""

    context: EpisodeContext = field(default_factory=EpisodeContext)
    id_prefix: str = 'episode'
    clock_ns: Callable[[], int] = time.time_ns
    state: str = IDLE
    task: str = ''
    seed: Optional[int] = None
    instruction: str = ''
    modalities: Dict[str, str] = field(default_factory=dict)  # this scene's modality-specific instructions
    # The operator's modality-specific instructions by instruction or task (a modalities file):
    # when it names the episode's instruction or task, its texts are the episode's.
    modality_table: Optional[ModalityTable] = None
    episode: Optional[EpisodeMetadata] = None    # the one being recorded
    last: Optional[EpisodeMetadata] = None       # the previous one, with its outcome
    counter: int = 0
    last_error: str = ''
    history: List[str] = field(default_factory=list)  # transitions, for the state topic and tests

    # --- helpers --------------------------------------------------------------------------
    def _require(self, step: str, *allowed: str) -> None:
        if self.state not in allowed:
            raise EpisodeError(f'{step}: not allowed while {self.state} (allowed in: '
                               f'{", ".join(allowed)})')

    def _go(self, state: str, why: str) -> None:
        self.history.append(f'{self.state} -> {state}: {why}')
        self.state = state

    @property
    def allowed(self) -> List[str]:
        """The steps the current state allows (for the front end's help line)."""
        return {IDLE: ['reset', 'set_instruction'],
                RESETTING: ['reset_done', 'abort'],
                READY: ['start', 'reset', 'set_instruction'],
                RECORDING: ['end', 'abort', 'mark']}[self.state]

    # --- steps ----------------------------------------------------------------------------
    def reset(self, task: str = '', seed: Optional[int] = None) -> None:
        """Begin a reset (hold, start pose, backgrounds, twin reset): the node does the work."""
        self._require('reset', IDLE, READY)
        if task:
            self.task = task
        self.seed = seed
        self.last_error = ''
        self.modalities = {}                     # a new scene: its object is described anew
        self._go(RESETTING, f'task {self.task or "?"} seed {seed}')

    def reset_done(self, ok: bool, message: str = '', task: str = '', seed: Optional[int] = None,
                   instruction: str = '', modalities: Optional[Dict[str, str]] = None) -> None:
        """The node finished the reset steps; the twin may report its task, seed, instruction and
        modality-specific instructions."""
        self._require('reset_done', RESETTING)
        if not ok:
            self.last_error = message or 'reset failed'
            self._go(IDLE, f'reset failed: {self.last_error}')
            return
        if task:
            self.task = task
        if seed is not None:
            self.seed = seed
        if instruction and not self.instruction:
            self.instruction = instruction
        if modalities:
            self.modalities = check_modalities(modalities, 'reset_done: modalities')
        self._go(READY, message or 'reset done')

    def set_instruction(self, text: str) -> None:
        self._require('set_instruction', IDLE, READY)
        text = (text or '').strip()
        if not text:
            raise EpisodeError('set_instruction: the instruction is empty')
        if len(text) > MAX_INSTRUCTION_CHARS:
            raise EpisodeError(f'set_instruction: {len(text)} characters, at most {MAX_INSTRUCTION_CHARS}')
        self.instruction = text

    def set_modalities(self, values: Dict[str, str]) -> None:
        """The modality-specific instructions of the coming episode (replacing any)."""
        self._require('set_modalities', IDLE, RESETTING, READY)
        self.modalities = check_modalities(values, 'set_modalities')

    def episode_modalities(self) -> Tuple[Dict[str, str], str]:
        """The modality-specific instructions the coming episode gets, and where they come from:
        the modalities file's entry for its instruction (else its task), else the scene's own
        (the twin's task description); '' = none."""
        if self.modality_table is not None:
            given = self.modality_table.lookup(self.instruction, self.task)
            if given is not None:
                return given, self.modality_table.source
        return dict(self.modalities), ('the scene' if self.modalities else '')

    def start(self) -> EpisodeMetadata:
        """Start recording; returns the new episode's metadata (status recording)."""
        self._require('start', READY)
        if not self.instruction:
            raise EpisodeError('start: no instruction set (set_instruction first)')
        modalities, _ = self.episode_modalities()
        self.counter += 1
        now = self.clock_ns()
        stamp = time.strftime('%Y%m%d-%H%M%S', time.gmtime(now / 1e9))
        ctx = self.context
        self.episode = EpisodeMetadata(
            episode_id=f'{self.id_prefix}_{stamp}_{self.counter:04d}', task=self.task,
            instruction=self.instruction, operator=ctx.operator, action_source=ctx.action_source,
            world=ctx.world, seed=self.seed, robot=dict(ctx.robot), start_time_ns=now,
            modalities=modalities)
        self._go(RECORDING, f'episode {self.episode.episode_id}')
        return self.episode

    def mark(self, event: str, detail: str = '') -> None:
        """Note something that happened during the episode (e.g. the teleop device was lost)."""
        self._require('mark', RECORDING)
        self.episode.events.append({'event': event, 'detail': detail,
                                    'time_ns': self.clock_ns()})

    def end(self, outcome: str, note: str = '') -> EpisodeMetadata:
        """End the episode with success / failure / discard (and an optional note)."""
        self._require('end', RECORDING)
        if outcome not in OUTCOMES:
            raise EpisodeError(f'end: outcome {outcome!r} is not one of {list(OUTCOMES)}')
        if len(note) > MAX_NOTE_CHARS:
            raise EpisodeError(f'end: note of {len(note)} characters, at most {MAX_NOTE_CHARS}')
        return self._finish(outcome, note, COMPLETE, f'ended: {outcome}')

    def abort(self, reason: str) -> Optional[EpisodeMetadata]:
        """Stop now (operator, lost device, node shutdown): a recording becomes `interrupted`."""
        self._require('abort', RESETTING, RECORDING)
        if self.state == RESETTING:
            self.last_error = reason
            self._go(IDLE, f'reset aborted: {reason}')
            return None
        return self._finish(ABORTED, reason, INTERRUPTED, f'aborted: {reason}')

    def _finish(self, outcome: str, note: str, status: str, why: str) -> EpisodeMetadata:
        ep = dataclasses.replace(self.episode, outcome=outcome, note=note, status=status,
                                 end_time_ns=self.clock_ns(),
                                 events=list(self.episode.events))
        self.last, self.episode = ep, None
        self._go(IDLE, why)
        return ep
