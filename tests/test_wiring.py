"""Wiring: every id and property a callback (server or clientside) or assets/*.js uses exists in the
layout, every clientside function exists, the contract ids are there, the app is built without
debug tooling and without anything from outside this server, the browser code and the server stand
on public interfaces only, and importing app.py (or building the app) starts nothing."""

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

from components import ids
from tests.web_fixtures import FedCamera, camera_values, designed_image, fed_app

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
PRODUCT = [ROOT / "app.py", ROOT / "config.py", *sorted((ROOT / "web").glob("*.py")),
           *sorted((ROOT / "components").glob("*.py")), *sorted((ROOT / "callbacks").glob("*.py")),
           *sorted((ROOT / "stream").glob("*.py")), *sorted(ASSETS.glob("*.js"))]
CONTRACT_IDS = ("stream-state", "image-graph", "beam-energy-value", "repetition-rate-value", "pulse-id-value",
                "energy-history-graph", "rate-history-graph", "export-csv-button", "camera-select")
NOT_IDS = {"same-origin", "no-store"}  # fetch() options


@pytest.fixture(scope="module")
def dash_app() -> Any:
    camera = FedCamera()
    camera.feed(camera_values(designed_image(8, 8)))
    return fed_app(camera)


def layout_components(dash_app: Any) -> dict[str, Component]:
    layout = dash_app.layout() if callable(dash_app.layout) else dash_app.layout
    found: dict[str, Component] = {}
    duplicates = []
    for component in [layout, *layout._traverse()]:
        component_id = getattr(component, "id", None)
        if component_id is None or isinstance(component_id, dict):
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


def js_sources() -> str:
    return "\n".join(path.read_text() for path in sorted(ASSETS.glob("*.js")))


def js_ids() -> set[str]:
    """Hyphenated string literals of assets/*.js that name elements or components: not the classes
    and ids the scripts make themselves ("sov-…", `x.id = "…"`), nor fetch options."""
    source = js_sources()
    made = set(re.findall(r'\.id = "([^"]+)"', source))
    found = set(re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)"', source))
    return {name for name in found if not name.startswith("sov-")} - made - NOT_IDS


# ------------------------------------------------------------------------------------------ ids


def test_every_callback_id_and_property_exists_in_the_layout(dash_app) -> None:
    components = layout_components(dash_app)
    references = list(callback_references(dash_app))
    assert len(references) > 40
    plain = [(role, cid, prop) for role, cid, prop in references if not cid.startswith("{")]
    missing = sorted({(cid, prop) for _, cid, prop in plain if cid not in components})
    assert not missing, f"callbacks use ids that are not in the layout: {missing}"
    bad_props = sorted({(cid, prop, type(components[cid]).__name__) for _, cid, prop in plain
                        if prop not in components[cid]._prop_names})
    assert not bad_props, f"callbacks use properties the component does not have: {bad_props}"


def test_pattern_matching_inputs_name_components_a_callback_makes(dash_app) -> None:
    """The per-region delete buttons ({"type": "roi-delete", "name": …}) are made by the regions callback."""
    from callbacks.tools_panel import ROI_DELETE

    patterns = [json.loads(cid) for _, cid, _ in callback_references(dash_app) if cid.startswith("{")]
    assert patterns == [{"name": ["ALL"], "type": ROI_DELETE}]


def test_no_output_is_written_by_two_callbacks(dash_app) -> None:
    outputs = [(cid, prop) for role, cid, prop in callback_references(dash_app) if role == "output"]
    assert len(outputs) == len(set(outputs))


def test_every_input_is_driven_by_the_page(dash_app) -> None:
    """An input that is neither user-editable, an interval, some callback's output nor written by
    the scripts (dash_clientside.set_props) never fires."""
    outputs = {(cid, prop) for role, cid, prop in callback_references(dash_app) if role == "output"}
    user_props = {"value", "n_clicks", "n_intervals", "relayoutData", "search", "is_open"}
    written_by_js = set(re.findall(r'setProps\("([^"]+)"', js_sources()))
    undriven = [(cid, prop) for role, cid, prop in callback_references(dash_app) if role == "inputs"
                and (cid, prop) not in outputs and prop not in user_props and cid not in written_by_js
                and cid != ids.CONFIG]
    assert not undriven, undriven


def test_contract_ids_exist(dash_app) -> None:
    components = layout_components(dash_app)
    for component_id in CONTRACT_IDS:
        assert component_id in components, component_id
    for graph in ("image-graph", "energy-history-graph", "rate-history-graph"):
        assert type(components[graph]).__name__ == "Graph"
    assert type(components["export-csv-button"]).__name__ == "Button"
    assert type(components["camera-select"]).__name__ == "Dropdown"


def test_every_id_constant_is_in_the_layout_once(dash_app) -> None:
    components = layout_components(dash_app)
    constants = {name: value for name, value in vars(ids).items() if name.isupper() and isinstance(value, str)}
    assert len(set(constants.values())) == len(constants), "two id constants share one id"
    missing = {name: value for name, value in constants.items() if value not in components}
    assert not missing, f"ids.py names ids that are not in the layout: {missing}"


def test_ids_in_the_scripts_exist(dash_app) -> None:
    found = js_ids()
    assert {"image-graph", "image-response", "image-overlay", "pause-button"} <= found
    missing = sorted(found - set(layout_components(dash_app)))
    assert not missing, f"assets/*.js use ids that are not in the layout: {missing}"


def test_clientside_functions_exist_in_the_scripts(dash_app) -> None:
    source = (ASSETS / "sov.js").read_text()
    block = source[source.index("sov: {"):]
    defined = set(re.findall(r"^\s*(\w+): function\s*\(", block, flags=re.MULTILINE))
    used = {(spec["clientside_function"]["namespace"], spec["clientside_function"]["function_name"])
            for spec in dash_app._callback_list if spec.get("clientside_function")}
    assert len(used) >= 8 and {namespace for namespace, _ in used} == {"sov"}
    missing = sorted(name for _, name in used if name not in defined)
    assert not missing, f"clientside functions missing from assets/sov.js: {missing}"


def test_dependencies_endpoint_matches_the_callbacks(dash_app) -> None:
    deps = json.loads(dash_app.server.test_client().get("/_dash-dependencies").data)
    assert len(deps) == len(dash_app.callback_map)
    assert {d["output"] for d in deps} == set(dash_app.callback_map)


# ------------------------------------------------------------------------------------------ public interfaces


PRIVATE = {
    "window.store": r"window\.store\b",  # dash-renderer's Redux store
    "hand-posted Dash endpoints": r"_dash-update-component|_dash-dependencies",
    "plotly internals": r"_fullLayout|_fullData|\._offset\b|\.l2p\b",
    "dash._utils": r"dash\._utils|from dash import _utils",
    "waitress internals": r"\._map\b|asyncore|server\.trigger",
}


@pytest.mark.parametrize("what", list(PRIVATE))
def test_the_product_stands_on_public_interfaces(what: str) -> None:
    pattern = re.compile(PRIVATE[what])
    found = []
    for path in PRODUCT:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if what == "hand-posted Dash endpoints" and path.name == "protections.py":
                continue  # names the path to gate it, does not post to it
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_nothing_answers_dash_requests_in_front_of_dash(dash_app) -> None:
    """The before_request hooks guard (dev routes, auth, same-origin writes, the computing gate);
    none of them answers a callback itself."""
    from web import protections

    names = [f.__name__ for f in dash_app.server.before_request_funcs[None] if f.__name__ != "_setup_server"]
    assert names == ["no_dev_routes", "same_origin_writes", "admit"], names  # (Dash's own setup aside)
    assert protections.CALLBACK_CONCURRENCY >= 1


# ------------------------------------------------------------------------------------------ debug and isolation


def test_debug_and_dev_tools_are_off(dash_app) -> None:
    assert dash_app.server.debug is False
    tools = dash_app._dev_tools
    assert not tools["ui"] and not tools["hot_reload"] and not tools["props_check"] and not tools["serve_dev_bundles"]
    page = dash_app.server.test_client().get("/").get_data(as_text=True)
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page,
                                  re.DOTALL).group(1))
    assert config["ui"] is False and config["props_check"] is False and not config.get("hot_reload")
    assert dash_app.server.test_client().get("/_reload-hash").status_code == 404


def test_main_serves_with_waitress_not_the_debug_server() -> None:
    source = (ROOT / "app.py").read_text() + (ROOT / "web" / "serve.py").read_text()
    assert "debug=True" not in source and "run_server" not in source and "app.run(" not in source
    assert "waitress.create_server" in source


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


def test_index_page_references_only_this_server(dash_app) -> None:
    client = dash_app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    parser = _Links()
    parser.feed(page)
    assert len(parser.urls) >= 5  # css, favicon, scripts
    remote = [url for url in parser.urls if not _is_local(url)]
    assert not remote, f"index page loads from elsewhere: {remote}"
    assert not re.search(r"https?://|//cdn|unpkg|jsdelivr|googleapis", page.replace("http://www.w3.org", ""))
    for url in parser.urls:  # and every one of them is served here
        assert client.get(url).status_code == 200, url


def test_configured_assets_are_local(dash_app) -> None:
    assert dash_app.config.external_scripts == []
    assert all(_is_local(url if isinstance(url, str) else url["href"]) for url in dash_app.config.external_stylesheets)
    assert dash_app.scripts.config.serve_locally and dash_app.css.config.serve_locally
    client = dash_app.server.test_client()
    for url in dash_app.config.external_stylesheets:
        css = client.get(url).get_data(as_text=True)
        assert len(css) > 10_000
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", css), "stylesheet pulls in remote resources"
    for asset in ASSETS.iterdir():
        text = asset.read_text()
        assert not re.search(r"https?://|url\(\s*['\"]?//", text.replace("http://www.w3.org", "")), asset.name


def test_the_page_opens_the_camera_named_in_its_address() -> None:
    app = fed_app(FedCamera("cam-a"), FedCamera("cam-b"))
    client = app.server.test_client()

    def chosen(query: str) -> Any:
        layout = json.loads(client.get("/_dash-layout" + query).data)
        return next(c for c in _walk(layout) if c.get("props", {}).get("id") == ids.CAMERA_SELECT)["props"]

    assert chosen("")["value"] == "cam-a"
    assert chosen("?camera=cam-b")["value"] == "cam-b"
    assert [o["value"] for o in chosen("")["options"]] == ["cam-a", "cam-b"]


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, dict):
        yield node
        for value in node.get("props", {}).values():
            if isinstance(value, (dict, list)):
                yield from _walk(value)


# ------------------------------------------------------------------------------------------ nothing at import


def test_importing_app_starts_nothing() -> None:
    probe = r"""
import json, logging, sys, threading
import psutil
before = {c.laddr for c in psutil.Process().net_connections(kind="all")}
import app, config
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
    assert report == {"threads": ["MainThread"], "sockets": 0, "zmq_context": False, "log_handlers": 0,
                      "dash_apps": []}
    assert result.stderr == ""


def test_building_the_registry_and_the_app_starts_no_threads() -> None:
    import app as app_module
    from config import parse_args

    before = set(threading.enumerate())
    config = parse_args(["-d", "0.5", "--stream", "a=tcp://127.0.0.1:9", "--stream", "b=tcp://127.0.0.1:10"])
    registry = app_module.build_registry(config)
    dash_app = app_module.create_app(config, registry)
    assert set(threading.enumerate()) == before
    assert registry.camera_names() == ["a", "b"] and dash_app.layout is not None
