"""Serving the app with waitress through its public API: `create_server(...)`, `run()` on a thread,
`close()` to stop. The main thread only waits for SIGINT/SIGTERM (a handler that merely sets an
event: an exception raised inside waitress's loop would be swallowed by its dispatcher).
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import threading
import time
from typing import Any, Callable

import waitress

log = logging.getLogger(__name__)

CONNECTION_LIMIT = 1000  # waitress's default 100 would let 50 browsers (2 connections each) lock others out
CHANNEL_TIMEOUT_S = 30


class RateLimit(logging.Filter):
    """Lets at most one record through per `interval_s`; counts the rest.

    waitress warns "Task queue depth is N" for every request that waits for a worker thread: with
    many browsers that is hundreds of log lines a second, written to disk for nothing.
    """

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return False
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} similar warnings in the last {self.interval_s:.0f} s)"
        self._next = now + self.interval_s
        self._suppressed = 0
        return True


def connection_limit() -> int:
    """CONNECTION_LIMIT, kept well below the open-file limit (ZeroMQ and logging need descriptors too)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(16, min(CONNECTION_LIMIT, soft - 64))


def check_port_free(host: str, port: int) -> None:
    """Raises OSError if (host, port) cannot be served on (in use, not an interface of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class Server:
    """A waitress server on its own thread."""

    def __init__(self, wsgi_app: Callable, host: str, port: int, threads: int) -> None:
        self._server = waitress.create_server(wsgi_app, host=host, port=port, threads=threads,
                                              channel_timeout=CHANNEL_TIMEOUT_S, connection_limit=connection_limit(),
                                              max_request_body_size=1024 * 1024, ident="stream-online-viewer")
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> "Server":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            if not self._closing.is_set():  # closing: its sockets went away under its select()
                raise

    def close(self, timeout: float = 1.0) -> None:
        """Let the worker threads finish (at most `timeout`), then stop accepting; connections still
        open end with the process. Workers first: one finishing a request wakes the server loop
        through its trigger, which close() closes (EBADF, a traceback in the log)."""
        self._closing.set()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        self._server.close()


def wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM; returns the signal number. Later signals are ignored, so a
    second Ctrl+C cannot kill the interpreter while it tears down."""
    received: list[int] = []
    done = threading.Event()

    def note(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        received.append(signum)
        done.set()

    signal.signal(signal.SIGINT, note)
    signal.signal(signal.SIGTERM, note)
    while not done.wait(0.5):  # a timed wait: signal handlers run between its slices
        pass
    return received[0]
