"""python -m models.trainer: train (or finetune) on a LeRobotDataset v3 directory and export a bundle.

    python -m models.trainer --dataset DATA --out runs/NAME [--steps 200] [--export models/NAME]
    python -m models.trainer --dataset DATA --out runs/ft --pretrained runs/gen/checkpoints/last.pt --spd 1.0
    torchrun --nproc-per-node 4 -m models.trainer --dataset DATA --out runs/NAME --device cuda
    python -m models.trainer --make-tiny-dataset DIR     # a small synthetic dataset in the same layout
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import TrainerError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog='python -m models.trainer', description=__doc__.splitlines()[0])
    ap.add_argument('--dataset', help='LeRobotDataset v3 directory (images embedded); several: A,B (one dataset, '
                    'episodes numbered on)')
    ap.add_argument('--out', help='run directory: checkpoints/, metrics.csv/json, curves.png, tokenizer.json')
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--batch', type=int, default=8, help='per process (the global batch is batch x world size)')
    ap.add_argument('--lr', type=float, default=3e-4)
    ap.add_argument('--warmup', type=int, default=0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--contrastive-weight', type=float, default=1.0, help='0 turns the contrastive loss off')
    ap.add_argument('--generative-weight', type=float, default=1.0, help='0 turns the generative loss off')
    ap.add_argument('--grasp-weight', type=float, default=0.0,
                    help='grasp-point loss from the primary location tokens (needs --model \'{"locate": N}\' and '
                         'observation.state; 0 = off)')
    ap.add_argument('--inputs', default='', help='comma-separated model inputs (default: every one the dataset has)')
    ap.add_argument('--pretrained', default='', help='trainer checkpoint to finetune from')
    ap.add_argument('--l2sp', type=float, default=0.0, help='L2-SP lambda (pull toward the pretrained weights)')
    ap.add_argument('--spd', type=float, default=0.0, help='selective projection decay lambda')
    ap.add_argument('--tpgm', type=float, default=0.0, help='projected gradient: radius around the pretrained weights')
    ap.add_argument('--wise-alpha', default='1', help='WiSE-FT mix of the exported weights: a number in [0, 1] '
                    '(1 = off) or auto (the best of 0, .25, .5, .75, 1 on the held-out episodes)')
    ap.add_argument('--val-fraction', type=float, default=0.0, help='fraction of episodes held out for validation')
    ap.add_argument('--checkpoint-every', type=int, default=50)
    ap.add_argument('--log-every', type=int, default=10)
    ap.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    ap.add_argument('--threads', type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument('--workers', type=int, default=0, help='threads decoding images for each batch')
    ap.add_argument('--augment-shift', type=int, default=0, metavar='PX',
                    help='shift training camera images by up to PX pixels (random, edges repeated; 0 = off)')
    ap.add_argument('--image-cache-mb', type=int, default=4096,
                    help='decoded images kept in memory, each distinct image decoded once (0 = decode every time)')
    ap.add_argument('--model', default='{}', help='JSON overrides of the model config, e.g. {"layers": 4}')
    ap.add_argument('--resume', action='store_true', help="continue from the run's last checkpoint")
    ap.add_argument('--export', default='', help='write a bundle here after training (parity-checked)')
    ap.add_argument('--export-checkpoint', default='', metavar='CHECKPOINT',
                    help='with --export: write the bundle of this checkpoint of the run (e.g. '
                         'checkpoints/step_000500.pt, the lowest held-out loss) instead of training')
    ap.add_argument('--name', default='fuse-trained', help='bundle name')
    ap.add_argument('--make-tiny-dataset', default='', metavar='DIR', help='write a small synthetic dataset and exit')
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.make_tiny_dataset:
            from .dataset import write_tiny_dataset

            print(f'wrote {write_tiny_dataset(args.make_tiny_dataset, episodes=6, length=10)}')
            return 0
        if not args.dataset or not args.out:
            raise TrainerError('--dataset and --out are required')
        from .run import export_run
        from .train import TrainConfig, Trainer

        cfg = TrainConfig(
            dataset=args.dataset, out=args.out, steps=args.steps, batch=args.batch, lr=args.lr,
            warmup=args.warmup, seed=args.seed, contrastive_weight=args.contrastive_weight,
            generative_weight=args.generative_weight, grasp_weight=args.grasp_weight,
            inputs=tuple(s for s in args.inputs.split(',') if s), pretrained=args.pretrained,
            l2sp=args.l2sp, spd=args.spd, tpgm=args.tpgm,
            wise_alpha=-1.0 if args.wise_alpha == 'auto' else float(args.wise_alpha),
            val_fraction=args.val_fraction, checkpoint_every=args.checkpoint_every,
            log_every=args.log_every, device=args.device, threads=args.threads, workers=args.workers,
            augment_shift=args.augment_shift, image_cache_mb=args.image_cache_mb,
            model=json.loads(args.model),
        )
        trainer = Trainer(cfg)
        if args.export_checkpoint:
            if not args.export:
                raise TrainerError('--export-checkpoint needs --export DIR')
            if not trainer.resume(args.export_checkpoint):
                raise TrainerError(f'{args.export_checkpoint}: no such checkpoint')
        elif args.resume:
            trainer.resume()
        if not args.export_checkpoint:
            trainer.run()
        if args.export and trainer.rank == 0:
            export_run(trainer, args.export, name=args.name, overwrite=True)
        trainer.close()
        return 0
    except (TrainerError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
