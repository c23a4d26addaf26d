"""Run the real dashboard for tests and benchmarks: in-process (waitress in a thread) or as `python app.py`.

Both bind 127.0.0.1 on a free port and stop by themselves when the context exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import waitress.server

import app as app_module
from stream.source import LiveSource
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def serve(app: Any, threads: int = 16) -> Iterator[str]:
    """Serve a Dash app with waitress on 127.0.0.1:<free port> in a thread; yields the base URL."""
    port = free_port()
    server = waitress.server.create_server(app.server, host="127.0.0.1", port=port, threads=threads,
                                           channel_timeout=30)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/api/status"), timeout=20, message="app did not answer /api/status")
        yield url
    finally:
        # Close the listener and every connection from inside the server's own loop: closing them
        # from this thread races with its select() (EBADF, a traceback in the server thread).
        try:
            server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
        except OSError:
            # pull_trigger queues the closing first and then writes to the trigger pipe; if a worker
            # thread woke the server loop in between, the loop has already run it, closing the pipe
            # too (EBADF here, ~1 run in 12). Everything is closed then; make sure of it.
            for dispatcher in list(server._map.values()):
                with contextlib.suppress(OSError):
                    dispatcher.close()
        thread.join(5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)


def _answers(url: str) -> bool:
    try:
        return get(url, timeout=2)[0] in (200, 401)
    except OSError:
        return False


@contextlib.contextmanager
def running_app(argv: list[str] | None = None, source: Any = None) -> Iterator[tuple[str, Any, Any]]:
    """Start source (default: LiveSource from the parsed argv, simulated camera without -o/--stream)
    and the app in this process. Yields (base url, dash app, source)."""
    config = app_module.parse_args(argv or [])
    owned = source is None
    if owned:
        from stream.ring_buffer import ChannelNames

        names = ChannelNames(image=config.image_channel, energy=config.energy_channel, rate=config.rate_channel)
        source = LiveSource(config.stream, mode=config.mode, capacity=config.history, names=names).start()
    try:
        dash_app = app_module.create_app(config, source)
        with serve(dash_app, threads=config.threads) as url:
            yield url, dash_app, source
    finally:
        if owned:
            source.stop()


@contextlib.contextmanager
def app_process(args: list[str], env: dict | None = None, ready_timeout: float = 30.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `python app.py ARGS --port <free>` as a subprocess; yields (base url, process). Stops it with
    SIGTERM (then SIGKILL) at exit."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _answers(url + "/api/status"), timeout=ready_timeout,
                   message="app.py did not start")
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}: {process.stdout.read()}")
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
