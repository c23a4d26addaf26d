"""The one headless client of the page, for tests, the fuzz campaign and the load and soak runners.

It plays one browser tab the way dash-renderer and assets/painter.js do, through the app's public
interfaces: the page's layout (`/_dash-layout`) gives the initial value of every prop; a prop that
changes (a click, an interval tick, an output of another callback) fires every server callback
that takes it as input, with the request body dash-renderer sends (built from `/_dash-dependencies`,
so a renamed id or a new output breaks the client loudly instead of testing a stale contract); the
answers are written back into the props. Clientside callbacks (assets/*.js) are not run; the
painter's frame loop is `frame()`: `GET /api/frame` with the painter's query, `after=` the frame on
screen while the view is unchanged.

Posting Dash callbacks by hand is for test code only; the product's browser code never does it.

Two transports: `HttpTransport` (a kept-alive connection, as a browser holds one) and
`FlaskTransport` (the app's Flask test client: no server, no thread).
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from components import ids

# ------------------------------------------------------------------------------------------ transports


class HttpTransport:
    """One kept-alive HTTP/1.1 connection to the app; reconnects after an error or a close."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]
                ) -> tuple[int, dict[str, str], bytes]:
        reused = self._connection is not None
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            raw = response.read()
            if response.will_close:
                self.close()
        except http.client.RemoteDisconnected:
            self.close()
            if not reused:
                raise
            # The server closed the kept-alive connection while it was idle (waitress's channel
            # timeout, 30 s) and answered nothing: once more on a new connection, as browsers do.
            return self.request(method, path, body, headers)
        except Exception:
            self.close()
            raise
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class FlaskTransport:
    """The app's own Flask test client (requests run in the calling thread)."""

    def __init__(self, flask_app: Any) -> None:
        self._client = flask_app.test_client()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]
                ) -> tuple[int, dict[str, str], bytes]:
        response = self._client.open(path, method=method, data=body, headers=headers)
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.get_data()

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ callbacks


def _split_output(output: str) -> list[tuple[str, str]]:
    """'..a.b...c.d..' (several outputs) or 'a.b' (one) -> [(id, property), ...]."""
    items = output[2:-2].split("...") if output.startswith("..") else [output]
    return [tuple(item.rsplit(".", 1)) for item in items]  # type: ignore[misc]


def id_key(component_id: Any) -> str:
    """A component id as dash-renderer writes it: a string, or a dict as sorted compact JSON."""
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, separators=(",", ":"))
    return str(component_id)


@dataclass(frozen=True)
class Callback:
    output: str  # the callback's key, as /_dash-dependencies lists it
    outputs: tuple[tuple[str, str], ...]
    inputs: tuple[tuple[str, str], ...]
    state: tuple[tuple[str, str], ...]
    prevent_initial_call: bool

    @property
    def name(self) -> str:
        """'id.prop' of its first output: how tests name a callback."""
        return ".".join(self.outputs[0])


def parse_dependencies(deps: list[dict[str, Any]]) -> list[Callback]:
    """The server-side callbacks of /_dash-dependencies (clientside ones run in the browser only)."""
    return [Callback(dep["output"], tuple(_split_output(dep["output"])),
                     tuple((i["id"], i["property"]) for i in dep["inputs"]),
                     tuple((s["id"], s["property"]) for s in dep["state"]), bool(dep.get("prevent_initial_call")))
            for dep in deps if not dep.get("clientside_function")]


@dataclass
class Reply:
    status: int
    seconds: float
    body: Any = None  # Dash: {id: {prop: value}} of what was updated; frames: the decoded (meta, parts)
    size: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""


def _wildcard(component_id: str) -> dict[str, Any] | None:
    if not component_id.startswith("{"):
        return None
    return json.loads(component_id)


def _matches(pattern: dict[str, Any], concrete: dict[str, Any]) -> bool:
    if set(pattern) != set(concrete):
        return False
    return all(value == ["ALL"] or value == concrete[key] for key, value in pattern.items())


# ------------------------------------------------------------------------------------------ the client


class DashClient:
    """One simulated browser tab (see the module docstring)."""

    def __init__(self, transport: HttpTransport | FlaskTransport, auth: tuple[str, str] | None = None,
                 headers: dict[str, str] | None = None, deps: list[dict[str, Any]] | None = None,
                 layout: dict[str, Any] | None = None, search: str = "") -> None:
        """`deps` and `layout` (the JSON of /_dash-dependencies and /_dash-layout) may be shared by
        many clients of one app (load tests); they are fetched when not given."""
        self.transport = transport
        self.auth = auth
        self.extra_headers = dict(headers or {})
        self.client_id = "t" + secrets.token_hex(6)  # the painter's per-page id (pins)
        self.props: dict[str, Any] = {}  # "id.prop" -> value: what dash-renderer's store holds
        self.frame_meta: dict[str, Any] | None = None  # the frame on screen
        self.frame_key: str | None = None
        self._deps = deps
        self._layout = layout
        self._search = search
        self._callbacks: list[Callback] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def http(cls, base_url: str, timeout: float = 30.0, **kwargs: Any) -> "DashClient":
        return cls(HttpTransport(base_url, timeout), **kwargs)

    @classmethod
    def flask(cls, dash_app: Any, **kwargs: Any) -> "DashClient":
        return cls(FlaskTransport(dash_app.server), **kwargs)

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ plain HTTP

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
                ) -> Reply:
        started = time.perf_counter()
        status, response_headers, raw = self.transport.request(method, path, body, self.headers(headers))
        return Reply(status, time.perf_counter() - started, None, len(raw), response_headers, raw)

    def get(self, path: str, **query: Any) -> Reply:
        return self.request("GET", _with_query(path, query))

    def json(self, method: str, path: str, body: Any = None, **query: Any) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        reply = self.request(method, _with_query(path, query), data,
                             {"Content-Type": "application/json"} if data is not None else None)
        if reply.raw and reply.headers.get("content-type", "").startswith("application/json"):
            reply.body = json.loads(reply.raw)
        return reply

    # ------------------------------------------------------------------ the page

    @property
    def callbacks(self) -> list[Callback]:
        if self._callbacks is None:
            if self._deps is None:
                reply = self.get("/_dash-dependencies")
                assert reply.status == 200, f"/_dash-dependencies answered {reply.status}"
                self._deps = json.loads(reply.raw)
            self._callbacks = parse_dependencies(self._deps)
        return self._callbacks

    def callback(self, name: str) -> Callback:
        """The server callback with output `name` ('id.prop'; any of its outputs)."""
        component_id, prop = name.rsplit(".", 1)
        found = [cb for cb in self.callbacks if (component_id, prop) in cb.outputs]
        assert len(found) == 1, f"{len(found)} server callbacks write {name}"
        return found[0]

    def load(self, search: str | None = None) -> dict[str, dict[str, Any]]:
        """Open the page: the layout's props, then every callback that fires when a page loads."""
        if self._layout is None:
            reply = self.get("/_dash-layout" + ("?" + search.lstrip("?") if search else ""))
            assert reply.status == 200, f"/_dash-layout answered {reply.status}"
            layout = json.loads(reply.raw)
        else:
            layout = self._layout
        self.props.clear()
        self._collect(layout)
        self.props[f"{ids.LOCATION}.search"] = search if search is not None else self._search
        updates: dict[str, dict[str, Any]] = {}
        for cb in self.callbacks:
            if not cb.prevent_initial_call:
                _merge(updates, self.run(cb, trigger=None))
        return updates

    def _collect(self, node: Any) -> None:
        """Record the props of every component with an id in a serialised component tree."""
        if isinstance(node, list):
            for item in node:
                self._collect(item)
        elif isinstance(node, dict) and "props" in node and "type" in node:
            props = node["props"]
            if "id" in props:
                key = id_key(props["id"])
                for prop, value in props.items():
                    if prop != "id":
                        self.props[f"{key}.{prop}"] = value
            for value in props.values():
                if isinstance(value, (dict, list)):
                    self._collect(value)

    def value(self, component_id: str, prop: str) -> Any:
        return self.props.get(f"{component_id}.{prop}")

    def set(self, component_id: str, prop: str, value: Any, fire: bool = True) -> dict[str, dict[str, Any]]:
        """The user changes a prop (types a value, picks an option); the callbacks it drives run."""
        self.props[f"{component_id}.{prop}"] = value
        return self.fire(component_id, prop) if fire else {}

    def click(self, component_id: str) -> dict[str, dict[str, Any]]:
        clicks = (self.value(component_id, "n_clicks") or 0) + 1
        return self.set(component_id, "n_clicks", clicks)

    def tick(self, interval_id: str) -> dict[str, dict[str, Any]]:
        """One tick of a dcc.Interval."""
        return self.set(interval_id, "n_intervals", (self.value(interval_id, "n_intervals") or 0) + 1)

    def fire(self, component_id: str, prop: str, depth: int = 0) -> dict[str, dict[str, Any]]:
        """Run every server callback that takes (id, prop) as an input; then, as dash-renderer does,
        the callbacks driven by what they changed."""
        updates: dict[str, dict[str, Any]] = {}
        for cb in self.callbacks:
            if any(_input_matches(inp, component_id, prop) for inp in cb.inputs):
                _merge(updates, self.run(cb, trigger=f"{component_id}.{prop}", depth=depth))
        return updates

    def run(self, cb: Callback, trigger: str | None, depth: int = 0) -> dict[str, dict[str, Any]]:
        """Post one callback (what dash-renderer sends) and apply its answer."""
        reply = self.post(self.body(cb, trigger))
        assert reply.status in (200, 204), f"{cb.name}: HTTP {reply.status}: {reply.raw[:300]!r}"
        updates = reply.body or {}
        changed = self.apply(updates)
        if depth < 3:
            for component_id, prop in changed:
                for other in self.callbacks:
                    if other is not cb and any(_input_matches(i, component_id, prop) for i in other.inputs):
                        _merge(updates, self.run(other, f"{component_id}.{prop}", depth + 1))
        return updates

    def body(self, cb: Callback, trigger: str | None) -> dict[str, Any]:
        def entry(component_id: str, prop: str) -> Any:
            pattern = _wildcard(component_id)
            if pattern is None:
                item = {"id": component_id, "property": prop}
                value = self.props.get(f"{component_id}.{prop}")
                if value is not None:
                    item["value"] = value
                return item
            found = []
            for key, value in self.props.items():
                cid, _, p = key.rpartition(".")
                if p == prop and cid.startswith("{") and _matches(pattern, json.loads(cid)):
                    found.append({"id": json.loads(cid), "property": prop, "value": value})
            return found

        outputs = [{"id": cid, "property": prop} for cid, prop in cb.outputs]
        return {
            "output": cb.output,
            "outputs": outputs if cb.output.startswith("..") else outputs[0],
            "inputs": [entry(cid, prop) for cid, prop in cb.inputs],
            "state": [entry(cid, prop) for cid, prop in cb.state],
            "changedPropIds": [trigger] if trigger else [],
        }

    def post(self, body: dict[str, Any] | bytes) -> Reply:
        """POST one callback request; `body.body` is its {id: {prop: value}} answer ({} for 204)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = self.request("POST", "/_dash-update-component", data, {"Content-Type": "application/json"})
        if reply.status == 200:
            reply.body = json.loads(reply.raw).get("response", {})
        elif reply.status == 204:
            reply.body = {}
        return reply

    def apply(self, updates: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
        """Write a callback's answer into the props; returns the (id, prop) pairs that changed."""
        changed = []
        for component_id, props in updates.items():
            for prop, value in props.items():
                key = f"{component_id}.{prop}"
                if prop == "extendData":
                    continue  # extends the figure in the browser; it drives nothing
                if self.props.get(key) != value:
                    changed.append((component_id, prop))
                self.props[key] = value
                if isinstance(value, (dict, list)):
                    self._collect(value)  # new components (the ROI list's delete buttons)
        return changed

    # ------------------------------------------------------------------ the page's loops

    def readings(self) -> dict[str, dict[str, Any]]:
        return self.tick(ids.READINGS_INTERVAL)

    def tools(self) -> dict[str, dict[str, Any]]:
        """One tick of the tools' refresh (it runs while the tools are shown)."""
        return self.tick(ids.TOOLS_INTERVAL)

    def health(self) -> dict[str, dict[str, Any]]:
        """One tick of the 1 Hz interval: header (state, health line, camera list; details when unfolded)."""
        return self.tick(ids.HEALTH_INTERVAL)

    def history(self) -> dict[str, dict[str, Any]]:
        return self.tick(ids.HISTORY_REQUEST)

    def camera(self) -> str | None:
        return self.value(ids.CAMERA_SELECT, "value")

    # ------------------------------------------------------------------ the painter (assets/painter.js)

    def frame_query(self, width: int = 640, height: int = 480, **view: Any) -> dict[str, Any]:
        """The painter's query: camera and processing from the tools, colours from the toolbar."""
        manual = self.value(ids.RANGE_MODE, "value") == "manual"
        query: dict[str, Any] = {
            "camera": self.camera() or "", "cmap": self.value(ids.COLORMAP, "value") or "Viridis",
            "scale": self.value(ids.SCALE, "value") or "linear", "avg": self.value(ids.AVERAGE, "value") or 1,
            "bg": 1 if self.value(ids.BACKGROUND_SUBTRACT, "value") else 0, "client": self.client_id,
            "w": max(8, round(width / 2)), "h": max(8, round(height / 2)),
        }
        if manual:
            query.update(zmin=self.value(ids.RANGE_MIN, "value"), zmax=self.value(ids.RANGE_MAX, "value"))
        query.update(view)
        return {k: v for k, v in query.items() if v is not None and v != ""}

    def frame(self, width: int = 640, height: int = 480, seq: int | None = None, **view: Any) -> Reply:
        """One request of the frame loop. 200: a new frame (now on screen); 204: unchanged."""
        from web.frame_service import decode

        query = self.frame_query(width, height, **view)
        if seq is not None:
            query["seq"] = seq
        key = urllib.parse.urlencode(sorted(query.items()))
        if seq is None and self.frame_meta is not None and self.frame_key == key:
            query["after"] = self.frame_meta["seq"]
        reply = self.get("/api/frame", **query)
        if reply.status == 200 and reply.headers.get("content-type") == "application/octet-stream":
            reply.body = decode(reply.raw)
            self.frame_meta, self.frame_key = reply.body[0], key
        elif reply.raw and reply.headers.get("content-type", "").startswith("application/json"):
            reply.body = json.loads(reply.raw)
        return reply

    def stream_header(self, reply: Reply) -> dict[str, Any] | None:
        """The X-SOV-Stream header of a frame answer (the page's STALE mark)."""
        raw = reply.headers.get("x-sov-stream")
        return json.loads(raw) if raw else None

    def pixel(self, col: int, row: int, seq: int | None = None, **query: Any) -> Reply:
        camera = self.camera() or ""
        params = {"camera": camera, "col": col, "row": row, "client": self.client_id, **query}
        if seq is not None:
            params["seq"] = seq
        return self.json("GET", "/api/pixel", **params)

    def hold(self, seq: int | None = None) -> Reply:
        """Pause: pin the kept frames for this page (as sov.js does)."""
        params: dict[str, Any] = {"camera": self.camera() or "", "client": self.client_id}
        if seq is not None:
            params["seq"] = seq
        return self.json("POST", "/api/hold", **params)

    def release(self) -> Reply:
        return self.json("DELETE", "/api/hold", camera=self.camera() or "", client=self.client_id)


def _input_matches(inp: tuple[str, str], component_id: str, prop: str) -> bool:
    cid, p = inp
    if p != prop:
        return False
    if cid == component_id:
        return True
    pattern = _wildcard(cid)
    return pattern is not None and component_id.startswith("{") and _matches(pattern, json.loads(component_id))


def _merge(into: dict[str, dict[str, Any]], more: dict[str, dict[str, Any]]) -> None:
    for component_id, props in more.items():
        into.setdefault(component_id, {}).update(props)


def _with_query(path: str, query: dict[str, Any]) -> str:
    query = {k: v for k, v in query.items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(query) if query else "")


def text_of(component: Any) -> str:
    """All text in a serialised Dash component tree (children strings), joined with '|'."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            parts.append(str(node))
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            walk(node.get("props", {}).get("children"))

    walk(component)
    return "|".join(parts)


def shared_page(base_url: str, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """deps and layout fetched once, for many clients of one app (`DashClient(..., **shared_page(url))`)."""
    client = DashClient.http(base_url, auth=auth)
    try:
        deps = json.loads(client.get("/_dash-dependencies").raw)
        layout = json.loads(client.get("/_dash-layout").raw)
    finally:
        client.close()
    return {"deps": deps, "layout": layout}

