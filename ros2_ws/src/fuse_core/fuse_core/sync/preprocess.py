"""Model-input preprocessing named by the bundle manifest, applied once per sensor sample.

Choices (FuSe/Octo parity):

* Resizing. Octo resizes with TensorFlow's lanczos3 *with antialiasing*; OpenCV's
  INTER_LANCZOS4 does not widen its kernel when shrinking, so a 640x480 -> 256x256 shrink
  with it aliases (moire on fine texture). When an image is made smaller on either axis
  we therefore use INTER_AREA (pixel-area averaging: OpenCV's antialiased shrink, and the
  cheapest of the antialiased options); when it is enlarged, the manifest's interpolation
  (lanczos -> INTER_LANCZOS4) is used as named. Same size: no resampling at all.
* Colour order. Cameras and DIGITs publish bgr8 (the contract). The model wants RGB, so
  rgb_image flips BGR -> RGB. FuSe's own DIGIT pipeline also flipped its bgr8 DIGIT frames
  to RGB before storing them (``img[:, :, ::-1]`` on the recorder's bgr8 frames), so its
  tactile model was trained on RGB: tactile_minus_background uses RGB for frame and
  background alike. rgb8 input is accepted as is; other encodings are refused.
* Tactile difference: both the frame and the background are resized to the model size
  first, then subtracted as int16 (frame - background, signed, range -255..255), as FuSe
  did with its resized background captured at episode reset.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from fuse_core.errors import ConfigError, FuseError

#: Manifest interpolation names -> OpenCV flag names (resolved lazily: cv2 is imported on use).
INTERPOLATIONS = {
    'lanczos': 'INTER_LANCZOS4',
    'cubic': 'INTER_CUBIC',
    'linear': 'INTER_LINEAR',
    'area': 'INTER_AREA',
    'nearest': 'INTER_NEAREST',
}

COLOUR_ENCODINGS = ('bgr8', 'rgb8')
OPS = ('rgb_image', 'tactile_minus_background', 'passthrough')


class PreprocessError(FuseError, ValueError):
    """A sample cannot be turned into the model input (wrong encoding, size, ...)."""


def _spec_get(spec: Any, key: str, default: Any = None) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(key, default)
    return getattr(spec, key, default)


def resize(image: np.ndarray, size: Sequence[int], interpolation: str) -> np.ndarray:
    """Resize an (H, W, C) image to size = (height, width); antialiased when shrinking."""
    import cv2
    h, w = int(size[0]), int(size[1])
    if image.shape[0] == h and image.shape[1] == w:
        return image
    if h < image.shape[0] or w < image.shape[1]:
        flag = cv2.INTER_AREA
    else:
        flag = getattr(cv2, INTERPOLATIONS[interpolation])
    out = cv2.resize(image, (w, h), interpolation=flag)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def check_colour(image: np.ndarray, encoding: str, what: str) -> None:
    """Refuse anything but an (H, W, 3) uint8 bgr8/rgb8 image, naming the stream."""
    if encoding not in COLOUR_ENCODINGS:
        raise PreprocessError(f'{what}: image encoding {encoding!r} is not one of {list(COLOUR_ENCODINGS)}')
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PreprocessError(f'{what}: expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}')


def rgb_resized(image: np.ndarray, encoding: str, size: Sequence[int], interpolation: str,
                what: str) -> np.ndarray:
    """Contiguous RGB uint8 image of `size` from a bgr8/rgb8 image.

    Resampling treats channels independently, so the channel flip is done after the resize,
    on the small image: OpenCV would first copy a channel-reversed (negative-stride) view of
    the full frame, which doubled the cost of a 640x480 shrink.
    """
    check_colour(image, encoding, what)
    out = resize(image, size, interpolation)
    if encoding == 'bgr8':
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


class Preprocessor(abc.ABC):
    """Turns one sensor sample into one model input of the manifest's shape and dtype.

    `prepare` does the expensive part once per sample; `finish` turns a prepared sample
    into the final array (cheap; for tactile it subtracts the current background) and
    returns None when the input cannot be formed yet (see `unavailable_reason`).
    """

    op = ''

    def __init__(self, name: str, stream: str, shape: Sequence[int], dtype: str,
                 options: Mapping[str, Any]) -> None:
        self.name, self.stream = name, stream
        self.shape: Tuple[int, ...] = tuple(int(s) for s in shape)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError as exc:
            raise ConfigError(f'manifest input {name!r}: unknown dtype {dtype!r}') from exc
        self.options = dict(options)
        #: Number of `prepare` calls and their total time (diagnostics, tests, benchmarks).
        self.prepare_calls = 0
        self.prepare_seconds = 0.0
        self.last_prepare_s = 0.0
        self._counter_lock = threading.Lock()

    def version(self) -> int:
        """Changes whenever `finish` would give a different result for the same sample."""
        return 0

    def unavailable_reason(self) -> str:
        return ''

    def prepare(self, image: np.ndarray, encoding: str) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._prepare(image, encoding)
        finally:
            dt = time.perf_counter() - t0
            with self._counter_lock:
                self.prepare_calls += 1
                self.prepare_seconds += dt
                self.last_prepare_s = dt

    @abc.abstractmethod
    def _prepare(self, image: np.ndarray, encoding: str) -> np.ndarray:
        ...

    def finish(self, prepared: np.ndarray) -> Optional[np.ndarray]:
        return prepared

    def _check_size(self, size: Any) -> Tuple[int, int]:
        if size is None or len(size) != 2 or any(int(s) < 1 for s in size):
            raise ConfigError(f'manifest input {self.name!r}: preprocess.size must be [height, width], '
                              f'got {size!r}')
        return int(size[0]), int(size[1])

    def _check_interpolation(self) -> str:
        interp = self.options.get('interpolation', 'lanczos')
        if interp not in INTERPOLATIONS:
            raise ConfigError(f'manifest input {self.name!r}: interpolation {interp!r} is not one of '
                              f'{sorted(INTERPOLATIONS)}')
        return interp


class _ImageOp(Preprocessor):
    """An op whose output is an image of the manifest's size, 3 channels, of the op's own dtype."""

    delivers: type = np.uint8

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.size = self._check_size(self.options.get('size'))
        self.interpolation = self._check_interpolation()
        if self.shape != (*self.size, 3) or self.dtype != self.delivers:
            raise ConfigError(f'manifest input {self.name!r}: {self.op} gives {(*self.size, 3)} '
                              f'{np.dtype(self.delivers).name}, but the manifest declares {self.shape} '
                              f'{self.dtype.name}')


class RgbImage(_ImageOp):
    """bgr8/rgb8 camera frame -> RGB uint8 (size[0], size[1], 3), values 0..255."""

    op = 'rgb_image'

    def _prepare(self, image: np.ndarray, encoding: str) -> np.ndarray:
        return rgb_resized(image, encoding, self.size, self.interpolation, self.stream)


class TactileMinusBackground(_ImageOp):
    """DIGIT frame and latched background, both resized, RGB; int16 frame - background."""

    op = 'tactile_minus_background'
    delivers = np.int16

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._background: Optional[np.ndarray] = None
        self._version = 0

    def set_background(self, image: np.ndarray, encoding: str) -> None:
        """Latch a new background frame (resized and converted once, here)."""
        self._background = rgb_resized(image, encoding, self.size, self.interpolation,
                                       f'{self.stream} background').astype(np.int16)
        self._version += 1

    @property
    def has_background(self) -> bool:
        return self._background is not None

    def version(self) -> int:
        return self._version

    def unavailable_reason(self) -> str:
        return '' if self._background is not None else f'no DIGIT background for {self.stream}'

    def _prepare(self, image: np.ndarray, encoding: str) -> np.ndarray:
        return rgb_resized(image, encoding, self.size, self.interpolation, self.stream)

    def finish(self, prepared: np.ndarray) -> Optional[np.ndarray]:
        background = self._background
        if background is None:
            return None
        return np.subtract(prepared, background, dtype=np.int16)


class Passthrough(Preprocessor):
    """An array already in model form (e.g. the dB mel spectrogram): checked, not changed."""

    op = 'passthrough'

    def _prepare(self, image: np.ndarray, encoding: str) -> np.ndarray:
        arr = image
        if arr.ndim == 3 and arr.shape[2] == 1 and len(self.shape) == 2:
            arr = arr[:, :, 0]
        if tuple(arr.shape) != self.shape:
            raise PreprocessError(f'{self.stream}: {encoding} sample of shape {tuple(image.shape)} '
                                  f'does not match input {self.name!r} shape {list(self.shape)}')
        if arr.dtype.kind != self.dtype.kind:
            raise PreprocessError(f'{self.stream}: {encoding} sample of dtype {arr.dtype.name} cannot '
                                  f'feed input {self.name!r} of dtype {self.dtype.name}')
        return np.array(arr, dtype=self.dtype, copy=True)


_CLASSES: Dict[str, type] = {c.op: c for c in (RgbImage, TactileMinusBackground, Passthrough)}


def make_preprocessor(input_spec: Any) -> Preprocessor:
    """Build the preprocessor of one manifest input (a mapping or an object with attributes)."""
    name = _spec_get(input_spec, 'name')
    preprocess = _spec_get(input_spec, 'preprocess') or {}
    op = _spec_get(preprocess, 'op')
    if op not in _CLASSES:
        raise ConfigError(f'manifest input {name!r}: preprocess op {op!r} is not one of {list(OPS)}')
    options = {k: _spec_get(preprocess, k) for k in ('size', 'interpolation')
               if _spec_get(preprocess, k) is not None}
    return _CLASSES[op](name, _spec_get(input_spec, 'stream'), _spec_get(input_spec, 'shape'),
                        _spec_get(input_spec, 'dtype'), options)
