"""What the report plots of one episode: the end-effector path and the commands over time (trace.json)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from fuse_core.errors import EvaluationError

TRACE_FILE = 'trace.json'
#: The command's dimensions, in DeltaEECommand's order (translation, rotation, gripper).
ACTION_DIMS = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')
#: The path keeps at most one end-effector pose per this many seconds (episode time).
EE_PERIOD_S = 0.05


@dataclass
class EpisodeTrace:
    """Rows in episode time (s from the first sample): ee [t, x, y, z] (base frame, m) and
    actions [t, dx, dy, dz, droll, dpitch, dyaw, gripper], a hold being [t, None x 7]."""

    ee: List[List[float]] = field(default_factory=list)
    actions: List[List[Optional[float]]] = field(default_factory=list)

    @classmethod
    def from_stamps(cls, ee: Sequence[Sequence[float]], commands: Sequence[Sequence[Optional[float]]],
                    period_s: float = EE_PERIOD_S) -> 'EpisodeTrace':
        """From rows stamped in ns ([stamp_ns, ...]); the path thinned to one pose per `period_s`."""
        stamps = [r[0] for r in ee] + [r[0] for r in commands]
        t0 = min(stamps) if stamps else 0
        path: List[List[float]] = []
        last = None
        for row in sorted(ee, key=lambda r: r[0]):
            if last is None or row[0] - last >= period_s * 1e9:
                path.append([round((row[0] - t0) / 1e9, 3)] + [round(float(v), 5) for v in row[1:4]])
                last = row[0]
        acts = [[round((r[0] - t0) / 1e9, 3)] + [None if v is None else round(float(v), 6) for v in r[1:8]]
                for r in commands]
        return cls(path, acts)

    def to_json(self) -> str:
        return json.dumps({'ee': self.ee, 'actions': self.actions, 'action_dims': list(ACTION_DIMS)})

    def write(self, directory) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / TRACE_FILE
        tmp = path.with_name(path.name + '.tmp')
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, directory) -> Optional['EpisodeTrace']:
        """The trace in `directory`, None when there is none; EvaluationError when it is unreadable."""
        path = Path(directory) / TRACE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            ee = [[float(v) for v in row] for row in data['ee']]
            actions = [[float(row[0])] + [None if v is None else float(v) for v in row[1:]] for row in data['actions']]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise EvaluationError(f'{path}: unreadable trace ({exc})') from exc
        if any(len(r) != 4 for r in ee) or any(len(r) != 1 + len(ACTION_DIMS) for r in actions):
            raise EvaluationError(f'{path}: rows of the wrong length (ee: t x y z; actions: t + {len(ACTION_DIMS)})')
        return cls(ee, actions)

    def action_series(self) -> dict:
        """Dimension -> values over `times()` (None in a hold)."""
        return {d: [r[1 + k] for r in self.actions] for k, d in enumerate(ACTION_DIMS)}

    def times(self) -> List[float]:
        return [r[0] for r in self.actions]
