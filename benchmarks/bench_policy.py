"""Per-tick inference time of a model bundle: threads x encoder reuse, p50/p99, side by side.

    .venv/bin/python benchmarks/bench_policy.py [--bundle models/reference] [--ticks 200]

A tick is what the policy node does per window: encode the new samples (or every sample
without reuse), run the policy graph and un-normalise. Consecutive windows share one step,
as the sync node's windows do, so with reuse each tick encodes one step instead of W.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fuse_core.bundle import Observation, PolicyRunner, load_bundle, resolve_bundle_path
from fuse_core.timing import percentiles


def windows(runner: PolicyRunner, n: int, seed: int = 0):
    """n consecutive windows: step t of window k is sample k + t (stamps and data shift by one)."""
    m = runner.manifest
    W = m.window_size
    base = runner.example_observation(seed)
    samples = []
    for k in range(n + W):
        rng = np.random.default_rng(seed + k)
        sample = {}
        for spec in m.inputs:
            arr = base.tensors[spec.name][0]
            sample[spec.name] = np.roll(arr, int(rng.integers(0, 7)), axis=0)
        samples.append(sample)
    for k in range(n):
        tensors = {spec.name: np.stack([samples[k + t][spec.name] for t in range(W)]) for spec in m.inputs}
        stamps = {spec.name: [1_000_000 + (k + t) * 200_000_000 for t in range(W)] for spec in m.inputs}
        yield Observation(tensors, np.ones(W, dtype=bool), stamps)


def bench(path, threads: int, reuse: bool, ticks: int, providers: str) -> dict:
    runner = PolicyRunner(load_bundle(path, providers=providers, threads=threads))
    if runner.bundle.tokenizer is not None:
        t = time.perf_counter()
        runner.set_instruction('pick up the cup')
        lang_ms = (time.perf_counter() - t) * 1e3
    else:
        lang_ms = float('nan')
    wins = list(windows(runner, ticks + 5))
    for obs in wins[:5]:  # warm-up: allocations, first-run kernels
        runner.infer(obs, reuse_encodings=reuse)
    totals, encode, policy = [], [], []
    for obs in wins[5:]:
        r = runner.infer(obs, reuse_encodings=reuse)
        totals.append(r.timing_ms['total'])
        encode.append(r.timing_ms['encode'])
        policy.append(r.timing_ms['policy'])
    return {
        'threads': threads,
        'reuse': reuse,
        'total': percentiles(totals),
        'encode': percentiles(encode),
        'policy': percentiles(policy),
        'language_ms': lang_ms,
        'providers': runner.bundle.providers,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bundle', default='')
    ap.add_argument('--ticks', type=int, default=200)
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--providers', default='cpu', choices=['auto', 'cpu', 'cuda'])
    args = ap.parse_args(argv)
    path = resolve_bundle_path(args.bundle)
    print(f'bundle {path}, {args.ticks} ticks per row, providers {args.providers}')
    print(
        f'{"threads":>7} {"reuse":>5} | {"total p50":>9} {"p99":>7} | {"encode p50":>10} {"p99":>7} | '
        f'{"policy p50":>10} {"p99":>7} | {"language (once)":>15}'
    )
    for threads in args.threads:
        for reuse in (False, True):
            r = bench(path, threads, reuse, args.ticks, args.providers)
            tot = r['total']
            print(
                f'{threads:>7} {"yes" if reuse else "no":>5} | {tot["p50"]:>7.2f}ms {tot["p99"]:>5.2f}ms'
                f' | {r["encode"]["p50"]:>8.2f}ms {r["encode"]["p99"]:>5.2f}ms'
                f' | {r["policy"]["p50"]:>8.2f}ms {r["policy"]["p99"]:>5.2f}ms | {r["language_ms"]:>13.2f}ms',
                flush=True,
            )
    return 0


if __name__ == '__main__':
    sys.exit(main())
