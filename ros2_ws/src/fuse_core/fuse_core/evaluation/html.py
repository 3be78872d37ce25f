"""report.html: a self-contained page (no external files) made from an evaluation's summary.json."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

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


def line_svg(series: Dict[str, List[float]], title: str, colours: Dict[str, str] = None,
             width: int = 420, height: int = 150) -> str:
    """Several series over the same x (their index) as one inline-SVG line plot with a legend."""
    pad = 28
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    n = max((len(ys) for ys in series.values()), default=0)
    if not values or n < 2:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><text x="10" y="20" ' \
               f'font-size="12">{html.escape(title)}: no data</text></svg>'
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e']
    colours = colours or {}
    x = lambda i: pad + (width - 2 * pad) * i / (n - 1)  # noqa: E731
    y = lambda v: height - pad - (height - 2 * pad) * (v - lo) / (hi - lo)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{pad}" y="14" font-size="12">{html.escape(title)} '
             f'[{lo:.3g}, {hi:.3g}]</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>']
    if lo < 0 < hi:
        parts.append(f'<line x1="{pad}" y1="{y(0):.1f}" x2="{width - pad}" y2="{y(0):.1f}" stroke="#ddd"/>')
    for k, (name, ys) in enumerate(series.items()):
        colour = colours.get(name, palette[k % len(palette)])
        pts = ' '.join(f'{x(i):.1f},{y(v):.1f}' for i, v in enumerate(ys) if v is not None and math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{width - pad - 90}" y="{14 + 12 * (k + 1)}" font-size="11" fill="{colour}">'
                     f'{html.escape(name)}</text>')
    parts.append('</svg>')
    return ''.join(parts)


def _num(x, digits: int = 3) -> str:
    return '&ndash;' if x is None else f'{x:.{digits}f}'


def replay_page(report: Dict[str, Any]) -> str:
    """replay.html: the replay check's variants side by side, per-dimension errors and plots."""
    esc = lambda v: html.escape(str(v))  # noqa: E731
    dims = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw')
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Replay check: '
             f'{esc(report["bundle_name"])}</title><style>{_STYLE}</style></head><body>',
             f'<h1>Replay check: {esc(report["bundle_name"])}</h1>',
             f'<p>{len(report["episodes"])} recorded episode(s) through the sync node\'s preprocessing into '
             f'<code>{esc(report["bundle"])}</code>; the first action of each chunk against the action the arm '
             f'applied. nmse: squared error in units of the bundle\'s action std (dims 0-5; 1 is about '
             f'predicting the mean, lower is better).</p>']
    if report.get('unusable'):
        parts.append('<p class="warn">not replayed: ' + '; '.join(esc(v) for v in report['unusable'].values())
                     + '</p>')
    rows = []
    for v in report['variants']:
        s = report['scores'][v]
        rows.append([f'<b>{esc(v)}</b>', esc(report['variant_descriptions'][v]), str(s['steps']),
                     _num(s['nmse']), _num(s['gripper_agreement'], 2)]
                    + [_num((s['dims'].get(d) or {}).get('pearson'), 2) for d in dims]
                    + [esc(', '.join(f'{k} {n}' for k, n in s['skipped'].items()) or '-')])
    parts.append('<h2>Variants</h2>')
    parts.append(_table(['variant', 'preprocessing', 'steps', 'nmse', 'gripper agreement']
                        + [f'r {d}' for d in dims] + ['windows not commanded'], rows))
    first = report['variants'][0] if report['variants'] else None
    if first and report['scores'][first]['dims']:
        parts.append(f'<h2>Per dimension ({esc(first)})</h2>')
        s = report['scores'][first]
        parts.append(_table(['dim', 'MAE', 'RMSE', 'Pearson r'],
                            [[d, _num(s['dims'][d]['mae'], 4), _num(s['dims'][d]['rmse'], 4),
                              _num(s['dims'][d]['pearson'], 2)] for d in dims]))
    parts.append('<h2>Episodes</h2>')
    for i, ep in enumerate(report['episodes']):
        eps = {v: report['per_episode'][v][i] for v in report['variants']}
        parts.append(f'<h3>{esc(ep)}: {esc(eps[first]["instruction"])}</h3><p>'
                     + ', '.join(f'{esc(v)} nmse {_num(e["nmse"])}' for v, e in eps.items()) + '</p><div>')
        rec = np.asarray(eps[first]['recorded'], dtype=float).reshape(-1, 7)
        for d, name in enumerate(list(dims) + ['gripper']):
            series = {'recorded': rec[:, d].tolist()}
            for v, e in eps.items():
                series[v] = np.asarray(e['predicted'], dtype=float).reshape(-1, 7)[:, d].tolist()
            parts.append(line_svg(series, name, {'recorded': '#000'}))
        parts.append('</div>')
    parts.append('<p><small>data in replay.json</small></p></body></html>\n')
    return '\n'.join(parts)
