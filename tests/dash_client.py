"""A headless Dash client: posts to /_dash-update-component exactly as the browser's loops do.

The request bodies are built from the app's own /_dash-dependencies, so a renamed id or a new
output breaks the client loudly instead of silently testing a stale contract. Used by the security
and load tests and by bench/soak.py (50 of these play 50 browsers).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from components import ids

DEFAULT_SETTINGS = {"colormap": "Viridis", "scale": "linear", "range_mode": "auto", "zmin": None, "zmax": None}


@dataclass
class Reply:
    status: int
    seconds: float
    body: Any = None  # parsed JSON ("response" part of a Dash reply), or raw bytes on errors
    size: int = 0


def _parse_output(output: str) -> list[dict[str, str]]:
    """'..a.b...c.d..' (several outputs) or 'a.b' (one) -> [{'id': 'a', 'property': 'b'}, ...]."""
    if output.startswith(".."):
        items = output[2:-2].split("...")
    else:
        items = [output]
    return [dict(zip(("id", "property"), item.rsplit(".", 1))) for item in items]


@dataclass
class Callback:
    output: str
    outputs: list[dict[str, str]]
    inputs: list[dict[str, str]]
    state: list[dict[str, str]]


def dependencies(base_url: str, headers: dict | None = None, timeout: float = 10.0) -> dict[str, Callback]:
    """Server-side callbacks keyed by the id of their first input."""
    request = urllib.request.Request(base_url + "/_dash-dependencies", headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        deps = json.loads(response.read())
    found = {}
    for dep in deps:
        if dep.get("clientside_function"):
            continue
        found[dep["inputs"][0]["id"]] = Callback(dep["output"], _parse_output(dep["output"]), dep["inputs"],
                                                 dep["state"])
    return found


@dataclass
class DashClient:
    """One simulated browser. Keeps the stores the server answers into, like dash-renderer does."""

    base_url: str
    callbacks: dict[str, Callback]
    auth: tuple[str, str] | None = None
    timeout: float = 30.0
    n: int = 0
    image_response: Any = None
    history_response: Any = None
    channel_options: Any = None
    _connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def body(self, first_input: str, values: dict[str, Any]) -> dict:
        """The JSON body for the callback triggered by `first_input`; `values` maps 'id.prop' -> value."""
        cb = self.callbacks[first_input]
        outputs: Any = cb.outputs if cb.output.startswith("..") else cb.outputs[0]
        return {
            "output": cb.output,
            "outputs": outputs,
            "inputs": [{**item, "value": values.get(f"{item['id']}.{item['property']}")} for item in cb.inputs],
            "state": [{**item, "value": values.get(f"{item['id']}.{item['property']}")} for item in cb.state],
            "changedPropIds": [f"{cb.inputs[0]['id']}.{cb.inputs[0]['property']}"],
        }

    def post(self, body: dict | bytes) -> Reply:
        """POST one callback over a kept-alive connection (as a browser does); reconnects after errors."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if self._connection is None:
            parts = urllib.parse.urlsplit(self.base_url)
            self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            self._connection.request("POST", "/_dash-update-component", body=data, headers=self._headers())
            response = self._connection.getresponse()
            raw = response.read()
            status = response.status
            if response.will_close:
                self.close()
        except Exception:
            self.close()
            raise
        seconds = time.perf_counter() - started
        if status != 200:
            return Reply(status, seconds, raw, len(raw))
        parsed = json.loads(raw) if raw else None
        return Reply(status, seconds, (parsed or {}).get("response"), len(raw))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # ------------------------------------------------------------------ the page's three loops

    def image(self, width: int = 640, height: int = 520) -> Reply:
        self.n += 1
        reply = self.post(self.body(ids.IMAGE_REQUEST, {
            f"{ids.IMAGE_REQUEST}.data": {"n": self.n, "w": width, "h": height},
            f"{ids.IMAGE_RESPONSE}.data": self.image_response,
            f"{ids.IMAGE_VIEW}.data": {},
            f"{ids.IMAGE_SETTINGS}.data": DEFAULT_SETTINGS,
        }))
        if reply.status == 200 and reply.body:
            self.image_response = reply.body.get(ids.IMAGE_RESPONSE, {}).get("data", self.image_response)
        return reply

    def history(self, window: str = "1 min", x_mode: str = "time", channel: str | None = None) -> Reply:
        self.n += 1
        reply = self.post(self.body(ids.HISTORY_REQUEST, {
            f"{ids.HISTORY_REQUEST}.data": {"n": self.n},
            f"{ids.HISTORY_WINDOW}.value": window,
            f"{ids.HISTORY_XAXIS}.value": x_mode,
            f"{ids.CHANNEL_SELECT}.value": channel,
            f"{ids.HISTORY_RESPONSE}.data": self.history_response,
        }))
        if reply.status == 200 and reply.body:
            self.history_response = reply.body.get(ids.HISTORY_RESPONSE, {}).get("data", self.history_response)
        return reply

    def health(self) -> Reply:
        self.n += 1
        reply = self.post(self.body(ids.HEALTH_INTERVAL, {
            f"{ids.HEALTH_INTERVAL}.n_intervals": self.n,
            f"{ids.CHANNEL_SELECT}.options": self.channel_options,
        }))
        if reply.status == 200 and reply.body:
            options = reply.body.get(ids.CHANNEL_SELECT, {}).get("options")
            if options is not None:
                self.channel_options = options
        return reply


def text_of(component: Any) -> str:
    """All text in a serialised Dash component tree (children strings), concatenated with '|'."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, (int, float)):
            parts.append(str(node))
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            walk(node.get("props", {}).get("children"))

    walk(component)
    return "|".join(parts)
