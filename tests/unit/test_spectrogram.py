"""The numpy log-mel spectrogram against librosa with FuSe's parameters."""

import librosa
import numpy as np
import pytest
import scipy.signal

from fuse_core.audio.spectrogram import (LogMelSpectrogram, frames_for, mel_filterbank,
                                         periodic_hann)
from fuse_core.errors import ConfigError

SR = 44100
N = 13230  # 0.3 s


def librosa_db(y, sr=SR, n_fft=2048, hop=104, n_mels=128, fmin=0.0, fmax=None, top_db=80.0):
    mel = librosa.feature.melspectrogram(y=np.asarray(y, dtype=np.float64), sr=sr, n_fft=n_fft,
                                         hop_length=hop, win_length=n_fft, window='hann',
                                         center=True, pad_mode='constant', power=2.0,
                                         n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                                         norm='slaney')
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)


def sweep(n, f0=50.0, f1=20000.0, amp=0.5):
    t = np.arange(n) / SR
    return amp * scipy.signal.chirp(t, f0=f0, t1=t[-1], f1=f1, method='logarithmic')


def clicks(n, every=1500, amp=0.9):
    y = np.zeros(n)
    y[::every] = amp
    return y


SIGNALS = {
    'sine_sweep': lambda rng: sweep(N),
    'linear_sweep': lambda rng: 0.3 * scipy.signal.chirp(np.arange(N) / SR, 20, N / SR, 22000),
    'white_noise': lambda rng: rng.standard_normal(N) * 0.1,
    'loud_noise': lambda rng: np.clip(rng.standard_normal(N), -1, 1),
    'silence': lambda rng: np.zeros(N),
    'clicks': lambda rng: clicks(N),
    'low_level_tone': lambda rng: 1e-6 * np.sin(2 * np.pi * 440 * np.arange(N) / SR),
    'tone_plus_tiny_noise': lambda rng: (0.5 * np.sin(2 * np.pi * 1000 * np.arange(N) / SR)
                                         + 1e-7 * rng.standard_normal(N)),
    'float32_input': lambda rng: (rng.standard_normal(N) * 0.2).astype(np.float32),
}


@pytest.fixture(scope='module')
def fuse_spec():
    return LogMelSpectrogram()


def test_fuse_window_gives_128_by_128_without_trimming(fuse_spec):
    assert fuse_spec.window_samples == 13230
    assert frames_for(13230, 104) == 128  # 1 + 13230 // 104 = 1 + 127
    assert fuse_spec.shape == (128, 128)
    out = fuse_spec(np.zeros(13230))
    assert out.shape == (128, 128) and out.dtype == np.float32


def test_public_eval_hop_needs_about_one_second():
    spec = LogMelSpectrogram(window_s=1.0, hop_length=347)
    assert spec.shape == (128, 128)
    assert LogMelSpectrogram(window_s=0.3, hop_length=347).shape == (128, 39)


@pytest.mark.parametrize('name', sorted(SIGNALS))
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_librosa(fuse_spec, name, seed):
    y = SIGNALS[name](np.random.default_rng(seed))
    ours = fuse_spec(y)
    ref = librosa_db(y)
    assert ours.shape == ref.shape == (128, 128)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_low_level_signal_is_clipped_at_top_db(fuse_spec):
    t = np.arange(N) / SR
    y = 0.5 * np.sin(2 * np.pi * 3000 * t)
    y[N // 2:] *= 1e-6  # the second half sits far below the first
    ours = fuse_spec(y)
    ref = librosa_db(y)
    assert np.isclose(ours.min(), ours.max() - 80.0, atol=1e-3)
    assert (ours <= ours.min() + 1e-6).mean() > 0.2  # clipping actually happened on many cells
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_silence_is_the_amin_floor(fuse_spec):
    assert np.all(fuse_spec(np.zeros(N)) == np.float32(-100.0))


@pytest.mark.parametrize('kwargs', [
    dict(hop_length=347, window_s=1.0),
    dict(n_fft=1024, hop_length=256, n_mels=64, fmin=50.0, fmax=8000.0, top_db=60.0),
    dict(sample_rate=16000, window_s=0.5, n_fft=512, hop_length=160, n_mels=40),
])
def test_other_configurations_match_librosa(kwargs):
    spec = LogMelSpectrogram(**kwargs)
    sr = kwargs.get('sample_rate', SR)
    y = np.random.default_rng(7).standard_normal(spec.window_samples) * 0.1
    ref = librosa_db(y, sr=sr, n_fft=spec.n_fft, hop=spec.hop_length, n_mels=spec.n_mels,
                     fmin=spec.fmin, fmax=spec.fmax, top_db=spec.top_db)
    out = spec(y)
    assert out.shape == spec.shape == ref.shape
    assert np.max(np.abs(out - ref)) < 1e-3


def test_any_length_gives_one_plus_len_over_hop_frames(fuse_spec):
    for n in (1, 103, 104, 2048, 20000):
        assert fuse_spec(np.ones(n) * 0.1).shape == (128, 1 + n // 104)


def test_filterbank_and_window_match_librosa():
    ours = mel_filterbank(SR, 2048, 128)
    ref = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=128, dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(periodic_hann(2048), scipy.signal.get_window('hann', 2048), atol=1e-15)


def test_bad_input_is_refused(fuse_spec):
    with pytest.raises(ValueError, match='1-D'):
        fuse_spec(np.zeros((2, 100)))
    with pytest.raises(ValueError, match='non-empty'):
        fuse_spec(np.zeros(0))
    y = np.zeros(N)
    y[5] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        fuse_spec(y)


@pytest.mark.parametrize('kwargs, name', [
    (dict(sample_rate=-1), 'sample_rate'), (dict(hop_length=0), 'hop_length'),
    (dict(fmax=30000.0), 'fmax'), (dict(n_mels=0), 'n_mels'), (dict(window_s=0.0), 'window_s'),
])
def test_bad_configuration_names_the_parameter(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        LogMelSpectrogram(**kwargs)


def test_librosa_defaults_are_the_ones_we_reproduce(fuse_spec):
    # librosa 0.11 pads centred frames with zeros ('constant') by default; our zero padding
    # must therefore equal a plain librosa call without explicit padding arguments.
    y = sweep(N)
    plain = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=104,
                                                               n_mels=128),
                                ref=1.0, amin=1e-10, top_db=80.0)
    assert np.max(np.abs(fuse_spec(y) - plain)) < 1e-3


def test_empty_filters_match_librosa():
    # 256 mels on a 512-point FFT leaves some low filters without a single bin.
    spec = LogMelSpectrogram(n_fft=512, hop_length=128, n_mels=256)
    assert (mel_filterbank(SR, 512, 256).sum(axis=1) == 0).any()
    y = np.random.default_rng(3).standard_normal(spec.window_samples) * 0.1
    with pytest.warns(UserWarning, match='Empty filters'):
        ref = librosa_db(y, n_fft=512, hop=128, n_mels=256)
    assert np.max(np.abs(spec(y) - ref)) < 1e-3


def test_segmented_filterbank_equals_the_matrix_product():
    from fuse_core.audio.spectrogram import _TriangleFilterbank
    rng = np.random.default_rng(0)
    power = rng.random((50, 1025))
    triangles = mel_filterbank(SR, 2048, 128, fmin=100.0, fmax=15000.0)
    np.testing.assert_allclose(_TriangleFilterbank(triangles).apply(power), (power @ triangles.T).T,
                               rtol=1e-12, atol=1e-15)
    overlapping = rng.random((8, 1025))  # no triangle structure: the dense fallback
    np.testing.assert_allclose(_TriangleFilterbank(overlapping).apply(power), (power @ overlapping.T).T,
                               rtol=1e-12)
