"""Reload an exported dataset with its ecosystem's own reader and print what it holds (JSON).

    python -m fuse_core.export.check rlds|lerobot DATASET_DIR     (in the datasets venv)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable


def rlds(path: str) -> dict:
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(path)
    ds = builder.as_dataset(split='train')
    episodes = []
    for ep in tfds.as_numpy(ds):
        steps = list(ep['steps'])
        first = steps[0]
        episodes.append({
            'steps': len(steps),
            'instruction': first['language_instruction'].decode(),
            'all_lang': [first[k].decode() for k in sorted(first) if k.startswith('all_lang_')],
            'all_lang_info': (builder.info.metadata or {}).get('all_lang_info', ''),
            'has_mic': bool(ep['episode_metadata']['has_mic']),
            'episode_id': ep['episode_metadata']['episode_id'].decode(),
            'is_first': [bool(s['is_first']) for s in steps].count(True),
            'is_last_at_end': bool(steps[-1]['is_last']),
            'observation': {k: [list(v.shape), str(v.dtype)] for k, v in first['observation'].items()},
            'action': [list(first['action'].shape), str(first['action'].dtype)],
            'actions': [s['action'].tolist() for s in steps],
            'image_0_first': first['observation']['image_0'].reshape(-1)[:64].tolist(),
            'mic_last': steps[-1]['observation']['mic'][-64:].tolist(),
        })
    return {'format': 'rlds', 'name': builder.info.name, 'episodes': episodes}


def lerobot(path: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    ds = LeRobotDataset('local/fuse_episodes', root=path)
    episodes = []
    index = 0
    for e in range(ds.num_episodes):
        n = int(ds.meta.episodes[e]['length'])
        first = ds[index]
        actions = [ds[index + i]['action'].numpy().tolist() for i in range(n)]
        episodes.append({
            'steps': n, 'instruction': first['task'],
            'observation': {k: [list(v.shape), str(v.dtype)] for k, v in first.items()
                            if k.startswith('observation.')},
            'action': [list(first['action'].shape), str(first['action'].dtype)],
            'actions': actions,
            'image_0_first': (first['observation.images.image_0'] * 255).round().permute(1, 2, 0)
            .reshape(-1)[:64].to(dtype=__import__('torch').uint8).tolist(),
            'mic_last': ds[index + n - 1]['observation.mic'][-64:].tolist(),
        })
        index += n
    return {'format': 'lerobot', 'fps': ds.fps, 'codebase_version': ds.meta.info.get('codebase_version'),
            'tasks': list(ds.meta.tasks.index), 'episodes': episodes}


def writer_main(argv, doc: str, option: str, default: str, build: Callable[[Path, Path, str], Path],
                check: Callable[[str], dict]) -> int:
    """A dataset writer's command line (STAGED_DIR OUT_DIR and its one option): build the dataset, reload
    it with the ecosystem's reader in the same process and print what that read (JSON)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('staged', type=Path)
    ap.add_argument('out', type=Path)
    ap.add_argument(option, default=default)
    a = ap.parse_args(argv)
    built = build(a.staged, a.out, getattr(a, option.lstrip('-').replace('-', '_')))
    print(json.dumps(dict(check(str(built)), path=str(built))))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ('rlds', 'lerobot'):
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps({'rlds': rlds, 'lerobot': lerobot}[argv[0]](argv[1])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
