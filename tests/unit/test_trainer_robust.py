"""Robust finetuning against its update equations on toy problems (models/trainer/robust.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch', reason='the trainer needs PyTorch: ./setup.sh --train')

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.trainer import robust as R  # noqa: E402


class Toy(torch.nn.Module):
    def __init__(self, w, extra=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
        if extra is not None:
            self.new = torch.nn.Parameter(torch.tensor(extra, dtype=torch.float64))


def test_l2sp_step_equals_sgd_on_loss_plus_the_pull_to_theta0():
    theta0 = {'w': torch.tensor([1.0, -2.0], dtype=torch.float64)}
    model = Toy([3.0, 0.5], extra=[7.0])  # 'new' has no theta0: never pulled
    x, y = torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    lam, lr = 0.3, 0.1
    loss = (model.w @ x - y) ** 2 + model.new.sum() * 0 + R.l2sp_penalty(model, theta0, lam)
    loss.backward()
    w = np.array([3.0, 0.5])
    grad = 2 * (w @ [0.5, 2.0] - 1.0) * np.array([0.5, 2.0]) + lam * (w - [1.0, -2.0])
    assert model.w.grad.numpy() == pytest.approx(grad)
    assert float(R.l2sp_penalty(model, theta0, lam).detach()) == pytest.approx(0.5 * lam * ((w - [1, -2]) ** 2).sum())
    with torch.no_grad():
        torch.optim.SGD(model.parameters(), lr=lr).step()
    assert model.w.detach().numpy() == pytest.approx(w - lr * grad)
    assert model.new.grad.numpy() == pytest.approx([0.0])


def test_wise_ft_interpolates_and_keeps_tensors_the_pretrained_model_lacks():
    ft = {'a': torch.tensor([2.0, 4.0]), 'new': torch.tensor([9.0]), 'count': torch.tensor(5)}
    pre = {'a': torch.tensor([0.0, 2.0]), 'count': torch.tensor(1), 'gone': torch.tensor([1.0])}
    assert R.wise_ft(ft, pre, 0.25)['a'].tolist() == pytest.approx([0.5, 2.5])
    assert R.wise_ft(ft, pre, 0.0)['a'].tolist() == [0.0, 2.0]
    assert R.wise_ft(ft, pre, 1.0)['a'].tolist() == [2.0, 4.0]
    mixed = R.wise_ft(ft, pre, 0.5)
    assert mixed['new'].tolist() == [9.0] and int(mixed['count']) == 5 and 'gone' not in mixed
    with pytest.raises(ValueError, match='alpha'):
        R.wise_ft(ft, pre, 1.5)


def _spd_sgd(prev, grad, theta0, lam, lr=1.0):
    model = Toy(prev)
    spd = R.SelectiveProjectionDecay(model.named_parameters(), {'w': torch.tensor(theta0, dtype=torch.float64)}, lam)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.w.grad = torch.tensor(grad, dtype=torch.float64)
    spd.before_step()
    opt.step()
    spd.after_step()
    return model.w.detach().numpy(), spd.applied


def test_spd_decays_only_the_growth_of_a_step_that_moves_away():
    # theta_{t-1} = [1, 0], theta0 = 0, g = [-1, 0]: c = -1 < 0; SGD gives [2, 0];
    # gamma grows 1 -> 2: theta <- [2, 0] - 0.5 * (2 - 1) / 2 * [2, 0] = [1.5, 0]
    w, applied = _spd_sgd([1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], 0.5)
    assert w == pytest.approx([1.5, 0.0]) and applied == 1
    # a step toward theta0 (c > 0) is left as the optimiser made it
    w, applied = _spd_sgd([1.0, 0.0], [0.5, 0.0], [0.0, 0.0], 0.5)
    assert w == pytest.approx([0.5, 0.0]) and applied == 0


def test_spd_on_adam_matches_the_update_equations_over_many_steps():
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=4)
    target = theta0 + rng.normal(size=4) * 3  # the task pulls away from theta0
    lr, lam, b1, b2, eps = 0.05, 0.7, 0.9, 0.999, 1e-8
    model = Toy(theta0 + rng.normal(size=4) * 0.1)
    spd = R.SelectiveProjectionDecay(model.named_parameters(), {'w': torch.tensor(theta0)}, lam)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(b1, b2), eps=eps)
    th, m, v = model.w.detach().numpy().copy(), np.zeros(4), np.zeros(4)
    plain, pm, pv = th.copy(), np.zeros(4), np.zeros(4)
    decayed = 0
    for t in range(1, 31):
        # reference: Adam by its equations, then SPD by its equations
        g = 2 * (th - target)
        pg = 2 * (plain - target)
        pm, pv = b1 * pm + (1 - b1) * pg, b2 * pv + (1 - b2) * pg * pg
        plain = plain - lr * (pm / (1 - b1 ** t)) / (np.sqrt(pv / (1 - b2 ** t)) + eps)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        new = th - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        if g @ (th - theta0) < 0:
            gt, gp = np.linalg.norm(new - theta0), np.linalg.norm(th - theta0)
            new = new - lam * max(0.0, gt - gp) / gt * (new - theta0)
            decayed += 1
        th = new
        opt.zero_grad()
        ((model.w - torch.tensor(target)) ** 2).sum().backward()
        spd.before_step()
        opt.step()
        spd.after_step()
        assert model.w.detach().numpy() == pytest.approx(th, rel=1e-9, abs=1e-12)
    assert decayed > 10
    # plain Adam (same equations, no decay) ends further from theta0
    assert np.linalg.norm(th - theta0) < 0.9 * np.linalg.norm(plain - theta0)


def test_anchor_takes_only_parameters_with_the_same_name_and_shape():
    model = Toy([1.0, 2.0], extra=[3.0])
    got = R.anchor(model, {'w': torch.zeros(2), 'new': torch.zeros(3)})
    assert set(got) == {'w'}


def test_tpgm_projects_each_tensor_back_inside_its_radius():
    model = Toy([3.0, 4.0], extra=[10.0])  # 'new' has no theta0: never projected
    theta0 = {'w': torch.tensor([0.0, 0.0], dtype=torch.float64)}
    assert R.project_tpgm(model.named_parameters(), theta0, 10.0) == 0  # ||dev|| = 5 <= 10: unchanged
    assert model.w.detach().tolist() == [3.0, 4.0]
    assert R.project_tpgm(model.named_parameters(), theta0, 2.5) == 1  # theta0 + dev / (5 / 2.5)
    assert model.w.detach().numpy() == pytest.approx([1.5, 2.0])
    assert model.new.detach().tolist() == [10.0]
    with pytest.raises(ValueError, match='radius'):
        R.project_tpgm(model.named_parameters(), theta0, 0.0)
