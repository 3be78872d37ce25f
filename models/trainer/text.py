"""A word-level `tokenizers` tokenizer built from the dataset's instructions (decodes, for the generative head)."""

from __future__ import annotations

import json
import re
from typing import Iterable, List, Optional

PAD, EOS, UNK = '<pad>', '</s>', '<unk>'
_WORDS = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> List[str]:
    """What the tokenizer's pre-tokeniser splits (lower-cased words and single punctuation marks)."""
    return _WORDS.findall(text.lower())


def build_tokenizer_json(texts: Iterable[str], capacity: int, base: Optional[str] = None) -> str:
    """tokenizer.json text: pad 0, end of sequence 1, unknown 2, then every word of `texts`.

    With `base` (a pretrained run's tokenizer.json) its words keep their ids and new words take
    the next free ids, so a finetuned model's embeddings line up with the pretrained ones.
    `capacity` is the vocabulary size of the model (fixed, so finetuning keeps the shapes).
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    if base is not None:
        vocab = dict(json.loads(base)['model']['vocab'])
    for text in texts:
        for w in words(text):
            if w not in vocab:
                vocab[w] = len(vocab)
    if len(vocab) > capacity:
        raise ValueError(f'the instructions have {len(vocab)} distinct tokens, more than the '
                         f'vocabulary capacity {capacity} (raise --vocab-size)')
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single=f'$A {EOS}', special_tokens=[(EOS, 1)])
    tok.add_special_tokens([PAD, EOS, UNK])
    return tok.to_str()
