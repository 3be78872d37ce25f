"""The episodes' modality-specific instructions in each format's layout (numpy-free, no dataset library).

* LeRobotDataset: `meta/fuse_instructions.json`, as the project's trainer reads it
  (models/trainer/dataset.py): {"episodes": {"<episode_index>": {"<combination>": "text"}}},
  episode_index in export order; written only when some episode has descriptions.
* RLDS: FuSe's own layout for `language_key='all_lang_list'`: every step carries
  `all_lang_0` .. `all_lang_8`, the instruction of each combination in FuSe's order ('' = not
  valid for that episode, `simple` = the episode's instruction), and the builder's metadata
  `all_lang_info` names that order, '|'-separated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

from fuse_core.episodes.modalities import FUSE_COMBINATIONS, check_modalities

LEROBOT_FILE = 'meta/fuse_instructions.json'
ALL_LANG_INFO = '|'.join(FUSE_COMBINATIONS)
ALL_LANG_KEYS = tuple(f'all_lang_{i}' for i in range(len(FUSE_COMBINATIONS)))


def lerobot_instructions(metas: Sequence[Mapping]) -> Optional[dict]:
    """The JSON of meta/fuse_instructions.json for staged episodes in export order; None if none has any."""
    episodes: Dict[str, Dict[str, str]] = {}
    for index, meta in enumerate(metas):
        texts = check_modalities(meta.get('modalities') or {},
                                 f'episode {meta.get("episode_id", index)}: modalities')
        if texts:
            episodes[str(index)] = {c: texts[c] for c in FUSE_COMBINATIONS if c in texts}
    if not episodes:
        return None
    return {'episodes': episodes}


def write_lerobot_instructions(dataset_root, metas: Sequence[Mapping]) -> Optional[Path]:
    """Write meta/fuse_instructions.json into a LeRobotDataset directory (when any episode has some)."""
    data = lerobot_instructions(metas)
    if data is None:
        return None
    path = Path(dataset_root) / LEROBOT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def rlds_language_fields(meta: Mapping) -> Dict[str, str]:
    """{'all_lang_0': instruction, 'all_lang_1': '', 'all_lang_2': visual text, ...} for one episode."""
    texts = check_modalities(meta.get('modalities') or {},
                             f'episode {meta.get("episode_id", "?")}: modalities')
    texts = dict(texts)
    texts.setdefault('simple', str(meta.get('instruction') or ''))
    return {key: texts.get(combo, '') for key, combo in zip(ALL_LANG_KEYS, FUSE_COMBINATIONS)}
