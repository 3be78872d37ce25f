#!/usr/bin/env python3
"""Does a trained pick_cube policy read where the named cube is? Its first action of each episode
against the label, on the first frames of a dataset's episodes, and how much that action moves
when the instruction names each of the twin's six colours instead.

At the first frame the arm is at the start pose and the label's dy (normalised) is the direction
to the named cube, one of the few steps that depends on where it lies; the rest of an episode is
mostly holds, the descent and the gripper, which a policy can fit without locating anything.
A run with location tokens (`--model '{"locate": N}'`) also gets where its primary camera's
queries point: how far from the named colour's pixels, and how peaked their softmaxes are.

Usage: models/twin/first_frame_probe.py RUN_DIR DATASET [--episodes N] [--json]
(RUN_DIR: a models.trainer run, its checkpoints/last.pt is read; DATASET: LeRobotDataset dir(s), A,B)

  --fit OUT [--model JSON] [--augment-shift PX] [--steps N] [--train-episodes N] [--grasp-weight W]: can the model
  fit the first frames at all? Trains the pick_cube recipe (batch 16, lr 3e-4, seed 0) on the
  first frames of the first N episodes only, and prints the dy error on them and on the other
  episodes' first frames every 300 steps (with location tokens, how far they point from the
  named colour).

  --colour-baseline [--train-episodes N]: the bar a learned model should reach. The centroid of
  the pixels nearest the named colour in the primary image (the twin's own colours), and a
  quadratic in it fitted by least squares to dy on the first N episodes' first frames; its error
  on those and on the others, and how often the sign of dy (left or right) is right.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DY = 1  # the action's dy


def first_frames(data) -> np.ndarray:
    """The index of each episode's first frame, in the dataset's episode order."""
    return np.array([int(np.flatnonzero(data.frames.episode == e)[0]) for e in data.episode_ids])


def named_colour(data, sample, dataset: str) -> str:
    """The twin colour the sample's episode instruction names; exits naming the episode if none."""
    from fuse_sim.tasks import COLOURS

    words = data.instructions[int(sample['episode'])]['simple'].split()
    named = next((c for c in COLOURS if c in words), None)
    if named is None:
        raise SystemExit(f'{dataset}: episode {int(sample["episode"])}\'s instruction names none of {sorted(COLOURS)}')
    return named


def located_points(model, batch) -> tuple:
    """The primary camera's located points (pixels, (queries, 2) x, y) of the newest step, and
    their softmaxes' mean entropy as a share of the uniform's (1: no preference for any position)."""
    import torch

    with torch.no_grad():
        keys = model.encode_window(batch)['primary_map']
        p, xy = model.locate['primary'].where(keys, model.language(batch['input_ids'], batch['attention_mask']))
    p = p[0, -1].numpy()
    entropy = float(-(p * np.log(np.maximum(p, 1e-12))).sum(axis=-1).mean() / np.log(p.shape[-1]))
    side = batch['image_primary'].shape[-2]
    return (xy[0, -1].numpy() + 1.0) / 2.0 * (side - 1), entropy   # cell centres span the image


def pointing_figures(samples, points, data, dataset: str) -> tuple:
    """(median pixels from the named colour's centroid to the nearest located point, share of
    frames where that is within NEAR pixels: on the cube, ~8 px wide in the primary image)."""
    from fuse_sim.tasks import COLOURS

    dists = []
    for s, pts in zip(samples, points):
        image = np.asarray(s['image_primary'][-1])
        cx, cy = colour_centroid(image, COLOURS[named_colour(data, s, dataset)])
        dists.append(float(np.min(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy))))
    return float(np.median(dists)), float(np.mean(np.array(dists) <= NEAR))


def probe(run: Path, dataset: str, episodes: int = 30) -> dict:
    import torch

    from fuse_core.bundle.tokenizers import HFTokenizer
    from fuse_sim.tasks import COLOURS
    from models.trainer.dataset import LeRobotWindows
    from models.trainer.model import FuseModel, ModelConfig
    from models.trainer.train import _load

    blob = _load(run / 'checkpoints' / 'last.pt')
    cfg = ModelConfig(**blob['config']['model'])
    model = FuseModel(cfg)
    model.load_state_dict(blob['model'])
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / 'tokenizer.json').write_text(blob['tokenizer'])
        tok = HFTokenizer(Path(tmp) / 'tokenizer.json', cfg.max_length, 512, 0)
    data = LeRobotWindows(dataset, inputs=list(cfg.inputs))
    stats = data.action_statistics()
    firsts = first_frames(data)[:episodes]
    labels, preds, spread, samples, points, entropies = [], [], [], [], [], []
    for i in firsts:
        s = data.sample(int(i), stats)
        named = named_colour(data, s, dataset)
        batch = {k: torch.from_numpy(np.asarray(s[k]))[None] for k in data.inputs}
        batch['timestep_pad_mask'] = torch.from_numpy(s['timestep_pad_mask'])[None]
        out = {}
        for c in COLOURS:
            ids, mask = tok(f'pick up the {c} cube')
            batch['input_ids'], batch['attention_mask'] = torch.from_numpy(ids), torch.from_numpy(mask)
            with torch.no_grad():
                out[c] = float(model(batch)['action'][0, 0, DY])
        if cfg.located:
            ids, mask = tok(data.instructions[int(s['episode'])]['simple'])
            batch['input_ids'], batch['attention_mask'] = torch.from_numpy(ids), torch.from_numpy(mask)
            samples.append(s)
            pts, entropy = located_points(model, batch)
            points.append(pts)
            entropies.append(entropy)
        labels.append(float(s['action'][0, DY]))
        preds.append(out[named])
        spread.append(float(np.std(list(out.values()))))
    labels, preds = np.array(labels), np.array(preds)
    located = {}
    if cfg.located:
        median, share = pointing_figures(samples, points, data, dataset)
        located = {'located_px_from_named': round(median, 1), 'located_within_12px': round(share, 3),
                   'located_entropy': round(float(np.mean(entropies)), 3)}
    return {**located, 'run': str(run), 'dataset': dataset, 'episodes': len(firsts),
            'dy_abs_error': round(float(np.mean(np.abs(preds - labels))), 3),
            'dy_label_std': round(float(np.std(labels)), 3),
            'dy_prediction_std': round(float(np.std(preds)), 3),
            'dy_correlation': round(float(np.corrcoef(preds, labels)[0, 1]), 3) if np.std(preds) > 0 else 0.0,
            'dy_sign_right': round(float(np.mean(np.sign(preds) == np.sign(labels))), 3),
            'dy_std_over_colours': round(float(np.mean(spread)), 3)}


NEAR = 12.0  # pixels


def colour_centroid(image: np.ndarray, rgb, margin: float = 40.0) -> tuple:
    """(x, y) pixel centroid of the pixels within `margin` (RGB distance, 0-255) of the nearest
    one to `rgb` (0-1 floats) in an (H, W, 3) uint8 image."""
    dist = np.linalg.norm(image.astype(np.float32) - np.asarray(rgb[:3], np.float32) * 255.0, axis=-1)
    ys, xs = np.nonzero(dist <= dist.min() + margin)
    return float(xs.mean()), float(ys.mean())


def colour_baseline(dataset: str, train_episodes: int) -> dict:
    from fuse_sim.tasks import COLOURS
    from models.trainer.dataset import LeRobotWindows

    data = LeRobotWindows(dataset, inputs=['image_primary'])
    stats = data.action_statistics()
    feats, labels = [], []
    for i in first_frames(data):
        s = data.sample(int(i), stats)
        image = np.asarray(s['image_primary'][-1])
        x, y = colour_centroid(image, COLOURS[named_colour(data, s, dataset)])
        x, y = x / image.shape[1], y / image.shape[0]   # 0-1: a well-conditioned least squares
        feats.append([x, y, x * x, y * y, x * y, 1.0])
        labels.append(float(s['action'][0, DY]))
    if len(labels) <= train_episodes:
        raise SystemExit(f'{dataset}: {len(labels)} episodes, not more than --train-episodes {train_episodes}')
    X, Y = np.array(feats), np.array(labels)
    n = train_episodes
    w, *_ = np.linalg.lstsq(X[:n], Y[:n], rcond=None)
    pred = X @ w
    part = {'fitted': slice(0, n), 'others': slice(n, None)}
    return {'dataset': dataset, 'episodes': {k: len(Y[v]) for k, v in part.items()},
            'dy_label_std': round(float(np.std(Y)), 3),
            'dy_abs_error': {k: round(float(np.mean(np.abs(pred[v] - Y[v]))), 3) for k, v in part.items()},
            'dy_sign_right': {k: round(float(np.mean(np.sign(pred[v]) == np.sign(Y[v]))), 3) for k, v in part.items()}}


def fit(dataset: str, out: Path, model: dict, shift: int, steps: int, train_episodes: int,
        grasp_weight: float = 0.0) -> None:
    import torch

    from models.trainer.train import TrainConfig, Trainer

    cfg = TrainConfig(dataset=dataset, out=str(out), steps=steps, batch=16, lr=3e-4, warmup=50, seed=0,
                      inputs=('image_primary', 'image_wrist'), contrastive_weight=0.0, generative_weight=0.0,
                      augment_shift=shift, checkpoint_every=10 ** 9, log_every=10 ** 9, threads=1, model=model,
                      grasp_weight=grasp_weight)
    tr = Trainer(cfg, log=lambda *a, **k: None)
    firsts = first_frames(tr.data)
    seen, unseen = firsts[:train_episodes], firsts[train_episodes:]
    tr.batcher.pool = seen

    def error(frames) -> float:
        tr.model.eval()
        errs = []
        with torch.no_grad():
            for i in range(0, len(frames), 32):
                b = tr.batcher.make(frames[i:i + 32], tr.device)
                errs.append((tr.model(b)['action'][:, 0, DY] - b['action'][:, 0, DY]).abs().numpy())
        tr.model.train()
        return float(np.concatenate(errs).mean()) if errs else float('nan')

    def pointing(frames) -> float:
        tr.model.eval()
        found = [located_points(tr.model, tr.batcher.make(np.array([i]), tr.device))[0] for i in frames]
        tr.model.train()
        return pointing_figures([tr.data.sample(int(i), tr.stats) for i in frames], found, tr.data, dataset)[0]
    for k in range(steps):
        tr.train_step()
        if (k + 1) % 300 == 0:
            where = (f'; located point to the named colour, median {pointing(seen):.0f} / {pointing(unseen):.0f} px'
                     if tr.model.cfg.located else '')
            print(f'step {k + 1}: first-frame dy error {error(seen):.2f} on the {len(seen)} trained on, '
                  f'{error(unseen):.2f} on {len(unseen)} others{where}', flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run', type=Path)
    ap.add_argument('dataset')
    ap.add_argument('--episodes', type=int, default=30)
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--fit', type=Path, metavar='OUT', help='train on first frames only (RUN_DIR is then unused)')
    ap.add_argument('--model', default='{}', help='with --fit: model config overrides (JSON)')
    ap.add_argument('--augment-shift', type=int, default=0)
    ap.add_argument('--steps', type=int, default=1500)
    ap.add_argument('--train-episodes', type=int, default=160)
    ap.add_argument('--grasp-weight', type=float, default=0.0, help='with --fit: the grasp-point loss\'s weight')
    ap.add_argument('--colour-baseline', action='store_true', help='the named colour\'s pixel centroid, fitted '
                    '(RUN_DIR is then unused)')
    args = ap.parse_args(argv)
    if args.colour_baseline:
        r = colour_baseline(args.dataset, args.train_episodes)
        print(json.dumps(r) if args.json else
              f"{r['dataset']}: the named colour's centroid, a quadratic fitted to dy on "
              f"{r['episodes']['fitted']} first frames (label std {r['dy_label_std']}): |prediction - label| "
              f"{r['dy_abs_error']['fitted']} on them, "
              f"{r['dy_abs_error']['others']} on the other {r['episodes']['others']}; sign right "
              f"{r['dy_sign_right']['fitted']} / {r['dy_sign_right']['others']}")
        return 0
    if args.fit:
        fit(args.dataset, args.fit, json.loads(args.model), args.augment_shift, args.steps, args.train_episodes,
            args.grasp_weight)
        return 0
    r = probe(args.run, args.dataset, args.episodes)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['run']}: first frames of {r['episodes']} episodes of {r['dataset']} (normalised dy): "
              f"|prediction - label| {r['dy_abs_error']} (label std {r['dy_label_std']}), correlation "
              f"{r['dy_correlation']}, prediction std {r['dy_prediction_std']}, std over the six colours "
              f"{r['dy_std_over_colours']}, sign right {r['dy_sign_right']}"
              + (f"; located point {r['located_px_from_named']} px from the named colour (median), within "
                 f"{NEAR:.0f} px in {r['located_within_12px']}, softmax entropy {r['located_entropy']} of the "
                 "uniform's" if 'located_px_from_named' in r else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
