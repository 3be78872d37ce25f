"""BagWriter: serialized messages -> a rosbag2 bag directory (metadata.yaml + <name>_0.mcap)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from fuse_core.bag.definitions import MessageDefinitions, normalize_type
from fuse_core.bag.metadata import BagMetadata, FileInfo, TopicInfo
from fuse_core.bag.qos import QosProfile, dump_profiles
from fuse_core.errors import BagError

COMPRESSIONS = ('zstd', 'lz4', 'none')
#: The ROS distribution whose message definitions this project installs (ROS 2 wheels).
DEFAULT_ROS_DISTRO = 'kilted'
LIBRARY = 'fuse-ros fuse_core.bag'


@dataclass
class _Topic:
    info: TopicInfo
    channel_id: int
    bytes: int = 0


class BagWriter:
    """Writes a rosbag2-compatible MCAP bag that `ros2 bag play/info` accept.

    Messages are stored as given (CDR bytes) in compressed chunks of about `chunk_size`
    uncompressed bytes; each finished chunk is flushed to disk at once, so a process that
    dies without close() leaves a file readable up to its last chunk (see
    BagReader(recover=True)). close() (also on Ctrl-C through the context manager) writes
    the summary, the rosbag2 metadata record and metadata.yaml.
    """

    def __init__(self, bag_dir, *, compression: str = 'zstd', chunk_size: int = 1 << 20,
                 definitions: Optional[MessageDefinitions] = None,
                 ros_distro: Optional[str] = None,
                 custom_data: Optional[Dict[str, str]] = None) -> None:
        if compression not in COMPRESSIONS:
            raise BagError(f'unknown compression {compression!r}; one of {list(COMPRESSIONS)}')
        if chunk_size < 1024:
            raise BagError(f'chunk_size {chunk_size} is too small (>= 1024 bytes)')
        from mcap.writer import CompressionType, Writer

        self.bag_dir = Path(bag_dir)
        if self.bag_dir.exists() and (not self.bag_dir.is_dir() or any(self.bag_dir.iterdir())):
            raise BagError(f'{self.bag_dir}: already exists and is not an empty directory; '
                           'refusing to overwrite a recording')
        self.bag_dir.mkdir(parents=True, exist_ok=True)
        self.file_name = f'{self.bag_dir.name}_0.mcap'
        self.file_path = self.bag_dir / self.file_name
        self._defs = definitions or MessageDefinitions()
        self._ros_distro = ros_distro or os.environ.get('ROS_DISTRO') or DEFAULT_ROS_DISTRO
        self._custom_data = dict(custom_data or {})
        self._lock = threading.Lock()
        self._file = open(self.file_path, 'wb')
        kind = {'zstd': CompressionType.ZSTD, 'lz4': CompressionType.LZ4,
                'none': CompressionType.NONE}[compression]
        self._mcap = Writer(self._file, chunk_size=chunk_size, compression=kind, enable_crcs=True)
        self._mcap.start(profile='ros2', library=LIBRARY)
        self._schemas: Dict[str, int] = {}
        self._topics: Dict[str, _Topic] = {}
        self._count = 0
        self._start_ns: Optional[int] = None
        self._end_ns: Optional[int] = None
        self.closed = False

    # --- topics ------------------------------------------------------------------------
    def add_topic(self, name: str, type_name: str, qos_profiles: Iterable[QosProfile] = (),
                  definition: Optional[str] = None, type_hash: Optional[str] = None) -> None:
        """Declare a topic before writing to it. Same name and type twice is a no-op."""
        if not name.startswith('/'):
            raise BagError(f'topic {name!r} must be an absolute name (start with /)')
        type_name = normalize_type(type_name)
        with self._lock:
            self._check_open()
            if name in self._topics:
                known = self._topics[name].info.type
                if known != type_name:
                    raise BagError(f'topic {name} already recorded as {known}, not {type_name}')
                return
            schema_id = self._schemas.get(type_name)
            if schema_id is None:
                text = definition if definition is not None else self._defs.full_text(type_name)
                schema_id = self._mcap.register_schema(name=type_name, encoding='ros2msg',
                                                       data=text.encode())
                self._schemas[type_name] = schema_id
            profiles = list(qos_profiles)
            thash = type_hash if type_hash is not None else self._defs.type_hash(type_name)
            channel_id = self._mcap.register_channel(
                topic=name, message_encoding='cdr', schema_id=schema_id,
                metadata={'offered_qos_profiles': dump_profiles(profiles) if profiles else '',
                          'topic_type_hash': thash})
            self._topics[name] = _Topic(TopicInfo(name=name, type=type_name,
                                                  offered_qos_profiles=profiles,
                                                  type_description_hash=thash), channel_id)

    # --- messages ----------------------------------------------------------------------
    def write(self, topic: str, data: bytes, log_time_ns: int,
              publish_time_ns: Optional[int] = None) -> None:
        """Append one serialized message; log_time_ns is the receive time (sorts playback)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BagError(f'{topic}: message data must be bytes, got {type(data).__name__}')
        if log_time_ns < 0:
            raise BagError(f'{topic}: negative log time {log_time_ns}')
        with self._lock:
            self._check_open()
            t = self._topics.get(topic)
            if t is None:
                raise BagError(f'{topic}: not declared with add_topic()')
            self._mcap.add_message(channel_id=t.channel_id, log_time=int(log_time_ns),
                                   data=bytes(data),
                                   publish_time=int(publish_time_ns if publish_time_ns is not None
                                                    else log_time_ns))
            # Chunks reach the OS as soon as they are complete (crash safety).
            self._file.flush()
            t.info.message_count += 1
            t.bytes += len(data)
            self._count += 1
            self._start_ns = log_time_ns if self._start_ns is None else min(self._start_ns, log_time_ns)
            self._end_ns = log_time_ns if self._end_ns is None else max(self._end_ns, log_time_ns)

    # --- state -------------------------------------------------------------------------
    @property
    def message_count(self) -> int:
        return self._count

    def topic_counts(self) -> Dict[str, int]:
        with self._lock:
            return {n: t.info.message_count for n, t in self._topics.items()}

    def topic_bytes(self) -> Dict[str, int]:
        with self._lock:
            return {n: t.bytes for n, t in self._topics.items()}

    def file_size(self) -> int:
        return self.file_path.stat().st_size if self.file_path.exists() else 0

    def metadata(self) -> BagMetadata:
        start = self._start_ns or 0
        duration = (self._end_ns - start) if self._end_ns is not None else 0
        topics: List[TopicInfo] = [t.info for t in self._topics.values()]
        return BagMetadata(
            starting_time_ns=start, duration_ns=duration, message_count=self._count,
            topics=topics, relative_file_paths=[self.file_name],
            files=[FileInfo(self.file_name, start, duration, self._count)],
            ros_distro=self._ros_distro, custom_data=self._custom_data)

    def set_custom_data(self, key: str, value: str) -> None:
        """Set one rosbag2 custom_data entry (written into the bag and metadata.yaml at close)."""
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise BagError(f'custom_data wants a non-empty string key and a string value, got {key!r}')
        with self._lock:
            self._check_open()
            self._custom_data[key] = value

    def _check_open(self) -> None:
        if self.closed:
            raise BagError(f'{self.bag_dir}: writer is closed')

    # --- closing -----------------------------------------------------------------------
    def close(self) -> BagMetadata:
        """Finish the MCAP file (summary, rosbag2 record) and write metadata.yaml. Idempotent."""
        with self._lock:
            md = self.metadata()
            if self.closed:
                return md
            self.closed = True
            try:
                self._mcap.add_metadata('rosbag2', {'serialized_metadata': md.dump(wrap=False)})
                self._mcap.finish()
            finally:
                self._file.close()
            md.write(self.bag_dir)
            return md

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
