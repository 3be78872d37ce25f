"""report.html: a self-contained page (no external files) made from an evaluation's summary.json."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Dict, List

from fuse_core.evaluation.report import SUMMARY_FILE

HTML_FILE = 'report.html'

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}
th{background:#eee}
.success{color:#176117;font-weight:bold}.failure{color:#a11;font-weight:bold}
.warn{background:#fff3cd;padding:.5em;border:1px solid #e0c36b}
"""


def _pct(x) -> str:
    return '&ndash;' if x is None else f'{100 * x:.1f} %'


def _table(header: List[str], rows: List[List[str]], row_class: List[str] = None) -> str:
    out = ['<table><tr>' + ''.join(f'<th>{html.escape(h)}</th>' for h in header) + '</tr>']
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class else ''
        out.append(f'<tr{cls}>' + ''.join(f'<td>{c}</td>' for c in row) + '</tr>')
    out.append('</table>')
    return '\n'.join(out)


def _duration_svg(episodes: List[Dict[str, Any]]) -> str:
    """Episode durations as bars (green success, red failure), inline SVG."""
    if not episodes:
        return ''
    w, h, pad = 640, 160, 30
    longest = max(max(e['duration_s'] for e in episodes), 1e-6)
    bw = (w - 2 * pad) / len(episodes)
    bars = []
    for i, e in enumerate(episodes):
        bh = (h - 2 * pad) * e['duration_s'] / longest
        colour = '#3a3' if e['outcome'] == 'success' else '#c33'
        bars.append(f'<rect x="{pad + i * bw + 1:.1f}" y="{h - pad - bh:.1f}" width="{max(bw - 2, 1):.1f}" '
                    f'height="{bh:.1f}" fill="{colour}"><title>episode {e["index"]} seed {e["seed"]}: '
                    f'{html.escape(e["outcome"])}, {e["duration_s"]:.1f} s</title></rect>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
            f'aria-label="episode durations">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#444"/>'
            f'<text x="{pad}" y="{pad - 10}" font-size="12">episode duration (s), max {longest:.1f} s</text>'
            + ''.join(bars) + '</svg>')


def render(summary: Dict[str, Any]) -> str:
    cfg = summary.get('config', {})
    esc = lambda v: html.escape(str(v))  # noqa: E731
    lo, hi = summary.get('wilson_95', [0.0, 1.0])
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Evaluation: '
             f'{esc(cfg.get("action_source", ""))} on {esc(cfg.get("task", ""))}</title>'
             f'<style>{_STYLE}</style></head><body>',
             f'<h1>Evaluation: {esc(cfg.get("action_source", ""))} on {esc(cfg.get("task", ""))}</h1>']
    if summary.get('episodes_missing'):
        parts.append(f'<p class="warn">{summary["episodes_missing"]} of {summary["episodes_planned"]} episodes '
                     f'missing: {esc(summary.get("missing_reason") or "the run has not finished")}</p>')
    parts.append('<h2>Success rate</h2>')
    parts.append(_table(['episodes', 'successes', 'failures', 'success rate', '95 % interval (Wilson)', 'status'],
                        [[f'{summary["episodes_finished"]} of {summary["episodes_planned"]}',
                          str(summary['successes']), str(summary['failures']), _pct(summary['success_rate']),
                          f'{_pct(lo)} &ndash; {_pct(hi)}', esc(summary['status'])]]))
    parts.append('<h2>Configuration</h2>')
    parts.append(_table(['key', 'value'], [[esc(k), esc(v)] for k, v in sorted(cfg.items())]))
    holds = summary.get('holds_by_reason') or {}
    parts.append('<h2>Holds by reason</h2>')
    parts.append(_table(['reason', 'count'], [[esc(k), str(v)] for k, v in holds.items()]) if holds
                 else '<p>none</p>')
    episodes = summary.get('episodes', [])
    parts.append('<h2>Episodes</h2>')
    parts.append(_duration_svg(episodes))
    rows, classes = [], []
    for e in episodes:
        h = ', '.join(f'{esc(k)}: {v}' for k, v in sorted((e.get('holds') or {}).items())) or '&ndash;'
        rows.append([str(e['index']), str(e['seed']), f'<span class="{esc(e["outcome"])}">{esc(e["outcome"])}</span>',
                     esc(e.get('detail', '')), f'{e["duration_s"]:.2f}', f'{e.get("wall_s", 0.0):.1f}',
                     str(e.get('commands', 0)), h])
        classes.append(e['outcome'])
    parts.append(_table(['#', 'seed', 'outcome', 'detail', 'duration (s)', 'wall (s)', 'commands', 'holds'],
                        rows, classes))
    parts.append(f'<p><small>updated {esc(summary.get("updated_utc", ""))}; data in summary.json and '
                 f'episodes.jsonl</small></p></body></html>\n')
    return '\n'.join(parts)


def write_html(directory) -> Path:
    directory = Path(directory)
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    path = directory / HTML_FILE
    path.write_text(render(summary))
    return path
