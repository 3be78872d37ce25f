"""Per-episode metadata: one JSON file beside each episode bag, written atomically.

`status` tells a finished episode from one that was cut short: `recording` while the recorder
writes (a bag left with this status was killed), `interrupted` when the recorder was stopped
mid-episode (Ctrl-C, shutdown), `complete` once the episode ended with an outcome and the bag
was closed. Only `complete` episodes with a closed bag pass for finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from fuse_core.episodes.modalities import check_modalities
from fuse_core.errors import EpisodeError

METADATA_FILE = 'episode.json'
SCHEMA_VERSION = 1
RECORDING_STATUS, INTERRUPTED, COMPLETE = 'recording', 'interrupted', 'complete'
STATUSES = (RECORDING_STATUS, INTERRUPTED, COMPLETE)


def project_version() -> str:
    from fuse_core import __version__
    return __version__


@dataclass
class EpisodeMetadata:
    """What an episode is: who made it, how, from what, and how it ended."""

    episode_id: str
    task: str = ''
    instruction: str = ''
    operator: str = ''
    action_source: str = ''        # keyboard | spacemouse | gamepad | expert | scripted | fake | bundle:<path>
    world: str = 'robot'           # robot | twin
    seed: Optional[int] = None     # the twin's reset seed (None on the robot)
    robot: Dict[str, Any] = field(default_factory=dict)  # robot model, start pose, limits, cameras
    project_version: str = field(default_factory=project_version)
    status: str = RECORDING_STATUS
    outcome: str = ''              # success | failure | discard | aborted ('' while recording)
    note: str = ''
    start_time_ns: int = 0
    end_time_ns: int = 0
    events: List[Dict[str, Any]] = field(default_factory=list)  # e.g. teleop device lost
    # Optional modality-specific instructions (what the object looks, feels, sounds like): FuSe
    # combination ('visual', 'tactile', 'visual,tactile', ...) -> text; see episodes.modalities.
    modalities: Dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.episode_id or '/' in self.episode_id or self.episode_id.startswith('.'):
            raise EpisodeError(f'episode_id {self.episode_id!r} must be a plain, non-empty file name')
        if self.status not in STATUSES:
            raise EpisodeError(f'episode {self.episode_id}: status {self.status!r} is not one of '
                               f'{list(STATUSES)}')
        self.modalities = check_modalities(self.modalities, f'episode {self.episode_id}: modalities')

    @property
    def finished(self) -> bool:
        return self.status == COMPLETE

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> 'EpisodeMetadata':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise EpisodeError(f'episode metadata has unknown field(s) {unknown}')
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> 'EpisodeMetadata':
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EpisodeError(f'episode metadata is not valid JSON: {exc}') from exc
        if not isinstance(values, dict):
            raise EpisodeError('episode metadata must be a JSON object')
        return cls.from_dict(values)


def write_episode(bag_dir, md: EpisodeMetadata) -> Path:
    """Write <bag_dir>/episode.json atomically (a reader never sees half a file)."""
    path = Path(bag_dir) / METADATA_FILE
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(md.to_json())
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_episode(bag_dir) -> EpisodeMetadata:
    """Read an episode's metadata; a bag still marked `recording` without a closed bag reads as
    interrupted (its recorder died)."""
    bag_dir = Path(bag_dir)
    path = bag_dir / METADATA_FILE
    if not path.is_file():
        raise EpisodeError(f'{bag_dir}: no {METADATA_FILE}: not an episode bag')
    md = EpisodeMetadata.from_json(path.read_text())
    closed = (bag_dir / 'metadata.yaml').is_file()
    if md.status == COMPLETE and not closed:
        md.status = INTERRUPTED
        md.events.append({'event': 'bag_not_closed', 'detail': 'metadata.yaml missing'})
    elif md.status == RECORDING_STATUS:
        md.status = INTERRUPTED
        md.events.append({'event': 'recorder_died', 'detail': 'still marked recording'})
    return md
