"""Chunk execution strategies, gripper binarisation and the action safety check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fuse_core.errors import ConfigError
from fuse_core.execution import (
    ActionRejectedError,
    ChunkExecutor,
    ChunkRefusedError,
    GripperBinarizer,
    RecedingHorizon,
    TemporalEnsemble,
    check_actions,
    make_strategy,
)


def chunk(*values):
    return np.array(values, dtype=np.float64)[:, None]  # (horizon, 1)


def test_receding_horizon_takes_first_action():
    c = np.arange(28, dtype=float).reshape(4, 7)
    out = RecedingHorizon().step(c, 0)
    assert out.tolist() == c[0].tolist()
    out[0] = 99
    assert c[0, 0] == 0  # the chunk is not modified through the result


def test_temporal_ensemble_by_hand():
    ens = TemporalEnsemble(horizon=3, k=0.5)
    w0, w1, w2 = 1.0, math.exp(-0.5), math.exp(-1.0)
    assert ens.step(chunk(1, 2, 3), 0)[0] == pytest.approx(1.0)
    # tick 1: chunk 0 predicted 2 for it, chunk 1 predicts 10; the older one has weight exp(0)
    assert ens.step(chunk(10, 20, 30), 1)[0] == pytest.approx((w0 * 2 + w1 * 10) / (w0 + w1))
    assert ens.step(chunk(100, 200, 300), 2)[0] == pytest.approx(
        (w0 * 3 + w1 * 20 + w2 * 100) / (w0 + w1 + w2)
    )
    # tick 3: chunk 0 (tick 0) has no prediction left for tick 3 and drops out
    assert ens.step(chunk(1000, 2000, 3000), 3)[0] == pytest.approx(
        (w0 * 30 + w1 * 200 + w2 * 1000) / (w0 + w1 + w2)
    )
    # the numbers written out once, so a wrong weight order cannot hide behind the formula
    assert (w0 * 30 + w1 * 200 + w2 * 1000) / (w0 + w1 + w2) == pytest.approx(262.96, abs=0.01)


def test_temporal_ensemble_k0_is_mean_and_gap_aligns_by_tick():
    ens = TemporalEnsemble(horizon=4, k=0.0)
    ens.step(chunk(1, 2, 3, 4), 10)
    # tick 11 was skipped: at tick 12 chunk 10 contributes its third action (3), not its second
    assert ens.step(chunk(7, 8, 9, 10), 12)[0] == pytest.approx((3 + 7) / 2)


def test_temporal_ensemble_resets_when_time_goes_back():
    ens = TemporalEnsemble(horizon=3, k=0.0)
    ens.step(chunk(1, 2, 3), 5)
    assert ens.step(chunk(50, 60, 70), 0)[0] == pytest.approx(50)


def test_temporal_ensemble_multi_dim():
    ens = TemporalEnsemble(horizon=2, k=1.0)
    ens.step(np.array([[0.0, 1.0], [2.0, 3.0]]), 0)
    out = ens.step(np.array([[4.0, 5.0], [6.0, 7.0]]), 1)
    w = np.array([1.0, math.exp(-1.0)])
    np.testing.assert_allclose(out, (w[0] * np.array([2.0, 3.0]) + w[1] * np.array([4.0, 5.0])) / w.sum())


def test_make_strategy_rejects_unknown():
    assert isinstance(make_strategy('receding_horizon', 4), RecedingHorizon)
    assert isinstance(make_strategy('temporal_ensemble', 4, 0.1), TemporalEnsemble)
    with pytest.raises(ConfigError, match="execution 'average'"):
        make_strategy('average', 4)
    with pytest.raises(ConfigError, match='ensemble_k'):
        TemporalEnsemble(4, -1.0)


def test_gripper_binarised_at_half():
    g = GripperBinarizer()
    # 0.5 itself is open: fuse_core.gripper's one rule, the safety filter's (test_safety).
    assert [g(v) for v in (0.9, 0.51, 0.5, 0.2, 0.7, -0.3)] == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_gripper_sticky_holds_a_change():
    g = GripperBinarizer(sticky_steps=3)
    seq = [0.9, 0.1, 0.9, 0.9, 0.9, 0.1]
    # closes at tick 1 and holds closed for ticks 2 and 3 although the model says open;
    # reopens at tick 4 and holds that through tick 5
    assert [g(v) for v in seq] == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    g.reset()
    assert g(0.1) == 0.0


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf, 50.0, -1.5])
def test_check_actions_refuses(bad):
    c = np.zeros((4, 7))
    c[2, 6] = bad
    with pytest.raises(ActionRejectedError, match=r'\[2, 6\]'):
        check_actions(c, max_abs=1.0)


def test_check_actions_accepts_plausible():
    check_actions(np.full((4, 7), 0.99), max_abs=1.0)


def test_check_actions_limits_motion_but_only_requires_a_finite_gripper():
    c = np.zeros((4, 7))
    c[0, 6] = -3.0
    check_actions(c, max_abs=1.0, gripper_index=6)
    c[1, 2] = 1.5
    with pytest.raises(ActionRejectedError, match=r'\[1, 2\]'):
        check_actions(c, max_abs=1.0, gripper_index=6)
    c[1, 2] = 0.0
    c[3, 6] = np.nan
    with pytest.raises(ActionRejectedError, match='non-finite'):
        check_actions(c, max_abs=1.0, gripper_index=6)


# --- asynchronous chunk execution ------------------------------------------------------------

def ramp(tick, horizon=4, offset=0.0):
    """A chunk whose action for tick t is t + offset (so every pick names its source tick)."""
    return np.array([[tick + i + offset] for i in range(horizon)], dtype=np.float64)


def test_async_skips_the_steps_the_delay_overtook():
    ex = ChunkExecutor(horizon=4)
    # computed from tick 10, arrives at tick 12: its first two actions are overtaken
    assert ex.add(ramp(10), obs_tick=10, now_tick=12) == 2
    assert ex.action_at(12)[0][0] == 12.0
    assert ex.action_at(13)[0][0] == 13.0
    assert ex.remaining(13) == 0


def test_async_delay_is_per_chunk_not_a_running_maximum():
    ex = ChunkExecutor(horizon=6)
    assert ex.add(ramp(0, 6), 0, 4) == 4  # a warm-up spike
    assert ex.add(ramp(4, 6, offset=100), 4, 5) == 1  # the next chunk is fast again
    # the fast chunk is aligned by its own delay: tick 5 uses its action index 1
    assert ex.action_at(5)[0][0] == 105.0


def test_async_no_chunk_means_hold_with_reason_and_no_extrapolation():
    ex = ChunkExecutor(horizon=4)
    action, why = ex.action_at(0)
    assert action is None and 'no action chunk covers tick 0' in why
    ex.add(ramp(0), 0, 1)
    assert ex.action_at(3)[0][0] == 3.0
    action, why = ex.action_at(4)  # past the chunk's last action: hold, not the last action again
    assert action is None and 'ended at tick 3' in why and 'extrapolate' in why
    assert ex.action_at(5)[0] is None


def test_async_refuses_future_and_overtaken_chunks_and_counts_them():
    ex = ChunkExecutor(horizon=4)
    with pytest.raises(ChunkRefusedError, match='future'):
        ex.add(ramp(9), obs_tick=9, now_tick=8)
    with pytest.raises(ChunkRefusedError, match='overtaken'):
        ex.add(ramp(0), obs_tick=0, now_tick=4)
    assert ex.refused == 2 and ex.action_at(4)[0] is None
    ex.add(ramp(5), 5, 6)
    with pytest.raises(ChunkRefusedError, match='older than the newest'):
        ex.add(ramp(4), 4, 6)
    assert ex.refused == 3


def test_async_latest_only():
    ex = ChunkExecutor(horizon=4, aggregate='latest')
    ex.add(ramp(0), 0, 1)
    ex.add(ramp(1, offset=100), 1, 2)
    assert ex.action_at(2)[0][0] == 102.0


def test_async_blend_by_hand():
    ex = ChunkExecutor(horizon=4, aggregate='blend', blend_new=0.7)
    ex.add(ramp(0), 0, 1)                 # predicts 3 for tick 3
    ex.add(ramp(1, offset=10), 1, 2)      # predicts 13
    ex.add(ramp(2, offset=100), 2, 3)     # predicts 103
    value = ex.action_at(3)[0][0]
    assert value == pytest.approx(0.3 * (0.3 * 3 + 0.7 * 13) + 0.7 * 103)
    assert value == pytest.approx(75.1)


def test_async_ensemble_matches_octo_weights():
    ex = ChunkExecutor(horizon=4, aggregate='ensemble', k=0.5)
    ex.add(ramp(0), 0, 1)
    ex.add(ramp(1, offset=10), 1, 2)
    w = np.exp(-0.5 * np.arange(2))
    assert ex.action_at(2)[0][0] == pytest.approx((w[0] * 2 + w[1] * 12) / w.sum())


def test_async_old_chunks_drop_out_and_time_going_back_resets():
    ex = ChunkExecutor(horizon=3, aggregate='blend')
    ex.add(ramp(0, 3), 0, 1)
    ex.add(ramp(2, 3, offset=10), 2, 3)
    assert ex.action_at(3)[0][0] == 13.0  # chunk 0 covers ticks 0..2 only: not blended in
    action, why = ex.action_at(1)
    assert action is None and 'before the newest chunk' in why
    assert ex.newest_tick is None


def test_async_executor_rejects_bad_settings_and_shapes():
    with pytest.raises(ConfigError, match='aggregate'):
        ChunkExecutor(4, aggregate='mean')
    with pytest.raises(ConfigError, match='blend_new'):
        ChunkExecutor(4, aggregate='blend', blend_new=0.0)
    with pytest.raises(ValueError, match='expected \\[4, dim\\]'):
        ChunkExecutor(4).add(np.zeros((3, 7)), 0, 0)
