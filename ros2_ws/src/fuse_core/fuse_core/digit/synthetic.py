"""Deterministic synthetic DIGIT images: a lit gel background with soft contacts pressing in and out."""

from __future__ import annotations


import numpy as np

from fuse_core.camera.synthetic import SyntheticFrameSource

_NOISE_FRAMES = 8


class SyntheticDigitSource(SyntheticFrameSource):
    """Tactile-like frames at a real size and rate; frame n depends only on (seed, n, shape).

    The background imitates the DIGIT's RGB-lit gel (smooth colour gradients plus a fixed
    texture); a few Gaussian contacts press in and out periodically, shifting the colours
    where they touch; a small cycling sensor noise makes averaging meaningful. Contact
    profiles and noise are precomputed, so a frame costs a few vectorised operations.
    """

    def __init__(self, height: int = 240, width: int = 320, fps: float = 60.0, seed: int = 0,
                 name: str = 'synthetic_digit', contacts: int = 3, paced: bool = True) -> None:
        super().__init__(name, width, height, fps, seed, paced)
        rng = np.random.default_rng(seed)
        h, w = self.height, self.width
        y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        base = np.empty((h, w, 3), np.float32)
        for c, level in enumerate(rng.uniform(90, 150, 3)):
            gx, gy = rng.uniform(-30, 30, 2)
            base[:, :, c] = level + gx * x + gy * y - 25 * (x * x + y * y)
        base += rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
        self._background = base
        sigma = 0.12 * min(h, w)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._contacts = []
        for _ in range(contacts):
            cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
            profile = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
            colour = rng.uniform(-60, 60, 3).astype(np.float32)
            period_s = rng.uniform(1.0, 3.0)
            phase = rng.uniform(0, 2 * np.pi)
            self._contacts.append((profile[:, :, None] * colour, period_s, phase))
        self._noise = rng.normal(0, 1.5, (_NOISE_FRAMES, h, w, 3)).astype(np.float32)

    def describe(self) -> str:
        return f'SYNTHETIC DIGIT {self.name} (seed {self.seed})'

    def depths(self, n: int) -> np.ndarray:
        """Contact depths (0 = no contact, 1 = full press) at frame n."""
        t = n / self.fps
        return np.array([max(0.0, np.sin(2 * np.pi * t / period + phase))
                         for _, period, phase in self._contacts])

    def frame(self, n: int) -> np.ndarray:
        """Frame number n (no pacing)."""
        img = self._background + self._noise[n % _NOISE_FRAMES]
        for depth, (pattern, _, _) in zip(self.depths(n), self._contacts):
            if depth > 0:
                img += np.float32(depth) * pattern
        return np.clip(img, 0, 255).astype(np.uint8)
