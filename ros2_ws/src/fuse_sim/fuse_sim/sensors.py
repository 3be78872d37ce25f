"""Sensors from the scene: rendered cameras, DIGIT-like touch images, IMU with noise.

Rendering is off-screen through EGL (Mesa's software renderer on a CPU, the GPU when there is
one). DIGIT images follow the TACTO recipe: the gel's indentation from a depth render behind
the pad, shaded with three coloured lights from different directions over a background frame,
plus noise where the gel is pressed; with nothing touching, a frame equals the background.
"""

from __future__ import annotations

import ctypes.util
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from fuse_core.errors import DeviceError

#: Debian packages that provide EGL with Mesa's renderer.
EGL_PACKAGES = ('libegl1', 'libegl-mesa0', 'libgl1-mesa-dri')
#: Distance (m) from a DIGIT camera to its gel surface (the pad's inner face), see model.py.
GEL_DISTANCE = 0.03
#: Indentation (m) at which the shading saturates; objects within this of the gel press it.
GEL_DEPTH = 0.002
DIGIT_SHAPE = (240, 320)     # rows, cols (DIGIT QVGA, landscape)


def check_egl() -> None:
    """Raise DeviceError naming the Debian packages when EGL/GL cannot be loaded."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])
    if os.environ['MUJOCO_GL'] != 'egl':
        return
    missing = [lib for lib in ('EGL', 'GL') if ctypes.util.find_library(lib) is None]
    if missing:
        raise DeviceError(f'off-screen rendering needs EGL/GL libraries ({", ".join(missing)} not found); '
                          f'install the Debian packages: apt-get install -y {" ".join(EGL_PACKAGES)}')


@dataclass
class CameraSpec:
    name: str          # MJCF camera name
    width: int
    height: int


def camera_matrix(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics of a MuJoCo camera (square pixels, centred)."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


class SceneRenderer:
    """One off-screen renderer per image size; colour images as BGR uint8."""

    def __init__(self, model, cameras: List[CameraSpec]) -> None:
        check_egl()
        import mujoco

        self._mj = mujoco
        self.model = model
        self.cameras = {c.name: c for c in cameras}
        self._renderers: Dict[Tuple[int, int], object] = {}
        self._option = mujoco.MjvOption()
        # Group 3 holds sites; hide them in camera images.
        self._option.sitegroup[:] = 0
        for c in cameras:
            self._renderer(c.width, c.height)

    def _renderer(self, width: int, height: int):
        key = (width, height)
        if key not in self._renderers:
            try:
                self._renderers[key] = self._mj.Renderer(self.model, height=height, width=width)
            except Exception as exc:
                raise DeviceError(f'cannot create an off-screen renderer ({type(exc).__name__}: {exc}); '
                                  f'is EGL installed? apt-get install -y {" ".join(EGL_PACKAGES)}') from exc
        return self._renderers[key]

    def render(self, data, camera: str) -> np.ndarray:
        spec = self.cameras[camera]
        r = self._renderer(spec.width, spec.height)
        r.update_scene(data, camera=camera, scene_option=self._option)
        rgb = r.render()
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def intrinsics(self, camera: str) -> np.ndarray:
        spec = self.cameras[camera]
        cid = self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_CAMERA, camera)
        return camera_matrix(float(self.model.cam_fovy[cid]), spec.width, spec.height)

    def close(self) -> None:
        for r in self._renderers.values():
            try:
                r.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                pass
        self._renderers.clear()


def digit_background(shape: Tuple[int, int] = DIGIT_SHAPE, seed: int = 0) -> np.ndarray:
    """A DIGIT-like background frame: smooth coloured illumination gradients and fixed pattern noise."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w - 0.5, yy / h - 0.5
    bg = np.empty((h, w, 3), np.float32)
    # BGR: blue from the left, green from the top, red from the right (the three LEDs).
    bg[:, :, 0] = 120 + 60 * (-u) + 10 * v
    bg[:, :, 1] = 125 + 50 * (-v) + 8 * u
    bg[:, :, 2] = 115 + 60 * u + 10 * v
    bg += rng.normal(0.0, 2.0, (h, w, 1)).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


class DigitSimulator:
    """Renders one finger's DIGIT image from a depth render of what lies against its gel."""

    #: Light directions (x right, y down, z out of the gel) for B, G, R.
    LIGHTS = np.array([[-0.8, 0.0, 0.6], [0.0, -0.8, 0.6], [0.8, 0.0, 0.6]])

    def __init__(self, model, camera: str, seed: int = 0, shape: Tuple[int, int] = DIGIT_SHAPE,
                 noise_std: float = 7.0) -> None:
        check_egl()
        import mujoco

        self._mj = mujoco
        self.camera = camera
        self.shape = shape
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed + 1000)
        self.background = digit_background(shape, seed)
        self._bg = self.background.astype(np.float32)
        h, w = shape
        self._renderer = mujoco.Renderer(model, height=h, width=w)
        self._renderer.enable_depth_rendering()
        self._option = mujoco.MjvOption()
        # Hide the arm (group 1) and the pads and palm (group 2): the camera sees through the gel.
        self._option.geomgroup[1] = 0
        self._option.geomgroup[2] = 0
        self._option.sitegroup[:] = 0
        self._lights = self.LIGHTS / np.linalg.norm(self.LIGHTS, axis=1, keepdims=True)
        self.last_max_indentation = 0.0

    def indentation(self, data) -> np.ndarray:
        """Gel indentation (m, >= 0) per pixel: how far something reaches past the gel surface."""
        self._renderer.update_scene(data, camera=self.camera, scene_option=self._option)
        depth = self._renderer.render()
        return np.clip(GEL_DISTANCE + 0.5 * GEL_DEPTH - depth, 0.0, GEL_DEPTH).astype(np.float32)

    def render(self, data) -> np.ndarray:
        h = self.indentation(data)
        self.last_max_indentation = float(h.max())
        if self.last_max_indentation <= 0.0:
            return self.background.copy()
        hm = h * 1e3                                   # mm
        gy, gx = np.gradient(hm)
        scale = 40.0                                   # px per mm of slope -> visible shading
        n = np.stack([-gx * scale, -gy * scale, np.ones_like(hm)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        shade = n @ self._lights.T - self._lights[:, 2]          # zero on flat gel
        pressed = (h > 0)[:, :, None]
        img = self._bg + 140.0 * shade - 25.0 * hm[:, :, None]
        img += pressed * self._rng.normal(0.0, self.noise_std, img.shape).astype(np.float32)
        out = np.where(pressed, img, self._bg)
        return np.clip(out, 0, 255).astype(np.uint8)

    def close(self) -> None:
        try:
            self._renderer.close()
        except Exception:  # pragma: no cover
            pass


class ImuSimulator:
    """The physics engine's accelerometer, gyro and magnetometer at the wrist, with white noise."""

    def __init__(self, seed: int = 0, accel_std: float = 0.02, gyro_std: float = 0.002,
                 mag_std: float = 2e-7) -> None:
        self._rng = np.random.default_rng(seed)
        self.accel_std, self.gyro_std, self.mag_std = accel_std, gyro_std, mag_std

    def sample(self, world) -> Dict[str, np.ndarray]:
        raw = world.imu()
        return {'acc': raw['acc'] + self._rng.normal(0, self.accel_std, 3),
                'gyro': raw['gyro'] + self._rng.normal(0, self.gyro_std, 3),
                'mag': raw['mag'] + self._rng.normal(0, self.mag_std, 3)}


def primary_and_wrist(width: int = 320, height: int = 240,
                      wrist: Optional[Tuple[int, int]] = None) -> List[CameraSpec]:
    ww, wh = wrist or (width, height)
    return [CameraSpec('primary', width, height), CameraSpec('wrist', ww, wh)]
