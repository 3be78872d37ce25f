"""report.html of a small evaluation in headless Chromium: its plots are drawn and its video plays.

The report is built as the runner builds it (fuse_core.evaluation: results, traces, summary, the
page) around a small real episode bag (tests/support/episode_bags) and the video made from it.
Skipped where Chromium is missing.
"""

from __future__ import annotations

import time

import pytest

from fuse_bringup import quicklook
from fuse_core.evaluation import EpisodeResult, EvaluationReport
from fuse_core.evaluation.html import write_html
from fuse_core.evaluation.trace import EpisodeTrace
from fuse_core.evaluation.video import CAPTION_H, TILE_SIZE, episode_video
from support.episode_bags import make_episode_bag

pytestmark = pytest.mark.skipif(quicklook.find_chromium() is None,
                                reason='no Chromium (Debian: apt-get install chromium; ./setup.sh as root)')

CONFIG = {'task': 'pick_cube', 'action_source': 'bundle:/models/x', 'world': 'twin', 'seed': 0, 'episodes': 2,
          'bundle': '/models/x'}


def _report(tmp_path):
    out = tmp_path / 'report'
    r = EvaluationReport.open(out, CONFIG)
    make_episode_bag(r.directory / 'episodes', 'episode_0000', steps=8)
    episode_video(r.episode_dir(0))
    t0 = 10**9
    for i, outcome in enumerate(('success', 'failure')):
        EpisodeTrace.from_stamps([[t0 + k * 10**8, 0.2 + 0.01 * k, 0.02 * i * k, 0.1] for k in range(20)],
                                 [[t0 + k * 2 * 10**8, 0.01, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0] for k in range(10)]
                                 ).write(r.episode_dir(i))
        r.record(EpisodeResult(index=i, seed=i, task='pick_cube', outcome=outcome, duration_s=2.0,
                               episode_id=f'episode_{i:04d}', bag=i == 0, latency_samples_ms=[11.0, 14.0],
                               inference_samples_ms=[5.0]))
    r.finish()
    return write_html(out)


def test_report_page_draws_its_plots_and_plays_the_episode_video(tmp_path):
    page = _report(tmp_path)
    with quicklook.HeadlessChromium() as browser:
        browser.open(page.as_uri(), 0.5)
        state = {}
        for _ in range(40):
            state = browser.evaluate("""(() => {
                const v = document.querySelector('video');
                const top = [...document.querySelectorAll('svg')].find(
                    s => s.getAttribute('aria-label').includes('top view'));
                return {svgs: document.querySelectorAll('svg').length,
                        pathLines: top ? top.querySelectorAll('polyline').length : -1,
                        pathLength: top ? top.querySelector('polyline').getTotalLength() : 0,
                        actionPlots: [...document.querySelectorAll('svg')].filter(
                            s => /^(dx|dy|dz|droll|dpitch|dyaw|gripper) \\(/.test(s.getAttribute('aria-label'))).length,
                        videos: document.querySelectorAll('video').length,
                        src: v && v.getAttribute('src'), readyState: v ? v.readyState : -1,
                        width: v ? v.videoWidth : 0, height: v ? v.videoHeight : 0,
                        duration: v ? v.duration : 0, error: v && v.error ? v.error.code : null};
            })()""")
            if state.get('readyState', 0) >= 1 or state.get('error'):
                break
            time.sleep(0.25)
    # The top view (one line per episode) and seven action plots per episode, drawn by the browser.
    assert state['pathLines'] == 2 and state['pathLength'] > 10, state
    assert state['actionPlots'] == 14 and state['svgs'] == 1 + 1 + 14, state
    # Only the episode with a bag has a video; the browser decodes it (VP8 in WebM).
    assert state['videos'] == 1 and state['src'] == 'episodes/episode_0000/video.webm', state
    assert state['error'] is None and state['readyState'] >= 1, state
    assert (state['width'], state['height']) == (5 * TILE_SIZE[0], TILE_SIZE[1] + CAPTION_H) and state['duration'] > 1.0
