"""The training loop: FuSe losses, robust finetuning, checkpoints, resume, curves; DDP under torchrun."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import losses as LS
from . import robust as RB
from .dataset import LeRobotWindows
from .errors import DatasetError, TrainerError
from .model import FuseModel, ModelConfig
from .text import build_tokenizer_json

CHECKPOINTS = 'checkpoints'
LAST = 'last.pt'
CURVES = ('step', 'loss', 'action', 'contrastive', 'generative', 'grasp', 'l2sp', 'val_action', 'val_grasp_cm', 'lr',
          'spd_layers', 'tpgm_layers', 'seconds')
LOSSES = ('loss', 'action', 'contrastive', 'generative', 'grasp', 'l2sp')
WISE_AUTO = -1.0
WISE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class TrainConfig:
    dataset: str
    out: str
    steps: int = 200
    batch: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 0
    grad_clip: float = 1.0
    seed: int = 0
    contrastive_weight: float = 1.0
    generative_weight: float = 1.0
    # The grasp-point loss (0 = off): with location tokens, a head from the primary camera's
    # located points predicts where the episode grasps (LeRobotWindows.grasp_points).
    grasp_weight: float = 0.0
    pretrained: str = ''  # a trainer checkpoint to finetune from ('' = from scratch)
    l2sp: float = 0.0  # L2-SP lambda (0 = off)
    spd: float = 0.0  # selective projection decay lambda (0 = off)
    tpgm: float = 0.0  # projected gradient: per-tensor radius gamma around theta0 (0 = off)
    wise_alpha: float = 1.0  # WiSE-FT: exported weights (1 - a) * theta0 + a * theta_ft (1 = off, -1 = auto)
    val_fraction: float = 0.0  # episodes held out for the validation action loss (and WiSE-FT auto)
    inputs: Sequence[str] = ()  # () = every input the dataset has
    checkpoint_every: int = 50
    log_every: int = 10
    device: str = 'auto'
    binarize_gripper: bool = True
    threads: int = 0  # torch CPU threads (0 = torch's default)
    workers: int = 0  # threads decoding and resizing a batch's images (0 = in the training thread)
    augment_shift: int = 0  # training batches: camera images shifted by up to this many pixels (0 = off)
    image_cache_mb: int = 4096  # decoded images kept in memory (0 = decode every time)
    model: Dict[str, object] = field(default_factory=dict)  # ModelConfig overrides

    def __post_init__(self) -> None:
        problems = []
        for name in ('steps', 'batch', 'checkpoint_every', 'log_every'):
            if int(getattr(self, name)) < 1:
                problems.append(f'{name} must be >= 1')
        if self.workers < 0 or self.threads < 0 or self.augment_shift < 0:
            problems.append('workers, threads and augment_shift must be >= 0')
        if self.image_cache_mb < 0:
            problems.append('image_cache_mb must be >= 0')
        for name in ('lr', 'contrastive_weight', 'generative_weight', 'grasp_weight', 'l2sp', 'spd', 'tpgm',
                     'weight_decay', 'grad_clip'):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                problems.append(f'{name} must be a finite number >= 0')
        if not (0.0 <= self.wise_alpha <= 1.0 or self.wise_alpha == WISE_AUTO):
            problems.append('wise_alpha must be in [0, 1] (or auto)')
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append('val_fraction must be in [0, 1)')
        if self.wise_alpha == WISE_AUTO and not self.val_fraction:
            problems.append('wise_alpha auto chooses on held-out episodes: set val_fraction > 0')
        if (self.l2sp or self.spd or self.tpgm or self.wise_alpha < 1.0) and not self.pretrained:
            problems.append('l2sp, spd, tpgm and wise_alpha < 1 need a pretrained checkpoint (--pretrained)')
        if self.device not in ('auto', 'cpu', 'cuda'):
            problems.append(f'device {self.device!r} is not one of auto, cpu, cuda')
        if problems:
            raise TrainerError('; '.join(problems))
        self.inputs = tuple(self.inputs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d['inputs'] = list(self.inputs)
        return d


# --- distributed ---------------------------------------------------------------------------------
def _dist():
    """(rank, world size, local rank) from torchrun's environment; 0, 1, 0 without it."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    return int(os.environ.get('RANK', '0')), world, int(os.environ.get('LOCAL_RANK', '0'))


def _device(choice: str, local_rank: int) -> torch.device:
    if choice == 'cuda' or (choice == 'auto' and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainerError('device cuda asked for, but torch sees no CUDA device')
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


# --- batches -------------------------------------------------------------------------------------
#: Inputs the shift augmentation moves (the cameras; tactile images and spectrograms stay as sensed).
CAMERA_INPUTS = ('image_primary', 'image_wrist')


def shifted(window: np.ndarray, rng: np.random.Generator, max_shift: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(W, H, W, C) images moved by one random (dy, dx) in [-max_shift, max_shift], the same for
    every step of the window, edges repeated (DrQ's random shift): the camera mount moving a
    little, which the policy should not care about. Returns the images and (dy, dx): what was at
    pixel (r + dy, c + dx) is now at (r, c)."""
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, 2))
    m = max_shift
    padded = np.pad(window, ((0, 0), (m, m), (m, m), (0, 0)), mode='edge')
    h, w = window.shape[1:3]
    return np.ascontiguousarray(padded[:, m + dy: m + dy + h, m + dx: m + dx + w]), (dy, dx)


class Batcher:
    """Samples -> tensors. Step s uses frames drawn by a generator seeded with (seed, s), so a
    resumed run sees exactly the batches the uninterrupted run would have; each rank takes its
    slice of the global batch."""

    def __init__(self, data: LeRobotWindows, stats: dict, tokenizer, combos: Sequence[str], cfg: TrainConfig,
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.stats, self.tok, self.combos, self.cfg = data, stats, tokenizer, tuple(combos), cfg
        self.rank, self.world = rank, world
        self._ids: Dict[str, tuple] = {}
        self.pool = np.arange(len(data))  # the frames training draws from
        self.grasp: Optional[dict] = None  # Trainer._grasp_targets(), with the grasp loss
        self._pool = None  # decoding threads

    def ids(self, text: str):
        if text not in self._ids:
            self._ids[text] = tuple(a[0] for a in self.tok(text))
        return self._ids[text]

    def indices(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.cfg.seed, step])
        idx = self.pool[rng.integers(0, len(self.pool), self.cfg.batch * self.world)]
        return idx[self.rank * self.cfg.batch: (self.rank + 1) * self.cfg.batch]

    def make(self, indices, device, step: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The batch of these frames; with `step` (training) camera images get the shift augmentation."""
        def one(i):
            return self.data.sample(int(i), self.stats, self.cfg.binarize_gripper)

        if self.cfg.workers > 0:  # OpenCV decodes and resizes without holding the GIL
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix='decode')
            samples = list(self._pool.map(one, indices))
        else:
            samples = [one(i) for i in indices]
        # The grasp head reads the primary located point in the unshifted image's coordinates: the
        # grasp point is where the object lies on the table, which the shift does not move. (Even
        # so, measured, the shift kept the head from learning: README, "The grasp point".)
        undo = np.zeros((len(samples), 2), np.float32)
        if step is not None and self.cfg.augment_shift > 0:
            rng = np.random.default_rng([self.cfg.seed, step, 1])
            for j, s in enumerate(samples):
                for name in CAMERA_INPUTS:
                    if name in s:
                        s[name], (dy, dx) = shifted(s[name], rng, self.cfg.augment_shift)
                        if name == 'image_primary':   # cell centres span [-1, 1] over the image
                            h, w = s[name].shape[1:3]
                            undo[j] = (2.0 * dx / (w - 1), 2.0 * dy / (h - 1))
        batch = {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0] if k != 'episode'}
        L = self.tok.max_length
        ids, mask = [], []
        combo_ids = {c: [] for c in self.combos}
        combo_mask = {c: [] for c in self.combos}
        valid = {c: [] for c in self.combos}
        for s in samples:
            texts = self.data.instructions[int(s['episode'])]
            a, m = self.ids(texts['simple'])
            ids.append(a)
            mask.append(m)
            for c in self.combos:
                text = texts.get(c)
                if text:
                    a, m = self.ids(text)
                else:
                    a, m = np.zeros(L, np.int64), np.zeros(L, np.int64)
                combo_ids[c].append(a)
                combo_mask[c].append(m)
                valid[c].append(bool(text))
        if self.grasp is not None:
            idx = np.asarray(indices, np.int64)
            batch['grasp'] = torch.from_numpy(self.grasp['points'][idx])
            batch['grasp_valid'] = torch.from_numpy(self.grasp['valid'][idx])
            batch['grasp_undo_shift'] = torch.from_numpy(undo)
        batch['input_ids'] = torch.from_numpy(np.stack(ids))
        batch['attention_mask'] = torch.from_numpy(np.stack(mask))
        for c in self.combos:
            batch[f'ids_{c}'] = torch.from_numpy(np.stack(combo_ids[c]))
            batch[f'mask_{c}'] = torch.from_numpy(np.stack(combo_mask[c]))
            batch[f'valid_{c}'] = torch.tensor(valid[c])
        return {k: v.to(device) for k, v in batch.items()}


# --- the run -------------------------------------------------------------------------------------
class Trainer:
    """Builds everything from a TrainConfig, refuses bad input at start, runs and checkpoints."""

    def __init__(self, cfg: TrainConfig, log=print) -> None:
        self.cfg = cfg
        self.rank, self.world, local = _dist()
        self.log = log if self.rank == 0 else (lambda *a, **k: None)
        self.device = _device(cfg.device, local)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        pretrained_state, pretrained_cfg, base_tok = None, None, None
        if cfg.pretrained:
            blob = _load(cfg.pretrained)
            pretrained_state, pretrained_cfg, base_tok = blob['model'], blob['config'], blob['tokenizer']
            pretrained_state, untrained = RB.trained_state(pretrained_state, pretrained_cfg.get('train', {}))
            if untrained:
                heads = sorted({k.split('.')[0] for k in untrained})
                self.log(f'{cfg.pretrained}: its run never trained {heads} (loss weight 0): '
                         'not loaded, not anchored, not mixed')
        self.data = LeRobotWindows(cfg.dataset, inputs=cfg.inputs or None,
                                   window=int(cfg.model.get('window', 2)), horizon=int(cfg.model.get('horizon', 4)),
                                   image_cache_bytes=int(cfg.image_cache_mb) << 20)
        mcfg = dict(pretrained_cfg['model']) if pretrained_cfg else {}
        mcfg.update(cfg.model)
        mcfg['inputs'] = list(self.data.inputs)
        # the head exists only while its loss trains it (from a grasp run, plain finetuning drops it
        # and the first query is the action loss's again)
        mcfg['grasp_head'] = cfg.grasp_weight > 0
        try:
            self.model_cfg = ModelConfig(**mcfg)
        except ValueError as exc:
            raise TrainerError(f'model config: {exc}') from exc
        mods = self.model_cfg.modalities
        self.contrastive = (LS.allowed_combinations(mods, LS.CONTRASTIVE_COMBINATIONS)
                            if cfg.contrastive_weight > 0 else ())
        self.generative = (LS.allowed_combinations(mods, LS.GENERATIVE_COMBINATIONS)
                           if cfg.generative_weight > 0 else ())
        if self.contrastive:
            self.data.require_instructions(self.contrastive, 'the contrastive loss')
        if self.generative:
            self.data.require_instructions(self.generative, 'the generative loss')
        counts = self.data.combination_counts()
        unused = [c for c in set(self.contrastive) | set(self.generative) if not counts[c]]
        if unused:
            self.log(f'no episode has an instruction for {sorted(unused)}: those terms stay out of the losses')
        self.stats = self.data.action_statistics()
        self.grasp = self._grasp_targets() if cfg.grasp_weight > 0 else None
        from fuse_core.bundle.tokenizers import HFTokenizer

        self.tokenizer_json = build_tokenizer_json(self.data.texts(), self.model_cfg.vocab_size, base_tok)
        self.out.mkdir(parents=True, exist_ok=True)
        tok_file = self.out / 'tokenizer.json'
        tok_file.write_text(self.tokenizer_json)
        self.tok = HFTokenizer(tok_file, self.model_cfg.max_length, 512, 0)
        for text in self.data.texts():  # refuse an instruction longer than the model's L now
            try:
                self.tok(text)
            except ValueError as exc:
                raise DatasetError(f'{cfg.dataset}: {exc}') from exc
        torch.manual_seed(cfg.seed)
        self.model = FuseModel(self.model_cfg).to(self.device)
        self.theta0: Dict[str, torch.Tensor] = {}
        self.pretrained_state = pretrained_state
        if pretrained_state is not None:
            own = self.model.state_dict()
            loadable = {k: v for k, v in pretrained_state.items() if k in own and own[k].shape == v.shape}
            self.model.load_state_dict(loadable, strict=False)
            self.theta0 = RB.anchor(self.model, pretrained_state)
            fresh = sorted({k.split('.')[0] + '.' + k.split('.')[1] if k.startswith('encoder') else k.split('.')[0]
                            for k in own if k not in loadable})
            self.log(f'finetuning from {cfg.pretrained}: {len(self.theta0)} parameter tensors anchored, '
                     f'new: {fresh or "none"}')
        self.combos = tuple(dict.fromkeys(self.contrastive + self.generative))
        self.batcher = Batcher(self.data, self.stats, self.tok, self.combos, cfg, self.rank, self.world)
        self.batcher.grasp = self.grasp
        self.val_episodes = self._split()
        ep = self.data.frames.episode
        self.val_frames = np.flatnonzero(np.isin(ep, self.val_episodes))
        self.batcher.pool = np.flatnonzero(~np.isin(ep, self.val_episodes))
        self.wise_choice: Dict[str, float] = {}
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.spd = (RB.SelectiveProjectionDecay(self.model.named_parameters(), self.theta0, cfg.spd)
                    if cfg.spd > 0 else None)
        self.step = 0
        self.history: List[dict] = []
        self.net = self.model
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                find_unused_parameters=True)

    def _grasp_targets(self) -> dict:
        """The grasp head's targets: each frame's grasp point normalised by the mean and std over
        the frames that have one; refuses a dataset where none does."""
        points, valid = self.data.grasp_points()
        if not valid.any():
            raise DatasetError(f'{self.cfg.dataset}: no frame has a grasp point for the grasp loss (grasp_weight): '
                               'no episode closes the gripper farther than GRASP_MIN_DISTANCE from where it starts')
        mean = points[valid].mean(axis=0)
        std = np.maximum(points[valid].std(axis=0), 1e-3)
        return {'points': ((points - mean) / std).astype(np.float32), 'valid': valid, 'mean': mean, 'std': std}

    def _split(self) -> List[int]:
        """Held-out episodes: a seeded choice of val_fraction of them (at least one of each side)."""
        ids = list(self.data.episode_ids)
        if not self.cfg.val_fraction:
            return []
        n = max(1, int(round(self.cfg.val_fraction * len(ids))))
        if n >= len(ids):
            raise DatasetError(f'{self.cfg.dataset}: {len(ids)} episode(s) cannot give {n} held out and '
                               'some to train on (lower val_fraction)')
        rng = np.random.default_rng([self.cfg.seed, 1])
        return sorted(int(e) for e in rng.choice(ids, n, replace=False))

    @torch.no_grad()
    def validate(self, model: Optional[torch.nn.Module] = None, max_frames: int = 256) -> Optional[float]:
        """Action loss on the held-out episodes' frames (every one, up to max_frames); None without any."""
        if not len(self.val_frames):
            return None
        model = model or self.model
        was = model.training
        model.eval()
        frames = self.val_frames[:: max(1, len(self.val_frames) // max_frames)][:max_frames]
        total, count = 0.0, 0
        for k in range(0, len(frames), self.cfg.batch):
            batch = self.batcher.make(frames[k: k + self.cfg.batch], self.device)
            out = model(batch)
            m = batch['action_mask']
            total += float(LS.action_loss(out['action'], batch['action'], m)) * float(m.sum())
            count += int(m.sum())
        model.train(was)
        return total / max(1, count)

    @torch.no_grad()
    def validate_grasp(self, max_frames: int = 256) -> Optional[float]:
        """Median distance (cm) from the grasp head's point to where the held-out episodes grasp."""
        frames = self.val_frames[self.grasp['valid'][self.val_frames]] if self.grasp is not None else []
        if not len(frames):
            return None
        was = self.model.training
        self.model.eval()
        frames = frames[:: max(1, len(frames) // max_frames)][:max_frames]
        errors = []
        for k in range(0, len(frames), self.cfg.batch):
            batch = self.batcher.make(frames[k: k + self.cfg.batch], self.device)
            diff = (self.model(batch, grasp=True)['grasp'] - batch['grasp']).cpu().numpy() * self.grasp['std']
            errors.append(np.hypot(diff[:, 0], diff[:, 1]))
        self.model.train(was)
        return float(np.median(np.concatenate(errors)) * 100.0)

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 10 % over the run."""
        w = self.cfg.warmup
        if w and step < w:
            return (step + 1) / w
        frac = (step - w) / max(1, self.cfg.steps - w)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    # --- one step --------------------------------------------------------------------------------
    def losses(self, batch) -> Dict[str, torch.Tensor]:
        out = self.net(batch, self.contrastive, self.generative, grasp=self.grasp is not None)
        la = LS.action_loss(out['action'], batch['action'], batch['action_mask'])
        total = la
        parts = {'action': la}
        if self.grasp is not None:
            lp = LS.grasp_loss(out['grasp'], batch['grasp'], batch['grasp_valid'])
            total = total + self.cfg.grasp_weight * lp
            parts['grasp'] = lp
        if self.contrastive:
            obs = LS.normalise_latent(out['obs_latent'])
            text = {c: LS.normalise_latent(z) for c, z in out['text_latent'].items()}
            lc, _ = LS.contrastive_loss(obs, text, {c: batch[f'valid_{c}'] for c in self.contrastive},
                                        self.model.temperature)
            total = total + self.cfg.contrastive_weight * lc
            parts['contrastive'] = lc
        if self.generative:
            lg, _ = LS.generative_loss(out['gen_logits'], {c: batch[f'ids_{c}'] for c in self.generative},
                                       {c: batch[f'valid_{c}'] for c in self.generative})
            total = total + self.cfg.generative_weight * lg
            parts['generative'] = lg
        if self.cfg.l2sp > 0:
            pen = RB.l2sp_penalty(self.model, self.theta0, self.cfg.l2sp)
            total = total + pen
            parts['l2sp'] = pen
        parts['loss'] = total
        return parts

    def train_step(self) -> dict:
        self.model.train()
        batch = self.batcher.make(self.batcher.indices(self.step), self.device, step=self.step)
        parts = self.losses(batch)
        self.opt.zero_grad(set_to_none=True)
        parts['loss'].backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.spd is not None:
            self.spd.before_step()
        self.opt.step()
        if self.spd is not None:
            self.spd.after_step()
        projected = RB.project_tpgm(self.model.named_parameters(), self.theta0, self.cfg.tpgm) if self.cfg.tpgm else 0
        self.sched.step()
        row = {k: float(v.detach()) for k, v in parts.items()}
        row['lr'] = self.sched.get_last_lr()[0]
        row['spd_layers'] = self.spd.applied if self.spd is not None else 0
        row['tpgm_layers'] = projected
        self.step += 1
        return row

    # --- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            'step': self.step,
            'model': {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            'optimizer': self.opt.state_dict(),
            'scheduler': self.sched.state_dict(),
            'config': {'train': self.cfg.to_dict(), 'model': self.model_cfg.to_dict()},
            'tokenizer': self.tokenizer_json,
            'statistics': self.stats,
            'history': self.history,
            'torch_version': torch.__version__,
        }

    def save(self) -> Path:
        d = self.out / CHECKPOINTS
        d.mkdir(parents=True, exist_ok=True)
        path = d / f'step_{self.step:06d}.pt'
        tmp = path.with_suffix('.tmp')
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        tmp_last = d / (LAST + '.tmp')
        shutil.copyfile(path, tmp_last)
        os.replace(tmp_last, d / LAST)
        return path

    def resume(self, path: Optional[Path] = None) -> bool:
        """Continue from `path` or the run's last checkpoint; False when there is none."""
        path = Path(path) if path else self.out / CHECKPOINTS / LAST
        if not path.is_file():
            return False
        blob = _load(path)
        saved = blob['config']['model']
        if saved != self.model_cfg.to_dict():
            raise TrainerError(f'{path}: the checkpoint was made for model {saved}, this run builds '
                               f'{self.model_cfg.to_dict()}')
        if blob['tokenizer'] != self.tokenizer_json:
            raise TrainerError(f'{path}: the checkpoint\'s vocabulary differs from this dataset\'s')
        self.model.load_state_dict(blob['model'])
        self.opt.load_state_dict(blob['optimizer'])
        self.sched.load_state_dict(blob['scheduler'])
        self.step = int(blob['step'])
        self.history = list(blob.get('history', []))
        self.log(f'resumed from {path} at step {self.step}')
        return True

    # --- the loop --------------------------------------------------------------------------------
    def run(self, until: Optional[int] = None) -> dict:
        """Train to cfg.steps (or stop after step `until`, as an interrupted run would)."""
        cfg = self.cfg
        stop = cfg.steps if until is None else min(cfg.steps, int(until))
        self.log(f'training on {self.device} (world size {self.world}): {len(self.data)} frames in '
                 f'{len(self.data.episode_ids)} episodes, inputs {list(self.data.inputs)}, '
                 f'{sum(p.numel() for p in self.model.parameters())} parameters; contrastive over '
                 f'{list(self.contrastive)}, generative over {list(self.generative)}')
        t0 = time.perf_counter()
        start = self.step
        while self.step < stop:
            row = self.train_step()
            row['step'] = self.step
            row['seconds'] = time.perf_counter() - t0
            self.history.append(row)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                rate = (self.step - start) / max(1e-9, row['seconds'])
                eta = (cfg.steps - self.step) / max(1e-9, rate)
                parts = '  '.join(f'{k} {row[k]:.4f}' for k in LOSSES if k in row)
                self.log(f'step {self.step}/{cfg.steps}  {parts}  lr {row["lr"]:.2e}  '
                         f'{rate:.2f} steps/s  eta {eta:.0f} s', flush=True)
            if self.rank == 0 and (self.step % cfg.checkpoint_every == 0 or self.step in (cfg.steps, stop)):
                val = self.validate()
                if val is not None:
                    row['val_action'] = val
                    self.log(f'step {self.step}: held-out action loss {val:.4f} '
                             f'({len(self.val_episodes)} episodes)', flush=True)
                grasp_cm = self.validate_grasp()
                if grasp_cm is not None:
                    row['val_grasp_cm'] = grasp_cm
                    self.log(f'step {self.step}: held-out grasp point off by {grasp_cm:.1f} cm (median)', flush=True)
                self.save()
                self.write_curves()
        return self.history[-1] if self.history else {}

    def close(self) -> None:
        """Leave the process group (torchrun runs)."""
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()

    def write_curves(self) -> None:
        """metrics.csv, metrics.json and (with matplotlib) curves.png in the run directory."""
        with open(self.out / 'metrics.csv', 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=CURVES, extrasaction='ignore')
            w.writeheader()
            for row in self.history:
                w.writerow({k: row.get(k, '') for k in CURVES})
        (self.out / 'metrics.json').write_text(json.dumps(self.history))
        try:
            import matplotlib

            matplotlib.use('Agg')
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        try:
            steps = [r['step'] for r in self.history]
            for k in LOSSES + ('val_action',):
                ys = [r.get(k) for r in self.history]
                if any(y is not None for y in ys):
                    pts = [(s, y) for s, y in zip(steps, ys) if y is not None]
                    marker = 'o' if k == 'val_action' else None
                    ax.plot([s for s, _ in pts], [y for _, y in pts], label=k, marker=marker)
            ax.set_xlabel('step')
            ax.set_yscale('log')
            ax.legend()
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(self.out / 'curves.png', dpi=100)
        except Exception as exc:  # noqa: BLE001 - a plot must never end a long run; the CSV/JSON are written
            self.log(f'curves.png not written ({type(exc).__name__}: {str(exc)[:200]}); metrics.csv is')
        finally:
            plt.close(fig)

    def final_state(self) -> Dict[str, torch.Tensor]:
        """The weights to export: the trained ones, or their WiSE-FT mix with the pretrained ones."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        alpha = self.cfg.wise_alpha
        if alpha == WISE_AUTO:
            probe = FuseModel(self.model_cfg).to(self.device)
            for a in WISE_GRID:
                probe.load_state_dict(RB.wise_ft(state, self.pretrained_state, a))
                self.wise_choice[f'{a:g}'] = self.validate(probe)
            alpha = min(WISE_GRID, key=lambda a: (self.wise_choice[f'{a:g}'], -a))
            self.log('WiSE-FT held-out action loss per alpha: ' + ', '.join(
                f'{k} {v:.4f}' for k, v in self.wise_choice.items()) + f'; chosen {alpha:g}')
            self.wise_choice['chosen'] = alpha
        if alpha < 1.0:
            state = RB.wise_ft(state, self.pretrained_state, alpha)
        return state


def _load(path) -> dict:
    try:
        blob = torch.load(path, map_location='cpu', weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise TrainerError(f'{path}: not a readable trainer checkpoint: {exc}') from exc
    for key in ('model', 'config', 'tokenizer'):
        if not isinstance(blob, dict) or key not in blob:
            raise TrainerError(f'{path}: not a trainer checkpoint (no {key!r})')
    return blob
