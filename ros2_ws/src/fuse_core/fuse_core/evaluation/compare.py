"""Several evaluation reports side by side: one row per report (source, task, N, rate, interval)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from fuse_core.errors import EvaluationError
from fuse_core.evaluation.report import SUMMARY_FILE

COLUMNS = ('report', 'action source', 'task', 'seed', 'finished', 'missing', 'successes', 'success rate',
           '95 % interval', 'mean duration (s)')


def read_summaries(directories: Sequence) -> List[Dict[str, Any]]:
    if len(directories) < 2:
        raise EvaluationError(f'compare needs two or more report directories, got {len(directories)}')
    out = []
    for d in directories:
        path = Path(d) / SUMMARY_FILE
        try:
            data = json.loads(path.read_text())
            data['config'], data['wilson_95']
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(f'{d}: not an evaluation report ({path.name} missing or unreadable: {exc})') from exc
        data['_directory'] = str(d)
        out.append(data)
    return out


def rows(summaries: Sequence[Dict[str, Any]]) -> List[List[str]]:
    table = []
    for s in summaries:
        cfg = s['config']
        lo, hi = s['wilson_95']
        rate = s.get('success_rate')
        mean = s.get('mean_duration_s')
        table.append([s['_directory'], str(cfg.get('action_source', '')), str(cfg.get('task', '')),
                      str(cfg.get('seed', '')), str(s['episodes_finished']), str(s['episodes_missing']),
                      str(s['successes']), '-' if rate is None else f'{100 * rate:.1f} %',
                      f'{100 * lo:.1f} - {100 * hi:.1f} %', '-' if mean is None else f'{mean:.2f}'])
    return table


def text_table(summaries: Sequence[Dict[str, Any]]) -> str:
    body = rows(summaries)
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    line = lambda cells: '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return '\n'.join([line(COLUMNS), line(['-' * w for w in widths])] + [line(r) for r in body])


def html_page(summaries: Sequence[Dict[str, Any]]) -> str:
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in COLUMNS)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in r) + '</tr>' for r in rows(summaries))
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Evaluation comparison</title><style>'
            'body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
            'th,td{border:1px solid #bbb;padding:.25em .6em}th{background:#eee}</style></head><body>'
            f'<h1>Evaluation comparison</h1><table><tr>{head}</tr>{body}</table></body></html>\n')
