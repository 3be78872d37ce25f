"""rosbag2 bag metadata (metadata.yaml and the MCAP "rosbag2" record), version 9 as Jazzy writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from fuse_core.bag.qos import QosProfile
from fuse_core.errors import BagError

METADATA_VERSION = 9
METADATA_FILE = 'metadata.yaml'
STORAGE_ID = 'mcap'


@dataclass
class TopicInfo:
    """One topic of a bag: name, type, how it was offered, and how many messages it has."""

    name: str
    type: str
    serialization_format: str = 'cdr'
    offered_qos_profiles: List[QosProfile] = field(default_factory=list)
    type_description_hash: str = ''
    message_count: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            'topic_metadata': {
                'name': self.name,
                'type': self.type,
                'serialization_format': self.serialization_format,
                'offered_qos_profiles': [q.to_dict() for q in self.offered_qos_profiles],
                'type_description_hash': self.type_description_hash,
            },
            'message_count': int(self.message_count),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'TopicInfo':
        from fuse_core.bag.qos import load_profiles
        tm = d['topic_metadata']
        return cls(name=str(tm['name']), type=str(tm['type']),
                   serialization_format=str(tm.get('serialization_format', 'cdr')),
                   offered_qos_profiles=load_profiles(tm.get('offered_qos_profiles') or []),
                   type_description_hash=str(tm.get('type_description_hash') or ''),
                   message_count=int(d.get('message_count', 0)))


@dataclass
class FileInfo:
    """One storage file of a bag."""

    path: str
    starting_time_ns: int
    duration_ns: int
    message_count: int

    def to_dict(self) -> Dict[str, Any]:
        return {'path': self.path,
                'starting_time': {'nanoseconds_since_epoch': int(self.starting_time_ns)},
                'duration': {'nanoseconds': int(self.duration_ns)},
                'message_count': int(self.message_count)}


@dataclass
class BagMetadata:
    """The content of metadata.yaml (key `rosbag2_bagfile_information`)."""

    starting_time_ns: int = 0
    duration_ns: int = 0
    message_count: int = 0
    topics: List[TopicInfo] = field(default_factory=list)
    relative_file_paths: List[str] = field(default_factory=list)
    files: List[FileInfo] = field(default_factory=list)
    ros_distro: str = ''
    custom_data: Dict[str, str] = field(default_factory=dict)
    version: int = METADATA_VERSION
    storage_identifier: str = STORAGE_ID
    # rosbag2's own file/message compression; MCAP chunk compression leaves these empty.
    compression_format: str = ''
    compression_mode: str = ''

    def to_dict(self) -> Dict[str, Any]:
        return {
            'version': self.version,
            'storage_identifier': self.storage_identifier,
            'duration': {'nanoseconds': int(self.duration_ns)},
            'starting_time': {'nanoseconds_since_epoch': int(self.starting_time_ns)},
            'message_count': int(self.message_count),
            'topics_with_message_count': [t.to_dict() for t in self.topics],
            'compression_format': self.compression_format,
            'compression_mode': self.compression_mode,
            'relative_file_paths': list(self.relative_file_paths),
            'files': [f.to_dict() for f in self.files],
            'custom_data': dict(self.custom_data) or None,
            'ros_distro': self.ros_distro,
        }

    def dump(self, wrap: bool = True) -> str:
        """YAML text; wrap=True gives metadata.yaml, wrap=False the MCAP record's payload."""
        import yaml
        body = self.to_dict()
        return yaml.safe_dump({'rosbag2_bagfile_information': body} if wrap else body,
                              sort_keys=False, default_flow_style=False)

    def write(self, bag_dir: Path) -> Path:
        path = Path(bag_dir) / METADATA_FILE
        tmp = path.with_suffix('.yaml.tmp')
        tmp.write_text(self.dump())
        tmp.replace(path)  # a crash never leaves a half-written metadata.yaml
        return path

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = 'metadata') -> 'BagMetadata':
        try:
            version = int(d['version'])
            md = cls(
                version=version,
                storage_identifier=str(d['storage_identifier']),
                duration_ns=int(d['duration']['nanoseconds']),
                starting_time_ns=int(d['starting_time']['nanoseconds_since_epoch']),
                message_count=int(d['message_count']),
                topics=[TopicInfo.from_dict(t) for t in (d.get('topics_with_message_count') or [])],
                relative_file_paths=[str(p) for p in (d.get('relative_file_paths') or [])],
                compression_format=str(d.get('compression_format') or ''),
                compression_mode=str(d.get('compression_mode') or ''),
                custom_data={str(k): str(v) for k, v in (d.get('custom_data') or {}).items()},
                ros_distro=str(d.get('ros_distro') or ''),
            )
            md.files = [FileInfo(path=str(f['path']),
                                 starting_time_ns=int(f['starting_time']['nanoseconds_since_epoch']),
                                 duration_ns=int(f['duration']['nanoseconds']),
                                 message_count=int(f['message_count']))
                        for f in (d.get('files') or [])]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BagError(f'{source}: not rosbag2 metadata (missing or bad field: {exc})') from exc
        return md

    @classmethod
    def load(cls, bag_dir: Path) -> Optional['BagMetadata']:
        """Read <bag_dir>/metadata.yaml; None when the file does not exist."""
        import yaml
        path = Path(bag_dir) / METADATA_FILE
        if not path.is_file():
            return None
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BagError(f'{path}: unreadable metadata: {exc}') from exc
        if not isinstance(doc, dict) or 'rosbag2_bagfile_information' not in doc:
            raise BagError(f'{path}: no rosbag2_bagfile_information section')
        return cls.from_dict(doc['rosbag2_bagfile_information'], source=str(path))
