"""The policy node's logic without ROS: only safe, fresh, complete windows become commands."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from fuse_core.bundle import parse_manifest
from fuse_core.bundle.manifest import DELTA_EE_LAYOUT
from fuse_core.bundle.policy import PolicyConfig, PolicyController, WindowInput
from fuse_core.bundle.runner import InferenceResult, check_observation
from fuse_core.bundle.tokenizers import HashWordsTokenizer, InstructionError
from fuse_core.errors import BundleError, ConfigError, FuseError
from support.manifests import camera_and_spectrogram_manifest

W = 2
MS = 1_000_000


def manifest(layout=DELTA_EE_LAYOUT):
    return parse_manifest(camera_and_spectrogram_manifest(
        'fake', W,
        {'horizon': 4, 'dim': 7, 'layout': list(layout),
         'normalization': {'mean': [0.0] * 7, 'std': [1.0] * 7, 'mask': [True] * 6 + [False]}, 'gripper_index': 6},
        {'op': 'rgb_image', 'size': [4, 4]}, {'required': False}))


class FakeRunner:
    """Stands in for PolicyRunner: returns a set chunk; the clock can jump during inference."""

    def __init__(self, clock, m=None):
        self.manifest = m or manifest()
        self.bundle = SimpleNamespace(
            manifest=self.manifest,
            providers=['CPUExecutionProvider'],
            tokenizer=HashWordsTokenizer(64, 8, 100),
        )
        self.stats = SimpleNamespace(encoder_runs=0, encoder_reused=0)
        self.chunk = np.full((4, 7), 0.01)
        self.chunk[:, 6] = 0.8
        self.instruction = 'go'
        self.clock = clock
        self.infer_takes_ns = 5 * MS
        self.seen = []

    def set_instruction(self, text):
        self.bundle.tokenizer(text)
        self.instruction = text.strip()

    def infer(self, obs, checked=False):
        if self.instruction is None:
            raise InstructionError('no instruction set')
        check_observation(self.bundle, obs)
        self.seen.append(obs)
        self.clock.t += self.infer_takes_ns
        return InferenceResult(
            actions=self.chunk.astype(np.float32),
            normalized=self.chunk,
            timing_ms={'encode': 1.0, 'policy': 4.0, 'total': 5.0},
        )


class Clock:
    def __init__(self):
        self.t = 1_000_000 * MS

    def __call__(self):
        return self.t


def make(**cfg):
    clock = Clock()
    runner = FakeRunner(clock)
    ctl = PolicyController(runner, PolicyConfig(**cfg), clock)
    return ctl, runner, clock


def window(clock, tick=1, age_ms=10, valid=None, pad=(True, True), stale=(), cam=None):
    stamp = clock.t - age_ms * MS
    valid = valid or {'cam': [True, True], 'spec': [True, True]}
    tensors = {
        'cam': cam if cam is not None else np.zeros((W, 4, 4, 3), np.uint8),
        'spec': np.zeros((W, 2, 2), np.float32),
    }
    stamps = {n: [stamp - 200 * MS, stamp - 1 * MS] for n in tensors}
    return WindowInput(
        tick_index=tick,
        stamp_ns=stamp,
        newest_sample_ns=stamp - MS,
        tensors=tensors,
        timestep_pad_mask=np.array(pad),
        valid=valid,
        sample_stamps=stamps,
        stale_streams=list(stale),
    )


def test_fresh_window_gives_command():
    ctl, runner, clock = make(command_valid_s=0.3)
    d = ctl.process(window(clock))
    assert d.outcome == 'command'
    assert d.action[6] == 1.0  # 0.8 binarised: open
    np.testing.assert_allclose(d.action[:6], 0.01)
    assert d.valid_until_ns == clock.t + 300 * MS
    assert d.chunk.shape == (4, 7)
    assert ctl.counters.commands == 1 and ctl.counters.windows == 1


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf, 1e6])
def test_nonfinite_or_huge_actions_never_command(bad):
    ctl, runner, clock = make()
    runner.chunk[1, 2] = bad
    d = ctl.process(window(clock))
    assert d.outcome == 'rejected' and d.action is None and d.chunk is None
    assert ctl.counters.rejected == 1 and ctl.counters.commands == 0
    assert '[1, 2]' in ctl.counters.last_error


def test_nan_gripper_is_not_binarised_into_a_command():
    ctl, runner, clock = make()
    runner.chunk[0, 6] = np.nan  # NaN > 0.5 is False: binarising first would say "closed"
    assert ctl.process(window(clock)).outcome == 'rejected'


def test_late_window_is_counted_and_not_run():
    ctl, runner, clock = make(max_window_age_s=0.3)
    d = ctl.process(window(clock, age_ms=450))
    assert d.outcome == 'late' and d.action is None
    assert ctl.counters.late == 1 and runner.seen == []
    assert '450 ms' in d.message


def test_stale_required_stream_names_it():
    ctl, runner, clock = make()
    d = ctl.process(window(clock, valid={'cam': [True, False], 'spec': [True, True]}))
    assert d.outcome == 'stale' and 'camera_primary' in d.message
    assert ctl.counters.stale_by_stream == {'camera_primary': 1}
    assert runner.seen == []


def test_stale_streams_field_is_honoured_for_required_streams_only():
    ctl, runner, clock = make()
    assert ctl.process(window(clock, stale=['camera_primary'])).outcome == 'stale'
    # 'audio' feeds a non-required input: masked by the sync node, the policy still runs
    assert (
        ctl.process(
            window(clock, tick=2, stale=['audio'], valid={'cam': [True, True], 'spec': [True, False]})
        ).outcome
        == 'command'
    )


def test_invalid_older_step_is_masked_as_padding():
    ctl, runner, clock = make()
    d = ctl.process(window(clock, valid={'cam': [False, True], 'spec': [True, True]}))
    assert d.outcome == 'command'
    assert runner.seen[-1].timestep_pad_mask.tolist() == [False, True]
    assert ctl.counters.masked_steps == 1


def wire_windows(clock, cam_ids):
    """Windows as WindowBuilder makes them: per tick the cam sample ids of its two steps."""
    from fuse_core.sync import TensorWindow, Window
    out = []
    for tick, ids in enumerate(cam_ids, start=1):
        stamp = clock.t - 10 * MS
        cam = [np.full((4, 4, 3), i % 256, np.uint8) for i in ids]
        spec = [np.full((2, 2), -float(tick + j), np.float32) for j in range(W)]
        tensors = [TensorWindow('cam', np.dtype(np.uint8), (4, 4, 3), cam, [True, True], [i * MS for i in ids],
                                list(ids)),
                   TensorWindow('spec', np.dtype(np.float32), (2, 2), spec, [True, True],
                                [stamp - 200 * MS, stamp], [0, 0])]
        out.append(Window(tick, stamp, [stamp - 200 * MS, stamp], [True, True], tensors, stamp - MS, []))
    return out


def test_a_step_lost_on_the_wire_pads_the_history_and_a_missing_newest_step_holds():
    from fuse_core.sync import WindowReceiver, WindowSender
    ctl, runner, clock = make()
    sender, receiver = WindowSender(), WindowReceiver()
    # cam samples: tick 1 has 1, 2; tick 2 has 2, 3 (3 lost with its window); tick 3 has 3, 4.
    w1, w2, w3, w4 = wire_windows(clock, [(1, 2), (2, 3), (3, 4), (4, 5)])
    assert ctl.process(WindowInput.from_window(receiver.receive(sender.carried(w1)))).outcome == 'command'
    sender.carried(w2)                                            # lost
    d = ctl.process(WindowInput.from_window(receiver.receive(sender.carried(w3))))
    assert d.outcome == 'command'
    assert runner.seen[-1].timestep_pad_mask.tolist() == [False, True]   # masked, never guessed
    assert ctl.counters.masked_steps == 1
    # A window that names its newest camera sample without carrying it (WindowSender always
    # carries the newest step; another publisher might not): no data, so the tick holds.
    wire = sender.carried(w4)
    wire.tensors[0].steps[-1] = None
    d = ctl.process(WindowInput.from_window(receiver.receive(wire)))
    assert d.outcome == 'stale' and d.action is None and 'camera_primary' in d.message


def test_mismatched_tensor_is_refused_with_its_name():
    ctl, runner, clock = make()
    d = ctl.process(window(clock, cam=np.zeros((W, 4, 4, 3), np.float32)))
    assert d.outcome == 'mismatch' and d.action is None
    assert "input 'cam'" in d.message and 'expected uint8' in d.message and 'actual float32' in d.message


def test_overrun_publishes_chunk_but_no_command():
    ctl, runner, clock = make()  # deadline = one period of the 5 Hz bundle
    runner.infer_takes_ns = 250 * MS
    d = ctl.process(window(clock, age_ms=10))
    assert d.outcome == 'overrun' and d.action is None and d.chunk is not None
    assert ctl.counters.overruns == 1 and ctl.counters.commands == 0


def test_tick_deadline_parameter():
    ctl, runner, clock = make(tick_deadline_s=1.0)
    runner.infer_takes_ns = 250 * MS
    assert ctl.process(window(clock)).outcome == 'command'


def test_no_instruction_means_no_command():
    ctl, runner, clock = make()
    runner.instruction = None
    assert ctl.process(window(clock)).outcome == 'no_instruction'


def test_instruction_change_resets_ensemble():
    ctl, runner, clock = make(execution='temporal_ensemble')
    ctl.process(window(clock, tick=1))
    runner.chunk[:, 0] = 0.5
    assert ctl.process(window(clock, tick=2)).action[0] == pytest.approx((0.01 + 0.5) / 2)
    ctl.set_instruction('push the cup')
    runner.chunk[:, 0] = 0.9
    assert ctl.process(window(clock, tick=3)).action[0] == pytest.approx(0.9)


def test_instruction_char_cap_from_parameter():
    ctl, runner, clock = make(max_instruction_chars=10)
    with pytest.raises(InstructionError, match='characters'):
        ctl.set_instruction('pick up the red cup')


def test_bundle_with_other_action_layout_is_refused():
    clock = Clock()
    runner = FakeRunner(clock, manifest(layout=('x', 'y', 'z', 'a', 'b', 'c', 'g')))
    with pytest.raises(BundleError, match='delta end-effector'):
        PolicyController(runner, PolicyConfig(), clock)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match='execution'):
        PolicyConfig(execution='chunked')
    with pytest.raises(ConfigError, match='max_window_age_s'):
        PolicyConfig(max_window_age_s=-1.0)


def test_summary_has_the_diagnostics_keys():
    ctl, runner, clock = make()
    ctl.process(window(clock))
    ctl.process(window(clock, tick=2, age_ms=900))
    s = ctl.summary()
    assert s['windows_received'] == 2 and s['commands_sent'] == 1 and s['late_windows'] == 1
    assert s['inference_p50_ms'] == pytest.approx(5.0)
    for key in ('inference_p99_ms', 'overruns', 'stale_streams', 'last_error', 'providers', 'check_p50_ms'):
        assert key in s


def test_window_older_than_the_deadline_is_late_even_within_max_age():
    ctl, runner, clock = make(max_window_age_s=2.0)          # deadline: one 5 Hz period
    d = ctl.process(window(clock, age_ms=250))
    assert d.outcome == 'late' and '(limit 200 ms)' in d.message and runner.seen == []


# --- asynchronous execution (inference on the worker thread, the tick never waits) -----------

class SlowRunner(FakeRunner):
    """Inference blocks until the test releases it, so a test controls what overlaps what."""

    def __init__(self, clock):
        super().__init__(clock)
        self.release = threading.Semaphore(0)

    def infer(self, obs, checked=False):
        if self.instruction is None:
            raise InstructionError('no instruction set')
        check_observation(self.bundle, obs)
        self.seen.append(obs)
        assert self.release.acquire(timeout=5.0), 'test never released the inference'
        tick = int(obs.sample_stamps['cam'][-1])  # the test puts the tick into the stamps
        chunk = np.zeros((4, 7))
        chunk[:, 0] = [0.001 * (tick + i) for i in range(4)]  # action for tick t says 0.001 t
        chunk[:, 1] = 0.01 * tick  # which chunk an action came from
        chunk[:, 6] = 0.8
        return InferenceResult(actions=chunk.astype(np.float32), normalized=chunk,
                               timing_ms={'encode': 1.0, 'policy': 4.0, 'total': 5.0})


def make_async(**cfg):
    clock = Clock()
    runner = SlowRunner(clock)
    ctl = PolicyController(runner, PolicyConfig(execution='async', **cfg), clock)
    return ctl, runner, clock


@contextlib.contextmanager
def async_controller(**cfg):
    """make_async(**cfg) for the body of a with statement, drained after it (pass or fail)."""
    ctl, runner, clock = make_async(**cfg)
    try:
        yield ctl, runner, clock
    finally:
        drain(ctl, runner)


def async_window(clock, tick):
    w = window(clock, tick=tick)
    w.sample_stamps = {n: [tick - 1, tick] for n in w.tensors}
    return w


def finish(ctl, runner, n=1):
    """Let n more inferences finish and wait for them."""
    target = ctl._worker.completed + n
    for _ in range(n):
        runner.release.release()
    assert ctl._worker.wait_completed(target, 5.0)


def drain(ctl, runner):
    ctl._worker.cancel_pending()
    for _ in range(3):
        runner.release.release()
    assert ctl._worker.wait_idle(5.0)
    ctl.close()


def tick_running(ctl, clock, tick):
    """process() the window of `tick` and wait until its inference has started."""
    d = ctl.process(async_window(clock, tick))
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        running = ctl._worker.running()
        if running is not None and running[0] == tick and ctl._worker._running is not None:
            return d
        time.sleep(0.001)
    raise AssertionError(f'inference of tick {tick} did not start')


def inferred_ticks(runner):
    return [int(o.sample_stamps['cam'][-1]) for o in runner.seen]


def test_async_tick_never_waits_and_holds_until_the_first_chunk():
    with async_controller() as (ctl, runner, clock):
        d = tick_running(ctl, clock, 1)  # inference of tick 1 starts, blocked
        assert d.outcome == 'uncovered' and d.action is None
        assert 'no action chunk covers tick 1' in d.message and 'inference of window 1 running' in d.message
        d = ctl.process(async_window(clock, 2))  # still running: window 2 waits as the next job
        assert d.outcome == 'uncovered' and ctl._worker.submitted == 2
        finish(ctl, runner, 2)  # job 1, then job 2 the moment job 1 ended
        assert inferred_ticks(runner) == [1, 2]
        d = ctl.process(async_window(clock, 3))  # the newest chunk (tick 2): its action for tick 3
        assert d.outcome == 'command'
        assert d.action[0] == pytest.approx(0.003) and d.action[1] == pytest.approx(0.02) and d.action[6] == 1.0
        assert d.chunk_tick == 2 and d.chunk.shape == (4, 7)
        assert d.action_newest_sample_ns == async_window(clock, 2).newest_sample_ns
        assert ctl._worker.dropped_results == 1  # chunk 1 was superseded before this tick
        s = ctl.summary()
        assert s['uncovered_ticks'] == 2 and s['chunk_delay_ticks_p50'] == 1 and s['commands_sent'] == 1


def test_async_newest_window_replaces_the_waiting_one():
    with async_controller() as (ctl, runner, clock):
        tick_running(ctl, clock, 1)
        for tick in (2, 3):
            ctl.process(async_window(clock, tick))
        finish(ctl, runner, 2)
        assert inferred_ticks(runner) == [1, 3] and ctl._worker.replaced == 1
        assert ctl.summary()['windows_replaced_before_inference'] == 1


def test_async_inference_slower_than_the_chunk_holds_and_refuses_it():
    with async_controller() as (ctl, runner, clock):
        assert tick_running(ctl, clock, 1).outcome == 'uncovered'
        for tick in range(2, 6):
            assert ctl.process(async_window(clock, tick)).outcome == 'uncovered'
        finish(ctl, runner)  # chunk of tick 1 (covers ticks 1..4) arrives
        d = ctl.process(async_window(clock, 6))
        assert d.outcome == 'uncovered' and d.action is None
        assert ctl.counters.refused_chunks == 1 and 'overtaken' in d.message


def test_async_stale_window_holds_and_drops_the_chunks():
    with async_controller() as (ctl, runner, clock):
        ctl.process(async_window(clock, 1))
        finish(ctl, runner)
        assert ctl.process(async_window(clock, 2)).outcome == 'command'
        finish(ctl, runner)  # the inference of tick 2 started above
        stale = async_window(clock, 3)
        stale.valid = {'cam': [True, False], 'spec': [True, True]}
        assert ctl.process(stale).outcome == 'stale'
        # the chunks planned before the stale window never resume, not even the fresh one
        d = ctl.process(async_window(clock, 4))
        assert d.outcome == 'uncovered' and d.action is None


def test_async_rejected_chunk_never_commands():
    with async_controller() as (ctl, runner, clock):
        orig = runner.infer

        def bad(obs):
            result = orig(obs)
            result.actions[2, 1] = np.nan
            return result

        ctl._worker._infer = bad
        ctl.process(async_window(clock, 1))
        finish(ctl, runner)
        d = ctl.process(async_window(clock, 2))
        assert d.outcome == 'rejected' and d.action is None and ctl.counters.rejected == 1


def test_async_instruction_change_discards_the_chunk_in_flight():
    with async_controller() as (ctl, runner, clock):
        tick_running(ctl, clock, 1)
        ctl.set_instruction('push the cup')
        finish(ctl, runner)
        d = ctl.process(async_window(clock, 2))  # the chunk for the old instruction is dropped
        assert d.outcome == 'uncovered'


def test_async_refill_fraction_waits_until_the_chunk_runs_low():
    with async_controller(async_refill_fraction=0.5) as (ctl, runner, clock):  # start when < 2 of 4 left
        ctl.process(async_window(clock, 1))
        finish(ctl, runner)
        assert ctl.process(async_window(clock, 2)).outcome == 'command'  # 2 left after tick 2
        assert ctl._worker.submitted == 1
        assert ctl.process(async_window(clock, 3)).outcome == 'command'  # 1 left: next starts
        assert ctl._worker.submitted == 2


def test_async_no_instruction_starts_no_inference():
    ctl, runner, clock = make_async()
    runner.instruction = None
    try:
        assert ctl.process(async_window(clock, 1)).outcome == 'no_instruction'
        assert ctl._worker.submitted == 0
    finally:
        ctl.close()


def test_async_malformed_window_drops_the_chunks():
    with async_controller() as (ctl, runner, clock):
        ctl.process(async_window(clock, 1))
        finish(ctl, runner)
        assert ctl.process(async_window(clock, 2)).outcome == 'command'
        finish(ctl, runner)
        assert ctl.malformed('window 3: tensor appears twice').outcome == 'mismatch'
        assert ctl.process(async_window(clock, 4)).outcome == 'uncovered'


def test_async_inference_error_is_a_hold_naming_it():
    with async_controller() as (ctl, runner, clock):
        def broken(obs):
            raise RuntimeError('onnxruntime: bad allocation')

        ctl._worker._infer = broken
        ctl.process(async_window(clock, 1))
        assert ctl._worker.wait_completed(1, 5.0)
        d = ctl.process(async_window(clock, 2))
        assert d.outcome == 'error' and d.action is None and 'bad allocation' in d.message
        assert ctl.counters.errors == 1


def test_health_follows_the_last_outcome_then_the_gate_then_the_windows():
    from fuse_core.bundle.outcome import PolicyOutcome, Severity
    ctl, runner, clock = make()
    assert ctl.health(None) == (Severity.WARN, 'no window received on /sync/window')
    late = ctl.process(window(clock, age_ms=500))
    assert ctl.health(late.outcome) == (Severity.WARN, late.message)
    assert ctl.health(ctl.malformed('window 2: bad bytes').outcome) == (Severity.ERROR, 'window 2: bad bytes')
    assert ctl.health(PolicyOutcome.COMMAND, 'episode idle: not recording') == (
        Severity.OK, 'holding: episode idle: not recording')
    assert ctl.health(PolicyOutcome.COMMAND) == (Severity.OK, 'publishing commands')
    runner.instruction = None
    assert ctl.health(PolicyOutcome.NO_INSTRUCTION) == (Severity.WARN, 'no instruction set')


def test_async_clock_ticks_run_from_the_previous_window_and_its_inference():
    """async_tick_source clock: observe() only gates and starts inference; execute_tick() commands."""
    with async_controller(async_tick_source='clock') as (ctl, runner, clock):
        assert ctl.observe(async_window(clock, 1)) is None  # trusted; inference of window 1 starts
        assert ctl._worker.submitted == 1
        finish(ctl, runner)
        d = ctl.execute_tick(2)  # before window 2 arrives: the chunk of window 1, its action for tick 2
        assert d.outcome == 'command' and d.chunk_tick == 1
        assert d.action[0] == pytest.approx(0.002) and d.action[1] == pytest.approx(0.01)
        assert ctl.observe(async_window(clock, 2)) is None
        finish(ctl, runner)
        d = ctl.execute_tick(3)
        assert d.outcome == 'command' and d.chunk_tick == 2 and d.action[0] == pytest.approx(0.003)
        assert ctl.summary()['commands_sent'] == 2


def test_async_clock_tick_without_the_previous_window_holds_and_drops_the_chunks():
    with async_controller(async_tick_source='clock') as (ctl, runner, clock):
        d = ctl.execute_tick(5)
        assert d.outcome == 'late' and 'no trusted window yet' in d.message
        ctl.observe(async_window(clock, 1))
        finish(ctl, runner)
        assert ctl.execute_tick(2).outcome == 'command'
        # window 2 never came: tick 3 must not move on the chunk of window 1, nor may it resume
        d = ctl.execute_tick(3)
        assert d.outcome == 'late' and 'no window of tick 2' in d.message and d.action is None
        assert ctl.observe(async_window(clock, 3)) is None
        assert ctl.execute_tick(4).outcome == 'uncovered'  # chunk 1 was dropped; chunk 3 still running


def test_async_clock_untrusted_window_holds_at_once_and_the_next_tick_too():
    with async_controller(async_tick_source='clock') as (ctl, runner, clock):
        ctl.observe(async_window(clock, 1))
        finish(ctl, runner)
        assert ctl.execute_tick(2).outcome == 'command'
        stale = async_window(clock, 2)
        stale.valid = {'cam': [True, False], 'spec': [True, True]}
        d = ctl.observe(stale)
        assert d is not None and d.outcome == 'stale' and d.outcome.must_hold
        assert ctl.execute_tick(3).outcome == 'late'


def test_observe_is_only_for_asynchronous_execution():
    ctl, _, clock = make()
    with pytest.raises(FuseError, match='asynchronous'):
        ctl.observe(window(clock))
