"""Instruction tokenizers: the built-in hash_words and Hugging Face tokenizer.json files."""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import Tuple

import numpy as np

from fuse_core.bundle.manifest import LanguageSpec
from fuse_core.errors import BundleError, FuseError

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


class InstructionError(FuseError, ValueError):
    """An instruction cannot be used: empty, too long, or not encodable."""


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a: a stable hash (Python's hash() is salted per process)."""
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


class Tokenizer(abc.ABC):
    """Text -> (input_ids, attention_mask), both int64 [1, max_length]."""

    def __init__(self, max_length: int, max_chars: int, pad_id: int) -> None:
        self.max_length, self.max_chars, self.pad_id = max_length, max_chars, pad_id

    @abc.abstractmethod
    def ids(self, text: str) -> list:
        ...

    def __call__(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
        if not isinstance(text, str):
            raise InstructionError(f'instruction must be a string, got {type(text).__name__}')
        stripped = text.strip()
        if not stripped:
            raise InstructionError('instruction is empty')
        if len(stripped) > self.max_chars:
            raise InstructionError(
                f'instruction has {len(stripped)} characters, more than the limit of {self.max_chars}'
            )
        ids = self.ids(stripped)
        if not ids:
            raise InstructionError(f'instruction {stripped!r} has no tokens')
        if len(ids) > self.max_length:
            raise InstructionError(
                f"instruction is {len(ids)} tokens long, more than the model's "
                f'max_length {self.max_length}: {stripped!r}'
            )
        input_ids = np.full((1, self.max_length), self.pad_id, dtype=np.int64)
        mask = np.zeros((1, self.max_length), dtype=np.int64)
        input_ids[0, : len(ids)] = ids
        mask[0, : len(ids)] = 1
        return input_ids, mask


class HashWordsTokenizer(Tokenizer):
    """Lower-cased words hashed into a fixed vocabulary; numpy only, no vocabulary file.

    Words are runs of [a-z0-9] (with inner apostrophes); punctuation is dropped. Word w gets
    id 2 + fnv1a_32(utf-8 w) % (vocab_size - 2); 0 is padding and 1 ends the sequence (eos).
    """

    PAD, EOS = 0, 1

    def __init__(self, vocab_size: int, max_length: int, max_chars: int) -> None:
        super().__init__(max_length, max_chars, self.PAD)
        self.vocab_size = vocab_size

    def words(self, text: str) -> list:
        return _WORD.findall(text.lower())

    def ids(self, text: str) -> list:
        words = self.words(text)
        if not words:
            return []
        return [2 + fnv1a_32(w.encode('utf-8')) % (self.vocab_size - 2) for w in words] + [self.EOS]


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer.json (e.g. T5's SentencePiece), special tokens added."""

    def __init__(self, path: Path, max_length: int, max_chars: int, pad_id: int) -> None:
        super().__init__(max_length, max_chars, pad_id)
        try:
            from tokenizers import Tokenizer as _HF
        except ImportError as exc:
            raise BundleError(
                f'the bundle needs the `tokenizers` package (requirements/runtime.txt) to read {path.name}'
            ) from exc
        try:
            self._tok = _HF.from_file(str(path))
        except Exception as exc:  # the library raises its own untyped exceptions
            raise BundleError(f'{path}: not a readable tokenizer.json: {exc}') from exc
        # Padding and truncation are ours: the length check must see the untruncated ids.
        self._tok.no_padding()
        self._tok.no_truncation()

    def ids(self, text: str) -> list:
        return list(self._tok.encode(text, add_special_tokens=True).ids)

    def decode(self, ids) -> str:
        """Token ids -> text, special tokens (padding, end of sequence) skipped."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)


def make_tokenizer(spec: LanguageSpec, bundle_dir: Path) -> Tokenizer:
    t = spec.tokenizer
    if t.type == 'hash_words':
        return HashWordsTokenizer(int(t.vocab_size), spec.max_length, spec.max_chars)
    if t.type == 'hf_tokenizers':
        return HFTokenizer(Path(bundle_dir) / t.file, spec.max_length, spec.max_chars, t.pad_id)
    raise BundleError(f'unknown tokenizer type {t.type!r}')
