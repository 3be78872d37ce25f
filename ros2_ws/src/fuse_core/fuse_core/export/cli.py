"""Export episode bags to RLDS or LeRobotDataset (./run.sh export EPISODES... --format F --out DIR).

Each episode is read and checked here (numpy, the project's preprocessing); the dataset is written
by its ecosystem's own library in a subprocess of the datasets venv (./setup.sh --datasets), into
a temporary directory that becomes DIR only once the writer and a reload with that library have
succeeded, so a failed export never leaves a dataset that loads as complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from fuse_core.episodes.metadata import METADATA_FILE
from fuse_core.errors import EpisodeError
from fuse_core.export.instructions import write_lerobot_instructions
from fuse_core.export.steps import IMAGE_KEYS, IMAGE_SIZES, MIC_SAMPLES, load_steps, save_staged, staged_meta

FORMATS = ('rlds', 'lerobot')


def datasets_python() -> Optional[str]:
    """The datasets venv's python: $FUSE_DATASETS_PYTHON, else <repo>/.venv-datasets/bin/python."""
    env = os.environ.get('FUSE_DATASETS_PYTHON')
    if env:
        return env if Path(env).exists() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / '.venv-datasets' / 'bin' / 'python'
        if cand.exists():
            return str(cand)
    return None


def find_episodes(paths: List[Path]) -> List[Path]:
    out = []
    for p in paths:
        if (p / METADATA_FILE).is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(d for d in p.iterdir() if (d / METADATA_FILE).is_file())
        else:
            raise EpisodeError(f'{p}: neither an episode bag nor a directory of them')
    return out


def run_in_datasets_venv(module: str, *args: str) -> str:
    py = datasets_python()
    if py is None:
        raise EpisodeError('the dataset libraries are not installed: run ./setup.sh --datasets '
                           '(or set FUSE_DATASETS_PYTHON)')
    core_src = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k not in ('LD_LIBRARY_PATH', 'PYTHONHOME')}
    env['PYTHONPATH'] = core_src
    env.setdefault('HF_HUB_OFFLINE', '1')
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    res = subprocess.run([py, '-m', module, *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise EpisodeError(f'{module} failed ({res.returncode}): {res.stderr[-3000:]}')
    return res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ''


def export(episodes: List[Path], fmt: str, out: Path, *, overwrite: bool = False, strict: bool = False,
           outcomes=('success',), image_size: str = 'model', relabel=None, log=print) -> dict:
    """Export; returns a summary (episodes, steps, skipped with reasons, seconds, bytes).

    image_size 'model' (the model's input sizes) or 'native' (each sensor's resolution; every
    episode must then have the same sizes as the first one exported). relabel: None, or what
    replaces each step's applied command (fuse_core.export.steps.load_steps; the twin's is
    fuse_sim.relabel.ExpertRelabel, DAgger's labels).
    """
    if fmt not in FORMATS:
        raise EpisodeError(f'unknown format {fmt!r}; one of {list(FORMATS)}')
    if image_size not in IMAGE_SIZES:
        raise EpisodeError(f'unknown image size {image_size!r}; one of {list(IMAGE_SIZES)}')
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise EpisodeError(f'{out}: exists and is not empty; refusing to overwrite (--overwrite)')
    t0 = time.monotonic()
    skipped, total = [], 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='fuse_export_', dir=out.parent) as tmp:
        staged = Path(tmp) / 'staged'
        staged.mkdir()
        n = 0
        metas: list = []
        shapes: dict = {}
        for ep in episodes:
            try:
                steps = load_steps(ep, outcomes=outcomes, image_size=image_size, relabel=relabel)
                got = {k: tuple(steps.observations[k].shape[1:]) for k in IMAGE_KEYS}
                shapes = shapes or got
                if got != shapes:
                    diff = {k: f'{got[k][1]}x{got[k][0]} (first episode {shapes[k][1]}x{shapes[k][0]})'
                            for k in IMAGE_KEYS if got[k] != shapes[k]}
                    raise EpisodeError(f'{ep.name}: native image sizes differ from the dataset\'s: {diff}; '
                                       'one dataset has one size per key (export with --image-size model)')
            except EpisodeError as exc:
                if strict:
                    raise
                skipped.append(str(exc))
                log(f'skipped: {exc}')
                continue
            save_staged(steps, staged / f'{n:05d}_{steps.metadata.episode_id}.npz')
            metas.append(staged_meta(steps))
            total += steps.num_steps
            n += 1
        if n == 0:
            raise EpisodeError('no episode to export' + (f' ({len(skipped)} skipped)' if skipped else ''))
        t_read = time.monotonic() - t0
        target = Path(tmp) / 'dataset'
        # One subprocess per format: write with the ecosystem's library, then reload with it.
        module = {'rlds': 'fuse_core.export.rlds_writer', 'lerobot': 'fuse_core.export.lerobot_writer'}[fmt]
        check = json.loads(run_in_datasets_venv(module, str(staged), str(target)))
        relative = Path(check.pop('path')).relative_to(target)
        got = sum(e['steps'] for e in check['episodes'])
        if len(check['episodes']) != n or got != total:
            raise EpisodeError(f'reload mismatch: wrote {n} episodes / {total} steps, read back '
                               f'{len(check["episodes"])} / {got}')
        mic_key = {'rlds': 'mic', 'lerobot': 'observation.mic'}[fmt]
        for e in check['episodes']:
            if e['observation'].get(mic_key, [None])[0] != [MIC_SAMPLES]:
                raise EpisodeError(f'reload mismatch: {mic_key} read back as {e["observation"].get(mic_key)}, '
                                   f'written as {MIC_SAMPLES} float32 samples')
        described = sum(1 for m in metas if m['modalities'])
        if fmt == 'lerobot':
            # The trainer's modality-specific instructions (models/trainer/dataset.py), by episode_index.
            write_lerobot_instructions(target / relative, metas)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(target), str(out))
    size = sum(f.stat().st_size for f in out.rglob('*') if f.is_file())
    dt = time.monotonic() - t0
    summary = {'format': fmt, 'out': str(out), 'dataset': str(out / relative), 'episodes': n, 'steps': total,
               'skipped': skipped, 'with_modality_instructions': described,
               'with_mic': sum(1 for m in metas if m['has_mic']), 'image_size': image_size,
               'relabel': relabel.name if relabel is not None else None,
               'image_shapes': {k: list(v) for k, v in shapes.items()},
               'seconds': round(dt, 2), 'read_seconds': round(t_read, 2),
               'steps_per_s': round(total / dt, 2) if dt > 0 else 0.0, 'bytes': size}
    log(json.dumps(summary))
    summary['reloaded'] = check
    return summary


def main(argv=None, relabellers=None) -> int:
    """relabellers: name -> factory of a relabel (`--relabel NAME`); fuse_core knows none itself,
    `./run.sh export` (fuse_bringup.runner) passes the twin's (fuse_sim.relabel.RELABELLERS)."""
    relabellers = dict(relabellers or {})
    ap = argparse.ArgumentParser(prog='./run.sh export', description=__doc__.splitlines()[0])
    ap.add_argument('episodes', nargs='+', type=Path, help='episode bags or directories of them')
    ap.add_argument('--format', required=True, choices=FORMATS)
    ap.add_argument('--out', required=True, type=Path)
    ap.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    ap.add_argument('--strict', action='store_true', help='refuse the export if any episode is unusable '
                    '(default: skip it, naming the problem)')
    ap.add_argument('--outcomes', default='success', help='comma-separated outcomes to export '
                    '(success,failure with --relabel: the policy\'s failed episodes are what DAgger learns from)')
    ap.add_argument('--relabel', choices=sorted(relabellers),
                    help='expert: each step\'s action is what the twin\'s scripted expert commands in the state '
                    'the episode reached (DAgger labels of a policy\'s evaluation bags), not the applied command')
    ap.add_argument('--image-size', default='model', choices=IMAGE_SIZES,
                    help="model: the model's input sizes (image_0 256, image_1 128, DIGITs 224; what the "
                    "sync node feeds it); native: each sensor's own resolution, RGB, not resampled")
    a = ap.parse_args(argv)
    try:
        export(find_episodes(a.episodes), a.format, a.out, overwrite=a.overwrite, strict=a.strict,
               outcomes=tuple(a.outcomes.split(',')), image_size=a.image_size,
               relabel=relabellers[a.relabel]() if a.relabel else None)
    except EpisodeError as exc:
        print(f'[export] error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
