"""Message definitions for bags: .msg texts in rosbag2's `ros2msg` encoding and type hashes."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from fuse_core.errors import BagError

#: Separates dependent definitions in a `ros2msg` schema (80 '=' then "MSG: <type>").
DELIMITER = '=' * 80 + '\n'

_TYPE_RE = re.compile(r'^([A-Za-z0-9_]+)/(?:msg/)?([A-Za-z0-9_]+)$')
# Field types at the start of a line: "pkg/Type[] name", "Type name", "uint8 name".
_FIELD_TYPE_RE = re.compile(r'(?:^|\n)\s*([A-Za-z0-9_/]+)(?:\[[^\]]*\])?\s+')
_PRIMITIVES = frozenset({'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
                         'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'})


def split_type(type_name: str) -> tuple:
    """'sensor_msgs/msg/Image' or 'sensor_msgs/Image' -> ('sensor_msgs', 'Image')."""
    m = _TYPE_RE.match(type_name)
    if m is None:
        raise BagError(f'message type {type_name!r} is not of the form package/msg/Type')
    return m.group(1), m.group(2)


def normalize_type(type_name: str) -> str:
    """The canonical 'package/msg/Type' spelling of a message type."""
    pkg, name = split_type(type_name)
    return f'{pkg}/msg/{name}'


def search_prefixes() -> List[Path]:
    """Install prefixes to look for share/<pkg>/msg in: AMENT_PREFIX_PATH, then this Python's."""
    out: List[Path] = []
    for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if p and Path(p) not in out:
            out.append(Path(p))
    if Path(sys.prefix) not in out:
        out.append(Path(sys.prefix))
    return out


def _dependencies(text: str, package: str) -> List[str]:
    deps: Set[str] = set()
    for m in _FIELD_TYPE_RE.finditer(text):
        t = m.group(1)
        if t in _PRIMITIVES:
            continue
        deps.add(t if '/' in t else f'{package}/{t}')
    return sorted(deps)


def first_field_is_header(definition: str) -> bool:
    """True when a definition's first field is `std_msgs/Header header`.

    Then the CDR header stamp sits right after the encapsulation header, which is what lets
    the player rewrite stamps without deserialising (see fuse_core.bag.cdr).
    """
    top = definition.split(DELIMITER, 1)[0]
    for line in top.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or '=' in line:
            continue  # a constant, not a field
        return parts[0] in ('std_msgs/Header', 'std_msgs/msg/Header') and parts[1] == 'header'
    return False


class MessageDefinitions:
    """Finds .msg files in installed packages and builds full definitions as rosbag2 does."""

    def __init__(self, prefixes: Optional[Sequence[Path]] = None) -> None:
        self._prefixes = [Path(p) for p in prefixes] if prefixes is not None else search_prefixes()
        self._texts: Dict[str, str] = {}

    def _msg_file(self, type_name: str, ext: str) -> Optional[Path]:
        pkg, name = split_type(type_name)
        for prefix in self._prefixes:
            f = prefix / 'share' / pkg / 'msg' / f'{name}.{ext}'
            if f.is_file():
                return f
        return None

    def msg_text(self, type_name: str) -> str:
        """The .msg text of one type; BagError naming the type and where it looked if absent."""
        key = normalize_type(type_name)
        if key not in self._texts:
            f = self._msg_file(type_name, 'msg')
            if f is None:
                pkg, name = split_type(type_name)
                where = ', '.join(str(p / 'share' / pkg / 'msg') for p in self._prefixes)
                raise BagError(f'no definition of {key} ({name}.msg) in: {where}')
            self._texts[key] = f.read_text()
        return self._texts[key]

    def full_text(self, type_name: str) -> str:
        """The complete `ros2msg` definition: the type's text, then each dependency once.

        Same layout as rosbag2: dependencies in sorted order, depth first, each preceded by a
        blank line, 80 '=' and "MSG: <type as written in the field>".
        """
        seen: Set[str] = set()

        def append(name: str, depth: int) -> str:
            if depth <= 0:
                raise BagError(f'definition of {type_name} nests too deeply (at {name})')
            text = self.msg_text(name)
            package = split_type(name)[0]
            out = text
            for dep in _dependencies(text, package):
                if dep not in seen:
                    seen.add(dep)
                    out += '\n' + DELIMITER + f'MSG: {dep}\n' + append(dep, depth - 1)
            return out

        return append(type_name, 50)

    def type_hash(self, type_name: str) -> str:
        """The RIHS01 type-description hash from the package's .json, or '' if there is none."""
        f = self._msg_file(type_name, 'json')
        if f is None:
            return ''
        try:
            hashes = json.loads(f.read_text()).get('type_hashes', [])
        except (OSError, ValueError):
            return ''
        key = normalize_type(type_name)
        for entry in hashes:
            if entry.get('type_name') == key:
                return str(entry.get('hash_string', ''))
        return ''
