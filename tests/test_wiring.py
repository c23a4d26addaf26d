"""Wiring: every id and property a callback (server or clientside) or assets/viewer.js uses exists in the
layout, the contract ids are there, the app is built without debug tooling and without anything from
outside this server, and importing app.py starts nothing."""

from __future__ import annotations

import html.parser
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from dash.development.base_component import Component

import app as app_module
from components import ids
from stream.ring_buffer import RingBuffer
from tests.test_dashboard_units import make_health

ROOT = Path(__file__).resolve().parent.parent
VIEWER_JS = ROOT / "assets" / "viewer.js"

CONTRACT_IDS = ("stream-state", "image-graph", "beam-energy-value", "repetition-rate-value", "pulse-id-value",
                "energy-history-graph", "rate-history-graph", "export-csv-button")


class FakeSource:
    """What create_app needs from a stream source (no receiver, no threads)."""

    def __init__(self, simulated: bool = True) -> None:
        self.buffer = RingBuffer(100)
        self.simulated = simulated
        self.address = "tcp://127.0.0.1:9999"
        self.label = "simulated camera" if simulated else self.address

    def health(self):
        return make_health(channels=self.buffer.scalar_channels)


@pytest.fixture(scope="module", params=[True, False], ids=["simulated", "stream"])
def dash_app(request: pytest.FixtureRequest) -> Any:
    return app_module.create_app(app_module.parse_args([]), FakeSource(simulated=request.param))


def layout_components(dash_app: Any) -> dict[str, Component]:
    layout = dash_app.layout() if callable(dash_app.layout) else dash_app.layout
    found: dict[str, Component] = {}
    duplicates = []
    for component in [layout, *layout._traverse()]:
        component_id = getattr(component, "id", None)
        if component_id is None:
            continue
        if component_id in found:
            duplicates.append(component_id)
        found[component_id] = component
    assert not duplicates, f"duplicate ids in the layout: {duplicates}"
    return found


def split_outputs(key: str) -> list[tuple[str, str]]:
    items = key[2:-2].split("...") if key.startswith("..") else [key]
    return [tuple(item.rsplit(".", 1)) for item in items]  # type: ignore[misc]


def callback_references(dash_app: Any) -> Iterator[tuple[str, str, str]]:
    """(role, id, property) of every output, input and state of every callback, clientside included."""
    for key, spec in dash_app.callback_map.items():
        for component_id, prop in split_outputs(key):
            yield "output", component_id, prop
        for role in ("inputs", "state"):
            for dep in spec.get(role, []):
                yield role, dep["id"], dep["property"]


def test_every_callback_id_and_property_exists_in_the_layout(dash_app: Any) -> None:
    components = layout_components(dash_app)
    references = list(callback_references(dash_app))
    assert len(references) > 20
    missing = sorted({(cid, prop) for _, cid, prop in references if cid not in components})
    assert not missing, f"callbacks use ids that are not in the layout: {missing}"
    bad_props = sorted({(cid, prop, type(components[cid]).__name__) for _, cid, prop in references
                        if prop not in components[cid]._prop_names})
    assert not bad_props, f"callbacks use properties the component does not have: {bad_props}"


def test_no_output_is_written_by_two_callbacks(dash_app: Any) -> None:
    outputs = [(cid, prop) for role, cid, prop in callback_references(dash_app) if role == "output"]
    assert len(outputs) == len(set(outputs))


def test_every_input_is_driven_by_the_page(dash_app: Any) -> None:
    """An input that is neither user-editable, an interval, nor some callback's output never fires."""
    components = layout_components(dash_app)
    outputs = {(cid, prop) for role, cid, prop in callback_references(dash_app) if role == "output"}
    written_by_js = set(js_ids())  # stores the browser's loops write with set_props
    user_props = {"value", "n_clicks", "n_intervals", "relayoutData"}
    for role, cid, prop in callback_references(dash_app):
        if role != "inputs":
            continue
        assert (cid, prop) in outputs or prop in user_props or cid in written_by_js, (cid, prop, type(components[cid]))


def test_contract_ids_exist(dash_app: Any) -> None:
    components = layout_components(dash_app)
    for component_id in CONTRACT_IDS:
        assert component_id in components, component_id
    assert type(components["image-graph"]).__name__ == "Graph"
    assert type(components["energy-history-graph"]).__name__ == "Graph"
    assert type(components["rate-history-graph"]).__name__ == "Graph"
    assert type(components["export-csv-button"]).__name__ == "Button"


def test_every_id_constant_is_used_in_the_layout() -> None:
    dash_app = app_module.create_app(app_module.parse_args([]), FakeSource(simulated=True))
    components = layout_components(dash_app)
    constants = {name: value for name, value in vars(ids).items() if name.isupper() and isinstance(value, str)}
    assert len(set(constants.values())) == len(constants), "two id constants share one id"
    missing = {name: value for name, value in constants.items() if value not in components}
    assert not missing, f"ids.py names ids that are not in the layout: {missing}"


def js_ids() -> list[str]:
    """Hyphenated string literals in viewer.js: the element and store ids it reads or writes.
    Names viewer.js makes itself (its class names and event, "sov-...") are not ids."""
    found = re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)"', VIEWER_JS.read_text())
    return [name for name in found if not name.startswith("sov-")]


def test_ids_in_viewer_js_exist(dash_app: Any) -> None:
    components = layout_components(dash_app)
    found = js_ids()
    assert {"image-request", "history-request", "image-graph"} <= set(found)
    missing = sorted(set(found) - set(components))
    assert not missing, f"assets/viewer.js uses ids that are not in the layout: {missing}"


def test_clientside_functions_exist_in_viewer_js(dash_app: Any) -> None:
    source = VIEWER_JS.read_text()
    defined = set(re.findall(r"^\s*(\w+): function\s*\(", source, flags=re.MULTILINE))
    used = {(spec["clientside_function"]["namespace"], spec["clientside_function"]["function_name"])
            for spec in dash_app._callback_list if spec.get("clientside_function")}
    assert len(used) >= 5
    assert {namespace for namespace, _ in used} == {"viewer"}
    assert "viewer: {" in source
    missing = sorted(name for _, name in used if name not in defined)
    assert not missing, f"clientside functions missing from assets/viewer.js: {missing}"


def test_dependencies_endpoint_matches_the_callbacks(dash_app: Any) -> None:
    client = dash_app.server.test_client()
    response = client.get("/_dash-dependencies")
    assert response.status_code == 200
    deps = json.loads(response.data)
    assert len(deps) == len(dash_app.callback_map)
    assert {d["output"] for d in deps} == set(dash_app.callback_map)


# ------------------------------------------------------------------------------------ debug and isolation


def test_debug_and_dev_tools_are_off(dash_app: Any) -> None:
    assert dash_app.server.debug is False
    tools = dash_app._dev_tools
    assert not tools["ui"] and not tools["hot_reload"] and not tools["props_check"] and not tools["serve_dev_bundles"]
    page = dash_app.server.test_client().get("/").get_data(as_text=True)
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page,
                                  re.DOTALL).group(1))
    assert config["ui"] is False and config["props_check"] is False
    assert not config.get("hot_reload")


def test_main_serves_with_waitress_not_the_debug_server() -> None:
    source = (ROOT / "app.py").read_text()
    assert "debug=True" not in source
    assert not re.search(r"\.run(_server)?\(", source.replace("server.run()", ""))


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "data") and value:
                self.urls.append(value)


def _is_local(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


def test_index_page_references_only_this_server(dash_app: Any) -> None:
    client = dash_app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    parser = _Links()
    parser.feed(page)
    assert len(parser.urls) >= 5  # css, favicon, scripts
    remote = [url for url in parser.urls if not _is_local(url)]
    assert not remote, f"index page loads from elsewhere: {remote}"
    assert not re.search(r"https?://|//cdn|unpkg|jsdelivr|googleapis", page.replace("http://www.w3.org", ""))
    for url in parser.urls:  # and every one of them is actually served here
        assert client.get(url).status_code == 200, url


def test_configured_assets_are_local(dash_app: Any) -> None:
    assert dash_app.config.external_scripts == []
    assert all(_is_local(url if isinstance(url, str) else url["href"]) for url in dash_app.config.external_stylesheets)
    assert dash_app.scripts.config.serve_locally and dash_app.css.config.serve_locally
    client = dash_app.server.test_client()
    for url in dash_app.config.external_stylesheets:
        css = client.get(url).get_data(as_text=True)
        assert len(css) > 10_000
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", css), "stylesheet pulls in remote resources"
    for asset in (ROOT / "assets").iterdir():
        text = asset.read_text()
        assert not re.search(r"https?://|url\(\s*['\"]?//", text.replace("http://www.w3.org", "")), asset.name


# ------------------------------------------------------------------------------------ nothing at import


def test_importing_app_starts_nothing() -> None:
    probe = r"""
import json, logging, socket, sys, threading
import psutil
before = {c.laddr for c in psutil.Process().net_connections(kind="all")}
import app
after = [c for c in psutil.Process().net_connections(kind="all") if c.laddr not in before]
zmq_context = None
if "zmq" in sys.modules:
    zmq_context = sys.modules["zmq"].Context._instance
print(json.dumps({
    "threads": [t.name for t in threading.enumerate()],
    "sockets": len(after),
    "zmq_context": zmq_context is not None,
    "log_handlers": len(logging.getLogger().handlers),
    "dash_apps": [name for name, value in vars(app).items() if type(value).__name__ == "Dash"],
}))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["threads"] == ["MainThread"]
    assert report["sockets"] == 0
    assert report["zmq_context"] is False
    assert report["log_handlers"] == 0  # logging is configured by main(), not at import
    assert report["dash_apps"] == []
    assert result.stderr == ""


def test_create_app_starts_no_threads() -> None:
    before = set(threading.enumerate())
    dash_app = app_module.create_app(app_module.parse_args(["-d", "0.5"]), FakeSource())
    assert set(threading.enumerate()) == before
    assert dash_app.layout is not None
