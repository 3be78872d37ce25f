"""The policy node's logic without ROS: freshness, masks, inference, execution, safety, deadline."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence

import numpy as np

from fuse_core.bundle.loader import PROVIDER_CHOICES
from fuse_core.bundle.manifest import DELTA_EE_LAYOUT
from fuse_core.bundle.runner import Observation, ObservationError, PolicyRunner, check_observation
from fuse_core.bundle.tokenizers import InstructionError
from fuse_core.config import ValidatedConfig, param
from fuse_core.errors import BundleError, FuseError
from fuse_core.execution import (
    EXECUTION_CHOICES,
    ActionRejectedError,
    GripperBinarizer,
    check_actions,
    make_strategy,
)
from fuse_core.timing import percentiles


@dataclass
class PolicyConfig(ValidatedConfig):
    """Parameters of the policy node (names = ROS parameters = keys in config/policy.yaml)."""

    bundle_path: str = param(
        'models/reference',
        'model bundle directory: absolute, or relative to the '
        'repository root / fuse_bringup share dir / current dir',
    )
    providers: str = param(
        'auto',
        'ONNX Runtime providers: auto (CUDA if available, else CPU), cpu, cuda',
        choices=PROVIDER_CHOICES,
    )
    intra_op_threads: int = param(2, 'ONNX Runtime intra-op threads', min=1, max=64)
    execution: str = param(
        'receding_horizon',
        'chunk execution: first action of each chunk, or temporal ensembling of overlapping chunks',
        choices=EXECUTION_CHOICES,
    )
    ensemble_k: float = param(
        0.0,
        'temporal ensembling weight exp(-k*i), i = 0 for the oldest prediction (0 = plain mean)',
        min=0.0,
        max=10.0,
    )
    gripper_sticky_steps: int = param(
        1, 'ticks a gripper change is held (FuSe: 1 = plain threshold)', min=1, max=50
    )
    instruction: str = param(
        '', 'initial language instruction (empty: wait for ~/instruction or ~/set_instruction)'
    )
    window_topic: str = param('/sync/window', 'ObservationWindow topic')
    max_window_age_s: float = param(
        0.2,
        'a window whose tick is older than this (or than the tick deadline) on arrival is late and '
        'never produces a command',
        min=0.001,
        max=10.0,
    )
    command_valid_s: float = param(0.3, 'valid_until = publish time + this', min=0.01, max=5.0)
    tick_deadline_s: float = param(
        0.0,
        'inference must finish within this of the window tick, or the '
        'command is dropped (0 = one control period of the bundle)',
        min=0.0,
        max=10.0,
    )
    max_abs_action: float = param(
        1.0, 'any |un-normalised action value| above this rejects the chunk', min=1e-6, max=1e6
    )
    frame_id: str = param('wx250s/base_link', 'frame_id of the commands (the arm base frame)')
    max_instruction_chars: int = param(256, 'longest accepted instruction in characters', min=1, max=100000)


@dataclass
class WindowInput:
    """One ObservationWindow, decoded: what the controller needs from the message."""

    tick_index: int
    stamp_ns: int  # tick time
    newest_sample_ns: int
    tensors: Mapping[str, np.ndarray]
    timestep_pad_mask: np.ndarray
    valid: Mapping[str, Sequence[bool]]
    sample_stamps: Mapping[str, Sequence[int]]
    stale_streams: Sequence[str] = ()


@dataclass
class Decision:
    """What to do with one window. Only outcome 'command' carries an action for the arm."""

    outcome: str  # command | late | mismatch | stale | no_instruction | error | rejected | overrun
    message: str = ''
    chunk: Optional[np.ndarray] = None  # (horizon, dim) un-normalised, when it is safe to publish
    action: Optional[np.ndarray] = None  # (dim,) executed action, gripper binarised
    valid_until_ns: int = 0
    inference_ms: float = 0.0
    timing_ms: Dict[str, float] = field(default_factory=dict)


@dataclass
class PolicyCounters:
    windows: int = 0
    commands: int = 0
    late: int = 0
    mismatches: int = 0
    stale: int = 0
    no_instruction: int = 0
    errors: int = 0
    rejected: int = 0
    overruns: int = 0
    masked_steps: int = 0
    stale_by_stream: Dict[str, int] = field(default_factory=dict)
    last_error: str = ''


class PolicyController:
    """Turns decoded windows into safe commands; owns the execution strategy and counters."""

    def __init__(self, runner: PolicyRunner, cfg: PolicyConfig, clock_ns: Callable[[], int]) -> None:
        m = runner.manifest
        self.runner, self.cfg, self.clock_ns = runner, cfg, clock_ns
        if tuple(m.action.layout) != DELTA_EE_LAYOUT:
            raise BundleError(
                f'bundle action layout {list(m.action.layout)} is not the delta end-effector '
                f'layout {list(DELTA_EE_LAYOUT)} that DeltaEECommand carries'
            )
        if m.action.gripper_index != DELTA_EE_LAYOUT.index('gripper'):
            raise BundleError(f'bundle action.gripper_index {m.action.gripper_index} must be 6')
        if runner.bundle.tokenizer is not None:
            tok = runner.bundle.tokenizer
            tok.max_chars = min(tok.max_chars, cfg.max_instruction_chars)
        self.period_s = 1.0 / m.control_rate_hz
        self.deadline_s = cfg.tick_deadline_s or self.period_s
        self.counters = PolicyCounters()
        self._lock = threading.Lock()
        self._strategy = make_strategy(cfg.execution, m.action.horizon, cfg.ensemble_k)
        self._gripper = GripperBinarizer(0.5, cfg.gripper_sticky_steps)
        self._inference_ms: Deque[float] = collections.deque(maxlen=500)
        self.last_observation: Optional[Observation] = None

    # --- instruction ----------------------------------------------------------------------
    def set_instruction(self, text: str) -> None:
        """Encode and switch to a new instruction; a new task restarts chunk execution."""
        if self.runner.bundle.tokenizer is None:
            raise InstructionError('this bundle takes no language instruction')
        previous = self.runner.instruction
        self.runner.set_instruction(text)
        if self.runner.instruction != previous:
            with self._lock:
                self._strategy.reset()
                self._gripper.reset()

    # --- one window -----------------------------------------------------------------------
    def process(self, win: WindowInput) -> Decision:
        c = self.counters
        c.windows += 1
        age_s = (self.clock_ns() - win.stamp_ns) * 1e-9
        # A window already past the tick deadline could only ever produce a dropped command.
        limit_s = min(self.cfg.max_window_age_s, self.deadline_s)
        if age_s > limit_s:
            c.late += 1
            return self._fail(
                'late',
                f'window {win.tick_index} arrived {age_s * 1e3:.0f} ms after its tick '
                f'(limit {limit_s * 1e3:.0f} ms)',
            )
        obs = Observation(
            tensors=win.tensors,
            timestep_pad_mask=np.asarray(win.timestep_pad_mask, bool).copy(),
            sample_stamps=win.sample_stamps,
        )
        try:
            self._check_window(obs, win)
        except ObservationError as exc:
            c.mismatches += 1
            return self._fail('mismatch', f'window {win.tick_index}: {exc}')
        stale = self._stale_at_newest(win)
        if stale:
            c.stale += 1
            for stream in stale:
                c.stale_by_stream[stream] = c.stale_by_stream.get(stream, 0) + 1
            return self._fail(
                'stale',
                f'window {win.tick_index}: no fresh sample at the newest step from {", ".join(stale)}',
            )
        self._mask_invalid_history(obs, win)
        self.last_observation = obs
        try:
            result = self.runner.infer(obs)
        except InstructionError as exc:
            c.no_instruction += 1
            return self._fail('no_instruction', f'window {win.tick_index}: {exc}')
        except (FuseError, RuntimeError, ValueError) as exc:  # ORT raises RuntimeError subclasses
            c.errors += 1
            return self._fail('error', f'window {win.tick_index}: inference failed: {exc}')
        done_ns = self.clock_ns()
        self._inference_ms.append(result.timing_ms['total'])
        chunk = result.actions
        try:
            check_actions(chunk, self.cfg.max_abs_action, self.runner.manifest.action.gripper_index)
        except ActionRejectedError as exc:
            c.rejected += 1
            return self._fail(
                'rejected', f'window {win.tick_index}: {exc}', inference_ms=result.timing_ms['total']
            )
        with self._lock:
            action = self._strategy.step(chunk, win.tick_index)
            g = self.runner.manifest.action.gripper_index
            action[g] = self._gripper(float(action[g]))
        late_by = (done_ns - win.stamp_ns) * 1e-9 - self.deadline_s
        if late_by > 0:
            c.overruns += 1
            return self._fail(
                'overrun',
                f'window {win.tick_index}: inference finished {late_by * 1e3:.0f} ms '
                f'past the tick deadline ({self.deadline_s * 1e3:.0f} ms); command dropped',
                chunk=chunk,
                inference_ms=result.timing_ms['total'],
            )
        c.commands += 1
        return Decision(
            'command',
            chunk=chunk,
            action=action,
            valid_until_ns=done_ns + int(self.cfg.command_valid_s * 1e9),
            inference_ms=result.timing_ms['total'],
            timing_ms=result.timing_ms,
        )

    def malformed(self, message: str) -> Decision:
        """Count a window that could not even be decoded (bad bytes, duplicate tensor)."""
        self.counters.windows += 1
        self.counters.mismatches += 1
        return self._fail('mismatch', message)

    def _fail(self, outcome: str, message: str, **kw) -> Decision:
        self.counters.last_error = message
        return Decision(outcome, message=message, **kw)

    def _check_window(self, obs: Observation, win: WindowInput) -> None:
        check_observation(self.runner.bundle, obs)
        W = self.runner.manifest.window_size
        for name in self.runner.manifest.input_names:
            if len(win.valid.get(name, ())) != W:
                raise ObservationError(
                    f'input {name!r}: expected {W} validity flags, actual {len(win.valid.get(name, ()))}'
                )

    def _stale_at_newest(self, win: WindowInput) -> List[str]:
        """Streams of required inputs with no valid sample at the newest step."""
        streams = []
        for spec in self.runner.manifest.inputs:
            if spec.required and not win.valid[spec.name][-1]:
                streams.append(spec.stream)
        required_streams = {s.stream for s in self.runner.manifest.inputs if s.required}
        streams += [s for s in win.stale_streams if s in required_streams and s not in streams]
        return streams

    def _mask_invalid_history(self, obs: Observation, win: WindowInput) -> None:
        """Treat an older step with a missing required sample as padding: the model never saw
        half-filled steps in training, while padded history is what it sees at episode start."""
        W = self.runner.manifest.window_size
        for t in range(W - 1):
            if obs.timestep_pad_mask[t] and any(
                spec.required and not win.valid[spec.name][t] for spec in self.runner.manifest.inputs
            ):
                obs.timestep_pad_mask[t] = False
                self.counters.masked_steps += 1

    # --- diagnostics ----------------------------------------------------------------------
    def summary(self) -> Dict[str, object]:
        c = self.counters
        p = percentiles(list(self._inference_ms))
        return {
            'bundle': self.runner.manifest.name,
            'providers': ','.join(self.runner.bundle.providers),
            'execution': self.cfg.execution,
            'instruction': self.runner.instruction or '',
            'inference_p50_ms': p['p50'],
            'inference_p99_ms': p['p99'],
            'windows_received': c.windows,
            'commands_sent': c.commands,
            'late_windows': c.late,
            'overruns': c.overruns,
            'mismatched_windows': c.mismatches,
            'stale_windows': c.stale,
            'stale_streams': ','.join(f'{k}:{v}' for k, v in sorted(c.stale_by_stream.items())),
            'masked_history_steps': c.masked_steps,
            'rejected_chunks': c.rejected,
            'no_instruction_windows': c.no_instruction,
            'inference_errors': c.errors,
            'encoder_runs': self.runner.stats.encoder_runs,
            'encoder_reused': self.runner.stats.encoder_reused,
            'last_error': c.last_error,
        }
