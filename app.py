#!/usr/bin/env python
"""Stream Online Viewer: a live web dashboard for a bsread camera stream.

    python app.py                      # built-in simulated camera, http://127.0.0.1:5000
    python app.py -o 8888 [-s HOST]    # the bsread stream at tcp://HOST:8888

Nothing is built or started at import: `main()` parses options, starts the one stream connection
and serves the Dash app with waitress.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("stream_online_viewer")

THEME = "slate"  # a dark Bootswatch theme, served from the installed bootstrap-flask package
VENDOR_URL = "/vendor/bootstrap.min.css"
HISTORY_MIN_PERIOD_S = 1.0  # history charts redraw at most once a second (SVG redraw is the browser's cost)
# Dash callbacks computing at once. More would only queue for the GIL, and every thread in that queue
# delays the receiver thread, which needs the GIL back after each ZeroMQ frame: with 50 browsers and
# 16 threads computing, a 100 Hz stream lost half its messages (bench/soak.py, docs/hardening.md).
CALLBACK_CONCURRENCY = 4
CALLBACK_QUEUE_TIMEOUT_S = 30.0
# While the receiver is falling behind, new callbacks wait (at most this long) for it to catch up:
# with a sender queue of 10 messages (psi-bsread's default) it has well under a second of slack.
RECEIVER_PRIORITY_WAIT_S = 0.5
# waitress accepts no new connection beyond its limit (default 100): 100 half-sent requests, or 50
# browsers with two keep-alive connections each, would lock everybody else out.
CONNECTION_LIMIT = 1000
SIGNAL_POLL_S = 0.1  # the server loop notices SIGTERM/SIGINT within this


@dataclass(frozen=True)
class Config:
    stream: str | None  # tcp://host:port, None = built-in simulated camera
    mode: str  # "pull" | "sub"
    period_s: float  # display update period
    host: str  # web server interface
    port: int  # web server port
    history: int  # ring-buffer capacity (rows)
    image_channel: str
    energy_channel: str
    rate_channel: str
    threads: int  # waitress worker threads
    auth: str | None = None  # "user:password" for HTTP basic auth, None = off


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear sentence, exit code 2, no traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.01 <= value <= 60:
        raise argparse.ArgumentTypeError("must be between 0.01 and 60 seconds")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
    return value


_ADDRESS = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+|\*):(\d{1,5})$")


def _stream_address(text: str) -> str:
    match = _ADDRESS.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise argparse.ArgumentTypeError(f"expected tcp://host:port, got {text!r}")
    return text.strip()


def parse_args(argv: list[str] | None = None) -> Config:
    parser = _Parser(prog="app.py", description="Stream Online Viewer: live dashboard for a bsread camera stream.",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    stream = parser.add_argument_group("stream (none given: built-in simulated camera)")
    stream.add_argument("-o", "--stream-port", type=_port, help="port of the bsread stream at tcp://HOST:PORT")
    stream.add_argument("-s", "--stream-host", default="127.0.0.1", help="host of the bsread stream (with -o)")
    stream.add_argument("--stream", type=_stream_address, help="full stream address, e.g. tcp://camera:9999")
    stream.add_argument("--mode", choices=("pull", "sub"), default="pull", help="ZeroMQ socket type to receive with")
    stream.add_argument("--image-channel", default="image", help="channel holding the 2-D detector image")
    stream.add_argument("--energy-channel", default="beam_energy", help="channel holding the beam energy (GeV)")
    stream.add_argument("--rate-channel", default="repetition_rate", help="channel holding the repetition rate (Hz)")
    stream.add_argument("--history", type=int, default=360_000,
                        help="rows of scalar history kept (360000 = 1 h at 100 Hz)")
    web = parser.add_argument_group("web server")
    web.add_argument("-d", "--delay", type=_positive_float, default=0.1,
                     help="seconds between display updates (the history records every message regardless)")
    web.add_argument("--host", default="127.0.0.1", help="interface to serve on (0.0.0.0 = all; see --auth)")
    web.add_argument("--port", type=_port, default=5000, help="port to serve on")
    web.add_argument("--threads", type=int, default=16, help="web server worker threads")
    web.add_argument("--auth", default=os.environ.get("SOV_AUTH"),
                     help="require HTTP basic auth 'user:password' (default from $SOV_AUTH; never logged)")
    args = parser.parse_args(argv)
    if args.stream and args.stream_port:
        parser.error("give either --stream or -o/--stream-port, not both")
    address = args.stream
    if args.stream_port:
        host = args.stream_host.strip()
        if not re.match(r"^[A-Za-z0-9_.\-:\[\]]+$", host):
            parser.error(f"invalid stream host {host!r}")
        address = f"tcp://{host}:{args.stream_port}"
    if not 2 <= args.history <= 10_000_000:
        parser.error("--history must be between 2 and 10000000 rows")
    if not 1 <= args.threads <= 256:
        parser.error("--threads must be between 1 and 256")
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth must look like user:password")
    return Config(stream=address, mode=args.mode, period_s=args.delay, host=args.host, port=args.port,
                  history=args.history, image_channel=args.image_channel, energy_channel=args.energy_channel,
                  rate_channel=args.rate_channel, threads=args.threads, auth=args.auth or None)


def _bootstrap_css_dir() -> Path:
    import flask_bootstrap

    return Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5" / "css" / "bootswatch" / THEME


def create_app(config: Config, source: Any) -> Any:
    """Build the Dash app around a started (or fake) stream source. Starts no threads."""
    import dash_bootstrap_components as dbc  # noqa: F401  (registers the components)
    import flask
    from dash import Dash

    import callbacks.export
    import callbacks.health
    import callbacks.history
    import callbacks.image
    from callbacks.frame_cache import FrameCache
    from components.layout import page
    from stream.ring_buffer import ChannelNames

    names = ChannelNames(image=config.image_channel, energy=config.energy_channel, rate=config.rate_channel)
    server = flask.Flask(__name__)
    server.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # callback bodies are small; refuse huge ones
    app = Dash(
        __name__,
        server=server,
        title="Stream Online Viewer",
        update_title=None,
        external_stylesheets=[VENDOR_URL],
        serve_locally=True,
        assets_folder=str(Path(__file__).parent / "assets"),
    )
    css_dir = _bootstrap_css_dir()

    @server.get(VENDOR_URL)
    def bootstrap_css():
        return flask.send_from_directory(css_dir, "bootstrap.min.css", max_age=3600)

    history_period = max(HISTORY_MIN_PERIOD_S, config.period_s)
    app.layout = page(source.label, source.simulated, config.period_s, history_period)
    on_bad = getattr(getattr(source, "receiver", None), "count_invalid", None)
    cache = FrameCache(source.buffer, min_interval_s=config.period_s, on_bad_frame=on_bad)
    app.frame_cache = cache  # read by tests and benchmarks
    naive = os.environ.get("SOV_NAIVE_IMAGE") == "1"  # benchmark baseline only (bench/display.py)
    if naive:
        log.warning("SOV_NAIVE_IMAGE=1: full-resolution figure per request (benchmark baseline)")
    image_answer = callbacks.image.register(app, source, cache, names, naive=naive)
    callbacks.history.register(app, source, names)
    callbacks.health.register(app, source)
    callbacks.export.register(app, source)
    callbacks.export.register_api(server, source)
    if config.auth:
        _require_basic_auth(server, config.auth)
    _limit_callback_concurrency(server, CALLBACK_CONCURRENCY, getattr(getattr(source, "receiver", None),
                                                                      "caught_up", None))

    @server.before_request
    def no_dev_routes():
        # Dash registers hot reload's poll even with dev tools off; it would only tell visitors
        # which packages run here.
        if flask.request.path == "/_reload-hash":
            return flask.Response("not found\n", status=404, mimetype="text/plain")
        return None

    if image_answer is not None:  # after authentication and the concurrency gate: they apply to it too
        callbacks.image.register_fast_path(app, image_answer)

    @server.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


def _limit_callback_concurrency(server: Any, limit: int, receiver_caught_up: threading.Event | None = None) -> None:
    """Let at most `limit` requests that compute (callbacks, CSV export) run at once, and none start
    while the receiver is behind; the others wait without holding the GIL. Static files and
    /api/status are never held up by them."""
    import flask

    gate = threading.BoundedSemaphore(limit)
    computing = ("/_dash-update-component", "/api/readings.csv")

    @server.before_request
    def admit():
        if flask.request.path not in computing:
            return None
        if receiver_caught_up is not None:
            receiver_caught_up.wait(RECEIVER_PRIORITY_WAIT_S)
        if not gate.acquire(timeout=CALLBACK_QUEUE_TIMEOUT_S):
            return flask.Response("server busy\n", status=503, headers={"Retry-After": "1"})
        flask.g.admitted = True
        return None

    @server.teardown_request
    def release(_exc):
        if flask.g.pop("admitted", False):
            gate.release()


def _require_basic_auth(server: Any, credentials: str) -> None:
    import hmac

    import flask

    user, _, password = credentials.partition(":")

    @server.before_request
    def check_auth():
        auth = flask.request.authorization
        ok = (auth is not None and auth.type == "basic"
              and hmac.compare_digest((auth.username or "").encode(), user.encode())
              and hmac.compare_digest((auth.password or "").encode(), password.encode()))
        if not ok:
            return flask.Response("authentication required\n", status=401,
                                  headers={"WWW-Authenticate": 'Basic realm="Stream Online Viewer"'})
        return None


class _RateLimit(logging.Filter):
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _unresolvable(address: str) -> str | None:
    """Why the host of tcp://host:port cannot be resolved, or None if it can.

    ZeroMQ's connect() accepts any name and retries in the background forever, so a typo in the
    camera's host name would look like a silent camera; we check once, before connecting.
    """
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("*", "localhost"):
        return None
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


def _connection_limit() -> int:
    """CONNECTION_LIMIT, kept well below the open-file limit (ZeroMQ and logging need descriptors too)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(16, min(CONNECTION_LIMIT, soft - 64))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").addFilter(_RateLimit(60.0))
    config = parse_args(argv)
    from stream.compression import limit_openmp_threads

    limit_openmp_threads()
    import waitress.server
    import zmq

    from stream.ring_buffer import ChannelNames
    from stream.source import LiveSource

    prog = "app.py"
    try:
        _check_port_free(config.host, config.port)
    except OSError as exc:
        print(f"{prog}: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not _is_loopback(config.host) and not config.auth:
        log.warning("serving on %s without --auth: anyone who can reach this machine can watch the stream",
                    config.host)
    if config.stream is not None:
        reason = _unresolvable(config.stream)
        if reason is not None:
            print(f"{prog}: cannot resolve the stream host of {config.stream}: {reason}", file=sys.stderr)
            return 1
    names = ChannelNames(image=config.image_channel, energy=config.energy_channel, rate=config.rate_channel)
    source = LiveSource(config.stream, mode=config.mode, capacity=config.history, names=names)
    try:
        source.start()
    except zmq.ZMQError as exc:
        print(f"{prog}: cannot connect to the stream {config.stream}: {exc}", file=sys.stderr)
        return 1
    app = create_app(config, source)
    try:
        server = waitress.server.create_server(app.server, host=config.host, port=config.port,
                                               threads=config.threads, channel_timeout=30,
                                               connection_limit=_connection_limit(),
                                               max_request_body_size=1024 * 1024, ident="stream-online-viewer")
    except OSError as exc:
        source.stop()
        print(f"{prog}: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop: list[int] = []

    def shutdown(signum: int, _frame: Any) -> None:
        # Only take note. An exception raised here lands wherever the main thread happens to be, and
        # inside waitress's dispatcher that is a bare `except:` which swallowed it: the server then
        # kept running and, ignoring further signals, never stopped.
        # Further signals are ignored so that they cannot kill the interpreter while it tears down
        # (it restores the default action of signals that have a Python handler).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.append(signum)

    log.info("Stream Online Viewer on http://%s:%d/ showing %s", config.host, config.port, source.label)
    try:
        signal.signal(signal.SIGINT, shutdown)
        signal.signal(signal.SIGTERM, shutdown)
        while not stop:  # waitress's server.run(), one short poll at a time so the flag is seen
            server.asyncore.loop(timeout=SIGNAL_POLL_S, map=server._map, use_poll=server.adj.asyncore_use_poll,
                                 count=1)
        log.info("signal %d: shutting down", stop[0])
    finally:
        # Workers first: one finishing a request pulls the server's trigger, which must still be open
        # (closing the server first gave "OSError: Bad file descriptor" tracebacks on SIGTERM).
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        server.close()
        source.stop(timeout=0.5)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stopped. Spare the interpreter's final garbage collection over dash, plotly and
    # pandas (most of a second on a busy machine), so that SIGTERM ends the process promptly.
    gc.freeze()
    sys.exit(code)
