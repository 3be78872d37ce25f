"""Deterministic synthetic camera frames for tests and simulation (never mistaken for real data)."""

from __future__ import annotations

import abc
from typing import Optional

import numpy as np

from fuse_core.camera.base import ActualSettings, Frame, FrameSource, Pacer
from fuse_core.errors import DeviceError
from fuse_core.timing import wall_ns

# 3x5 bitmaps of the digits 0-9, one string per row.
_GLYPHS = {
    '0': ('111', '101', '101', '101', '111'), '1': ('010', '110', '010', '010', '111'),
    '2': ('111', '001', '111', '100', '111'), '3': ('111', '001', '111', '001', '111'),
    '4': ('101', '101', '111', '001', '001'), '5': ('111', '100', '111', '001', '111'),
    '6': ('111', '100', '111', '101', '111'), '7': ('111', '001', '010', '010', '010'),
    '8': ('111', '101', '111', '101', '111'), '9': ('111', '101', '111', '001', '111'),
}


def glyph_masks(scale: int) -> np.ndarray:
    """(10, 5*scale, 3*scale) boolean masks of the digits 0-9."""
    masks = np.zeros((10, 5, 3), bool)
    for d, rows in _GLYPHS.items():
        masks[int(d)] = [[c == '1' for c in row] for row in rows]
    return masks.repeat(scale, axis=1).repeat(scale, axis=2)


class SyntheticFrameSource(FrameSource):
    """Shared lifecycle of the synthetic frame sources: frame n at a paced real rate.

    Subclasses precompute what they draw and implement frame(n) (depends only on seed and n).
    """

    kind = 'synthetic'

    def __init__(self, name: str, width: int, height: int, fps: float, seed: int, paced: bool) -> None:
        super().__init__(name)
        self.width, self.height, self.fps, self.seed = int(width), int(height), float(fps), int(seed)
        self.paced = paced
        self._pacer = Pacer(fps)
        self._n = 0
        self._connected = False

    @abc.abstractmethod
    def frame(self, n: int) -> np.ndarray:
        """Frame number n as bgr uint8 (height, width, 3)."""

    def connect(self) -> None:
        self._connected = True
        self._pacer.reset()
        self.actual = ActualSettings(self.width, self.height, self.fps, 'synthetic')

    def read(self, timeout_s: Optional[float] = None) -> Frame:
        if not self._connected:
            raise DeviceError(f'{self.describe()}: not connected')
        img = self.frame(self._n)
        self._n += 1
        return img, (self._pacer.wait() if self.paced else wall_ns())

    def close(self) -> None:
        self._connected = False


class SyntheticCameraSource(SyntheticFrameSource):
    """A seeded moving test pattern at a real size and rate.

    Frame n depends only on (seed, n, size): a horizontally scrolling colour gradient, a
    disc on a Lissajous path, a vertically moving bar and the frame number drawn top-left.
    Everything is precomputed once; a frame costs one slice copy and a few small pastes.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0,
                 name: str = 'synthetic', paced: bool = True) -> None:
        if width < 32 or height < 32:
            raise ValueError(f'synthetic frames need at least 32x32 pixels, got {width}x{height}')
        super().__init__(name, width, height, fps, seed, paced)
        rng = np.random.default_rng(seed)
        w, h = self.width, self.height
        # Two periods of a horizontally periodic gradient, so any window of width w is a slice.
        x = np.arange(2 * w, dtype=np.float32) * (2 * np.pi / w)
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        phases = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
        strip = np.empty((h, 2 * w, 3), np.uint8)
        for c in range(3):
            strip[:, :, c] = np.clip(127 + 80 * np.sin(x + phases[c])[None, :] + 40 * (y - 0.5),
                                     0, 255).astype(np.uint8)
        self._strip = strip
        self._scroll = max(1, w // 160)
        r = max(4, min(w, h) // 10)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        self._disc = (xx * xx + yy * yy) <= r * r
        self._disc_colour = rng.integers(0, 256, 3, dtype=np.uint8)
        self._bar_colour = rng.integers(0, 256, 3, dtype=np.uint8)
        self._bar_h = max(2, h // 24)
        self._freq = rng.uniform(0.2, 0.6, 2)
        self._phase = rng.uniform(0, 2 * np.pi, 2)
        self._scale = max(1, h // 96)
        self._glyphs = glyph_masks(self._scale)

    def describe(self) -> str:
        return f'SYNTHETIC camera {self.name} (seed {self.seed})'

    def frame(self, n: int) -> np.ndarray:
        """Frame number n (no pacing)."""
        w, h = self.width, self.height
        offset = (n * self._scroll) % w
        img = self._strip[:, offset:offset + w].copy()
        # The bar sweeps down the frame once every 2 s of stream time.
        period = max(1, int(2 * self.fps))
        top = int((n % period) * (h - self._bar_h) / period)
        img[top:top + self._bar_h, :] = self._bar_colour
        t = n / self.fps
        r = self._disc.shape[0] // 2
        cx = int((w / 2 - r - 1) * np.sin(2 * np.pi * self._freq[0] * t + self._phase[0]) + w / 2)
        cy = int((h / 2 - r - 1) * np.sin(2 * np.pi * self._freq[1] * t + self._phase[1]) + h / 2)
        img[cy - r:cy + r + 1, cx - r:cx + r + 1][self._disc] = self._disc_colour
        self._draw_number(img, n)
        return img

    def _draw_number(self, img: np.ndarray, n: int) -> None:
        s = self._scale
        gh, gw = self._glyphs.shape[1:]
        digits = str(n)
        box_w = len(digits) * (gw + s) + s
        if box_w + 2 * s > self.width:
            return
        img[s:s + gh + 2 * s, s:s + box_w] = 0
        for i, d in enumerate(digits):
            x0 = 2 * s + i * (gw + s)
            img[2 * s:2 * s + gh, x0:x0 + gw][self._glyphs[int(d)]] = 255
