"""One source for every parameter default: the config dataclasses.

The YAML files in fuse_bringup/config name only fields of the node's config and only values
that differ from what the node would have without them; the README's parameter table names
only real parameters, with the defaults the robot runs.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from fuse_bringup import graph
from fuse_core.config import from_mapping
from fuse_core.sync import StreamConfig, stream_config, stream_defaults
from support.node_parameters import (NODE_CONFIGS, STREAMS_KEY, all_specs, config_class, defaults,
                                     executables, family_values, restated, same_value, yaml_sections)

REPO = Path(__file__).resolve().parents[2]
PARAMETER_FILES = sorted(graph.config_dir().glob('*.yaml'))


def test_every_node_of_every_graph_has_its_config_class():
    for name, executable in executables().items():
        assert executable in NODE_CONFIGS, f'{name}: {executable} has no entry in NODE_CONFIGS'
        source = importlib.import_module(f'fuse_nodes.{executable}').__file__
        assert config_class(executable).__name__ in Path(source).read_text(), \
            f'{executable} does not declare {NODE_CONFIGS[executable]}'


@pytest.mark.parametrize('path', PARAMETER_FILES, ids=lambda p: p.name)
def test_parameter_files_name_only_fields_of_the_node_config(path):
    names = executables()
    for node, params in yaml_sections(path).items():
        if node == '/**':
            continue
        fields = set(defaults(names[node])) | ({STREAMS_KEY} if names[node] == 'sync_node' else set())
        for key, value in params.items():
            assert key in fields, f'{path.name}: {node}: {key!r} is not a parameter (fields: {sorted(fields)})'
            if key == STREAMS_KEY and names[node] == 'sync_node':
                for stream, stream_params in value.items():
                    from_mapping(StreamConfig, {**stream_defaults(stream), **stream_params})


@pytest.mark.parametrize('path', PARAMETER_FILES, ids=lambda p: p.name)
def test_parameter_files_restate_no_default(path):
    assert list(restated(path)) == [], \
        f'{path.name} repeats values the node already has (the dataclass default, or a file before it)'


def test_every_graph_node_builds_a_valid_config_from_its_files():
    """The layered files of each node (robot and simulation) give a config the node accepts."""
    for spec in all_specs():
        values = defaults(spec.executable)
        for f in spec.params_files:
            values.update(yaml_sections(graph.config_path(f)).get(spec.name, {}))
        values.update({k: v for k, v in spec.parameters.items() if k in values})
        streams = values.pop(STREAMS_KEY, None) if spec.executable == 'sync_node' else None
        if spec.executable == 'sync_node':
            for name in values['stream_names']:
                stream_config(name, {**stream_defaults(name), **(streams or {}).get(name, {})})
        from_mapping(config_class(spec.executable), values)


# --- the README's parameter table -------------------------------------------------------------
#: README row label -> the node whose values it states.
README_ROWS = {'camera_*': 'camera_primary', 'digit_*': 'digit_left', 'world (twin)': 'world',
               'expert (twin)': 'expert'}


def readme_table():
    """(node, cell text) of each row of the README's 'node | main parameters (default)' table."""
    text = (REPO / 'README.md').read_text()
    start = text.index('| node | main parameters (default) |')
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith('|'):
            break
        label, cell = [c.strip() for c in line.strip('|').split('|', 1)]
        rows.append((README_ROWS.get(label, label), cell.strip().rstrip('|').strip()))
    return rows


def without_notes(cell: str) -> str:
    """The cell without its parenthesised notes (which mention other names)."""
    out, depth = [], 0
    for ch in cell:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return ''.join(out)


_NAME = re.compile(r'`([A-Za-z0-9_.*<>]+)`')


def readme_entries(cell: str):
    """(name, stated default or None) of each `name` value entry of a table cell.

    A pair of names (`a`/`b` x/y) states no value read here, and a name followed by ',' or
    ';' has none (a parameter named without its default).
    """
    text = without_notes(cell)
    for m in _NAME.finditer(text):
        name = m.group(1)
        after = text[m.end():].split('`', 1)[0]
        before = text[:m.start()].rstrip()
        pair_second = before.endswith('/') and before[:-1].rstrip().endswith('`')
        value = None
        if not pair_second and after.strip() not in ('', '/') and after.lstrip()[0] not in ',;':
            token = after.lstrip()
            if token.startswith('['):
                token = token[:token.index(']') + 1]
            else:
                token = re.split(r'[\s,;]', token, maxsplit=1)[0]
            value = yaml.safe_load(token)
        yield name, value


def test_readme_parameter_table_names_real_parameters_with_the_robot_defaults():
    rows = readme_table()
    assert {node for node, _ in rows} >= {'camera_primary', 'sync', 'policy', 'arm', 'world', 'episodes'}
    checked = 0
    for node, cell in rows:
        exe = executables()[node]
        values = family_values(node)
        for name, stated in readme_entries(cell):
            if name.startswith('streams.'):
                assert name.rsplit('.', 1)[1] in stream_defaults(''), f'README, row {node}: `{name}`'
                continue
            if '*' in name:
                prefix, suffix = name.split('*')
                assert any(k.startswith(prefix) and k.endswith(suffix) for k in values), f'README {node}: {name}'
                continue
            assert name in values, f'README, row {node}: `{name}` is not a parameter of {exe}'
            if stated is not None:
                assert same_value(stated, values[name]), \
                    f'README, row {node}: `{name}` {stated!r}, but the node runs {values[name]!r}'
                checked += 1
    assert checked > 100
