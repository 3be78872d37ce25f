"""An episode bag as one video: primary, wrist, both DIGITs (difference to background), spectrogram.

The tiles sit side by side, each showing the latest message of its topic at the frame's time
(the recorder's receive time, so what the graph had then), at `fps` frames per second of
episode time, from the first moment every topic has a message; the caption of the first tile
gives the time since the bag began. VP8 in WebM (OpenCV's FFmpeg writer), which Chromium and Firefox play; MJPEG in
AVI and MPEG-4 Part 2 in MP4, the other codecs the OpenCV wheel writes, play in neither. The
file appears under its final name only once it is complete.

    python -m fuse_core.evaluation.video BAG_DIR [--out FILE] [--fps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from fuse_core.errors import BagError, EvaluationError, FuseError

VIDEO_FILE = 'video.webm'
#: Beside the bag when its video could not be made: why (the report shows it).
VIDEO_ERROR_FILE = 'video_error.txt'
#: (caption, image topic, background topic or None); the spectrogram is the last tile.
TILES = (('primary', '/camera_primary/image_raw', None),
         ('wrist', '/camera_wrist/image_raw', None),
         ('DIGIT left - background', '/digit_left/image_raw', '/digit_left/background'),
         ('DIGIT right - background', '/digit_right/image_raw', '/digit_right/background'),
         ('spectrogram', '/audio/mel_spectrogram', None))
TILE_SIZE = (240, 180)          # width, height of one tile (px)
CAPTION_H = 20
FOURCC = 'VP80'
#: The first frame waits for every topic's first message, at most this long (s of episode time).
WAIT_S = 1.0


@dataclass
class VideoInfo:
    path: str
    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    missing: List[str]           # tiles whose topic the bag lacks (shown as such)
    seconds: float               # wall time it took
    cpu_s: float                 # CPU time of this process while it was made


class _Tiles:
    """The latest message of every tile's topics, turned into tile images when a frame needs them."""

    def __init__(self, decoders: Dict[str, object], present: set) -> None:
        self.decoders = decoders
        self.present = present
        self.raw: Dict[str, bytes] = {}
        self.changed: set = set()
        self.images: Dict[str, np.ndarray] = {}

    def offer(self, topic: str, data: bytes) -> None:
        self.raw[topic] = data
        self.changed.add(topic)

    def _decoded(self, topic: str):
        from fuse_core.images import image_to_array
        msg = self.decoders[topic](self.raw[topic])
        return image_to_array(msg), msg.encoding

    def tile(self, caption: str, topic: str, background: Optional[str]) -> np.ndarray:
        from fuse_core.sync.preprocess import rgb_resized
        from fuse_core.viewer import spectrogram_image, tactile_difference
        import cv2
        w, h = TILE_SIZE
        if topic not in self.present or (background and background not in self.present):
            return _blank(f'{caption}: not recorded')
        if topic not in self.raw or (background and background not in self.raw):
            return _blank(f'{caption}: no data yet')
        if topic in self.changed or (background and background in self.changed) or caption not in self.images:
            img, enc = self._decoded(topic)
            if topic.endswith('mel_spectrogram'):
                bgr = cv2.resize(spectrogram_image(img[:, :, 0]), (w, h), interpolation=cv2.INTER_LINEAR)
            else:
                rgb = rgb_resized(img, enc, (h, w), 'area', topic)
                if background:
                    bg, bg_enc = self._decoded(background)
                    rgb = tactile_difference(rgb, rgb_resized(bg, bg_enc, (h, w), 'area', background))
                bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            self.images[caption] = bgr
        return self.images[caption]

    def frame_done(self) -> None:
        self.changed.clear()


def _blank(text: str) -> np.ndarray:
    import cv2
    w, h = TILE_SIZE
    img = np.full((h, w, 3), 40, np.uint8)
    cv2.putText(img, text, (6, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def _compose(tiles: List[Tuple[str, np.ndarray]], t_s: float) -> np.ndarray:
    import cv2
    w, h = TILE_SIZE
    frame = np.zeros((h + CAPTION_H, w * len(tiles), 3), np.uint8)
    for k, (caption, img) in enumerate(tiles):
        frame[CAPTION_H:, k * w:(k + 1) * w] = img
        label = f'{caption}  t={t_s:5.1f} s' if k == 0 else caption
        cv2.putText(frame, label, (k * w + 4, CAPTION_H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return frame


def open_writer(path: Path, fps: float, size: Tuple[int, int]):
    """An OpenCV VP8/WebM writer; EvaluationError when this OpenCV build cannot write one."""
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), float(fps), size)
    if not writer.isOpened():
        raise EvaluationError(f'OpenCV {cv2.__version__} cannot write VP8 in WebM here (its FFmpeg lacks '
                              'libvpx?): no browser-playable codec for the episode videos')
    return writer


def episode_video(bag_dir, out_path=None, fps: float = 10.0) -> VideoInfo:
    """Write the episode bag's video (default BAG_DIR/video.webm); EvaluationError names what is wrong."""
    from fuse_core.bag import BagReader
    from fuse_core.export.steps import message_decoders
    t_start, cpu_start = time.monotonic(), time.process_time()
    bag_dir = Path(bag_dir)
    out = Path(out_path) if out_path else bag_dir / VIDEO_FILE
    if not fps > 0:
        raise EvaluationError(f'video fps must be positive, got {fps}')
    try:
        reader = BagReader(bag_dir)
        topics = [t for _, topic, bg in TILES for t in (topic, bg) if t]
        present = {t for t in topics if t in reader.topics and reader.topics[t].message_count > 0}
        if not present:
            raise EvaluationError(f'{bag_dir}: none of the video\'s topics {topics} has a message')
        tiles = _Tiles(message_decoders(reader, sorted(present)), present)
        start, end = reader.start_ns, reader.end_ns
        period = int(1e9 / fps)
        tmp = out.with_name(out.stem + '.tmp' + out.suffix)
        w, h = TILE_SIZE
        writer = open_writer(tmp, fps, (w * len(TILES), h + CAPTION_H))
        frames, t_next = 0, start
        try:
            def emit(until_ns: int) -> None:
                nonlocal frames, t_next
                while t_next <= until_ns:
                    # The video begins once every topic has a message (at most WAIT_S into the bag).
                    if frames or present <= set(tiles.raw) or t_next - start >= WAIT_S * 1e9:
                        writer.write(_compose([(c, tiles.tile(c, tp, bg)) for c, tp, bg in TILES],
                                              (t_next - start) / 1e9))
                        tiles.frame_done()
                        frames += 1
                    t_next += period
            for m in reader.messages(sorted(present)):
                emit(m.log_time_ns - 1)          # frames before this message see the state before it
                tiles.offer(m.topic, m.data)
            emit(end)
        finally:
            writer.release()
        if frames == 0:
            tmp.unlink(missing_ok=True)
            raise EvaluationError(f'{bag_dir}: the bag spans no frame')
        os.replace(tmp, out)
    except EvaluationError:
        raise
    except (BagError, FuseError, ValueError) as exc:
        raise EvaluationError(f'{bag_dir}: no video: {exc}') from exc
    missing = [c for c, tp, bg in TILES if tp not in present or (bg and bg not in present)]
    return VideoInfo(str(out), frames, float(fps), w * len(TILES), h + CAPTION_H, round(frames / fps, 3),
                     missing, round(time.monotonic() - t_start, 3), round(time.process_time() - cpu_start, 3))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m fuse_core.evaluation.video', description=__doc__.splitlines()[0])
    p.add_argument('bag', help='episode bag directory')
    p.add_argument('--out', help=f'video file (default BAG/{VIDEO_FILE})')
    p.add_argument('--fps', type=float, default=10.0, help='frames per second of episode time (default 10)')
    args = p.parse_args(argv)
    try:
        info = episode_video(args.bag, args.out, args.fps)
    except EvaluationError as exc:
        print(f'[video] {exc}', file=sys.stderr)
        return 2
    print(json.dumps(asdict(info)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
