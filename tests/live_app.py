"""Run the real dashboard for tests and benchmarks: in-process (`running_app`, `serve`) or as `python app.py`
(`app_process`).

In-process, the app is built as `main()` builds it (`app.build_registry`, `app.create_app`) and served by
the product's own server (`web.serve.Server`, waitress through its public API). Everything binds
127.0.0.1 on a free port and stops when the context exits.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import app as app_module
from config import Config
from tests.helpers import LOCALHOST, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def request(url: str, path: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
            timeout: float = 15.0) -> tuple[int, bytes, dict[str, str]]:
    """One request on its own connection: (status, body, headers) whatever the status."""
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def _answers(url: str) -> bool:
    try:
        return get(url + "/api/cameras", timeout=2)[0] in (200, 401)
    except OSError:
        return False


@dataclass
class LiveApp:
    url: str
    dash_app: Any
    registry: Any
    config: Config

    def camera(self, name: str | None = None) -> Any:
        """The registry's camera (connected on demand, as a request would)."""
        return self.registry.watch(name)


@contextlib.contextmanager
def serve(dash_app: Any, threads: int = 8) -> Iterator[str]:
    """Serve a Dash app (or any WSGI app with `.server`) on 127.0.0.1:<free port>; yields the base URL."""
    from web.serve import Server

    server = Server(dash_app.server, LOCALHOST, 0, threads).start()
    url = f"http://{LOCALHOST}:{server.port}"
    try:
        wait_until(lambda: _answers(url), timeout=20, message="app did not answer")
        yield url
    finally:
        server.close(timeout=2.0)


@contextlib.contextmanager
def running_app(argv: list[str] | None = None, registry: Any = None, camserver: Any = None) -> Iterator[LiveApp]:
    """The app of `python app.py ARGV` in this process (registry started unless one is given).

    `registry`: a started registry (or a stand-in with the same methods) to serve instead;
    `camserver`: a cam_server client for `build_registry` (tests pass a stand-in's)."""
    config = app_module.parse_args(argv or [])
    owned = registry is None
    if owned:
        registry = app_module.build_registry(config, camserver)
        registry.start()
    try:
        dash_app = app_module.create_app(config, registry)
        with serve(dash_app, threads=config.threads) as url:
            yield LiveApp(url, dash_app, registry, config)
    finally:
        if owned:
            registry.stop(timeout=2.0)


@contextlib.contextmanager
def app_process(args: list[str], env: dict | None = None, ready_timeout: float = 60.0
                ) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python app.py ARGS --port <free>` as a subprocess; yields (base url, process). Stopped with
    SIGTERM (then SIGKILL) at exit. Its stdout and stderr come together in `process.stdout`."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    url = f"http://{LOCALHOST}:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _answers(url), timeout=ready_timeout, interval=0.05,
                   message="app.py did not start")
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}: {process.stdout.read()}")
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
