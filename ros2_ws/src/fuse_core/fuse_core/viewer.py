"""What the live viewer shows, without ROS or Foxglove: its config, rate limits, JPEG frames, tactile and
spectrogram images, and the action chunk as a predicted end-effector path."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from fuse_core.config import ValidatedConfig, param


@dataclass
class ViewerConfig(ValidatedConfig):
    host: str = param('127.0.0.1', 'Address the Foxglove WebSocket server listens on (0.0.0.0 = every '
                      'interface: anyone on the network can watch)')
    port: int = param(8765, 'Port of the Foxglove WebSocket server', min=1, max=65535)
    image_rate_hz: float = param(5.0, 'Most images per second per image topic (JPEG-encoded)', min=0.1, max=30.0)
    jpeg_quality: int = param(75, 'JPEG quality of the images sent', min=10, max=100)
    image_max_width: int = param(640, 'Images wider than this are scaled down before encoding', min=32, max=4096)
    plot_rate_hz: float = param(20.0, 'Most IMU and TF messages per second sent to the viewer', min=0.1, max=200.0)
    digit_gain: float = param(4.0, 'Gain on |frame - background| of the tactile difference images', min=0.1, max=50.0)
    message_backlog: int = param(64, 'Messages queued per client before the server drops them for that '
                                 'client (a slow client never blocks a publisher)', min=1, max=10000)
    task_state_topic: str = param('/world/task_state', 'TaskState topic of the twin (absent on the robot)')
    robot_model: str = param('wx250s', 'Arm model (link frame prefix "<robot_model>/")', choices=('wx250s',))


class RateLimiter:
    """Lets one event through per period per key; the rest are dropped before any work is done."""

    def __init__(self, rate_hz: float, clock=time.monotonic) -> None:
        self.period = 1.0 / rate_hz
        self._clock = clock
        self._next: Dict[str, float] = {}
        self.passed: Dict[str, int] = {}
        self.dropped: Dict[str, int] = {}

    def ready(self, key: str) -> bool:
        now = self._clock()
        if now >= self._next.get(key, 0.0):
            # Keep the phase, but never let a long pause build a burst.
            self._next[key] = max(self._next.get(key, 0.0) + self.period, now + 0.5 * self.period)
            self.passed[key] = self.passed.get(key, 0) + 1
            return True
        self.dropped[key] = self.dropped.get(key, 0) + 1
        return False


def encode_jpeg(bgr: np.ndarray, quality: int = 75, max_width: int = 640) -> bytes:
    """BGR (or grey) uint8 image -> JPEG bytes, scaled down to at most `max_width` pixels wide."""
    import cv2
    img = np.ascontiguousarray(bgr)
    if img.dtype != np.uint8:
        raise ValueError(f'JPEG needs uint8 pixels, got {img.dtype}')
    if img.shape[1] > max_width:
        h = max(1, round(img.shape[0] * max_width / img.shape[1]))
        img = cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode('.jpg', img, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f'JPEG encoding failed for an image of shape {img.shape}')
    return buf.tobytes()


def tactile_difference(frame: np.ndarray, background: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|frame - background| scaled by `gain`, uint8: contact shows bright on black."""
    if frame.shape != background.shape:
        raise ValueError(f'DIGIT frame {frame.shape} and background {background.shape} differ in shape')
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).astype(np.float32) * gain
    return np.clip(diff, 0, 255).astype(np.uint8)


def spectrogram_image(db: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """Log-mel spectrogram (dB, mel bands x frames) -> colour image, low frequencies at the bottom."""
    import cv2
    db = np.asarray(db, dtype=np.float32)
    hi = float(np.max(db)) if db.size else 0.0
    norm = np.clip((db - (hi - top_db)) / top_db, 0.0, 1.0)
    grey = (np.flipud(norm) * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)


def predicted_path(start_xyz: Sequence[float], actions: np.ndarray) -> np.ndarray:
    """End-effector positions after each action of a chunk (rows dx dy dz ...), from `start_xyz`.

    Bridge/FuSe deltas apply to the previous commanded target in world axes, so the path is the
    running sum of the translations; rows that are not finite end the path.
    """
    a = np.asarray(actions, dtype=float)
    if a.ndim != 2 or a.shape[1] < 3:
        raise ValueError(f'action chunk must be horizon x (>= 3), got shape {a.shape}')
    finite = np.all(np.isfinite(a[:, :3]), axis=1)
    n = int(np.argmin(finite)) if not finite.all() else len(a)
    start = np.asarray(start_xyz, dtype=float).reshape(1, 3)
    return np.vstack([start, start + np.cumsum(a[:n, :3], axis=0)])


def chunk_actions(flat: Sequence[float], horizon: int, action_dim: int) -> Optional[np.ndarray]:
    """The ActionChunk's flat row-major actions as horizon x action_dim; None when the sizes disagree."""
    arr = np.asarray(flat, dtype=float)
    if horizon <= 0 or action_dim <= 0 or arr.size != horizon * action_dim:
        return None
    return arr.reshape(horizon, action_dim)
