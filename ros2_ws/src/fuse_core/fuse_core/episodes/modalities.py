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


MODALITIES = ('visual', 'tactile', 'audio')


def _combination_key(key, what: str) -> str:
    """'tactile, visual' -> 'visual,tactile' (FuSe's spelling); unknown names are named."""
    if not isinstance(key, str):
        raise EpisodeError(f'{what}: combination {key!r} must be a string such as "visual,tactile"')
    if key.strip() == 'simple':
        return 'simple'
    parts = [p.strip() for p in key.split(',')]
    unknown = [p for p in parts if p not in MODALITIES]
    if unknown or len(set(parts)) != len(parts):
        raise EpisodeError(f'{what}: unknown modality combination {key!r}; combinations join '
                           f'{list(MODALITIES)} with commas, e.g. {list(DESCRIBED_COMBINATIONS)}')
    return ','.join(m for m in MODALITIES if m in parts)


def _match_key(text: str) -> str:
    return ' '.join(text.split()).casefold()


@dataclass(frozen=True)
class ModalityTable:
    """The operator's modality-specific instructions, by instruction or task (a modalities file).

    `lookup` matches the episode's instruction first, then its task (case and runs of spaces
    do not matter); None when the file says nothing of either.
    """

    source: str
    entries: Dict[str, Dict[str, str]]  # the file's key -> {combination: text}

    def lookup(self, instruction: str = '', task: str = '') -> Optional[Dict[str, str]]:
        by_match = {_match_key(k): v for k, v in self.entries.items()}
        for wanted in (instruction, task):
            if wanted and _match_key(wanted) in by_match:
                return dict(by_match[_match_key(wanted)])
        return None


def parse_modality_table(values, source: str = 'modalities') -> ModalityTable:
    """{instruction or task: {combination: text}} -> a validated table; EpisodeError names the
    entry and key at fault."""
    if not isinstance(values, Mapping) or not values:
        raise EpisodeError(f'{source}: expected a mapping of instruction or task -> {{combination: text}}, '
                           f'got {type(values).__name__ if values else "nothing"}')
    entries: Dict[str, Dict[str, str]] = {}
    seen: Dict[str, str] = {}
    for key, texts in values.items():
        if not isinstance(key, str) or not key.strip():
            raise EpisodeError(f'{source}: entry {key!r}: the key must be an instruction or a task name')
        what = f'{source}: {key!r}'
        if not isinstance(texts, Mapping):
            raise EpisodeError(f'{what}: expected a mapping combination -> text, got {type(texts).__name__}')
        combos: Dict[str, str] = {}
        for combo, text in texts.items():
            name = _combination_key(combo, what)
            if name in combos:
                raise EpisodeError(f'{what}: combination {name!r} is given twice')
            combos[name] = text
        checked = check_modalities(combos, what)
        if not checked:
            raise EpisodeError(f'{what}: no text for any combination')
        match = _match_key(key)
        if match in seen:
            raise EpisodeError(f'{source}: {key!r} and {seen[match]!r} name the same instruction or task')
        seen[match] = key
        entries[key] = {c: checked[c] for c in DESCRIBED_COMBINATIONS if c in checked}
    return ModalityTable(source, entries)


def load_modality_table(path) -> ModalityTable:
    """Read a modalities file (YAML or JSON: instruction or task -> {combination: text})."""
    from pathlib import Path

    import yaml
    path = Path(path).expanduser()
    if not path.is_file():
        raise EpisodeError(f'modalities file {path}: not found')
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EpisodeError(f'modalities file {path}: not valid YAML/JSON: {exc}') from exc
    return parse_modality_table(values, f'modalities file {path}')
