"""FuSe's training losses: action chunk MSE, CLIP-style contrastive and generative (docs/FACTS.md 6)."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch.nn import functional as F

from .combos import (  # noqa: F401  (re-exported)
    CONTRASTIVE_COMBINATIONS,
    GENERATIVE_COMBINATIONS,
    MODALITY_COMBINATIONS,
    allowed_combinations,
    combination_modalities,
)


def action_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid actions of the chunk (Octo/FuSe's MSE action head).

    pred, target: (B, H, A) in normalised units (dims with a normalisation mask are
    (a - mean) / std; the gripper is left as it is, binarised to 0/1 in the targets).
    mask: (B, H) bool, False for chunk steps past the end of the episode.
    The mean runs over every dimension of every valid step: sum(m * (p - t)^2) / (sum(m) * A).
    """
    m = mask.to(pred.dtype).unsqueeze(-1)
    denom = (m.sum() * pred.shape[-1]).clamp(min=1.0)
    return ((pred - target) ** 2 * m).sum() / denom


def grasp_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the grasp head over the frames that have a grasp point.

    pred, target: (B, 2) normalised base-frame (x, y); valid: (B,) bool. sum(v * (p - t)^2) /
    (sum(v) * 2); 0 (with a gradient) when no frame of the batch has one.
    """
    v = valid.to(pred.dtype).unsqueeze(-1)
    return ((pred - target) ** 2 * v).sum() / (v.sum() * pred.shape[-1]).clamp(min=1.0)


def normalise_latent(x: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """x / (||x||_2 + eps): FuSe's CLIP head normalisation (norm + 0.1)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def clip_loss(obs_latent: torch.Tensor, text_latent: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over the batch (CLIP) for one combination.

    obs_latent, text_latent: (N, E) already normalised; logits = obs @ text^T * temperature;
    row i's positive is column i. Returns (CE(logits) + CE(logits^T)) / 2.
    """
    logits = obs_latent @ text_latent.t() * temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def contrastive_loss(
    obs_latent: torch.Tensor,
    text_latents: Mapping[str, torch.Tensor],
    valid: Mapping[str, torch.Tensor],
    temperature: torch.Tensor,
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Average over combinations of the CLIP loss between the observation and each instruction.

    obs_latent: (B, E) normalised latent of the pooled language readouts (run without an
    instruction); text_latents[c]: (B, E) normalised latent of combination c's instruction;
    valid[c]: (B,) bool. Each combination uses only its valid rows; a combination with fewer
    than two valid rows has no negatives and is left out. Returns (loss, per-combination values).
    """
    terms, parts = [], {}
    for combo, text in text_latents.items():
        v = valid[combo]
        if int(v.sum()) < 2:
            continue
        term = clip_loss(obs_latent[v], text[v], temperature)
        terms.append(term)
        parts[combo] = float(term.detach())
    if not terms:
        return obs_latent.sum() * 0.0, parts
    return torch.stack(terms).mean(), parts


def token_cross_entropy(logits: torch.Tensor, target_ids: torch.Tensor, valid: torch.Tensor) -> Optional[torch.Tensor]:
    """Per-token cross-entropy of (B, L, V) logits against (B, L) ids, mean over the valid rows.

    Every position counts (padding included: the head learns where the description ends);
    rows whose combination is invalid for the episode are left out. None when no row is valid.
    """
    if int(valid.sum()) == 0:
        return None
    lg, ids = logits[valid], target_ids[valid]
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), ids.reshape(-1))


def generative_loss(
    logits: Mapping[str, torch.Tensor],
    target_ids: Mapping[str, torch.Tensor],
    valid: Mapping[str, torch.Tensor],
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Average over combinations of the token cross-entropy (FuSe's generative head)."""
    terms, parts = [], {}
    for combo, lg in logits.items():
        term = token_cross_entropy(lg, target_ids[combo], valid[combo])
        if term is None:
            continue
        terms.append(term)
        parts[combo] = float(term.detach())
    if not terms:
        any_logits = next(iter(logits.values()))
        return any_logits.sum() * 0.0, parts
    return torch.stack(terms).mean(), parts
