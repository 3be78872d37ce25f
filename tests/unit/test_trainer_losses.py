"""FuSe's losses on tiny inputs against hand computations (models/trainer/losses.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip('torch', reason='the trainer needs PyTorch: ./setup.sh --train')

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.trainer import losses as L  # noqa: E402


def test_action_loss_is_the_mean_over_valid_steps_and_dims():
    pred = torch.tensor([[[1.0, 0.0], [2.0, 2.0]], [[0.0, 0.0], [5.0, 5.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])  # the last step is past the episode end
    # squared errors of valid steps: (1 + 0) + (4 + 1) + (1 + 1) = 8 over 3 steps x 2 dims
    assert float(L.action_loss(pred, target, mask)) == pytest.approx(8.0 / 6.0)
    assert float(L.action_loss(pred, target, torch.zeros(2, 2, dtype=torch.bool))) == 0.0


def test_grasp_loss_is_the_mean_over_frames_with_a_grasp_point():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    valid = torch.tensor([True, True, False])  # the last frame is after its episode's grasp
    # (1 + 4) + (1 + 1) = 7 over 2 frames x 2 coordinates
    assert float(L.grasp_loss(pred, target, valid)) == pytest.approx(7.0 / 4.0)
    assert float(L.grasp_loss(pred, target, torch.zeros(3, dtype=torch.bool))) == 0.0


def _ce(logits, label):
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_clip_loss_matches_a_hand_computation():
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    t = torch.tensor(2.0)
    # logits = obs @ text^T * 2 = [[1.2, 2.0], [1.6, 0.0]]
    rows = _ce([1.2, 2.0], 0) + _ce([1.6, 0.0], 1)
    cols = _ce([1.2, 1.6], 0) + _ce([2.0, 0.0], 1)
    expected = 0.5 * (rows / 2 + cols / 2)
    assert float(L.clip_loss(obs, text, t)) == pytest.approx(expected, rel=1e-6)


def test_latent_normalisation_adds_point_one_to_the_norm():
    x = torch.tensor([[3.0, 4.0]])
    assert L.normalise_latent(x).tolist()[0] == pytest.approx([3 / 5.1, 4 / 5.1])


def test_contrastive_loss_averages_valid_combinations_only():
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = {'simple': torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]),
            'tactile': torch.tensor([[0.0, 1.0], [1.0, 0.0], [9.0, 9.0]]),
            'audio': torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])}
    valid = {'simple': torch.tensor([True, True, True]),
             'tactile': torch.tensor([True, True, False]),
             'audio': torch.tensor([True, False, False])}  # one row: no negatives, left out
    t = torch.tensor(1.0)
    loss, parts = L.contrastive_loss(obs, text, valid, t)
    simple = float(L.clip_loss(obs, text['simple'], t))
    # tactile on rows 0, 1: logits [[0, 1], [1, 0]] -> every CE is log(1 + e) - 0 ... by hand:
    tactile = 0.5 * ((_ce([0.0, 1.0], 0) + _ce([1.0, 0.0], 1)) / 2 + (_ce([0.0, 1.0], 0) + _ce([1.0, 0.0], 1)) / 2)
    assert set(parts) == {'simple', 'tactile'}
    assert parts['tactile'] == pytest.approx(tactile, rel=1e-6)
    assert float(loss) == pytest.approx((simple + tactile) / 2, rel=1e-6)


def test_generative_loss_is_token_cross_entropy_over_valid_rows():
    # B=2, L=2, V=3
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                           [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]])
    ids = torch.tensor([[0, 1], [2, 0]])
    both = (_ce([2.0, 0.0, 0.0], 0) + _ce([0.0, 1.0, 0.0], 1) + _ce([0.0, 0.0, 3.0], 2) + _ce([1.0, 1.0, 1.0], 0)) / 4
    first = (_ce([2.0, 0.0, 0.0], 0) + _ce([0.0, 1.0, 0.0], 1)) / 2
    loss, parts = L.generative_loss(
        {'tactile': logits, 'audio': logits, 'visual': logits},
        {'tactile': ids, 'audio': ids, 'visual': ids},
        {'tactile': torch.tensor([True, True]), 'audio': torch.tensor([True, False]),
         'visual': torch.tensor([False, False])},
    )
    assert parts == pytest.approx({'tactile': both, 'audio': first}, rel=1e-6)
    assert float(loss) == pytest.approx((both + first) / 2, rel=1e-6)


def test_combinations_follow_the_modalities_the_data_has():
    assert L.MODALITY_COMBINATIONS.index('tactile') == 3
    assert L.allowed_combinations({'visual'}) == ('simple', 'visual')
    assert L.allowed_combinations({'visual', 'tactile'}) == ('simple', 'visual', 'tactile', 'visual,tactile')
    assert len(L.allowed_combinations({'visual', 'tactile', 'audio'})) == 8
    assert L.allowed_combinations({'visual', 'audio'}, L.GENERATIVE_COMBINATIONS) == (
        'visual', 'audio', 'visual,audio')
