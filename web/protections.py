"""The server's protections, registered in one place and in this order (Flask runs them in order):

1. dev routes off: Dash's hot-reload poll answers 404 (it would only tell visitors what runs here);
2. authentication: HTTP basic auth on everything when `--auth` is given;
3. same origin: PUT/POST/DELETE and API reads from another site's page are refused (a page
   elsewhere could otherwise use the operator's stored credentials: regions, background, pins,
   starting cameras); links followed from elsewhere still open;
4. the computing gate: at most `limit` requests that compute (frames, CSV, snapshots, and every
   POST: Dash's callbacks) at once, and none starts while a camera's receiver is behind;
5. response headers (nosniff, no framing, no referrer).
Request bodies are capped by `MAX_CONTENT_LENGTH` and waitress's `max_request_body_size`, and a
request that fails with an exception is logged with its traceback once per kind of exception (any
client could otherwise fill the log with malformed callback requests).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Callable

import flask

MAX_BODY_BYTES = 1024 * 1024
# Requests computing at once. More would only queue for the GIL, and every thread in that queue
# delays the receiver threads, which need the GIL back after each ZeroMQ frame: with 50 browsers and
# 16 threads computing, a 100 Hz stream lost half its messages (bench/soak.py, docs/hardening.md).
CALLBACK_CONCURRENCY = 4
QUEUE_TIMEOUT_S = 30.0
# While a receiver is falling behind, new work waits (at most this long) for it to catch up: with a
# sender queue of 10 messages (psi-bsread's default) it has well under a second of slack.
RECEIVER_PRIORITY_WAIT_S = 0.5
COMPUTING = ("/api/frame", "/api/pixel", "/api/readings.csv", "/api/snapshot.h5")  # and every POST: Dash's callbacks
WRITES = ("PUT", "POST", "DELETE", "PATCH")


def register(server: flask.Flask, auth: str | None, receivers_caught_up: Callable[[], list[threading.Event]],
             limit: int = CALLBACK_CONCURRENCY) -> None:
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    server.logger.addFilter(OncePerKind())
    server.before_request(no_dev_routes)
    if auth:
        server.before_request(basic_auth(auth))
    server.before_request(same_origin_writes)
    admit, release = computing_gate(limit, receivers_caught_up)
    server.before_request(admit)
    server.teardown_request(release)
    server.after_request(security_headers)


class OncePerKind(logging.Filter):
    """A failed request's traceback once per exception type; later ones as one line a minute, counted."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._seen: dict[str, list[float]] = {}  # kind -> [next time a line is let through, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[0] is None:
            return True
        kind = record.exc_info[0].__name__
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is None:
                if len(self._seen) < 1000:
                    self._seen[kind] = [now + self.interval_s, 0]
                return True
            if now < seen[0]:
                seen[1] += 1
                return False
            record.msg = f"{record.msg} ({kind} again; {seen[1]} more since the last line)"
            seen[0], seen[1] = now + self.interval_s, 0
        record.exc_info = None
        record.exc_text = None
        return True


def no_dev_routes() -> flask.Response | None:
    if flask.request.path == "/_reload-hash":
        return flask.Response("not found\n", status=404, mimetype="text/plain")
    return None


def basic_auth(credentials: str) -> Callable[[], flask.Response | None]:
    user, _, password = credentials.partition(":")

    def check_auth() -> flask.Response | None:
        given = flask.request.authorization
        ok = (given is not None and given.type == "basic"
              and hmac.compare_digest((given.username or "").encode(), user.encode())
              and hmac.compare_digest((given.password or "").encode(), password.encode()))
        if ok:
            return None
        return flask.Response("authentication required\n", status=401,
                              headers={"WWW-Authenticate": 'Basic realm="Stream Online Viewer"'})

    return check_auth


def same_origin_writes() -> flask.Response | None:
    """Browsers say where a request comes from (Sec-Fetch-Site, Origin); scripts send neither.

    Writes from another site's page are refused, and so are its API reads that are not navigations
    (an <img> on another site would otherwise start cam_server cameras with the operator's
    credentials); following a link (an e-log's /api/readings.csv) is a navigation and is fine.
    """
    request = flask.request
    if request.method not in WRITES:
        if not request.path.startswith("/api/") or request.headers.get("Sec-Fetch-Mode") == "navigate":
            return None
        site = request.headers.get("Sec-Fetch-Site")
        return _forbidden() if site is not None and site not in ("same-origin", "none") else None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None and site not in ("same-origin", "none"):
        return _forbidden()
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        return _forbidden()
    return None


def _forbidden() -> flask.Response:
    return flask.Response("changes are accepted from this server's own pages only\n", status=403,
                          mimetype="text/plain")


def computing_gate(limit: int, receivers_caught_up: Callable[[], list[threading.Event]]):
    gate = threading.BoundedSemaphore(limit)

    def admit() -> flask.Response | None:
        request = flask.request
        if request.method != "POST" and request.path not in COMPUTING:
            return None
        for caught_up in receivers_caught_up():
            caught_up.wait(RECEIVER_PRIORITY_WAIT_S)
        if not gate.acquire(timeout=QUEUE_TIMEOUT_S):
            return flask.Response("server busy\n", status=503, headers={"Retry-After": "1"})
        flask.g.admitted = True
        return None

    def release(_exc: BaseException | None) -> None:
        if flask.g.pop("admitted", False):
            gate.release()

    return admit, release


def security_headers(response: flask.Response) -> flask.Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
