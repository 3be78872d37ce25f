"""Validated configuration of the microphone pipeline (fields = audio node parameters = YAML keys)."""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.acquisition import ReaderSettings, StreamSourceConfig
from fuse_core.audio.spectrogram import LogMelSpectrogram
from fuse_core.config import param
from fuse_core.errors import ConfigError

#: How long one read waits for a block: short, so that stop() is prompt (a lost device is
#: noticed by the source after stall_timeout_s).
READ_TIMEOUT_S = 0.2


@dataclass
class AudioConfig(StreamSourceConfig):
    """Microphone source, chunking and FuSe's log-mel spectrogram settings."""

    device: str = param('', 'input device: empty = system default, an integer = PortAudio index, '
                        'otherwise a (sub)string of the device name')
    sample_rate: int = param(44100, 'sampling rate in Hz (FuSe: 44100)', min=1, max=384000)
    channels: int = param(1, 'input channels; the spectrogram uses their mean', min=1, max=32)
    block_size: int = param(441, 'samples per published AudioChunk (441 = 10 ms at 44.1 kHz)',
                            min=1, max=65536)
    spectrogram_rate_hz: float = param(10.0, 'mel spectrogram publish rate (twice the 5 Hz '
                                       'control rate, so the newest is at most 0.1 s old)',
                                       min=0.1, max=200.0)
    window_s: float = param(0.3, 'audio window of one spectrogram in seconds (FuSe: 0.3 s; '
                            'hop 347 needs ~1.0 s for 128 frames)', min=0.001, max=30.0)
    n_fft: int = param(2048, 'FFT size and periodic Hann window length', min=2, max=65536)
    hop_length: int = param(104, 'STFT hop in samples (FuSe robot side: 104; public eval: 347)',
                            min=1, max=65536)
    n_mels: int = param(128, 'mel bands (Slaney scale, Slaney normalisation)', min=1, max=1024)
    fmin: float = param(0.0, 'lowest mel frequency in Hz', min=0.0)
    fmax: float = param(0.0, 'highest mel frequency in Hz; 0 = sample_rate / 2', min=0.0)
    top_db: float = param(80.0, 'dB range kept below the window maximum', min=0.0)
    frame_id: str = param('microphone_frame', 'header.frame_id of published messages')
    reconnect_backoff_s: float = param(1.0, 'first wait before reopening a failed source; '
                                       'doubles up to reconnect_backoff_max_s', min=0.01, max=600.0)
    reconnect_backoff_max_s: float = param(10.0, 'longest wait between reopen attempts',
                                           min=0.01, max=3600.0)
    stall_timeout_s: float = param(2.0, 'no samples for this long counts as a lost device',
                                   min=0.1, max=600.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        nyquist = self.sample_rate / 2.0
        if self.fmax > nyquist:
            raise ConfigError(f'{owner}: parameter \'fmax\' = {self.fmax} must be <= sample_rate / 2 '
                              f'= {nyquist}')
        if self.fmin >= (self.fmax or nyquist):
            raise ConfigError(f'{owner}: parameter \'fmin\' = {self.fmin} must be below fmax '
                              f'({self.fmax or nyquist} Hz)')
        if round(self.window_s * self.sample_rate) < 1:
            raise ConfigError(f'{owner}: parameter \'window_s\' = {self.window_s} is shorter than '
                              f'one sample at {self.sample_rate} Hz')

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(self.reconnect_backoff_s, self.backoff_max_s, READ_TIMEOUT_S)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    def spectrogram(self) -> LogMelSpectrogram:
        """The LogMelSpectrogram this configuration describes."""
        return LogMelSpectrogram(sample_rate=self.sample_rate, window_s=self.window_s,
                                 n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                                 fmin=self.fmin, fmax=self.fmax or None, top_db=self.top_db)
