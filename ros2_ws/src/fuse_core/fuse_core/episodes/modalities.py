"""FuSe's modality-specific instructions of an episode: what its object looks, feels and sounds like.

An episode may carry one instruction per FuSe modality combination (docs/FACTS.md section 6),
e.g. tactile: "pick up the cube that feels soft"; a combination without a text is invalid for
that episode (FuSe's validity mask). `simple` is the episode's own instruction. They are
composed from a description of the task's object (`ObjectDescription`): the twin's tasks give
one per episode, an operator may give one on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

from fuse_core.errors import EpisodeError

#: FuSe's modality combinations in its order (index = position in FuSe's `all_lang_info`).
FUSE_COMBINATIONS: Tuple[str, ...] = ('simple', '', 'visual', 'tactile', 'audio', 'visual,tactile',
                                      'visual,audio', 'tactile,audio', 'visual,tactile,audio')
#: The combinations an episode's descriptions may name (all but the unused '').
DESCRIBED_COMBINATIONS: Tuple[str, ...] = tuple(c for c in FUSE_COMBINATIONS if c)
MAX_TEXT_CHARS = 256


def check_modalities(values: Optional[Mapping[str, str]], what: str = 'modalities') -> Dict[str, str]:
    """Validated {combination: text}; empty texts are dropped; EpisodeError names what is wrong."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise EpisodeError(f'{what}: expected a mapping combination -> text, got {type(values).__name__}')
    out: Dict[str, str] = {}
    for key, text in values.items():
        if key not in DESCRIBED_COMBINATIONS:
            raise EpisodeError(f'{what}: unknown modality combination {key!r}; known: '
                               f'{list(DESCRIBED_COMBINATIONS)}')
        if not isinstance(text, str):
            raise EpisodeError(f'{what}[{key!r}]: the text must be a string, got {type(text).__name__}')
        text = text.strip()
        if len(text) > MAX_TEXT_CHARS:
            raise EpisodeError(f'{what}[{key!r}]: {len(text)} characters, at most {MAX_TEXT_CHARS}')
        if text:
            out[key] = text
    return out


def from_lists(combinations: Sequence[str], texts: Sequence[str], what: str = 'modalities') -> Dict[str, str]:
    """The parallel arrays of TaskState / ResetTask -> a validated mapping."""
    combinations, texts = list(combinations), list(texts)
    if len(combinations) != len(texts):
        raise EpisodeError(f'{what}: {len(combinations)} combinations but {len(texts)} texts')
    if len(set(combinations)) != len(combinations):
        raise EpisodeError(f'{what}: a combination is named twice in {combinations}')
    return check_modalities(dict(zip(combinations, texts)), what)


def to_lists(values: Mapping[str, str]) -> Tuple[list, list]:
    """A mapping -> (combinations, texts) in FuSe's order, for the messages."""
    keys = [c for c in DESCRIBED_COMBINATIONS if c in values]
    return keys, [values[k] for k in keys]


@dataclass(frozen=True)
class ObjectDescription:
    """What the task's object is like, per modality ('' = that modality says nothing of it).

    `template` holds the instruction with `{}` where the object phrase goes ("pick up the {}");
    `looks` is an adjective ("red"), `feels` one ("soft"), `sounds` a verb phrase ("sounds
    dull", "beeps").
    """

    template: str
    noun: str
    looks: str = ''
    feels: str = ''
    sounds: str = ''

    def phrase(self, modalities: Sequence[str]) -> str:
        """'red cube that feels soft and sounds dull' for (visual, tactile, audio); '' if any is empty."""
        parts = {'visual': self.looks, 'tactile': self.feels, 'audio': self.sounds}
        if any(not parts[m] for m in modalities):
            return ''
        head = f'{self.looks} {self.noun}' if 'visual' in modalities else self.noun
        tail = []
        if 'tactile' in modalities:
            tail.append(f'feels {self.feels}')
        if 'audio' in modalities:
            tail.append(self.sounds)
        return head + (f' that {" and ".join(tail)}' if tail else '')

    def instructions(self) -> Dict[str, str]:
        """One instruction per combination but `simple` (the episode's own instruction)."""
        if '{}' not in self.template:
            raise EpisodeError(f'object description template {self.template!r} has no {{}} for the object')
        out = {}
        for combo in DESCRIBED_COMBINATIONS:
            if combo == 'simple':
                continue
            phrase = self.phrase(combo.split(','))
            if phrase:
                out[combo] = self.template.format(phrase)
        return check_modalities(out, 'object description')
