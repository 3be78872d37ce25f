"""FuSe's modality combinations (docs/FACTS.md section 6); no torch needed."""

from __future__ import annotations

from typing import Tuple

#: FuSe's modality combinations in order (index = the generative head's modality_index), as the
#: checkpoint exporter names them.
from ..exporter.spec import MODALITY_COMBINATIONS  # noqa: E402

#: Contrastive: every combination but the unused ''; generative: also without 'simple'.
CONTRASTIVE_COMBINATIONS = tuple(c for c in MODALITY_COMBINATIONS if c)
GENERATIVE_COMBINATIONS = tuple(c for c in MODALITY_COMBINATIONS if c and c != 'simple')


def combination_modalities(combo: str) -> frozenset:
    """'visual,tactile' -> {'visual', 'tactile'}; 'simple' -> every modality."""
    if combo == 'simple':
        return frozenset({'visual', 'tactile', 'audio'})
    return frozenset(m for m in combo.split(',') if m)


def allowed_combinations(modalities, combos=MODALITY_COMBINATIONS) -> Tuple[str, ...]:
    """The combinations a model with these modalities can be trained on ('simple' always)."""
    have = frozenset(modalities)
    return tuple(c for c in combos if c and (c == 'simple' or combination_modalities(c) <= have))
