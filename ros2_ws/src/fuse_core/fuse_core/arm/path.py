"""Path check: the joint-space motion between two joint vectors stays in the box, above the floor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fuse_core.arm.kinematics import ArmKinematics

#: Coarse samples of every segment before refinement.
_COARSE = 16


@dataclass(frozen=True)
class PathResult:
    """Outcome of one segment check.

    fraction: the part of the segment q0 -> q1 that is safe (1.0 = all of it, 0.0 = none);
    joints: q0 + fraction * (q1 - q0); reason: why the rest is unsafe ('' when fraction is 1);
    samples: forward-kinematics evaluations; excursion: the largest distance outside the box
    (m, 0 inside) over the accepted samples; resolution: EE travel bound between accepted
    neighbouring samples that were not certified by their margins (m).
    """

    fraction: float
    joints: np.ndarray
    reason: str
    samples: int
    excursion: float
    resolution: float

    @property
    def whole(self) -> bool:
        return self.fraction >= 1.0


class PathChecker:
    """Checks the straight joint-space segment a backend executes toward a joint target.

    Both backends move every joint along the same normalised time profile (the mock scales
    its step uniformly; the Interbotix driver gives every joint the same moving and
    acceleration time), so the executed path is q0 + s (q1 - q0), s in [0, 1].

    Every checked point (the end effector, plus the elbow and wrist for the floor) moves at
    most L = sum_i r_i |dq_i| over the segment (:meth:`ArmKinematics.reach_bounds`). Samples
    start coarse; an interval is certified when the two samples' margins to the constraints
    add up to at least its EE-travel bound (no point in between can cross), and otherwise it
    is bisected until its travel bound is below `spacing`; so nothing between accepted
    samples leaves the box by more than spacing / 2. The start may already be outside (e.g.
    the home pose): then no point may be farther outside than the start.
    """

    def __init__(self, kinematics: ArmKinematics, workspace_min: Sequence[float],
                 workspace_max: Sequence[float], floor_z: float, spacing: float = 2.5e-4,
                 max_samples: int = 20000, tolerance: float = 0.0) -> None:
        self.kin = kinematics
        # tolerance: how far past the box faces and the floor a path may bulge (targets are
        # clipped to the box itself); a step sliding along a face bows out by microns.
        self.tolerance = float(tolerance)
        self.lo = np.asarray(workspace_min, dtype=float) - self.tolerance
        self.hi = np.asarray(workspace_max, dtype=float) + self.tolerance
        self.floor_z = float(floor_z) - self.tolerance
        self.spacing = float(spacing)
        self.max_samples = int(max_samples)
        self._reach = kinematics.reach_bounds()

    def margins(self, q: np.ndarray) -> np.ndarray:
        """Signed margin per sample (m): > 0 inside every constraint, < 0 outside.

        EE: distance to the nearest box face (negative = the L-infinity distance outside);
        every checked point: height above the floor.
        """
        p = self.kin.point_positions(q)
        ee = p[:, -1]
        box = np.minimum(ee - self.lo, self.hi - ee).min(axis=1)
        floor = (p[:, :, 2] - self.floor_z).min(axis=1)
        return np.minimum(box, floor)

    def check(self, q0: Sequence[float], q1: Sequence[float]) -> PathResult:
        q0 = np.asarray(q0, dtype=float)
        q1 = np.asarray(q1, dtype=float)
        dq = q1 - q0
        if not (np.all(np.isfinite(q0)) and np.all(np.isfinite(q1))):
            return PathResult(0.0, q0.copy(), 'joints are not finite', 0, 0.0, 0.0)
        if not self.kin.within_limits(q1, tol=1e-6):
            bad = [i for i in range(self.kin.n)
                   if not self.kin.lower[i] - 1e-6 <= q1[i] <= self.kin.upper[i] + 1e-6]
            return PathResult(0.0, q0.copy(), f'joint target outside the joint limits at joints {bad}',
                              0, 0.0, 0.0)
        length = float(self._reach @ np.abs(dq))          # EE travel bound over the segment
        s = np.linspace(0.0, 1.0, _COARSE + 1)
        m = self.margins(q0 + s[:, None] * dq)
        samples = s.size
        # Allowed: nothing farther outside than the start already is.
        allow = min(float(m[0]), 0.0)
        mm = m - allow
        first_bad = None
        while True:
            bad = np.flatnonzero(mm < -1e-12)
            first_bad = int(bad[0]) if bad.size else None
            end = first_bad if first_bad is not None else s.size - 1
            travel = np.diff(s[:end + 1]) * length
            need = (mm[:end] + mm[1:end + 1] < travel) & (travel > self.spacing)
            if not need.any() or samples >= self.max_samples:
                break
            idx = np.flatnonzero(need)
            mids = 0.5 * (s[idx] + s[idx + 1])
            mm_mid = self.margins(q0 + mids[:, None] * dq) - allow
            samples += mids.size
            s = np.insert(s, idx + 1, mids)
            mm = np.insert(mm, idx + 1, mm_mid)
        end = first_bad if first_bad is not None else s.size - 1
        travel = np.diff(s[:end + 1]) * length
        open_ = (mm[:end] + mm[1:end + 1] < travel)
        resolution = float(travel[open_].max()) if open_.any() else 0.0
        excursion = float(max(0.0, -(mm[:end + 1] + allow).min()))
        if first_bad is None and resolution <= self.spacing:
            return PathResult(1.0, q1.copy(), '', samples, excursion, resolution)
        if first_bad is None:
            # The sample budget ran out before the resolution was reached: refuse the rest of it.
            cut = int(np.flatnonzero(open_ & (travel > self.spacing))[0])
            why = f'path check needs more than {self.max_samples} samples'
        else:
            cut = first_bad - 1
            p = self.kin.point_positions((q0 + s[first_bad] * dq)[None])[0]
            why = self._describe(p)
        frac = float(s[cut])
        return PathResult(frac, q0 + frac * dq, why, samples, excursion, resolution)

    def _describe(self, p: np.ndarray) -> str:
        ee = p[-1]
        parts = []
        for axis, name in enumerate('xyz'):
            if ee[axis] < self.lo[axis]:
                parts.append(f'{name} {ee[axis]:.4f} < {self.lo[axis]:.4f}')
            elif ee[axis] > self.hi[axis]:
                parts.append(f'{name} {ee[axis]:.4f} > {self.hi[axis]:.4f}')
        low = [f'{n} z {z:.4f}' for n, z in zip(self.kin.point_names, p[:, 2]) if z < self.floor_z]
        out = []
        if parts:
            out.append('end effector leaves the workspace box along the path (' + ', '.join(parts) + ')')
        if low:
            out.append(f'below the floor z {self.floor_z:.4f} along the path (' + ', '.join(low) + ')')
        return '; '.join(out) or 'path leaves the allowed region farther than its start'
