"""QoS profiles as rosbag2 stores them (metadata version 9: policy names, {sec, nsec} durations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from fuse_core.errors import BagError

#: RMW_DURATION_INFINITE, the value rosbag2 writes for "no deadline/lifespan/lease".
INFINITE_NS = 2**63 - 1

# rmw enum values, for profiles written by metadata versions before 9 (integers).
_HISTORY = ['system_default', 'keep_last', 'keep_all', 'unknown']
_RELIABILITY = ['system_default', 'reliable', 'best_effort', 'unknown', 'best_available']
_DURABILITY = ['system_default', 'transient_local', 'volatile', 'unknown', 'best_available']
_LIVELINESS = ['system_default', 'automatic', 'manual_by_node', 'manual_by_topic', 'unknown',
               'best_available']

# Pre-Galactic RMWs reported "infinite" as these; rosbag2 maps them to INFINITE_NS too.
_LEGACY_INFINITE = {(0x7FFFFFFF, 0xFFFFFFFF), (0x7FFFFFFF, 0x7FFFFFFF)}


@dataclass(frozen=True)
class QosProfile:
    """One offered QoS profile of a topic's publisher (policy names as rmw spells them)."""

    history: str = 'keep_last'
    depth: int = 10
    reliability: str = 'reliable'
    durability: str = 'volatile'
    deadline_ns: int = 0
    lifespan_ns: int = 0
    liveliness: str = 'automatic'
    liveliness_lease_duration_ns: int = 0
    avoid_ros_namespace_conventions: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {
            'history': self.history,
            'depth': int(self.depth),
            'reliability': self.reliability,
            'durability': self.durability,
            'deadline': _duration(self.deadline_ns),
            'lifespan': _duration(self.lifespan_ns),
            'liveliness': self.liveliness,
            'liveliness_lease_duration': _duration(self.liveliness_lease_duration_ns),
            'avoid_ros_namespace_conventions': bool(self.avoid_ros_namespace_conventions),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'QosProfile':
        try:
            return cls(
                history=_policy(d['history'], _HISTORY),
                depth=int(d.get('depth', 0)),
                reliability=_policy(d['reliability'], _RELIABILITY),
                durability=_policy(d['durability'], _DURABILITY),
                deadline_ns=_duration_ns(d.get('deadline')),
                lifespan_ns=_duration_ns(d.get('lifespan')),
                liveliness=_policy(d.get('liveliness', 'automatic'), _LIVELINESS),
                liveliness_lease_duration_ns=_duration_ns(d.get('liveliness_lease_duration')),
                avoid_ros_namespace_conventions=bool(d.get('avoid_ros_namespace_conventions', False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BagError(f'invalid QoS profile {d!r}: {exc}') from exc


def _duration(ns: int) -> Dict[str, int]:
    return {'sec': int(ns // 1_000_000_000), 'nsec': int(ns % 1_000_000_000)}


def _duration_ns(d: Any) -> int:
    if d is None:
        return 0
    sec, nsec = int(d['sec']), int(d['nsec'])
    if (sec, nsec) in _LEGACY_INFINITE:
        return INFINITE_NS
    return min(sec * 1_000_000_000 + nsec, INFINITE_NS)


def _policy(value: Any, names: List[str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(names):
            raise ValueError(f'policy value {value} out of range')
        return names[value]
    value = str(value)
    if value not in names:
        raise ValueError(f'unknown policy {value!r}')
    return value


def dump_profiles(profiles: List[QosProfile]) -> str:
    """The YAML text rosbag2 puts in an MCAP channel's `offered_qos_profiles` entry."""
    import yaml
    return yaml.safe_dump([p.to_dict() for p in profiles], sort_keys=False,
                          default_flow_style=False)


def load_profiles(text: Any) -> List[QosProfile]:
    """Parse `offered_qos_profiles` (YAML text or an already parsed list); '' gives []."""
    import yaml
    if isinstance(text, str):
        if not text.strip():
            return []
        try:
            text = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BagError(f'offered_qos_profiles is not valid YAML: {exc}') from exc
    if text is None:
        return []
    if not isinstance(text, list):
        raise BagError(f'offered_qos_profiles must be a list, got {type(text).__name__}')
    return [QosProfile.from_dict(d) for d in text]


def adapted_profile(offered: List[QosProfile], depth: int = 10) -> QosProfile:
    """A profile that matches every offered one, as rosbag2 adapts its subscriptions/publishers.

    Reliable only if every publisher is reliable (a reliable reader gets nothing from a
    best-effort writer); transient-local only if every publisher is (so latched topics such
    as DIGIT backgrounds reach late joiners). No offers gives best effort + volatile, which
    accepts any publisher that appears later.
    """
    if not offered:
        return QosProfile(history='keep_last', depth=depth, reliability='best_effort',
                          durability='volatile')
    reliable = all(p.reliability == 'reliable' for p in offered)
    latched = all(p.durability == 'transient_local' for p in offered)
    known_depths = [p.depth for p in offered if p.history == 'keep_last' and p.depth > 0]
    return QosProfile(history='keep_last', depth=max(known_depths) if known_depths else depth,
                      reliability='reliable' if reliable else 'best_effort',
                      durability='transient_local' if latched else 'volatile')
