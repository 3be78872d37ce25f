"""Command line: python -m models.exporter CHECKPOINT_DIR --out BUNDLE_DIR [--step N] [--tokenizer PATH] [...]."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ExportError
from .export import export_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m models.exporter', description=__doc__)
    ap.add_argument(
        'checkpoint',
        help='Octo checkpoint directory (config.json, example_batch.msgpack, '
        'dataset_statistics.json, <step>/default/checkpoint)',
    )
    ap.add_argument('--out', required=True, help='bundle directory to write')
    ap.add_argument('--step', type=int, default=None, help='checkpoint step (default: the latest)')
    ap.add_argument(
        '--tokenizer',
        default=None,
        help="the language model's tokenizer.json (T5's, or a directory holding it)",
    )
    ap.add_argument(
        '--inputs',
        default=None,
        help='JSON file with the manifest "inputs" list (default: the FuSe sensor set)',
    )
    ap.add_argument(
        '--t5-config',
        default=None,
        help="the language T5's config.json (or a directory holding it); needed unless the checkpoint "
        'names a published T5 or a local T5 directory with its config.json',
    )
    ap.add_argument(
        '--precision',
        default='float32',
        choices=['float32', 'float16', 'int8'],
        help='weights of the per-tick graphs: int8 (dynamic quantisation of MatMul/Gemm weights, CPU) '
        'or float16 (for CUDA); checked against float32 first',
    )
    ap.add_argument(
        '--parity-bound',
        type=float,
        default=None,
        help='largest accepted max |action error| vs float32, normalised units (default: int8 0.1, float16 0.02)',
    )
    ap.add_argument(
        '--keep-over-bound', action='store_true', help='write the bundle even when the parity exceeds the bound'
    )
    ap.add_argument('--name', default='fuse', help='bundle name for the manifest')
    ap.add_argument('--control-rate-hz', type=float, default=5.0)
    ap.add_argument('--dataset', default=None, help='dataset key in dataset_statistics.json, if several')
    ap.add_argument('--no-generative', action='store_true', help='do not export the generative head')
    ap.add_argument('--force', action='store_true', help='replace an existing bundle directory')
    args = ap.parse_args(argv)
    try:
        inputs = None
        if args.inputs:
            with open(args.inputs) as f:
                inputs = json.load(f)
        export_checkpoint(
            args.checkpoint,
            args.out,
            step=args.step,
            tokenizer=args.tokenizer,
            inputs=inputs,
            name=args.name,
            control_rate_hz=args.control_rate_hz,
            dataset=args.dataset,
            generative=not args.no_generative,
            overwrite=args.force,
            t5_config=args.t5_config,
            precision=args.precision,
            parity_bound=args.parity_bound,
            keep_over_bound=args.keep_over_bound,
        )
    except ExportError as exc:
        print(f'export failed: {exc}', file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as exc:
        print(f'export failed: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
