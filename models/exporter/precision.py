"""int8 (dynamic quantisation) and float16 bundles, and their parity report against float32."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import ExportError

PRECISIONS = ('float32', 'float16', 'int8')
#: The graphs that run every tick; the language graph (once per instruction) and the generative
#: head (on request) stay float32.
PER_TICK = ('observation_encoder.onnx', 'policy.onnx')
#: Largest accepted max |action error| in normalised units (dataset standard deviations),
#: float32 bundle vs converted one, on the parity inputs. float16 rounds to ~1e-3 relative;
#: int8 dynamic quantisation of every MatMul weight is coarser.
DEFAULT_BOUNDS = {'float16': 0.02, 'int8': 0.1}


class ParityError(ExportError):
    """The converted graphs differ from float32 by more than the bound."""


def convert(model, precision: str):
    """float32 ModelProto -> the same graph with int8 MatMul weights or float16 compute.

    int8: ONNX Runtime's dynamic quantisation of the MatMul/Gemm weights, per output channel
    (activations are quantised per call, so no calibration data is needed; convolutions stay
    float32). float16: every float tensor in
    half precision, inputs and outputs kept float32 so the bundle signature is unchanged.
    """
    import onnx

    if precision == 'int8':
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(prefix='fuse_int8_') as tmp:
            out = Path(tmp) / 'model.onnx'
            # ONNX shape inference gives no types past ONNX Runtime's own ops (FastGelu), so
            # the quantiser is told that what it cannot type is float.
            quantize_dynamic(model, out, op_types_to_quantize=['MatMul', 'Gemm'], weight_type=QuantType.QInt8,
                             per_channel=True, extra_options={'DefaultTensorType': onnx.TensorProto.FLOAT})
            return onnx.load(str(out))
    if precision == 'float16':
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return convert_float_to_float16(model, keep_io_types=True)
    raise ExportError(f'precision {precision!r} is not one of {list(PRECISIONS)}')


def random_inputs(inputs: list[dict], window: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """One timestep feed per window step, of the manifest inputs' dtypes and plausible ranges."""
    steps = []
    for _ in range(window):
        feed = {}
        for spec in inputs:
            shape = (1, *spec['shape'])
            dt = np.dtype(spec['dtype'])
            if dt == np.uint8:
                feed[spec['name']] = rng.integers(0, 256, shape, dtype=np.uint8)
            elif dt.kind in 'iu':
                feed[spec['name']] = rng.integers(-40, 41, shape).astype(dt)
            else:
                feed[spec['name']] = rng.uniform(-80.0, 0.0, shape).astype(dt)
        steps.append(feed)
    return steps


def _session(model, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=['CPUExecutionProvider'])


def _tick(enc, pol, steps, language):
    names = [o.name for o in enc.get_outputs()]
    per_step = [dict(zip(names, enc.run(names, feed))) for feed in steps]
    feeds = {n: np.stack([s[n][0] for s in per_step])[None] for n in names}
    feeds['timestep_pad_mask'] = np.ones((1, len(steps)), dtype=bool)
    if language is not None:
        feeds['language_embedding'] = language
    action = pol.run(['action'], feeds)[0]
    return per_step, action


def parity_report(models32: dict, converted: dict, inputs: list[dict], window: int, language, *,
                  std=None, samples: int = 3, timing_runs: int = 3, threads: int = 2, seed: int = 0) -> dict:
    """Max |error| of each encoder's tokens and of the action chunk, converted vs float32.

    Both bundles run end to end on the same `samples` random windows (each its own tokens, as
    deployed); `std` (the action statistics) also gives the action error in action units.
    The per-tick time (every step encoded + the policy, CPU, `threads` threads) of both is
    the median of `timing_runs` runs.
    """
    rng = np.random.default_rng(seed)
    s32 = (_session(models32['observation_encoder.onnx'], threads), _session(models32['policy.onnx'], threads))
    sq = (_session(converted['observation_encoder.onnx'], threads), _session(converted['policy.onnx'], threads))
    token_err: dict[str, float] = {}
    action_err = np.zeros(0)
    for _ in range(samples):
        steps = random_inputs(inputs, window, rng)
        tok32, act32 = _tick(*s32, steps, language)
        tokq, actq = _tick(*sq, steps, language)
        for a, b in zip(tok32, tokq):
            for name in a:
                err = float(np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))))
                token_err[name] = max(token_err.get(name, 0.0), err)
        diff = np.abs(act32.astype(np.float64) - actq.astype(np.float64))[0]  # (horizon, dim)
        action_err = diff if action_err.size == 0 else np.maximum(action_err, diff)
    steps = random_inputs(inputs, window, rng)
    times = {}
    for label, sessions in (('float32', s32), ('converted', sq)):
        _tick(*sessions, steps, language)  # warm-up
        runs = []
        for _ in range(max(1, timing_runs)):
            t0 = time.perf_counter()
            _tick(*sessions, steps, language)
            runs.append((time.perf_counter() - t0) * 1e3)
        times[label] = float(np.median(runs))
    report = {
        'samples': samples,
        'inputs': 'seeded random windows (uint8 images, int16 tactile, dB spectrogram), full history',
        'action_max_abs': float(action_err.max()),
        'action_max_abs_per_dim': [float(x) for x in action_err.max(axis=0)],
        'token_max_abs': token_err,
        'tick_ms_float32': times['float32'],
        'tick_ms_converted': times['converted'],
        'speed_ratio': times['float32'] / times['converted'] if times['converted'] > 0 else float('nan'),
        'threads': threads,
        'provider': 'CPUExecutionProvider',
    }
    if std is not None:
        report['action_max_abs_units'] = [float(x) for x in action_err.max(axis=0) * np.asarray(std)]
    return report


def format_report(precision: str, r: dict, bound: float) -> str:
    tokens = ', '.join(f'{k} {v:.3g}' for k, v in sorted(r['token_max_abs'].items()))
    return (f'{precision} vs float32 on {r["samples"]} windows: action max |error| {r["action_max_abs"]:.3g} '
            f'(normalised; bound {bound:g}); tokens max |error|: {tokens}; one tick {r["tick_ms_float32"]:.1f} ms '
            f'float32 vs {r["tick_ms_converted"]:.1f} ms {precision} on CPU, {r["threads"]} threads '
            f'(x{r["speed_ratio"]:.2f})')


def check_bound(precision: str, r: dict, bound: float, keep: bool, log) -> None:
    err = r['action_max_abs']
    if not np.isfinite(err) or err > bound:
        msg = (f'{precision} parity: action max |error| {err:.3g} exceeds the bound {bound:g} by '
               f'{err - bound:.3g} ({err / bound:.1f} x the bound)')
        if not keep:
            raise ParityError(msg + '; nothing written (pass --keep-over-bound to write it anyway)')
        log(f'warning: {msg}; written anyway (--keep-over-bound)')
