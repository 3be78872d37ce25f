"""The quick-look page (ros2_ws/src/fuse_bringup/web) in headless Chromium decodes what a foxglove-sdk server sends.

A foxglove-sdk WebSocket server (the one the viewer uses) logs a JPEG as foxglove.CompressedImage
on /camera_primary/image and a JSON command; the page, with Foxglove's protocol client, must show
the image and parse the command. Skipped where Chromium or the npm client is missing.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from fuse_bringup import quicklook

foxglove = pytest.importorskip('foxglove')
pytestmark = pytest.mark.skipif(quicklook.find_chromium() is None,
                                reason='no Chromium (Debian: apt-get install chromium)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_page_shows_a_compressed_image_and_a_command_from_a_foxglove_server():
    if not (quicklook.DEFAULT_NODE_MODULES / '@foxglove' / 'ws-protocol').is_dir():
        pytest.skip('npm client missing (./setup.sh installs it)')
    from foxglove.channels import CompressedImageChannel
    from foxglove.messages import CompressedImage, Timestamp
    from fuse_core.viewer import encode_jpeg

    port = _free_port()
    server = foxglove.start_server(host='127.0.0.1', port=port)
    cam = CompressedImageChannel('/camera_primary/image')
    cmd = foxglove.Channel('/policy/command', message_encoding='json')
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)
    jpeg = bytes(encode_jpeg(img, 75, 640))
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            cam.log(CompressedImage(timestamp=Timestamp(5, 7), frame_id='camera_primary_optical_frame',
                                    data=jpeg, format='jpeg'))
            cmd.log(json.dumps({'tick_index': 3, 'dx': 0.001, 'dy': 0.0, 'dz': -0.002, 'gripper': 0.5,
                                'hold': True, 'reason': 'stale', 'latency_ms': 12.0}).encode())
            time.sleep(0.1)

    http = quicklook.serve(port=0)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    threading.Thread(target=publish, daemon=True).start()
    try:
        with quicklook.HeadlessChromium() as browser:
            browser.open(quicklook.page_url(http, f'ws://127.0.0.1:{port}'), 1.0)
            state = {}
            for _ in range(60):
                state = browser.evaluate('window.quicklook') or {}
                if state.get('imagesShown', {}).get('/camera_primary/image') and state.get('lastCommand'):
                    break
                time.sleep(0.5)
            for _ in range(20):  # the counter moves when the src is set; the size once it is decoded
                size = browser.evaluate("(() => { const i = document.getElementById('img-camera_primary');"
                                        " return [i.naturalWidth, i.naturalHeight, i.title]; })()")
                if size and size[0]:
                    break
                time.sleep(0.25)
    finally:
        stop.set()
        http.shutdown()
        server.stop()
    assert state.get('connected'), state
    assert state['errors'] == []
    assert state['imagesShown']['/camera_primary/image'] >= 1
    assert size == [64, 48, 'camera_primary_optical_frame 64x48']
    assert state['lastCommand']['hold'] is True and state['lastCommand']['reason'] == 'stale'


def test_bad_viewer_address_and_missing_client_are_named():
    with pytest.raises(SystemExit):
        quicklook.main(['--viewer', 'http://127.0.0.1:8765'])
    with pytest.raises(quicklook.QuickLookError, match='ws-protocol'):
        quicklook.serve(port=0, node_modules=quicklook.Path('/nonexistent'))
