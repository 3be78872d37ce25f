"""Sound of the twin: contact impulses as damped modes per material, motor hum, beeps, noise floor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: Damped modes per material: (frequency Hz, decay 1/s, relative amplitude).
MATERIAL_MODES: Dict[str, Tuple[Tuple[float, float, float], ...]] = {
    'hard': ((1450.0, 70.0, 1.0), (2350.0, 90.0, 0.6), (4300.0, 120.0, 0.35)),
    'soft': ((260.0, 160.0, 1.0), (610.0, 220.0, 0.4)),
}
BEEP_HZ = 3000.0
BEEP_S = 0.4
BEEP_AMPLITUDE = 0.25


@dataclass
class _Voice:
    start: int                 # sample index
    length: int
    modes: Tuple[Tuple[float, float, float], ...]
    gain: float
    tone: bool = False         # a steady tone (beep) instead of damped modes


class AudioSynth:
    """Turns world events and motor speeds into a continuous 44.1 kHz mono stream (seeded noise)."""

    def __init__(self, sample_rate: int = 44100, noise_std: float = 0.002, seed: int = 0) -> None:
        self.sample_rate = int(sample_rate)
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed)
        self._voices: List[_Voice] = []
        self.next_index = 0           # index of the next sample to render
        self._motor_phase = 0.0
        self._finger_phase = 0.0

    def reset(self, seed: int, start_time_s: float) -> None:
        self._rng = np.random.default_rng(seed)
        self._voices = []
        self.next_index = int(round(start_time_s * self.sample_rate))

    def add_event(self, time_s: float, kind: str, strength: float) -> None:
        start = int(round(time_s * self.sample_rate))
        if kind == 'beep':
            self._voices.append(_Voice(start, int(BEEP_S * self.sample_rate), ((BEEP_HZ, 0.0, 1.0),),
                                       BEEP_AMPLITUDE, tone=True))
            return
        modes = MATERIAL_MODES.get(kind, MATERIAL_MODES['hard'])
        gain = float(np.clip(0.6 * strength, 0.0, 0.8)) * (0.5 if kind == 'soft' else 1.0)
        slowest = min(d for _, d, _ in modes)
        self._voices.append(_Voice(start, int(6.0 / slowest * self.sample_rate), modes, gain))

    def render_until(self, time_s: float, joint_speed: float = 0.0, finger_speed: float = 0.0) -> np.ndarray:
        """Samples from the last rendered one up to `time_s` (float32, -1..1)."""
        end = int(round(time_s * self.sample_rate))
        n = end - self.next_index
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        idx = np.arange(self.next_index, end)
        out = self._rng.normal(0.0, self.noise_std, n)
        sr = self.sample_rate
        # Servo hum follows the joint speed; the gripper motor whines while the fingers move.
        t = np.arange(n) / sr
        if joint_speed > 1e-3:
            amp = min(0.02, 0.01 * joint_speed)
            out += amp * (np.sin(2 * np.pi * 180.0 * t + self._motor_phase)
                          + 0.5 * np.sin(2 * np.pi * 360.0 * t + 2 * self._motor_phase))
        if finger_speed > 1e-3:
            amp = min(0.03, 0.5 * finger_speed)
            out += amp * np.sin(2 * np.pi * 900.0 * t + self._finger_phase)
        self._motor_phase = (self._motor_phase + 2 * np.pi * 180.0 * n / sr) % (2 * np.pi)
        self._finger_phase = (self._finger_phase + 2 * np.pi * 900.0 * n / sr) % (2 * np.pi)
        keep: List[_Voice] = []
        for v in self._voices:
            rel = idx - v.start
            live = (rel >= 0) & (rel < v.length)
            if np.any(live):
                tt = rel[live] / sr
                if v.tone:
                    env = np.minimum(1.0, np.minimum(tt, v.length / sr - tt) / 0.01)
                    out[live] += v.gain * env * np.sin(2 * np.pi * v.modes[0][0] * tt)
                else:
                    for f, decay, a in v.modes:
                        out[live] += v.gain * a * np.exp(-decay * tt) * np.sin(2 * np.pi * f * tt)
            if v.start + v.length > end:
                keep.append(v)
        self._voices = keep
        self.next_index = end
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def band_power(samples: Sequence[float], sample_rate: int, hz: float, width_hz: float = 100.0) -> float:
    """Mean power of `samples` within hz +- width_hz/2 relative to the total (0..1)."""
    x = np.asarray(samples, dtype=float)
    if x.size < 64:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / sample_rate)
    band = (freqs > hz - width_hz / 2) & (freqs < hz + width_hz / 2)
    total = spec.sum()
    return float(spec[band].sum() / total) if total > 0 else 0.0


def hears_beep(samples: Sequence[float], sample_rate: int, threshold: float = 0.3) -> bool:
    """True when a steady tone at BEEP_HZ dominates the recent audio (what a listener would notice)."""
    return band_power(samples, sample_rate, BEEP_HZ) > threshold
