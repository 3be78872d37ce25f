"""One policy tick of an exported FuSe bundle in ONNX Runtime (CPU), with and without encoder reuse.

Optionally times the original JAX model on the same checkpoint in the same run (a worker process
under the original code's interpreter, pinned to as many cores as ONNX Runtime gets threads):

    .venv/bin/python benchmarks/bench_export.py --bundle /tmp/fuse_bundle --threads 1 2 \
        --original /path/to/FuSe/octo_digit --checkpoint /path/to/ckpt \
        --original-python /path/to/venv/bin/python [--t5-config /path/to/t5-base-config-dir]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def percentiles(samples):
    a = np.asarray(samples)
    return {'p50': float(np.percentile(a, 50)), 'p99': float(np.percentile(a, 99)), 'n': len(a)}


def random_inputs(manifest: dict, window: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for spec in manifest['inputs']:
        shape = (window, *spec['shape'])
        if spec['dtype'] == 'uint8':
            out[spec['name']] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec['dtype'] == 'int16':
            out[spec['name']] = rng.integers(-40, 41, shape).astype(np.int16)
        else:
            out[spec['name']] = rng.uniform(-80, 20, shape).astype(spec['dtype'])
    return out


def bench_onnx(
    bundle: Path, threads: int, iterations: int, obs: dict, ids: np.ndarray, mask: np.ndarray
) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3

    def session(name):
        return ort.InferenceSession(str(bundle / name), opts, providers=['CPUExecutionProvider'])

    enc, pol, lang = session('observation_encoder.onnx'), session('policy.onnx'), session('language.onnx')
    names = [o.name for o in enc.get_outputs()]
    window = next(iter(obs.values())).shape[0]
    pad = np.ones((1, window), bool)

    def encode(t):
        return dict(zip(names, enc.run(names, {k: v[t : t + 1] for k, v in obs.items()})))

    t0 = time.perf_counter()
    embedding = lang.run(None, {'input_ids': ids, 'attention_mask': mask})[0]
    lang_ms = (time.perf_counter() - t0) * 1e3
    cache = [encode(t) for t in range(window)]

    def policy(steps):
        feeds = {n: np.stack([s[n] for s in steps], axis=1) for n in names}
        return pol.run(['action'], dict(feeds, timestep_pad_mask=pad, language_embedding=embedding))[0]

    action = policy(cache)  # also the warm-up
    fresh, reuse, enc_ms, pol_ms = [], [], [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        steps = [encode(t) for t in range(window)]
        t1 = time.perf_counter()
        policy(steps)
        t2 = time.perf_counter()
        fresh.append((t2 - t0) * 1e3)
        pol_ms.append((t2 - t1) * 1e3)
        # Encoder reuse: only the newest observation is encoded, the older steps come from the cache.
        t0 = time.perf_counter()
        newest = encode(window - 1)
        t1 = time.perf_counter()
        policy(cache[1:] + [newest])
        reuse.append((time.perf_counter() - t0) * 1e3)
        enc_ms.append((t1 - t0) * 1e3)
    return {
        'threads': threads,
        'tick_no_reuse_ms': percentiles(fresh),
        'tick_with_reuse_ms': percentiles(reuse),
        'encoder_one_step_ms': percentiles(enc_ms),
        'policy_ms': percentiles(pol_ms),
        'language_first_call_ms': lang_ms,
        'action': action,
    }


def jax_worker(args) -> None:
    """Runs under the original code's interpreter: times OctoModel.sample_actions (T5 included)."""
    if args.cpus:
        os.sched_setaffinity(0, set(range(args.cpus)))
    sys.path.insert(0, args.original)
    import jax
    from octo.model.octo_model import OctoModel
    from octo.utils.spec import ModuleSpec

    data = dict(np.load(args.inputs))
    checkpoint = args.checkpoint
    if args.t5_config:
        # A view of the checkpoint whose config names a local T5 config (no hub access offline).
        view = tempfile.mkdtemp()
        for entry in Path(checkpoint).iterdir():
            if entry.name != 'config.json':
                os.symlink(entry.resolve(), os.path.join(view, entry.name))
        config = json.loads((Path(checkpoint) / 'config.json').read_text())
        config['model']['task_tokenizers']['language']['kwargs']['encoder'] = str(
            Path(args.t5_config).resolve()
        )
        Path(view, 'config.json').write_text(json.dumps(config))
        checkpoint = view
    # The text processor is not needed: the instruction arrives as token ids.
    model = OctoModel.load_pretrained(
        checkpoint, step=args.step, text_processor_spec=ModuleSpec.create('builtins:dict')
    )
    obs = {k[4:]: v[None] for k, v in data.items() if k.startswith('obs_')}
    window = next(iter(obs.values())).shape[1]
    obs['timestep_pad_mask'] = np.ones((1, window), bool)
    obs['pad_mask_dict'] = {k: np.ones((1, window), bool) for k in obs if k != 'timestep_pad_mask'}
    tasks = {
        'language_instruction': {'input_ids': data['input_ids'], 'attention_mask': data['attention_mask']},
        'pad_mask_dict': {'language_instruction': np.ones((1,), bool)},
    }
    t0 = time.perf_counter()
    action = np.asarray(model.sample_actions(obs, tasks, rng=jax.random.PRNGKey(0)))
    compile_s = time.perf_counter() - t0
    samples = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        model.sample_actions(obs, tasks, rng=jax.random.PRNGKey(0)).block_until_ready()
        samples.append((time.perf_counter() - t0) * 1e3)
    result = {'cpus': args.cpus, 'forward_ms': percentiles(samples), 'first_call_s': compile_s}
    print(json.dumps(dict(result, action=action.tolist())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--bundle', type=Path, help='exported bundle directory')
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--iterations', type=int, default=20)
    ap.add_argument('--original', help='the original octo_digit directory (optional JAX comparison)')
    ap.add_argument('--checkpoint', help='the checkpoint the bundle was exported from')
    ap.add_argument('--step', type=int, default=None)
    ap.add_argument(
        '--original-python', default=sys.executable, help="interpreter with the original code's deps"
    )
    ap.add_argument('--jax-iterations', type=int, default=10)
    ap.add_argument(
        '--t5-config', help='local T5 config directory for the original code (name must contain t5)'
    )
    ap.add_argument('--jax-worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--inputs', help=argparse.SUPPRESS)
    ap.add_argument('--cpus', type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.jax_worker:
        jax_worker(args)
        return
    manifest = json.loads((args.bundle / 'manifest.json').read_text())
    window = manifest['window_size']
    obs = random_inputs(manifest, window)
    from tokenizers import Tokenizer

    enc = Tokenizer.from_file(str(args.bundle / 'tokenizer.json')).encode('pick up the red block')
    ids = np.array([enc.ids], np.int64)
    mask = np.array([enc.attention_mask], np.int64)
    print(f'bundle {args.bundle} ({manifest["name"]}), window {window}, {os.cpu_count()} CPUs')
    onnx_action = None
    for threads in args.threads:
        r = bench_onnx(args.bundle, threads, args.iterations, obs, ids, mask)
        onnx_action = r['action']
        print(
            f'onnxruntime threads={threads}: tick without reuse p50 {r["tick_no_reuse_ms"]["p50"]:.1f} ms '
            f'p99 {r["tick_no_reuse_ms"]["p99"]:.1f} ms | with encoder reuse p50 '
            f'{r["tick_with_reuse_ms"]["p50"]:.1f} ms p99 {r["tick_with_reuse_ms"]["p99"]:.1f} ms | '
            f'encoders (1 step) p50 {r["encoder_one_step_ms"]["p50"]:.1f} ms | policy p50 '
            f'{r["policy_ms"]["p50"]:.1f} ms | language once {r["language_first_call_ms"]:.1f} ms'
        )
    if args.original:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'inputs.npz')
            np.savez(path, input_ids=ids, attention_mask=mask, **{f'obs_{k}': v for k, v in obs.items()})
            for threads in args.threads:
                cmd = [
                    args.original_python,
                    __file__,
                    '--jax-worker',
                    '--original',
                    args.original,
                    '--checkpoint',
                    str(Path(args.checkpoint).resolve()),
                    '--inputs',
                    path,
                    '--iterations',
                    str(args.jax_iterations),
                    '--cpus',
                    str(threads),
                ]
                if args.step is not None:
                    cmd += ['--step', str(args.step)]
                if args.t5_config:
                    cmd += ['--t5-config', args.t5_config]
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = [x for x in proc.stdout.splitlines() if x.startswith('{')]
                if proc.returncode != 0 or not line:
                    print(f'original JAX model on {threads} CPU(s): failed\n{proc.stderr[-2000:]}')
                    continue
                r = json.loads(line[-1])
                print(
                    f'original JAX on {threads} CPU(s): forward (T5 included, no reuse) p50 '
                    f'{r["forward_ms"]["p50"]:.1f} ms p99 {r["forward_ms"]["p99"]:.1f} ms '
                    f'(first call incl. compile {r["first_call_s"]:.0f} s); action max abs difference to '
                    f'the bundle {np.abs(np.asarray(r["action"]) - onnx_action).max():.2e}'
                )


if __name__ == '__main__':
    main()
