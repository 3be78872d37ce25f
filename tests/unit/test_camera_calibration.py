"""Camera calibration YAML (camera_calibration_parsers format): round trip and refusals that name the problem."""

from __future__ import annotations

import pytest

from fuse_core.camera.calibration import (CalibrationError, CameraCalibration, check_size, dump_calibration,
                                          load_calibration, parse_calibration)

# As camera_calibration's cameracalibrator writes it (values of a 640x480 USB camera).
SAMPLE = """image_width: 640
image_height: 480
camera_name: camera_primary
camera_matrix:
  rows: 3
  cols: 3
  data: [612.5, 0, 318.2, 0, 611.9, 241.7, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0921, -0.1893, 0.0011, -0.0006, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [615.1, 0, 317.6, 0, 0, 614.8, 241.2, 0, 0, 0, 1, 0]
"""


def test_calibration_file_round_trips(tmp_path):
    f = tmp_path / 'cam.yaml'
    f.write_text(SAMPLE)
    cal = load_calibration(f'file://{f}')
    assert (cal.width, cal.height, cal.camera_name, cal.distortion_model) == (640, 480, 'camera_primary', 'plumb_bob')
    assert cal.k == [612.5, 0, 318.2, 0, 611.9, 241.7, 0, 0, 1]
    assert cal.d == [0.0921, -0.1893, 0.0011, -0.0006, 0]
    assert cal.p[0] == 615.1 and cal.p[6] == 241.2
    g = tmp_path / 'again.yaml'
    g.write_text(dump_calibration(cal))
    assert load_calibration(str(g)) == cal


def test_missing_rectification_and_projection_default_from_k():
    import yaml
    data = yaml.safe_load(SAMPLE)
    del data['rectification_matrix'], data['projection_matrix']
    cal = parse_calibration(data)
    assert cal.r == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert cal.p == [612.5, 0.0, 318.2, 0.0, 0.0, 611.9, 241.7, 0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize('edit, match', [
    (lambda d: d.pop('image_width'), 'image_width'),
    (lambda d: d['camera_matrix'].update(data=[1, 2, 3]), 'camera_matrix has 3 values'),
    (lambda d: d['camera_matrix'].update(rows=2), 'camera_matrix must be 3x3'),
    (lambda d: d['camera_matrix']['data'].__setitem__(0, float('nan')), 'not a finite number'),
    (lambda d: d['camera_matrix']['data'].__setitem__(0, 0.0), 'focal'),
    (lambda d: d.update(distortion_model='fisheye9'), 'distortion_model'),
    (lambda d: d.pop('distortion_coefficients'), 'distortion_coefficients missing'),
])
def test_malformed_calibrations_are_refused_naming_the_field(edit, match):
    import yaml
    data = yaml.safe_load(SAMPLE)
    edit(data)
    with pytest.raises(CalibrationError, match=match):
        parse_calibration(data, 'cam.yaml')


def test_missing_file_unsupported_url_and_wrong_size(tmp_path):
    with pytest.raises(CalibrationError, match='nope.yaml'):
        load_calibration(str(tmp_path / 'nope.yaml'))
    with pytest.raises(CalibrationError, match='only file://'):
        load_calibration('package://fuse_bringup/cam.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('image_width: [\n')
    with pytest.raises(CalibrationError, match='not valid YAML'):
        load_calibration(str(bad))
    cal = CameraCalibration(640, 480, '', [1.0] * 9, [0.0] * 5, [0.0] * 9, [0.0] * 12)
    with pytest.raises(CalibrationError, match='640x480 but the camera streams 320x240'):
        check_size(cal, 320, 240)
