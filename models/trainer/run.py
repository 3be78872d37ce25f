"""Glue between a finished Trainer and the exporter: windows for the parity check, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .export import export_bundle
from .model import FuseModel


def parity_windows(trainer, n: int = 4, seed: int = 0):
    """Training windows (the newest frames of a few episodes, one with padded history)."""
    data = trainer.data
    rng = np.random.default_rng(seed)
    picks = [0] + [int(i) for i in rng.integers(0, len(data), n - 1)]
    out = []
    for i in picks:
        s = data.sample(i, trainer.stats)
        text = data.instructions[int(s['episode'])]['simple']
        out.append(({k: s[k] for k in data.inputs}, s['timestep_pad_mask'], text))
    return out


def export_run(trainer, out_dir, name: str = 'fuse-trained', overwrite: bool = False, log=print) -> dict:
    model = FuseModel(trainer.model_cfg)
    model.load_state_dict(trainer.final_state())  # (chooses the WiSE-FT alpha first when auto)
    cfg = trainer.cfg
    last = trainer.history[-1] if trainer.history else {}
    report = {
        'dataset': str(Path(cfg.dataset)),
        'steps': trainer.step,
        'train_config': cfg.to_dict(),
        'model_config': trainer.model_cfg.to_dict(),
        'final_losses': {k: last[k] for k in ('loss', 'action', 'contrastive', 'generative', 'l2sp') if k in last},
        'parameters': int(sum(p.numel() for p in model.parameters())),
        'held_out_episodes': list(trainer.val_episodes),
    }
    if trainer.wise_choice:
        report['wise_ft_held_out_action_loss'] = trainer.wise_choice
    val = [r['val_action'] for r in trainer.history if 'val_action' in r]
    if val:
        report['held_out_action_loss'] = val[-1]
    robust = [m for m, on in (('l2sp', cfg.l2sp > 0), ('spd', cfg.spd > 0), ('tpgm', cfg.tpgm > 0),
                              ('wise', cfg.wise_alpha != 1)) if on]
    names = ' + '.join(r.name for r in trainer.data.roots)
    desc = (f'FuSe-shaped policy trained by models/trainer on {names} for {trainer.step} steps'
            + (f', finetuned from {Path(cfg.pretrained).name} with {", ".join(robust) or "plain finetuning"}'
               if cfg.pretrained else ''))
    with torch.no_grad():
        return export_bundle(model, trainer.tokenizer_json, trainer.stats, out_dir, parity_windows(trainer),
                             name=name, description=desc, report=report,
                             generative=bool(trainer.generative), overwrite=overwrite, log=log)
