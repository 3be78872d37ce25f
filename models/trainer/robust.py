"""Robust finetuning from a pretrained checkpoint: L2-SP, WiSE-FT, selective projection decay, TPGM.

The update rules are those of docs/FACTS.md section 7. theta0 is the pretrained value of each
parameter that the pretrained checkpoint has with the same name and shape; parameters the
finetuned model adds (e.g. the encoders of new sensors) have no theta0 and are left alone by
all three methods.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Tuple

import torch
from torch import nn

ROBUST_METHODS = ('none', 'l2sp', 'spd', 'wise')


#: Parameters that only an auxiliary loss trains: a run with that loss off leaves them at their
#: random initialisation. lang_readout feeds both heads (trained when either loss is on).
AUX_ONLY = {'contrastive': ('clip_obs_pool', 'clip_text_pool', 'clip_obs_proj', 'clip_text_proj', 'temperature'),
            'generative': ('gen_class', 'gen_pool', 'gen_vocab')}
BOTH_AUX = ('lang_readout',)


def trained_state(pretrained: Mapping[str, torch.Tensor], train_cfg: Mapping) -> Tuple[Dict[str, torch.Tensor], list]:
    """The pretrained state without the parameters its run never trained, and their names.

    A head whose loss weight was 0 in the pretrained run holds its random initialisation: as a
    "pretrained" value, L2-SP and SPD would pull the finetuned head back to noise and WiSE-FT
    would mix noise into it. Left out, those heads count as new (initialised, never anchored).
    """
    off = [loss for loss in AUX_ONLY if not float(train_cfg.get(f'{loss}_weight', 1.0)) > 0]
    prefixes = tuple(p for loss in off for p in AUX_ONLY[loss]) + (BOTH_AUX if len(off) == len(AUX_ONLY) else ())
    if not prefixes:
        return dict(pretrained), []
    dropped = sorted(k for k in pretrained if k.split('.')[0] in prefixes)
    return {k: v for k, v in pretrained.items() if k.split('.')[0] not in prefixes}, dropped


def anchor(model: nn.Module, pretrained: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """theta0 for every trainable parameter of `model` that `pretrained` has (same name and shape)."""
    out = {}
    for name, p in model.named_parameters():
        ref = pretrained.get(name)
        if ref is not None and tuple(ref.shape) == tuple(p.shape):
            out[name] = ref.detach().to(device=p.device, dtype=p.dtype).clone()
    return out


def l2sp_penalty(model: nn.Module, theta0: Mapping[str, torch.Tensor], lam: float) -> torch.Tensor:
    """(lam / 2) * sum ||theta - theta0||^2 over the anchored parameters (L2-SP)."""
    total = None
    for name, p in model.named_parameters():
        ref = theta0.get(name)
        if ref is None or not p.requires_grad:
            continue
        term = ((p - ref) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros((), device=next(model.parameters()).device)
    return 0.5 * lam * total


def wise_ft(
    finetuned: Mapping[str, torch.Tensor], pretrained: Mapping[str, torch.Tensor], alpha: float
) -> Dict[str, torch.Tensor]:
    """WiSE-FT: theta = (1 - alpha) * theta0 + alpha * theta_ft for every floating tensor both have.

    alpha = 1 is the finetuned model, alpha = 0 the pretrained one (where it has the tensor);
    tensors only the finetuned model has, and integer buffers, are kept from it.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'WiSE-FT alpha must be in [0, 1], got {alpha}')
    out = {}
    for name, ft in finetuned.items():
        ref = pretrained.get(name)
        if ref is not None and ref.shape == ft.shape and ft.is_floating_point():
            out[name] = (1.0 - alpha) * ref.to(ft) + alpha * ft
        else:
            out[name] = ft.clone()
    return out


class SelectiveProjectionDecay:
    """Selective projection decay (Tian, Huang, Kira, NeurIPS 2024) on top of any optimiser step.

    Per parameter tensor ("layer"), after the ordinary step theta_{t-1} -> theta_t with gradient
    g_t: c_t = g_t . (theta_{t-1} - theta0). Only where c_t < 0 (the step moves the layer away
    from theta0) theta_t <- theta_t - lam * max(0, gamma_t - gamma_{t-1}) / gamma_t * (theta_t - theta0),
    gamma = ||theta - theta0||_2: only the growth of the deviation is decayed.

    Use: spd.before_step() (records theta_{t-1}), optimizer.step(), spd.after_step().
    """

    def __init__(self, params: Iterable[Tuple[str, nn.Parameter]], theta0: Mapping[str, torch.Tensor], lam: float):
        if lam < 0:
            raise ValueError(f'SPD strength must be >= 0, got {lam}')
        self.lam = float(lam)
        self.items = [(n, p, theta0[n]) for n, p in params if n in theta0]
        self._prev: Dict[str, torch.Tensor] = {}
        self.applied = 0  # layers decayed in the last step
        self.steps = 0

    @torch.no_grad()
    def before_step(self) -> None:
        self._prev = {n: p.detach().clone() for n, p, _ in self.items}

    @torch.no_grad()
    def after_step(self) -> None:
        applied = 0
        for name, p, ref in self.items:
            if p.grad is None or name not in self._prev:
                continue
            prev = self._prev[name]
            c = torch.sum(p.grad * (prev - ref))
            if c >= 0:
                continue
            dev = p - ref
            gamma_t = dev.norm()
            gamma_prev = (prev - ref).norm()
            if gamma_t <= 0:
                continue
            ratio = torch.clamp(gamma_t - gamma_prev, min=0.0) / gamma_t
            p.sub_(self.lam * ratio * dev)
            applied += 1
        self.applied = applied
        self.steps += 1
        self._prev = {}


@torch.no_grad()
def project_tpgm(params: Iterable[Tuple[str, nn.Parameter]], theta0: Mapping[str, torch.Tensor], gamma: float) -> int:
    """Projected gradient (TPGM) per parameter tensor: keep ||theta - theta0|| <= gamma.

    theta <- theta0 + (theta - theta0) / max(1, ||theta - theta0|| / gamma); returns how many
    tensors were projected. Run after each optimiser step.
    """
    if not gamma > 0:
        raise ValueError(f'TPGM radius must be > 0, got {gamma}')
    projected = 0
    for name, p in params:
        ref = theta0.get(name)
        if ref is None:
            continue
        dev = p - ref
        scale = max(1.0, float(dev.norm()) / gamma)
        if scale > 1.0:
            p.copy_(ref + dev / scale)
            projected += 1
    return projected


def load_pretrained_state(path) -> Tuple[Dict[str, torch.Tensor], Optional[dict]]:
    """A trainer checkpoint file -> (model state dict, its saved config)."""
    blob = torch.load(path, map_location='cpu', weights_only=False)
    if isinstance(blob, dict) and 'model' in blob:
        return blob['model'], blob.get('config')
    raise ValueError(f'{path}: not a trainer checkpoint (no "model" entry)')
