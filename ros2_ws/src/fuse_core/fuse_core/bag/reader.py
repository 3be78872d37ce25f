"""BagReader: validate a rosbag2 MCAP bag and iterate its serialized messages in time order."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence

from fuse_core.bag.metadata import STORAGE_ID, BagMetadata, TopicInfo
from fuse_core.bag.qos import load_profiles
from fuse_core.errors import BagError

MCAP_MAGIC = b'\x89MCAP0\r\n'
_SCHEMA_ENCODINGS = ('ros2msg', 'ros2idl')


class BagMessage(NamedTuple):
    """One recorded message: CDR bytes plus its topic, type and receive/publish times."""

    topic: str
    type: str
    data: bytes
    log_time_ns: int
    publish_time_ns: int


@dataclass
class _File:
    path: Path
    # None: the file has no usable summary and is read as a stream (recover mode).
    has_summary: bool
    topics: Dict[str, TopicInfo] = field(default_factory=dict)
    definitions: Dict[str, str] = field(default_factory=dict)
    start_ns: Optional[int] = None
    end_ns: Optional[int] = None
    stopped_at: str = ''  # recover mode: why the readable part ends early


class BagReader:
    """Opens a bag directory (metadata.yaml + .mcap files) or a single .mcap file.

    Every problem is a BagError that names the file: missing path, not an MCAP file,
    truncated or corrupt data, a storage other than MCAP, messages that are not CDR, and
    required topics that are absent or empty.

    recover=True accepts a bag cut short by a crash (no summary, no metadata.yaml) and reads
    it up to its last complete chunk; `truncated` then says why it ends early.
    verify=True reads every chunk once at open (decompression + CRC), so corruption in
    the middle is reported now rather than during playback.
    """

    def __init__(self, path, *, required_topics: Sequence[str] = (), recover: bool = False,
                 verify: bool = False) -> None:
        self.path = Path(path)
        self.recover = recover
        if not self.path.exists():
            raise BagError(f'{self.path}: no such bag (neither a bag directory nor an .mcap file)')
        self.metadata: Optional[BagMetadata] = None
        if self.path.is_dir():
            self.metadata = BagMetadata.load(self.path)
            if self.metadata is None:
                files = sorted(self.path.glob('*.mcap'))
                if not recover:
                    hint = (' (it has ' + ', '.join(f.name for f in files) +
                            '; the recording was probably cut short: open with recover=True)'
                            if files else '')
                    raise BagError(f'{self.path}: no metadata.yaml, not a complete rosbag2 bag{hint}')
            else:
                if self.metadata.storage_identifier != STORAGE_ID:
                    raise BagError(f'{self.path}: storage {self.metadata.storage_identifier!r} is not '
                                   f'supported (only {STORAGE_ID!r})')
                if self.metadata.compression_mode:
                    raise BagError(f'{self.path}: rosbag2 {self.metadata.compression_mode} compression '
                                   f'({self.metadata.compression_format}) is not supported; '
                                   'only MCAP chunk compression')
                files = [self.path / p for p in self.metadata.relative_file_paths]
            if not files:
                raise BagError(f'{self.path}: the bag has no .mcap file')
        else:
            files = [self.path]
        self._files: List[_File] = [self._scan(f) for f in files]
        if verify:
            for f in self._files:
                self._verify(f)
        self.topics: Dict[str, TopicInfo] = {}
        self._definitions: Dict[str, str] = {}
        for f in self._files:
            for name, info in f.topics.items():
                known = self.topics.get(name)
                if known is None:
                    self.topics[name] = TopicInfo(name, info.type, info.serialization_format,
                                                  list(info.offered_qos_profiles),
                                                  info.type_description_hash, info.message_count)
                    self._definitions[name] = f.definitions[name]
                elif known.type != info.type:
                    raise BagError(f'{f.path}: topic {name} is {info.type} here but {known.type} '
                                   'in another file of the bag')
                else:
                    known.message_count += info.message_count
        self.require(required_topics)

    # --- summary -----------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        starts = [f.start_ns for f in self._files if f.start_ns is not None]
        return min(starts) if starts else 0

    @property
    def end_ns(self) -> int:
        ends = [f.end_ns for f in self._files if f.end_ns is not None]
        return max(ends) if ends else 0

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def message_count(self) -> int:
        return sum(t.message_count for t in self.topics.values())

    @property
    def files(self) -> List[Path]:
        return [f.path for f in self._files]

    @property
    def truncated(self) -> str:
        """'' for a complete bag; otherwise why the readable part ends early."""
        return '; '.join(f'{f.path}: {f.stopped_at}' for f in self._files if f.stopped_at)

    def definition(self, topic: str) -> str:
        """The full message definition (ros2msg text) stored for a topic."""
        if topic not in self._definitions:
            raise BagError(f'{self.path}: no topic {topic}')
        return self._definitions[topic]

    def require(self, topics: Iterable[str]) -> None:
        """BagError naming every required topic that is absent or has no messages."""
        missing = [t for t in topics if t not in self.topics]
        empty = [t for t in topics if t in self.topics and self.topics[t].message_count == 0]
        problems = []
        if missing:
            problems.append(f'required topic(s) {missing} not in the bag')
        if empty:
            problems.append(f'required topic(s) {empty} have no messages')
        if problems:
            raise BagError(f'{self.path}: ' + '; '.join(problems) +
                           f' (it has: {sorted(self.topics)})')

    def summary(self) -> str:
        """A `ros2 bag info`-like text."""
        lines = [f'Bag: {self.path}',
                 f'Files: {", ".join(p.name for p in self.files)}',
                 f'Duration: {self.duration_ns / 1e9:.3f} s',
                 f'Messages: {self.message_count}']
        if self.truncated:
            lines.append(f'Truncated: {self.truncated}')
        for t in sorted(self.topics.values(), key=lambda t: t.name):
            lines.append(f'  {t.name} | {t.type} | {t.message_count} msgs')
        return '\n'.join(lines)

    # --- messages ----------------------------------------------------------------------
    def messages(self, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
        """All messages (or those of `topics`) in log-time order, across all files."""
        wanted = set(topics) if topics is not None else None
        streams = [self._iter_file(f, wanted) for f in self._files]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda m: m.log_time_ns)

    def __iter__(self) -> Iterator[BagMessage]:
        return self.messages()

    # --- internals ---------------------------------------------------------------------
    def _scan(self, path: Path) -> _File:
        if not path.is_file():
            raise BagError(f'{path}: storage file listed in the bag is missing')
        from mcap.reader import SeekingReader
        with open(path, 'rb') as stream:
            if stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                raise BagError(f'{path}: not an MCAP file (bad magic bytes)')
            stream.seek(0)
            try:
                summary = SeekingReader(stream).get_summary()
                problem = '' if summary is not None else 'the file has no summary section'
            except Exception as exc:  # the mcap parser raises many kinds on damaged bytes
                summary, problem = None, f'truncated or corrupt (no valid footer/summary: {exc})'
        if summary is None:
            if not self.recover:
                raise BagError(f'{path}: {problem}; a recording cut short can be read up to its '
                               'last complete chunk with recover=True')
            return self._scan_stream(path)
        f = _File(path, has_summary=True)
        schemas = summary.schemas
        counts = summary.statistics.channel_message_counts if summary.statistics else {}
        for cid, ch in summary.channels.items():
            schema = schemas.get(ch.schema_id)
            self._add_channel(f, ch, schema, counts.get(cid, 0))
        if summary.statistics and summary.statistics.message_count:
            f.start_ns = summary.statistics.message_start_time
            f.end_ns = summary.statistics.message_end_time
        return f

    def _add_channel(self, f: _File, ch, schema, count: int) -> None:
        if schema is None:
            raise BagError(f'{f.path}: topic {ch.topic} has no schema (message type unknown)')
        if schema.encoding not in _SCHEMA_ENCODINGS:
            raise BagError(f'{f.path}: topic {ch.topic} has schema encoding {schema.encoding!r}, '
                           f'not one of {list(_SCHEMA_ENCODINGS)} (not a ROS 2 bag?)')
        if ch.message_encoding != 'cdr':
            raise BagError(f'{f.path}: topic {ch.topic} has message encoding '
                           f'{ch.message_encoding!r}, not cdr')
        f.topics[ch.topic] = TopicInfo(
            name=ch.topic, type=schema.name, serialization_format='cdr',
            offered_qos_profiles=load_profiles(ch.metadata.get('offered_qos_profiles', '')),
            type_description_hash=ch.metadata.get('topic_type_hash', ''), message_count=count)
        f.definitions[ch.topic] = schema.data.decode(errors='replace')

    def _records(self, f: _File, validate_crcs: bool = False):
        """Records of a file in order; in recover mode it stops quietly where the data ends."""
        from mcap.stream_reader import StreamReader
        with open(f.path, 'rb') as stream:
            it = StreamReader(stream, validate_crcs=validate_crcs).records
            while True:
                try:
                    record = next(it)
                except StopIteration:
                    return
                except Exception as exc:  # damaged bytes surface as many exception kinds
                    if self.recover:
                        f.stopped_at = f'data ends early ({type(exc).__name__}: {exc})'
                        return
                    raise BagError(f'{f.path}: corrupt data: {type(exc).__name__}: {exc}') from exc
                yield record

    def _scan_stream(self, path: Path) -> _File:
        from mcap.records import Channel, Message, Schema
        f = _File(path, has_summary=False)
        schemas: Dict[int, object] = {}
        channels: Dict[int, object] = {}
        counts: Dict[int, int] = {}
        for rec in self._records(f, validate_crcs=True):
            if isinstance(rec, Schema):
                schemas[rec.id] = rec
            elif isinstance(rec, Channel):
                channels[rec.id] = rec
            elif isinstance(rec, Message):
                counts[rec.channel_id] = counts.get(rec.channel_id, 0) + 1
                f.start_ns = rec.log_time if f.start_ns is None else min(f.start_ns, rec.log_time)
                f.end_ns = rec.log_time if f.end_ns is None else max(f.end_ns, rec.log_time)
        if not channels and f.stopped_at:
            raise BagError(f'{path}: corrupt: nothing readable after the magic bytes '
                           f'({f.stopped_at})')
        for cid, ch in channels.items():
            self._add_channel(f, ch, schemas.get(ch.schema_id), counts.get(cid, 0))
        return f

    def _verify(self, f: _File) -> None:
        from mcap.records import Message
        n = sum(1 for rec in self._records(f, validate_crcs=True) if isinstance(rec, Message))
        expected = sum(t.message_count for t in f.topics.values())
        if f.has_summary and n != expected:
            raise BagError(f'{f.path}: corrupt: the summary counts {expected} messages, '
                           f'the data holds {n}')

    def _iter_file(self, f: _File, wanted: Optional[set]) -> Iterator[BagMessage]:
        types = {name: t.type for name, t in f.topics.items()}
        if f.has_summary:
            from mcap.reader import SeekingReader
            with open(f.path, 'rb') as stream:
                it = SeekingReader(stream).iter_messages(
                    topics=list(wanted) if wanted is not None else None, log_time_order=True)
                while True:
                    try:
                        _schema, ch, msg = next(it)
                    except StopIteration:
                        return
                    except Exception as exc:  # damaged chunk
                        raise BagError(f'{f.path}: corrupt data: {type(exc).__name__}: {exc}') from exc
                    yield BagMessage(ch.topic, types[ch.topic], msg.data, msg.log_time,
                                     msg.publish_time)
            return
        yield from self._iter_stream(f, wanted, types)

    def _iter_stream(self, f: _File, wanted: Optional[set], types: Dict[str, str]):
        from mcap.records import Channel, Message, Schema
        channels: Dict[int, str] = {}
        pending: List[BagMessage] = []
        # Messages are sorted per chunk: chunks follow each other in time when written by
        # BagWriter, and this keeps memory bounded by one chunk.
        for rec in self._records(f, validate_crcs=True):
            if isinstance(rec, Message):
                topic = channels.get(rec.channel_id)
                if topic is not None and (wanted is None or topic in wanted):
                    pending.append(BagMessage(topic, types[topic], rec.data, rec.log_time,
                                              rec.publish_time))
                continue
            if isinstance(rec, Channel):
                channels[rec.id] = rec.topic
            elif not isinstance(rec, Schema) and pending:
                pending.sort(key=lambda m: m.log_time_ns)
                yield from pending
                pending = []
        pending.sort(key=lambda m: m.log_time_ns)
        yield from pending
