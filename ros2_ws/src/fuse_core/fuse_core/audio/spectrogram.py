"""Log-mel spectrogram of a microphone window with FuSe's parameters, in numpy only.

The computation matches ``librosa.power_to_db(librosa.feature.melspectrogram(...))`` with
the same arguments: centred STFT with zero ('constant') padding of n_fft // 2 on both sides,
a periodic Hann window as long as n_fft, the power spectrum, a Slaney-scale mel filterbank
with Slaney (area) normalisation, then 10 * log10(max(S, amin) / ref) clipped to top_db below
the window's maximum.

Shape: a centred STFT of N samples has 1 + N // hop_length frames, so FuSe's 0.3 s window
(13230 samples at 44.1 kHz) with hop 104 gives 1 + 127 = 128 frames exactly, with no
trimming; the output is (n_mels, frames) = (128, 128) float32. The public FuSe eval client's
hop 347 needs ~1 s of audio (44100 samples -> 128 frames) for the same shape.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from fuse_core.errors import ConfigError

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Hz -> mel on the Slaney scale."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    with np.errstate(divide='ignore'):
        log = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Mel on the Slaney scale -> Hz."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
    """Triangular Slaney-scale mel filters with Slaney area normalisation, (n_mels, n_fft//2+1) float64."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - fft_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Area normalisation: each filter integrates to the same energy whatever its width.
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights


def periodic_hann(n: int) -> np.ndarray:
    """The periodic ('DFT-even') Hann window of length n, as scipy's get_window('hann', n)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n, dtype=np.float64) / n)


def frames_for(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT of n_samples: 1 + n_samples // hop_length."""
    return 1 + n_samples // hop_length


class _TriangleFilterbank:
    """Applies a mel filterbank as segmented sums instead of a matrix product.

    Triangles overlap only their neighbours, so the even-numbered filters have disjoint bin
    ranges, and so do the odd ones: each half is one weighted row of bins cut into segments
    (np.add.reduceat). That is single-threaded and faster than the dense product, which
    goes through OpenBLAS, whose worker threads cost tens of milliseconds to wake on a loaded
    2-core machine. A filterbank without that structure falls back to the product.
    """

    def __init__(self, weights: np.ndarray) -> None:
        self.n_filters, n_bins = weights.shape
        self._dense_t: Optional[np.ndarray] = None
        self._halves = []
        for parity in (0, 1):
            rows, starts, row_weights, prev_end = [], [], np.zeros(n_bins), 0
            for m in range(parity, self.n_filters, 2):
                nonzero = np.flatnonzero(weights[m])
                if nonzero.size == 0:
                    continue  # an empty filter stays 0
                lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
                if lo < prev_end:
                    self._dense_t = np.ascontiguousarray(weights.T)
                    return
                row_weights[lo:hi] = weights[m, lo:hi]
                rows.append(m)
                starts.append(lo)
                prev_end = hi
            self._halves.append((np.array(rows, dtype=np.intp), np.array(starts, dtype=np.intp),
                                 row_weights))

    def apply(self, power: np.ndarray) -> np.ndarray:
        """(frames, bins) power -> (n_filters, frames) mel power."""
        if self._dense_t is not None:
            return (power @ self._dense_t).T
        out = np.zeros((self.n_filters, power.shape[0]), dtype=np.float64)
        for rows, starts, row_weights in self._halves:
            if rows.size:
                # Segments run from one filter's first bin to the next one's; the bins after a
                # filter's end carry weight 0, so each segment sums exactly one filter.
                out[rows] = np.add.reduceat(power * row_weights, starts, axis=1).T
        return out


class LogMelSpectrogram:
    """A log-mel spectrogram function for one configuration (window and filterbank precomputed).

    ``spec(samples)`` takes a 1-D window of samples (any length >= 1; the configured window
    length gives :attr:`shape`) and returns float32 dB of shape (n_mels, 1 + len // hop_length).
    """

    def __init__(self, sample_rate: int = 44100, window_s: float = 0.3, n_fft: int = 2048,
                 hop_length: int = 104, n_mels: int = 128, fmin: float = 0.0,
                 fmax: Optional[float] = None, top_db: Optional[float] = 80.0,
                 ref: float = 1.0, amin: float = 1e-10) -> None:
        fmax = sample_rate / 2.0 if fmax is None or fmax == 0 else float(fmax)
        checks = [
            (sample_rate > 0, 'sample_rate', sample_rate, 'must be > 0'),
            (window_s > 0, 'window_s', window_s, 'must be > 0'),
            (n_fft >= 2, 'n_fft', n_fft, 'must be >= 2'),
            (hop_length >= 1, 'hop_length', hop_length, 'must be >= 1'),
            (n_mels >= 1, 'n_mels', n_mels, 'must be >= 1'),
            (fmin >= 0, 'fmin', fmin, 'must be >= 0'),
            (fmin < fmax <= sample_rate / 2.0, 'fmax', fmax,
             f'must be in (fmin={fmin}, sample_rate/2={sample_rate / 2.0}]'),
            (top_db is None or top_db >= 0, 'top_db', top_db, 'must be >= 0 or None'),
            (ref > 0, 'ref', ref, 'must be > 0'),
            (amin > 0, 'amin', amin, 'must be > 0'),
        ]
        for ok, name, value, why in checks:
            if not ok:
                raise ConfigError(f'LogMelSpectrogram: parameter {name!r} = {value!r} {why}')
        self.sample_rate = int(sample_rate)
        self.window_samples = int(round(window_s * sample_rate))
        if self.window_samples < 1:
            raise ConfigError(f'LogMelSpectrogram: window_s = {window_s} is shorter than one sample')
        self.n_fft, self.hop_length, self.n_mels = int(n_fft), int(hop_length), int(n_mels)
        self.fmin, self.fmax, self.top_db = float(fmin), fmax, top_db
        self.ref, self.amin = float(ref), float(amin)
        self._window = periodic_hann(self.n_fft)
        self._filters = _TriangleFilterbank(
            mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax))
        self._db_offset = 10.0 * math.log10(max(self.amin, self.ref))

    @property
    def n_frames(self) -> int:
        """Frames of the configured window."""
        return frames_for(self.window_samples, self.hop_length)

    @property
    def shape(self) -> Tuple[int, int]:
        """Output shape for the configured window: (n_mels, frames)."""
        return (self.n_mels, self.n_frames)

    def power_mel(self, samples: np.ndarray) -> np.ndarray:
        """Mel power spectrogram (before dB), (n_mels, frames) float64."""
        y = np.asarray(samples)
        if y.ndim != 1 or y.size == 0:
            raise ValueError(f'spectrogram input must be a non-empty 1-D array, got shape {y.shape}')
        y = y.astype(np.float64, copy=False)
        if not np.isfinite(y).all():
            raise ValueError('spectrogram input contains NaN or infinite samples')
        pad = self.n_fft // 2
        padded = np.zeros(y.size + 2 * pad, dtype=np.float64)
        padded[pad:pad + y.size] = y
        n_frames = frames_for(y.size, self.hop_length)
        # Overlapping frames as a strided view: no copy until the window is applied.
        frames = np.lib.stride_tricks.as_strided(
            padded, shape=(n_frames, self.n_fft),
            strides=(padded.strides[0] * self.hop_length, padded.strides[0]), writeable=False)
        spectrum = np.fft.rfft(frames * self._window, axis=1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        return self._filters.apply(power)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel spectrogram in dB, (n_mels, frames) float32."""
        db = 10.0 * np.log10(np.maximum(self.power_mel(samples), self.amin))
        db -= self._db_offset
        if self.top_db is not None:
            np.maximum(db, db.max() - self.top_db, out=db)
        return db.astype(np.float32)
