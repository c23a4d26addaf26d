"""REST client for PSI's cam_server pipeline server: which cameras exist and which stream shows one.

Watching a camera means its saved pipeline `<camera>_sp` when the server lists one (the shared
instance ScreenPanel also watches), else a processing instance `<camera>_sov` created for it.
Standard library only. Every expected failure (host down, timeout, an HTTP error, an "error" reply,
a reply that is not JSON, has the wrong shape or is absurdly large) becomes a `CamServerError` whose
text is one sentence for an operator; nothing here logs a traceback. cam_server answers its own
errors with HTTP 200 and `{"state": "error", "status": ...}`; HTTP 500 with the same JSON is
accepted too. Proxies from the environment are ignored: cam_server is on the machine network.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["CamServerClient", "CamServerError", "StreamChoice", "MAX_REPLY_BYTES"]

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 4 * 1024 * 1024  # a camera list is a few kB; more is a wrong or hostile server
MAX_STATUS_CHARS = 300  # of a server's status text quoted in an error
SAVED_SUFFIX = "_sp"  # ScreenPanel's saved pipeline per camera
INSTANCE_SUFFIX = "_sov"  # the processing instance this viewer creates when there is none
_ADDRESS = re.compile(r"tcp://(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]):([0-9]{1,5})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CamServerError(Exception):
    """An expected failure talking to cam_server; str() is one sentence for an operator.

    `kind`: "unreachable" (no usable answer in time: down, refused, timeout, not HTTP), "refused"
    (cam_server answered with an error), "reply" (an answer this client cannot use) or "usage" (a bad
    URL, timeout or name was given to the client).
    """

    def __init__(self, message: str, kind: str = "reply") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class StreamChoice:
    """The pipeline stream that shows a camera."""

    camera: str
    instance_id: str
    address: str  # tcp://host:port (bsread over ZeroMQ PUB; connect with SUB)
    how: str  # "saved pipeline" | "processing instance"


def _clean(text: Any, limit: int = MAX_STATUS_CHARS) -> str:
    """A server-supplied text made safe to quote in one line (no control characters, capped)."""
    text = " ".join(_CONTROL.sub(" ", text if isinstance(text, str) else json.dumps(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException, timeout_s: float) -> str:
    """What went wrong with a connection, in a few words."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "it closed the connection without answering"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead)):
        return "the connection broke off during the reply"
    if isinstance(exc, http.client.HTTPException):
        return "its reply is not HTTP"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return _clean(str(exc) or type(exc).__name__, 120)


class CamServerClient:
    """A pipeline server's REST API (`GET/POST <base_url>/api/v1/pipeline...`)."""

    def __init__(self, base_url: str, timeout_s: float = 3.0) -> None:
        url = base_url.strip().rstrip("/") if isinstance(base_url, str) else ""
        try:
            parts = urllib.parse.urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
                or parts.query or parts.fragment or re.search(r"[\x00-\x20\x7f]", url):
            raise CamServerError(f"cam_server URL {_clean(repr(base_url), 120)} is not of the form http://host:port",
                                 "usage")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) \
                or timeout_s <= 0:
            raise CamServerError(f"cam_server timeout {timeout_s!r} is not a positive number of seconds", "usage")
        self.base_url = url
        self.timeout_s = float(timeout_s)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"CamServerClient({self.base_url!r}, timeout_s={self.timeout_s:g})"

    # ------------------------------------------------------------------------------------ calls

    def cameras(self) -> list[str]:
        """Names of the cameras the pipeline server knows."""
        return self._names(self._call("GET", "/api/v1/pipeline/camera", "the camera list"), "cameras")

    def pipelines(self) -> list[str]:
        """Names of the saved pipeline configurations (e.g. `<camera>_sp`)."""
        return self._names(self._call("GET", "/api/v1/pipeline", "the pipeline list"), "pipelines")

    def stream_for(self, camera: str) -> StreamChoice:
        """The stream to watch `camera` on: its saved pipeline if listed, else our processing instance."""
        name = self._checked_name(camera, "camera")
        what = f"camera {_clean(repr(name), 120)}"
        saved = name + SAVED_SUFFIX
        if saved in self.pipelines():
            reply = self._call("GET", "/api/v1/pipeline/instance/" + urllib.parse.quote(saved, safe=""), what)
            return StreamChoice(name, saved, self._address(reply, what), "saved pipeline")
        instance_id = name + INSTANCE_SUFFIX
        query = urllib.parse.urlencode({"instance_id": instance_id})
        try:
            reply = self._call("POST", "/api/v1/pipeline?" + query, what, {"camera_name": name})
            returned = reply.get("instance_id")
            if isinstance(returned, str) and returned:
                instance_id = returned
        except CamServerError as refused:
            if refused.kind != "refused":
                raise
            # Most likely ours from an earlier call (cam_server refuses to create an id twice);
            # if it is not there either, the refusal is the reason to report.
            try:
                path = "/api/v1/pipeline/instance/" + urllib.parse.quote(instance_id, safe="")
                reply = self._call("GET", path, what)
            except CamServerError:
                raise refused from None
        return StreamChoice(name, instance_id, self._address(reply, what), "processing instance")

    def instance_info(self, instance_id: str) -> dict[str, Any]:
        """A running instance's `info` (stream_address, is_stream_active, camera_name, config, statistics...)."""
        name = self._checked_name(instance_id, "instance id")
        what = f"instance {_clean(repr(name), 120)}"
        reply = self._call("GET", f"/api/v1/pipeline/instance/{urllib.parse.quote(name, safe='')}/info", what)
        info = reply.get("info")
        if not isinstance(info, dict):
            raise self._unexpected(what, "no 'info' object")
        return info

    # ---------------------------------------------------------------------------------- plumbing

    def _checked_name(self, name: Any, kind: str) -> str:
        # '/' cannot be quoted through: cam_server's router decodes %2F before matching (HTTP 404).
        if not isinstance(name, str) or not name or len(name) > 256 or _CONTROL.search(name) or "/" in name:
            raise CamServerError(f"{_clean(repr(name), 120)} is not a valid cam_server {kind} name", "usage")
        return name

    def _unexpected(self, what: str, detail: str) -> CamServerError:
        return CamServerError(f"cam_server at {self.base_url} sent an unexpected reply for {what}: {detail}")

    def _names(self, reply: dict[str, Any], field: str) -> list[str]:
        names = reply.get(field)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self._unexpected(f"the {field[:-1]} list", f"'{field}' is not a list of names")
        return names

    def _address(self, reply: dict[str, Any], what: str) -> str:
        address = reply.get("stream")
        match = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise self._unexpected(what, f"stream address {_clean(repr(address), 120)} is not tcp://host:port")
        return address

    def _call(self, method: str, path: str, what: str, body: Any = None) -> dict[str, Any]:
        """One request; the reply's JSON object when its state is "ok", else CamServerError."""
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        deadline = time.monotonic() + self.timeout_s
        status = 200
        try:
            try:
                response = self._opener.open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as exc:  # its body may still be cam_server's JSON
                response, status = exc, exc.code
            try:
                raw = self._read(response, deadline) if getattr(response, "fp", None) is not None else b""
            finally:
                response.close()
        except CamServerError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            message = f"cam_server at {self.base_url} is unreachable: {_reason(exc, self.timeout_s)}"
            log.debug("%s %s: %s", method, path, message)
            raise CamServerError(message, "unreachable") from None
        try:
            reply = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            reply = None
        if not isinstance(reply, dict) or reply.get("state") not in ("ok", "error"):
            if status != 200:
                reason = _clean(getattr(response, "reason", "") or "", 60)
                raise CamServerError(f"cam_server at {self.base_url} answered HTTP {status} {reason}".rstrip()
                                     + f" to {method} {urllib.parse.urlsplit(path).path}", "reply")
            raise self._unexpected(what, "not a JSON object with a state")
        if reply["state"] == "error" or status != 200:
            text = reply.get("status")
            reason = _clean(text) if text else f"no reason given (HTTP {status})"
            log.debug("%s %s refused: %s", method, path, reason)
            raise CamServerError(f"cam_server refused {what}: {reason}", "refused")
        return reply

    def _read(self, response: Any, deadline: float) -> bytes:
        length = response.headers.get("Content-Length")
        if length and length.strip().isdigit() and int(length) > MAX_REPLY_BYTES:
            raise self._too_large()
        read = getattr(response, "read1", response.read)  # read1: what has arrived, so the deadline is checked
        chunks, size = [], 0
        while True:
            chunk = read(min(65536, MAX_REPLY_BYTES + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise self._too_large()
            if time.monotonic() > deadline:
                raise CamServerError(f"cam_server at {self.base_url} is too slow: its reply took longer than "
                                     f"{self.timeout_s:g} s", "unreachable")

    def _too_large(self) -> CamServerError:
        return CamServerError(f"cam_server at {self.base_url} sent a reply larger than "
                              f"{MAX_REPLY_BYTES // (1024 * 1024)} MiB", "reply")
