"""Quick-look web page for the viewer: serves web/ and Foxglove's protocol client to a browser.

    python -m fuse_bringup.quicklook [--port 8766] [--viewer ws://127.0.0.1:8765]
        [--node-modules DIR] [--screenshot out.png [--wait 10] [--size 1280,860]]

Open http://127.0.0.1:8766/ while the viewer runs (`./run.sh sim --view`): both cameras, the
DIGITs and their difference images, the spectrogram and a plot of the commands and holds. The
page's protocol client is @foxglove/ws-protocol's browser (ESM) build from the npm install that
`./setup.sh` makes (tests/support/foxglove_client); nothing is fetched from the internet.
--screenshot: start the server, load the page in headless Chromium, wait, write a PNG, stop.
It is a quick look, not a replacement for Foxglove or Lichtblick with config/foxglove_layout.json.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import json
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import quote, unquote, urlsplit

PACKAGE_DIR = Path(__file__).resolve().parents[1]
WEB_DIR = PACKAGE_DIR / 'web'
DEFAULT_NODE_MODULES = Path(os.environ.get(
    'FUSE_NODE_MODULES', PACKAGE_DIR.parents[2] / 'tests' / 'support' / 'foxglove_client' / 'node_modules'))
CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


class QuickLookError(RuntimeError):
    pass


def vendor_dirs(node_modules: Path) -> dict:
    """URL prefix under /vendor/ -> directory of the browser (ESM) build it serves."""
    dirs = {'ws-protocol': node_modules / '@foxglove' / 'ws-protocol' / 'dist' / 'esm' / 'src',
            'eventemitter3': node_modules / 'eventemitter3'}
    for name, d in dirs.items():
        if not d.is_dir():
            raise QuickLookError(f'{d} missing: the page needs {name} from npm '
                                 f'(./setup.sh installs it into tests/support/foxglove_client)')
    return dirs


class _Handler(SimpleHTTPRequestHandler):
    vendor: dict = {}

    def translate_path(self, path: str) -> str:
        parts = unquote(urlsplit(path).path).lstrip('/').split('/')
        if len(parts) >= 3 and parts[0] == 'vendor' and parts[1] in self.vendor:
            root = self.vendor[parts[1]].resolve()
            target = (root / '/'.join(parts[2:])).resolve()
            if root not in target.parents:
                return str(root / '__outside__')
            # The npm build imports "./parse" without an extension, as bundlers and node resolve it.
            if not target.exists() and target.with_name(target.name + '.js').is_file():
                target = target.with_name(target.name + '.js')
            return str(target)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header('Cache-Control', 'no-store')
        super().end_headers()

    def log_message(self, fmt, *args) -> None:  # quiet: one line per request is noise here
        pass


_Handler.extensions_map = {**SimpleHTTPRequestHandler.extensions_map, '.js': 'text/javascript',
                           '.mjs': 'text/javascript'}


def serve(host: str = '127.0.0.1', port: int = 8766, node_modules: Path = DEFAULT_NODE_MODULES) -> ThreadingHTTPServer:
    """An HTTP server for web/ and /vendor/ (not started: call serve_forever, e.g. in a thread)."""
    handler = type('QuickLookHandler', (_Handler,), {'vendor': vendor_dirs(Path(node_modules))})
    try:
        return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(WEB_DIR)))
    except OSError as e:
        raise QuickLookError(f'cannot serve the quick-look page on http://{host}:{port}: {e.strerror}') from None


def find_chromium() -> Optional[str]:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def page_url(server: ThreadingHTTPServer, viewer: str) -> str:
    host, port = server.server_address[:2]
    return f'http://{host}:{port}/index.html?ws={quote(viewer, safe=":/")}'


class HeadlessChromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

    Pages run in real time, so a page that waits on a WebSocket gets its frames before it is read.
    """

    def __init__(self, chromium: Optional[str] = None, size: str = '1280,860') -> None:
        chromium = chromium or find_chromium()
        if chromium is None:
            raise QuickLookError(f'no Chromium found (looked for {", ".join(CHROMIUM_NAMES)}); '
                                 'on Debian: apt-get install chromium')
        if not re.fullmatch(r'\d+,\d+', size):
            raise QuickLookError(f'window size must be W,H in pixels, not {size!r}')
        self._profile = tempfile.TemporaryDirectory(prefix='fuse-quicklook-')
        self._log = tempfile.TemporaryFile()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # The child's ends moved above 4 so that dup2 onto 3 and 4 (where --remote-debugging-pipe
        # reads commands and writes answers) always copies, which clears close-on-exec on them.
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        argv = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
                '--remote-debugging-pipe', f'--user-data-dir={self._profile.name}', f'--window-size={size}',
                '--hide-scrollbars', 'about:blank']
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._pid = os.posix_spawn(chromium, argv, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, self._log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, self._log.fileno(), 2),
                (os.POSIX_SPAWN_DUP2, child_r, 3), (os.POSIX_SPAWN_DUP2, child_w, 4)])
        finally:
            for fd in (devnull, child_r, child_w):
                os.close(fd)
        self._returncode: Optional[int] = None
        self._to_child, self._from_child = to_child_w, from_child_r
        self._buffer = b''
        self._next_id = 0
        self._session = None
        targets = self.call('Target.getTargets')['targetInfos']
        page = next((t for t in targets if t['type'] == 'page'), None)
        if page is None:
            page = {'targetId': self.call('Target.createTarget', url='about:blank')['targetId']}
        self._session = self.call('Target.attachToTarget', targetId=page['targetId'], flatten=True)['sessionId']

    def call(self, method: str, timeout_s: float = 30.0, **params):
        self._next_id += 1
        msg = {'id': self._next_id, 'method': method, 'params': params}
        if self._session and not method.startswith(('Target.', 'Browser.')):
            msg['sessionId'] = self._session
        try:
            os.write(self._to_child, json.dumps(msg).encode() + b'\0')
        except BrokenPipeError:
            raise QuickLookError(f'Chromium exited (code {self._wait(5.0)}): {self.log()[-800:]}') from None
        deadline = time.monotonic() + timeout_s
        while True:
            while b'\0' in self._buffer:
                raw, self._buffer = self._buffer.split(b'\0', 1)
                reply = json.loads(raw)
                if reply.get('id') == self._next_id:
                    if 'error' in reply:
                        raise QuickLookError(f'Chromium: {method}: {reply["error"].get("message")}')
                    return reply.get('result', {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise QuickLookError(f'Chromium did not answer {method} within {timeout_s:g} s')
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise QuickLookError(f'Chromium exited (code {self._wait(5.0)}): {self.log()[-800:]}')
            self._buffer += chunk

    def open(self, url: str, wait_s: float) -> None:
        """Load url and let it run wait_s seconds."""
        self.call('Page.enable')
        self.call('Page.navigate', url=url)
        time.sleep(wait_s)

    def evaluate(self, expression: str):
        res = self.call('Runtime.evaluate', expression=expression, returnByValue=True)
        if 'exceptionDetails' in res:
            raise QuickLookError(f'page script failed: {res["exceptionDetails"].get("text")}')
        return res['result'].get('value')

    def screenshot(self, path: Path) -> None:
        fmt = 'jpeg' if Path(path).suffix.lower() in ('.jpg', '.jpeg') else 'png'
        params = {'format': fmt, **({'quality': 85} if fmt == 'jpeg' else {})}
        Path(path).write_bytes(base64.b64decode(self.call('Page.captureScreenshot', **params)['data']))

    def log(self) -> str:
        """What Chromium wrote on stdout and stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors='replace').strip()

    def _wait(self, timeout_s: float) -> Optional[int]:
        deadline = time.monotonic() + timeout_s
        while self._returncode is None:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                self._returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                return None
            else:
                time.sleep(0.05)
        return self._returncode

    def close(self) -> None:
        if self._returncode is None:
            try:
                self.call('Browser.close', timeout_s=5.0)
            except (QuickLookError, OSError):
                pass
        if self._wait(10.0) is None:
            os.kill(self._pid, signal.SIGKILL)
            self._wait(10.0)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> 'HeadlessChromium':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8766, help='HTTP port of the page (0: any free one)')
    ap.add_argument('--viewer', default='ws://127.0.0.1:8765', help="the viewer's WebSocket address")
    ap.add_argument('--node-modules', type=Path, default=DEFAULT_NODE_MODULES,
                    help='npm install holding @foxglove/ws-protocol and eventemitter3')
    ap.add_argument('--screenshot', type=Path, help='write a PNG of the page from headless Chromium and exit')
    ap.add_argument('--wait', type=float, default=10.0, help='--screenshot: seconds the page runs first')
    ap.add_argument('--size', default='1280,860', help='--screenshot: window size W,H')
    args = ap.parse_args(argv)
    if not args.viewer.startswith(('ws://', 'wss://')):
        ap.error(f'--viewer must be a ws:// or wss:// address, not {args.viewer!r}')
    try:
        server = serve(args.host, args.port, args.node_modules)
        url = page_url(server, args.viewer)
        if args.screenshot is None:
            print(f'quick look: {url}  (Ctrl-C stops)', flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            return 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with HeadlessChromium(size=args.size) as browser:
                browser.open(url, args.wait)
                state = browser.evaluate('window.quicklook') or {}
                browser.screenshot(args.screenshot)
        finally:
            server.shutdown()
        shown = state.get('imagesShown', {})
        print(f'wrote {args.screenshot} ({url}, after {args.wait:g} s); images shown: '
              + (', '.join(f'{t} {n}' for t, n in sorted(shown.items())) or 'none')
              + (f'; page errors: {state["errors"][-3:]}' if state.get('errors') else ''))
        return 0 if shown else 1
    except QuickLookError as e:
        print(f'quicklook: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
