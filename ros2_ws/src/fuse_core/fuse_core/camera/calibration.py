"""Camera calibration in the YAML format of camera_calibration_parsers (what usb_cam's camera_info_url reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from fuse_core.config import finite_floats, load_yaml
from fuse_core.errors import ConfigError

DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')


class CalibrationError(ConfigError):
    """A camera calibration file is missing, malformed or does not fit the camera."""


@dataclass(frozen=True)
class CameraCalibration:
    """Intrinsics as sensor_msgs/CameraInfo carries them (row-major k 3x3, r 3x3, p 3x4)."""

    width: int
    height: int
    camera_name: str
    k: List[float]
    d: List[float]
    r: List[float]
    p: List[float]
    distortion_model: str = 'plumb_bob'


def resolve_url(url: str) -> Path:
    """`file:///abs/path.yaml` or a plain path -> Path (package:// needs a ROS install: refused here)."""
    if url.startswith('file://'):
        return Path(url[len('file://'):])
    if '://' in url:
        raise CalibrationError(f'camera_info_url {url!r}: only file:// URLs and plain paths are supported')
    return Path(url)


def _matrix(path: str, data: dict, key: str, rows: int, cols: Optional[int]) -> List[float]:
    m = data.get(key)
    if not isinstance(m, dict) or 'data' not in m:
        raise CalibrationError(f'{path}: {key} missing (expected rows, cols, data)')
    values = m['data']
    if not isinstance(values, list):
        raise CalibrationError(f'{path}: {key}.data must be a list')
    if m.get('rows') != rows or (cols is not None and m.get('cols') != cols):
        raise CalibrationError(f'{path}: {key} must be {rows}x{cols if cols is not None else "n"}, '
                               f'got {m.get("rows")}x{m.get("cols")}')
    n = rows * (cols if cols is not None else int(m.get('cols') or 0))
    if len(values) != n:
        raise CalibrationError(f'{path}: {key} has {len(values)} values, expected {n}')
    return finite_floats(values, lambda v: CalibrationError(
        f'{path}: {key} holds a value that is not a finite number: {v!r}'))


def parse_calibration(data, path: str = '<calibration>') -> CameraCalibration:
    """Validate the parsed YAML of a calibration file."""
    if not isinstance(data, dict):
        raise CalibrationError(f'{path}: not a camera calibration (expected a mapping)')
    for key in ('image_width', 'image_height'):
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise CalibrationError(f'{path}: {key} must be a positive integer, got {v!r}')
    model = data.get('distortion_model', 'plumb_bob')
    if model not in DISTORTION_MODELS:
        raise CalibrationError(f'{path}: distortion_model {model!r} is not one of {list(DISTORTION_MODELS)}')
    k = _matrix(path, data, 'camera_matrix', 3, 3)
    if k[0] <= 0 or k[4] <= 0:
        raise CalibrationError(f'{path}: camera_matrix has non-positive focal lengths fx={k[0]}, fy={k[4]}')
    d = _matrix(path, data, 'distortion_coefficients', 1, None)
    r = _matrix(path, data, 'rectification_matrix', 3, 3) if 'rectification_matrix' in data else \
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    p = _matrix(path, data, 'projection_matrix', 3, 4) if 'projection_matrix' in data else \
        [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraCalibration(int(data['image_width']), int(data['image_height']),
                             str(data.get('camera_name', '')), k, d, r, p, model)


def load_calibration(url: str) -> CameraCalibration:
    """Read a calibration file; CalibrationError names the file and the problem."""
    path = resolve_url(url)
    return parse_calibration(load_yaml(path, 'camera calibration', CalibrationError), str(path))


def dump_calibration(cal: CameraCalibration) -> str:
    """The calibration as camera_calibration_parsers writes it."""
    import yaml

    def mat(rows: int, cols: int, values: Sequence[float]) -> dict:
        return {'rows': rows, 'cols': cols, 'data': [float(v) for v in values]}
    return yaml.safe_dump({
        'image_width': cal.width, 'image_height': cal.height, 'camera_name': cal.camera_name,
        'camera_matrix': mat(3, 3, cal.k), 'distortion_model': cal.distortion_model,
        'distortion_coefficients': mat(1, len(cal.d), cal.d), 'rectification_matrix': mat(3, 3, cal.r),
        'projection_matrix': mat(3, 4, cal.p)}, sort_keys=False)


def check_size(cal: CameraCalibration, width: int, height: int, where: str = '') -> None:
    """A calibration made for another resolution does not describe these images."""
    if (cal.width, cal.height) != (width, height):
        raise CalibrationError(f'{where}calibration is for {cal.width}x{cal.height} but the camera '
                               f'streams {width}x{height}')
