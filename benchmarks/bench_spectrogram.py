"""Log-mel spectrogram compute time per window: fuse_core's numpy version next to librosa."""

from __future__ import annotations

import argparse
import time

import numpy as np

from fuse_core.audio.spectrogram import LogMelSpectrogram
from fuse_core.timing import percentiles


def time_calls(fn, windows, warmup: int = 10):
    for w in windows[:warmup]:
        fn(w)
    ms = []
    for w in windows:
        t0 = time.perf_counter()
        fn(w)
        ms.append((time.perf_counter() - t0) * 1e3)
    return percentiles(ms, (50, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--windows', type=int, default=200)
    ap.add_argument('--window-s', type=float, default=0.3)
    ap.add_argument('--hop', type=int, default=104)
    ap.add_argument('--sample-rate', type=int, default=44100)
    args = ap.parse_args()

    spec = LogMelSpectrogram(sample_rate=args.sample_rate, window_s=args.window_s, hop_length=args.hop)
    rng = np.random.default_rng(0)
    windows = [(0.1 * rng.standard_normal(spec.window_samples)).astype(np.float32)
               for _ in range(args.windows)]
    print(f'{args.windows} windows of {spec.window_samples} samples ({args.window_s} s at '
          f'{args.sample_rate} Hz), n_fft {spec.n_fft}, hop {spec.hop_length}, {spec.n_mels} mels '
          f'-> {spec.shape}')
    rows = [('fuse_core (numpy)', time_calls(spec, windows))]
    try:
        import librosa
    except ImportError:
        librosa = None
    if librosa is not None:
        def with_librosa(y):
            mel = librosa.feature.melspectrogram(y=y.astype(np.float64), sr=spec.sample_rate,
                                                 n_fft=spec.n_fft, hop_length=spec.hop_length,
                                                 n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax)
            return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=spec.top_db)
        diff = max(float(np.max(np.abs(spec(w) - with_librosa(w)))) for w in windows[:20])
        rows.append(('librosa 0.11 (float64)', time_calls(with_librosa, windows)))
    print(f'{"implementation":<24} {"median ms":>10} {"p99 ms":>10}')
    for name, p in rows:
        print(f'{name:<24} {p["p50"]:>10.3f} {p["p99"]:>10.3f}')
    if librosa is not None:
        print(f'max |ours - librosa| over 20 windows: {diff:.2e} dB')


if __name__ == '__main__':
    main()
