"""The policy node's logic without ROS: freshness, masks, inference, execution, safety, deadline."""
# Execution is synchronous (inference inside the tick) or asynchronous (InferenceWorker +
# ChunkExecutor: the tick never waits for the model).

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from fuse_core.bundle.loader import PROVIDER_CHOICES
from fuse_core.bundle.manifest import DELTA_EE_LAYOUT
from fuse_core.bundle.outcome import PolicyOutcome, Severity
from fuse_core.bundle.runner import (
    InferenceResult,
    Observation,
    ObservationError,
    PolicyRunner,
    check_observation,
)
from fuse_core.bundle.tokenizers import InstructionError
from fuse_core.config import ValidatedConfig, param
from fuse_core.errors import BundleError, FuseError
from fuse_core.gripper import GRIPPER_THRESHOLD
from fuse_core.execution import (
    AGGREGATE_CHOICES,
    EXECUTION_CHOICES,
    TICK_SOURCE_CHOICES,
    ActionRejectedError,
    ChunkExecutor,
    ChunkRefusedError,
    GripperBinarizer,
    check_actions,
    make_strategy,
)
from fuse_core.sync.window import Window
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
        'chunk execution: first action of each chunk (inference inside the tick), temporal '
        'ensembling of overlapping chunks, or async (inference off the tick; the tick executes '
        'the chunks that cover it, skipping the actions the inference delay overtook)',
        choices=EXECUTION_CHOICES,
    )
    ensemble_k: float = param(
        0.0,
        'temporal ensembling weight exp(-k*i), i = 0 for the oldest prediction (0 = plain mean)',
        min=0.0,
        max=10.0,
    )
    async_aggregate: str = param(
        'latest',
        'async: how chunks covering one tick merge: latest only, blend (old*(1-w) + new*w), or '
        'ensemble (weights exp(-ensemble_k*i), i = 0 oldest)',
        choices=AGGREGATE_CHOICES,
    )
    async_blend_new: float = param(
        0.7, 'async blend: weight w of the newer chunk (LeRobot: 0.7)', min=0.01, max=1.0
    )
    async_refill_fraction: float = param(
        1.0,
        'async: start the next inference when the newest chunk has fewer than this fraction of '
        'its actions left after the current tick (1 = as soon as the previous inference ends)',
        min=0.0,
        max=1.0,
    )
    async_tick_source: str = param(
        'window',
        'async: what starts each tick: the arrival of its window (window), or this node\'s own clock '
        'at the window ticks\' times (clock: the command leaves at the tick instead of after the '
        'window\'s build and transport, gated by the previous tick\'s window; wall clock only, '
        'with use_sim_time the windows start the ticks)',
        choices=TICK_SOURCE_CHOICES,
    )
    tick_thread_priority: int = param(
        0,
        'async_tick_source clock: SCHED_FIFO priority (1-99) of the tick thread, 0 = the normal '
        'scheduler (a loaded machine then delays ticks); needs CAP_SYS_NICE or an rtprio limit, '
        'else a warning and normal priority',
        min=0,
        max=99,
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
    episodes_topic: str = param(
        '', 'episode manager state (fuse_interfaces/EpisodeState): command only while it records, else hold '
        'naming why; each recording starts with fresh chunks (robot evaluation: /episodes/state); "" = always'
    )


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
    sample_ids: Optional[Mapping[str, Sequence[int]]] = None  # see Observation.sample_ids

    @classmethod
    def from_window(cls, w: Window, tensors: Optional[Mapping[str, np.ndarray]] = None) -> 'WindowInput':
        """A full fuse_core Window (WindowBuilder's, or WindowReceiver's rebuild); `tensors`
        replaces its arrays (e.g. deliberately altered ones)."""
        return cls(
            tick_index=w.tick_index,
            stamp_ns=w.stamp_ns,
            newest_sample_ns=w.newest_sample_ns,
            tensors=tensors if tensors is not None else {t.name: t.array for t in w.tensors},
            timestep_pad_mask=np.asarray(w.timestep_pad_mask, dtype=bool),
            valid={t.name: list(t.valid) for t in w.tensors},
            sample_stamps={t.name: list(t.sample_stamps_ns) for t in w.tensors},
            stale_streams=list(w.stale_streams),
            sample_ids={t.name: list(t.sample_ids) for t in w.tensors},
        )


@dataclass
class PolicyStep:
    """What one window came to. Only outcome COMMAND carries an action for the arm."""

    outcome: PolicyOutcome
    message: str = ''
    chunk: Optional[np.ndarray] = None  # (horizon, dim) un-normalised, when it is safe to publish
    action: Optional[np.ndarray] = None  # (dim,) executed action, gripper binarised
    valid_until_ns: int = 0
    inference_ms: float = 0.0
    timing_ms: Dict[str, float] = field(default_factory=dict)
    # Asynchronous execution: the chunk (if any) is the one that arrived in this tick, computed
    # from the window of chunk_tick; the action comes from the chunks covering this tick.
    chunk_tick: Optional[int] = None
    chunk_stamp_ns: int = 0
    chunk_newest_sample_ns: int = 0
    action_newest_sample_ns: int = 0  # newest sample behind the executed action (0: this window)


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
    uncovered: int = 0  # async: ticks no chunk covered (explicit holds)
    refused_chunks: int = 0  # async: chunks from the future or entirely overtaken
    stale_by_stream: Dict[str, int] = field(default_factory=dict)
    last_error: str = ''


@dataclass
class InferenceJob:
    """One inference request of the asynchronous mode: the window's observation and its tick."""

    obs: Observation
    tick: int
    stamp_ns: int
    newest_sample_ns: int
    generation: int
    result: Optional[InferenceResult] = None
    error: Optional[BaseException] = None
    elapsed_ms: float = 0.0
    submitted: float = 0.0  # perf_counter at submit


class InferenceWorker:
    """Runs `infer` on its own thread, one job at a time; submit never blocks.

    A job submitted while another runs waits as the next one, replacing any older waiting job
    (the newest window wins), and starts the moment the running one ends, so the model is
    never idle between a result and the next tick. The caller collects the newest finished job
    with take() (when two finish between takes, the older is dropped and counted).
    """

    def __init__(self, infer: Callable[[Observation], InferenceResult], name: str = 'inference') -> None:
        self._infer = infer
        self._cv = threading.Condition()
        self._pending: Optional[InferenceJob] = None
        self._running: Optional[InferenceJob] = None
        self._done: Optional[InferenceJob] = None
        self._closed = False
        self.submitted = 0
        self.replaced = 0  # waiting jobs replaced by a newer window before they started
        self.dropped_results = 0  # finished jobs superseded by a newer result before take()
        self.completed = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._pending is not None or self._running is not None

    def running(self) -> Optional[Tuple[int, float]]:
        """(tick, ms since it was submitted) of the job running (else the one waiting), or None."""
        with self._cv:
            job = self._running or self._pending
            if job is None:
                return None
            return job.tick, (time.perf_counter() - job.submitted) * 1e3

    def submit(self, job: InferenceJob) -> bool:
        """Start the job now, or as the next one when another runs; False once closed."""
        with self._cv:
            if self._closed:
                return False
            job.submitted = time.perf_counter()
            self.submitted += 1
            if self._pending is not None:
                self.replaced += 1
            self._pending = job
            self._cv.notify_all()
            return True

    def cancel_pending(self) -> None:
        """Drop the job waiting to start (a reset: its window must not be run)."""
        with self._cv:
            self._pending = None
            self._cv.notify_all()

    def take(self) -> Optional[InferenceJob]:
        """The finished job, once (None while nothing finished since the last take)."""
        with self._cv:
            job, self._done = self._done, None
            return job

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is pending or running (tests and shutdown only)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending is None and self._running is None, timeout)

    def wait_completed(self, count: int, timeout: float) -> bool:
        """Block until `count` jobs have finished in all (tests only)."""
        with self._cv:
            return self._cv.wait_for(lambda: self.completed >= count, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._closed or self._pending is not None)
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._running = job
            t0 = time.perf_counter()
            try:
                job.result = self._infer(job.obs)
            except BaseException as exc:  # handed to the tick, which decides (never lost)
                job.error = exc
            job.elapsed_ms = (time.perf_counter() - t0) * 1e3
            with self._cv:
                self._running = None
                if self._done is not None:
                    self.dropped_results += 1
                self._done = job
                self.completed += 1
                self._cv.notify_all()


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
        self.asynchronous = cfg.execution == 'async'
        # Computed once: the required inputs and their streams (checked every window).
        self._required = tuple(spec for spec in m.inputs if spec.required)
        self._required_streams = frozenset(spec.stream for spec in self._required)
        self._gripper = GripperBinarizer(GRIPPER_THRESHOLD, cfg.gripper_sticky_steps)
        self._inference_ms: Deque[float] = collections.deque(maxlen=500)
        self._delay_ticks: Deque[int] = collections.deque(maxlen=500)
        self._tick_ms: Deque[float] = collections.deque(maxlen=500)
        self._check_ms: Deque[float] = collections.deque(maxlen=500)  # a window's checks, once each
        self.last_observation: Optional[Observation] = None
        self._generation = 0  # bumped on every reset: a job started before it is discarded
        self._newest_by_tick: Dict[int, int] = {}  # async: chunk tick -> its newest sample stamp
        self._refusal = ''  # async: why the chunk that arrived in this tick was refused
        self._trusted_tick: Optional[int] = None  # async: the newest window that passed every check
        # observe(), execute_tick() and the resets run on two threads (window callback, tick
        # clock): one at a time, so a tick never publishes a chunk that a reset has dropped.
        self._serial = threading.RLock()
        self._worker: Optional[InferenceWorker] = None
        if self.asynchronous:
            self._strategy = None
            self._executor = ChunkExecutor(
                m.action.horizon, cfg.async_aggregate, cfg.async_blend_new, cfg.ensemble_k
            )
            self._worker = InferenceWorker(self._infer_checked)
        else:
            self._strategy = make_strategy(cfg.execution, m.action.horizon, cfg.ensemble_k)
            self._executor = None

    def _infer_checked(self, obs: Observation) -> InferenceResult:
        # process() ran check_observation on this very observation already.
        return self.runner.infer(obs, checked=True)

    def close(self) -> None:
        """Stop the inference thread of the asynchronous mode (waits for a running job)."""
        if self._worker is not None:
            self._worker.close()

    def _reset_execution(self) -> None:
        """Forget every chunk (and any inference in flight): after a hold, nothing old resumes."""
        with self._lock:
            self._generation += 1
            if self._worker is not None:
                self._worker.cancel_pending()
            if self._executor is not None:
                self._executor.reset()
                self._newest_by_tick.clear()
            else:
                self._strategy.reset()
            self._gripper.reset()
            self._trusted_tick = None

    def restart(self) -> None:
        """A new episode: no chunk (nor inference in flight) of the previous one is executed."""
        with self._serial:
            self._reset_execution()

    # --- instruction ----------------------------------------------------------------------
    def set_instruction(self, text: str) -> None:
        """Encode and switch to a new instruction; a new task restarts chunk execution."""
        if self.runner.bundle.tokenizer is None:
            raise InstructionError('this bundle takes no language instruction')
        with self._serial:
            previous = self.runner.instruction
            self.runner.set_instruction(text)
            if self.runner.instruction != previous:
                self._reset_execution()

    # --- one window -----------------------------------------------------------------------
    def process(self, win: WindowInput) -> PolicyStep:
        t0 = time.perf_counter()
        decision = self._process(win)
        if self.asynchronous:
            self._tick_ms.append((time.perf_counter() - t0) * 1e3)
            if not decision.outcome.keeps_chunks:
                # A window that could not be trusted stops the motion: no old chunk resumes.
                self._reset_execution()
        return decision

    def observe(self, win: WindowInput) -> Optional[PolicyStep]:
        """Asynchronous execution on the node's own tick clock: check a window, start its inference.

        Returns None when the window is trusted (execute_tick() commands the ticks from the
        chunks), else its failing step: the arm must hold, and no planned chunk resumes.
        """
        if not self.asynchronous:
            raise FuseError('observe() is for asynchronous execution; use process()')
        with self._serial:
            decision = self._process(win, execute=False)
            if decision is not None and not decision.outcome.keeps_chunks:
                self._reset_execution()
            return decision

    def execute_tick(self, tick: int) -> PolicyStep:
        """Asynchronous execution on the node's own tick clock: the command for `tick`.

        The tick runs at its time, before its own window arrives, so the window of the tick
        before it must have passed every check (else a `late` hold, and no chunk resumes).
        """
        with self._serial:
            t0 = time.perf_counter()
            trusted = self._trusted_tick
            if trusted is None or tick - trusted > 1:
                self.counters.late += 1
                since = 'no trusted window yet' if trusted is None else f'the newest trusted window is {trusted}'
                decision = self._fail(PolicyOutcome.LATE, f'tick {tick}: no window of tick {tick - 1} ({since})')
            else:
                self._refusal = ''
                arrived = self._collect(tick)
                decision = arrived if isinstance(arrived, PolicyStep) else self._execute(tick, arrived)
            if not decision.outcome.keeps_chunks:
                self._reset_execution()
            self._tick_ms.append((time.perf_counter() - t0) * 1e3)
            return decision

    def _process(self, win: WindowInput, execute: bool = True) -> Optional[PolicyStep]:
        t0 = time.perf_counter()
        c = self.counters
        c.windows += 1
        age_s = (self.clock_ns() - win.stamp_ns) * 1e-9
        # A window already past the tick deadline could only ever produce a dropped command.
        limit_s = min(self.cfg.max_window_age_s, self.deadline_s)
        if age_s > limit_s:
            c.late += 1
            return self._fail(
                PolicyOutcome.LATE,
                f'window {win.tick_index} arrived {age_s * 1e3:.0f} ms after its tick '
                f'(limit {limit_s * 1e3:.0f} ms)',
            )
        obs = Observation(
            tensors=win.tensors,
            timestep_pad_mask=np.asarray(win.timestep_pad_mask, bool).copy(),
            sample_stamps=win.sample_stamps,
            sample_ids=win.sample_ids,
        )
        try:
            self._check_window(obs, win)
        except ObservationError as exc:
            c.mismatches += 1
            return self._fail(PolicyOutcome.MISMATCH, f'window {win.tick_index}: {exc}')
        stale = self._stale_at_newest(win)
        if stale:
            c.stale += 1
            for stream in stale:
                c.stale_by_stream[stream] = c.stale_by_stream.get(stream, 0) + 1
            return self._fail(
                PolicyOutcome.STALE,
                f'window {win.tick_index}: no fresh sample at the newest step from {", ".join(stale)}',
            )
        self._mask_invalid_history(obs, win)
        self._check_ms.append((time.perf_counter() - t0) * 1e3)
        self.last_observation = obs
        if self.asynchronous:
            return self._process_async(obs, win, execute)
        try:
            result = self.runner.infer(obs, checked=True)
        except InstructionError as exc:
            c.no_instruction += 1
            return self._fail(PolicyOutcome.NO_INSTRUCTION, f'window {win.tick_index}: {exc}')
        except (FuseError, RuntimeError, ValueError) as exc:  # ORT raises RuntimeError subclasses
            c.errors += 1
            return self._fail(PolicyOutcome.ERROR, f'window {win.tick_index}: inference failed: {exc}')
        done_ns = self.clock_ns()
        self._inference_ms.append(result.timing_ms['total'])
        chunk = result.actions
        try:
            check_actions(chunk, self.cfg.max_abs_action, self.runner.manifest.action.gripper_index)
        except ActionRejectedError as exc:
            c.rejected += 1
            return self._fail(
                PolicyOutcome.REJECTED, f'window {win.tick_index}: {exc}', inference_ms=result.timing_ms['total']
            )
        with self._lock:
            action = self._strategy.step(chunk, win.tick_index)
            g = self.runner.manifest.action.gripper_index
            action[g] = self._gripper(float(action[g]))
        late_by = (done_ns - win.stamp_ns) * 1e-9 - self.deadline_s
        if late_by > 0:
            c.overruns += 1
            return self._fail(
                PolicyOutcome.OVERRUN,
                f'window {win.tick_index}: inference finished {late_by * 1e3:.0f} ms '
                f'past the tick deadline ({self.deadline_s * 1e3:.0f} ms); command dropped',
                chunk=chunk,
                inference_ms=result.timing_ms['total'],
            )
        c.commands += 1
        return PolicyStep(
            PolicyOutcome.COMMAND,
            chunk=chunk,
            action=action,
            valid_until_ns=done_ns + int(self.cfg.command_valid_s * 1e9),
            inference_ms=result.timing_ms['total'],
            timing_ms=result.timing_ms,
        )

    def _process_async(self, obs: Observation, win: WindowInput, execute: bool) -> Optional[PolicyStep]:
        """Collect a finished chunk, maybe start the next inference, execute this tick (unless
        the node's clock executes the ticks: then None for a trusted window)."""
        c = self.counters
        tick = win.tick_index
        if self.runner.bundle.tokenizer is not None and self.runner.instruction is None:
            c.no_instruction += 1
            return self._fail(PolicyOutcome.NO_INSTRUCTION, f'window {tick}: no instruction set')
        if not execute:
            self._trusted_tick = tick if self._trusted_tick is None else max(tick, self._trusted_tick)
            self._start_inference(obs, win)
            return None
        self._refusal = ''
        arrived = self._collect(tick)
        if isinstance(arrived, PolicyStep):
            return arrived
        self._start_inference(obs, win)
        return self._execute(tick, arrived)

    def _start_inference(self, obs: Observation, win: WindowInput) -> None:
        """Submit the window's inference when the newest chunk runs low (async_refill_fraction)."""
        ex = self._executor
        H = self.runner.manifest.action.horizon
        with self._lock:
            start = ex.newest_tick is None or ex.remaining(win.tick_index) < self.cfg.async_refill_fraction * H
            generation = self._generation
        if start:
            self._worker.submit(InferenceJob(obs, win.tick_index, win.stamp_ns, win.newest_sample_ns, generation))

    def _execute(self, tick: int, arrived: Optional[InferenceJob]) -> PolicyStep:
        """The action for `tick` from the chunks that cover it (an explicit hold when none does);
        `arrived` is the job whose chunk was collected in this tick, if any."""
        c = self.counters
        ex = self._executor
        with self._lock:
            action, why = ex.action_at(tick)
            source_tick = ex.newest_tick
            if action is not None:
                g = self.runner.manifest.action.gripper_index
                action[g] = self._gripper(float(action[g]))
        kw = {}
        if arrived is not None:
            job = arrived
            kw = dict(
                chunk=job.result.actions,
                inference_ms=job.result.timing_ms['total'],
                timing_ms=job.result.timing_ms,
                chunk_tick=job.tick,
                chunk_stamp_ns=job.stamp_ns,
                chunk_newest_sample_ns=job.newest_sample_ns,
            )
        if action is None:
            c.uncovered += 1
            running = self._worker.running()
            if running is not None:
                why += f'; inference of window {running[0]} running for {running[1]:.0f} ms'
            if self._refusal:
                why += f'; chunk of {self._refusal}'
            return self._fail(PolicyOutcome.UNCOVERED, f'window {tick}: {why}', **kw)
        c.commands += 1
        return PolicyStep(
            PolicyOutcome.COMMAND,
            action=action,
            valid_until_ns=self.clock_ns() + int(self.cfg.command_valid_s * 1e9),
            action_newest_sample_ns=self._newest_by_tick.get(source_tick, 0),
            **kw,
        )

    def _collect(self, tick: int):
        """The job finished since the last tick: None, its accepted job, or a failing PolicyStep."""
        c = self.counters
        job = self._worker.take()
        if job is None or job.generation != self._generation:
            return None
        if job.error is not None:
            exc = job.error
            if isinstance(exc, InstructionError):
                c.no_instruction += 1
                return self._fail(PolicyOutcome.NO_INSTRUCTION, f'window {job.tick}: {exc}')
            c.errors += 1
            return self._fail(PolicyOutcome.ERROR, f'window {job.tick}: inference failed: {exc}')
        result = job.result
        self._inference_ms.append(result.timing_ms['total'])
        try:
            check_actions(result.actions, self.cfg.max_abs_action, self.runner.manifest.action.gripper_index)
        except ActionRejectedError as exc:
            c.rejected += 1
            return self._fail(PolicyOutcome.REJECTED, f'window {job.tick}: {exc}',
                              inference_ms=result.timing_ms['total'])
        with self._lock:
            try:
                delay = self._executor.add(result.actions, job.tick, tick)
            except ChunkRefusedError as exc:
                c.refused_chunks += 1
                self._refusal = f'window {job.tick}: {exc}'
                return None
            self._delay_ticks.append(delay)
            self._newest_by_tick[job.tick] = job.newest_sample_ns
            for old in [t for t in self._newest_by_tick if tick - t >= self.runner.manifest.action.horizon]:
                del self._newest_by_tick[old]
        return job

    def malformed(self, message: str) -> PolicyStep:
        """Count a window that could not even be decoded (bad bytes, duplicate tensor)."""
        self.counters.windows += 1
        self.counters.mismatches += 1
        if self.asynchronous:
            self._reset_execution()  # as for any untrusted window: no planned chunk resumes
        return self._fail(PolicyOutcome.MISMATCH, message)

    def _fail(self, outcome: PolicyOutcome, message: str, **kw) -> PolicyStep:
        self.counters.last_error = message
        return PolicyStep(outcome, message=message, **kw)

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
        streams = [spec.stream for spec in self._required if not win.valid[spec.name][-1]]
        streams += [s for s in win.stale_streams if s in self._required_streams and s not in streams]
        return streams

    def _mask_invalid_history(self, obs: Observation, win: WindowInput) -> None:
        """Treat an older step with a missing required sample as padding: the model never saw
        half-filled steps in training, while padded history is what it sees at episode start."""
        W = self.runner.manifest.window_size
        for t in range(W - 1):
            if obs.timestep_pad_mask[t] and any(not win.valid[spec.name][t] for spec in self._required):
                obs.timestep_pad_mask[t] = False
                self.counters.masked_steps += 1

    # --- diagnostics ----------------------------------------------------------------------
    def health(self, last: Optional[PolicyOutcome], gate: str = '') -> Tuple[Severity, str]:
        """The policy's diagnostic level and message, given the last tick's outcome (None: no
        tick yet) and why the episode gate keeps it from commanding ('' when it does not)."""
        if last is not None and last.must_hold:
            return last.severity, self.counters.last_error
        if last in (None, PolicyOutcome.NO_INSTRUCTION) and not self.runner.instruction:
            return Severity.WARN, 'no instruction set'
        if gate:
            return Severity.OK, f'holding: {gate}'
        if self.counters.windows == 0:
            return Severity.WARN, f'no window received on {self.cfg.window_topic}'
        return Severity.OK, 'publishing commands'

    def summary(self) -> Dict[str, object]:
        c = self.counters
        p = percentiles(list(self._inference_ms))
        ck = percentiles(list(self._check_ms))
        out = {
            'bundle': self.runner.manifest.name,
            'providers': ','.join(self.runner.bundle.providers),
            'execution': self.cfg.execution,
            'instruction': self.runner.instruction or '',
            'inference_p50_ms': p['p50'],
            'inference_p99_ms': p['p99'],
            # The checks of a window that passed them (age, manifest, validity, freshness, history).
            'check_p50_ms': ck['p50'],
            'check_p99_ms': ck['p99'],
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
        if self.asynchronous:
            d = percentiles(list(self._delay_ticks))
            tk = percentiles(list(self._tick_ms))
            out.update({
                'async_aggregate': self.cfg.async_aggregate,
                'uncovered_ticks': c.uncovered,
                'refused_chunks': c.refused_chunks,
                'inference_started': self._worker.submitted - self._worker.replaced,
                'windows_replaced_before_inference': self._worker.replaced,
                'chunk_delay_ticks_p50': d['p50'],
                'chunk_delay_ticks_max': max(self._delay_ticks, default=0),
                'tick_p50_ms': tk['p50'],
                'tick_p99_ms': tk['p99'],
            })
        return out
