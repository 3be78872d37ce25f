"""Replay of recorded frames (a video file or a folder of images) at a configured rate."""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from fuse_core.camera.base import ActualSettings, Frame, FrameSource, Pacer
from fuse_core.errors import ConfigError, DeviceError, SourceExhaustedError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


class VideoFileSource(FrameSource):
    """Frames of a video file (anything OpenCV decodes), released at `fps`, optionally looping.

    The capture time is the moment a frame is released, since the recording's own clock
    means nothing to the live system. `transform`, when given, maps each decoded frame (e.g.
    a rotation to the published orientation).
    """

    kind = 'file'

    def __init__(self, path: str, fps: float, loop: bool = True, name: Optional[str] = None,
                 transform=None) -> None:
        super().__init__(name or os.path.basename(path))
        self.path = str(path)
        self.fps = float(fps)
        self.loop = loop
        self._transform = transform
        self._pacer = Pacer(fps)
        self._cap = None

    def describe(self) -> str:
        return f'video file {self.path}'

    def connect(self) -> None:
        import cv2  # lazily: fuse_core must import with numpy only

        self.close()
        if not os.path.isfile(self.path):
            raise DeviceError(f'video file {self.path} does not exist')
        cap = cv2.VideoCapture(self.path)
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise DeviceError(f'video file {self.path}: cannot decode a frame')
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        first = self._apply(first)
        self.actual = ActualSettings(first.shape[1], first.shape[0], self.fps, 'file')
        self._cap = cap
        self._pacer.reset()

    def _apply(self, frame: np.ndarray) -> np.ndarray:
        return frame if self._transform is None else self._transform(frame)

    def read(self, timeout_s: Optional[float] = None) -> Frame:
        import cv2

        if self._cap is None:
            raise DeviceError(f'video file {self.path}: not connected')
        ok, frame = self._cap.read()
        if not ok:
            if not self.loop:
                raise SourceExhaustedError(f'video file {self.path}: end of file')
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
            if not ok:
                raise DeviceError(f'video file {self.path}: cannot rewind')
        frame = self._apply(frame)
        return frame, self._pacer.wait()

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def list_images(folder: str) -> List[str]:
    """The image files of a folder in name order (the replay order)."""
    if not os.path.isdir(folder):
        raise ConfigError(f'image folder {folder} does not exist')
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    return [os.path.join(folder, n) for n in names]


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, released at `fps`, optionally looping."""

    kind = 'file'

    def __init__(self, folder: str, fps: float, loop: bool = True, name: Optional[str] = None,
                 transform=None) -> None:
        super().__init__(name or os.path.basename(os.path.normpath(folder)))
        self.folder = str(folder)
        self.fps = float(fps)
        self.loop = loop
        self._transform = transform
        self._pacer = Pacer(fps)
        self._files: List[str] = []
        self._index = 0

    def describe(self) -> str:
        return f'image folder {self.folder}'

    def connect(self) -> None:
        try:
            files = list_images(self.folder)
        except ConfigError as exc:
            raise DeviceError(str(exc)) from exc
        if not files:
            raise DeviceError(f'image folder {self.folder} holds no images ({", ".join(IMAGE_SUFFIXES)})')
        self._files, self._index = files, 0
        first = self._load(files[0])
        self.actual = ActualSettings(first.shape[1], first.shape[0], self.fps, 'file')
        self._pacer.reset()

    def _load(self, path: str) -> np.ndarray:
        import cv2

        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            raise DeviceError(f'image {path} cannot be decoded')
        return frame if self._transform is None else self._transform(frame)

    def read(self, timeout_s: Optional[float] = None) -> Frame:
        if not self._files:
            raise DeviceError(f'image folder {self.folder}: not connected')
        if self._index >= len(self._files):
            if not self.loop:
                raise SourceExhaustedError(f'image folder {self.folder}: all {len(self._files)} '
                                           'images replayed')
            self._index = 0
        frame = self._load(self._files[self._index])
        self._index += 1
        return frame, self._pacer.wait()

    def close(self) -> None:
        self._files = []


def open_recording(path: str, fps: float, loop: bool, name: Optional[str] = None,
                   transform=None) -> FrameSource:
    """A folder -> ImageFolderSource, a file -> VideoFileSource; ConfigError if neither exists."""
    if not path:
        raise ConfigError("parameter 'file_path' must be set when source is 'file'")
    if os.path.isdir(path):
        return ImageFolderSource(path, fps, loop, name, transform)
    if os.path.isfile(path):
        return VideoFileSource(path, fps, loop, name, transform)
    raise ConfigError(f"parameter 'file_path' = {path!r}: no such file or folder")

