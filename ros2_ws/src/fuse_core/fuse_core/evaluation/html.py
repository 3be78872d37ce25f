"""report.html: a self-contained page (no external files) made from an evaluation's summary.json."""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from fuse_core.errors import EvaluationError
from fuse_core.evaluation.report import EPISODES_DIR, SUMMARY_FILE

HTML_FILE = 'report.html'
OUTCOME_COLOURS = {'success': '#3a3', 'failure': '#c33'}

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
        colour = OUTCOME_COLOURS.get(e['outcome'], '#777')
        bars.append(f'<rect x="{pad + i * bw + 1:.1f}" y="{h - pad - bh:.1f}" width="{max(bw - 2, 1):.1f}" '
                    f'height="{bh:.1f}" fill="{colour}"><title>episode {e["index"]} seed {e["seed"]}: '
                    f'{html.escape(e["outcome"])}, {e["duration_s"]:.1f} s</title></rect>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
            f'aria-label="episode durations">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#444"/>'
            f'<text x="{pad}" y="{pad - 10}" font-size="12">episode duration (s), max {longest:.1f} s</text>'
            + ''.join(bars) + '</svg>')


#: Units of the command dimensions (fuse_core.evaluation.trace.ACTION_DIMS).
_UNITS = {'dx': 'm', 'dy': 'm', 'dz': 'm', 'droll': 'rad', 'dpitch': 'rad', 'dyaw': 'rad', 'gripper': '1 = open'}


def _ms(stats: Optional[Dict[str, Any]], key: str) -> str:
    value = (stats or {}).get(key)
    return '&ndash;' if value is None else f'{value:.1f}'


def _timing_table(summary: Dict[str, Any]) -> str:
    rows = []
    for label, key in (('window → command', 'latency'), ('inference', 'inference')):
        stats, measure = summary.get(f'{key}_ms'), html.escape(str(summary.get(f'{key}_measure', 'not measured')))
        if stats is None:
            rows.append([label] + ['&ndash;'] * 6 + [measure])
        else:
            rows.append([label] + [_ms(stats, k) for k in ('p50', 'p95', 'p99', 'mean', 'max')]
                        + [str(stats['count']), measure])
    return _table(['ms', 'p50', 'p95', 'p99', 'mean', 'max', 'samples', 'what'], rows)


def _ee_path_svg(episodes: List[Dict[str, Any]], traces: Dict[int, Any]) -> str:
    """Every episode's end-effector path, top view, coloured by outcome."""
    series, colours = {}, {}
    for e in episodes:
        tr = traces.get(e['index'])
        if tr is None or not tr.ee:
            continue
        name = f'episode {e["index"]} (seed {e["seed"]}): {e["outcome"]}'
        series[name] = ([r[1] for r in tr.ee], [r[2] for r in tr.ee])
        colours[name] = OUTCOME_COLOURS.get(e['outcome'], '#777')
    if not series:
        return '<p>no end-effector path recorded</p>'
    return line_svg(series, 'end effector over the table, top view: y (m)', colours, 520, 440,
                    legend=OUTCOME_COLOURS, equal_scale=True, x_label='x (m)')


def _episode_section(e: Dict[str, Any], trace, media: Dict[str, str]) -> str:
    """One episode: its video and its commands per dimension over time."""
    esc = lambda v: html.escape(str(v))  # noqa: E731
    out = [f'<h3 id="episode-{e["index"]}">Episode {e["index"]}, seed {e["seed"]}: '
           f'<span class="{esc(e["outcome"])}">{esc(e["outcome"])}</span> ({esc(e.get("detail", ""))})</h3>']
    if media.get('video'):
        out.append(f'<video src="{esc(media["video"])}" controls muted preload="metadata" '
                   f'style="max-width:100%"></video>')
    else:
        out.append(f'<p>no video: {esc(media.get("video_note", "none was made"))}</p>')
    if trace is None or not trace.actions:
        out.append('<p>no commands recorded</p>')
        return '\n'.join(out)
    t = trace.times()
    out.append('<div>' + ''.join(line_svg({d: ys}, f'{d} ({_UNITS[d]})', {d: '#1f77b4'}, 300, 120, x=t,
                                          legend={}, x_label='t (s)')
                                 for d, ys in trace.action_series().items()) + '</div>')
    return '\n'.join(out)


def render(summary: Dict[str, Any], traces: Optional[Dict[int, Any]] = None,
           media: Optional[Dict[int, Dict[str, str]]] = None) -> str:
    """The page. traces: episode index -> EpisodeTrace; media: index -> {'bag', 'video', 'video_note'},
    links relative to the report directory."""
    traces, media = traces or {}, media or {}
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
    parts.append('<h2>Timing</h2>')
    parts.append(_timing_table(summary))
    episodes = summary.get('episodes', [])
    parts.append('<h2>End-effector path</h2>')
    parts.append(_ee_path_svg(episodes, traces))
    parts.append('<h2>Episodes</h2>')
    parts.append(_duration_svg(episodes))
    rows, classes = [], []
    for e in episodes:
        h = ', '.join(f'{esc(k)}: {v}' for k, v in sorted((e.get('holds') or {}).items())) or '&ndash;'
        m = media.get(e['index'], {})
        lat, inf = e.get('latency_ms'), e.get('inference_ms')
        rows.append([f'<a href="#episode-{e["index"]}">{e["index"]}</a>', str(e['seed']),
                     f'<span class="{esc(e["outcome"])}">{esc(e["outcome"])}</span>',
                     esc(e.get('detail', '')), f'{e["duration_s"]:.2f}', f'{e.get("wall_s", 0.0):.1f}',
                     str(e.get('commands', 0)), h, f'{_ms(lat, "p50")} / {_ms(lat, "p99")}',
                     f'{_ms(inf, "p50")} / {_ms(inf, "p99")}',
                     f'<a href="{esc(m["bag"])}">bag</a>' if m.get('bag') else '&ndash;',
                     f'<a href="{esc(m["video"])}">video</a>' if m.get('video') else '&ndash;'])
        classes.append(e['outcome'])
    parts.append(_table(['#', 'seed', 'outcome', 'detail', 'duration (s)', 'wall (s)', 'commands', 'holds',
                         'window → command p50 / p99 (ms)', 'inference p50 / p99 (ms)', 'bag', 'video'],
                        rows, classes))
    for e in episodes:
        parts.append(_episode_section(e, traces.get(e['index']), media.get(e['index'], {})))
    parts.append(f'<p><small>updated {esc(summary.get("updated_utc", ""))}; data in summary.json, '
                 f'episodes.jsonl and episodes/&lt;id&gt;/trace.json</small></p></body></html>\n')
    return '\n'.join(parts)


def episode_media(directory, episodes: List[Dict[str, Any]]) -> Dict[int, Dict[str, str]]:
    """What lies in each episode's directory, as links relative to the report directory."""
    from fuse_core.evaluation.video import VIDEO_ERROR_FILE, VIDEO_FILE
    directory = Path(directory)
    out = {}
    for e in episodes:
        name = e.get('episode_id')
        if not name:
            continue
        rel = f'{EPISODES_DIR}/{name}'
        d = directory / EPISODES_DIR / name
        m: Dict[str, str] = {}
        if (d / 'metadata.yaml').is_file():
            m['bag'] = f'{rel}/'
        if (d / VIDEO_FILE).is_file():
            m['video'] = f'{rel}/{VIDEO_FILE}'
        elif (d / VIDEO_ERROR_FILE).is_file():
            m['video_note'] = (d / VIDEO_ERROR_FILE).read_text().strip()[:300]
        elif m.get('bag'):
            m['video_note'] = 'being made'
        else:
            m['video_note'] = 'no bag recorded (--no-bags)' if not e.get('bag') else 'the bag is missing'
        out[e['index']] = m
    return out


def write_html(directory) -> Path:
    """DIR/report.html from DIR/summary.json and what lies in DIR/episodes (written atomically)."""
    from fuse_core.evaluation.trace import EpisodeTrace
    directory = Path(directory)
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    episodes = summary.get('episodes', [])
    traces = {}
    for e in episodes:
        if e.get('episode_id'):
            try:
                traces[e['index']] = EpisodeTrace.read(directory / EPISODES_DIR / e['episode_id'])
            except EvaluationError:
                traces[e['index']] = None     # the page says "no commands recorded"
    path = directory / HTML_FILE
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(render(summary, traces, episode_media(directory, episodes)))
    os.replace(tmp, path)
    return path


def line_svg(series: Dict[str, Any], title: str, colours: Dict[str, str] = None,
             width: int = 420, height: int = 150, *, x: Optional[Sequence[float]] = None,
             legend: Optional[Dict[str, str]] = None, equal_scale: bool = False, x_label: str = '') -> str:
    """Several series as one inline-SVG line plot with a legend.

    series: name -> y values over `x` (default: their index), or name -> (xs, ys). A None or
    non-finite value breaks the line. legend: label -> colour, shown instead of one entry per
    series (e.g. one per outcome). equal_scale: the same units per pixel on both axes (a top view).
    """
    pad = 28
    colours = colours or {}
    palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf']
    lines = {}
    for name, values in series.items():
        xs, ys = values if isinstance(values, tuple) else (x if x is not None else range(len(values)), values)
        lines[name] = [(float(a), float(b)) if _finite(a) and _finite(b) else None for a, b in zip(xs, ys)]
    points = [p for pts in lines.values() for p in pts if p is not None]
    if len(points) < 2:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><text x="10" y="20" ' \
               f'font-size="12">{html.escape(title)}: no data</text></svg>'
    xlo, xhi = min(p[0] for p in points), max(p[0] for p in points)
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    if xhi - xlo < 1e-12:
        xlo, xhi = xlo - 1.0, xhi + 1.0
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    sx, sy = (width - 2 * pad) / (xhi - xlo), (height - 2 * pad) / (hi - lo)
    if equal_scale:
        sx = sy = min(sx, sy)
    # Centred in the plot area (only differs from the corner with equal_scale).
    ox = pad + ((width - 2 * pad) - sx * (xhi - xlo)) / 2
    oy = height - pad - ((height - 2 * pad) - sy * (hi - lo)) / 2
    px = lambda v: ox + sx * (v - xlo)  # noqa: E731
    py = lambda v: oy - sy * (v - lo)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{pad}" y="14" font-size="12">{html.escape(title)} '
             f'[{lo:.3g}, {hi:.3g}]</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="{pad}" y="{height - pad + 14}" font-size="10" fill="#555">{html.escape(x_label)} '
             f'{xlo:.3g} &ndash; {xhi:.3g}</text>']
    if lo < 0 < hi:
        parts.append(f'<line x1="{pad}" y1="{py(0):.1f}" x2="{width - pad}" y2="{py(0):.1f}" stroke="#ddd"/>')
    for k, (name, pts) in enumerate(lines.items()):
        colour = colours.get(name, palette[k % len(palette)])
        segment: List[str] = []
        last = None
        for i, p in enumerate(pts + [None]):
            if p is not None:
                q = (px(p[0]), py(p[1]))
                # A point within half a pixel of the last one drawn adds nothing (but a line's end is kept).
                end = i + 1 >= len(pts) or pts[i + 1] is None
                if last is None or end or abs(q[0] - last[0]) + abs(q[1] - last[1]) >= 0.5:
                    segment.append(f'{q[0]:.1f},{q[1]:.1f}')
                    last = q
                continue
            last = None
            if len(segment) == 1:
                cx, cy = segment[0].split(',')
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{colour}"/>')
            elif segment:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                             f'points="{" ".join(segment)}"><title>{html.escape(name)}</title></polyline>')
            segment = []
    entries = legend if legend is not None else {name: colours.get(name, palette[k % len(palette)])
                                                 for k, name in enumerate(lines)}
    for k, (name, colour) in enumerate(entries.items()):
        parts.append(f'<text x="{width - pad - 90}" y="{14 + 12 * (k + 1)}" font-size="11" fill="{colour}">'
                     f'{html.escape(name)}</text>')
    parts.append('</svg>')
    return ''.join(parts)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


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
