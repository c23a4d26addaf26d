"""Detector image and readings: answers the browser's image loop (see assets/viewer.js)."""

from __future__ import annotations

from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, Patch, State, no_update

from components import ids
from components.image_panel import ImageView, stale_annotation, view_from_settings
from components.readings_panel import READING_IDS, readings_text
from stream.ring_buffer import ChannelNames

from .frame_cache import FrameCache, RenderedFrame


def image_patch(entry: RenderedFrame, stale_age_s: float | None, last: dict) -> Patch:
    """Assign the cached payload into the figure; typed arrays stay base64 (never lists).

    Only what changed is sent: layout changes (annotations, colour-bar ticks) make plotly.js redo
    far more work than a new z, so they go out only when they differ from the browser's.
    """
    payload = entry.payload
    patch = Patch()
    heatmap = patch["data"][0]
    for key in ("z", "x0", "dx", "y0", "dy"):
        heatmap[key] = payload[key]
    if last.get("colorscale") != payload["colorscale"]:
        heatmap["colorscale"] = payload["colorscale"]
    if last.get("ticktext") != payload["ticktext"]:
        heatmap["colorbar"]["tickvals"] = payload["tickvals"]
        heatmap["colorbar"]["ticktext"] = payload["ticktext"]
    patch["data"][1]["y"] = payload["profile_x"]
    patch["data"][2]["x"] = payload["profile_y"]
    if last.get("bin") != payload["bin"] or last.get("origin") != [payload["x0"], payload["y0"]]:
        patch["data"][1]["x0"] = payload["x0"]
        patch["data"][1]["dx"] = payload["dx"]
        patch["data"][2]["y0"] = payload["y0"]
        patch["data"][2]["dy"] = payload["dy"]
    stale = stale_age_s is not None
    if last.get("stale") != stale:
        patch["layout"]["annotations"] = stale_annotation(stale_age_s) if stale else []
    return patch


def image_info(entry: RenderedFrame, age_s: float | None) -> str:
    payload = entry.payload
    height, width = payload["shape"]
    binned = f" · shown in {payload['bin']}×{payload['bin']} bins" if payload["bin"] > 1 else ""
    received = f" · received {age_s:.2f} s ago" if age_s is not None else ""
    return f"pulse {entry.pulse_id} · {width} × {height} px{binned} · {payload['bytes'] / 1024:.0f} KiB{received}"


def image_update(cache: FrameCache, source: Any, names: ChannelNames, request: dict | None, last: dict | None,
                 view: ImageView) -> tuple:
    """(figure, response, info, *readings) for one request of one browser."""
    request = request or {}
    last = last or {}
    entry = cache.get(view, seen_seq=last.get("seq") if last.get("view") == repr(view) else None)
    health = source.health()
    age = health.last_message_age_s
    stale = age is not None and age > health.stall_limit_s
    response = {"n": request.get("n"), "seq": None, "view": repr(view), "stale": stale, "pulse_id": None}
    buffer = source.buffer
    latest = buffer.read(since=buffer.count - 1)
    if entry is None:
        texts = readings_text(latest, names.energy, names.rate, None)
        return (no_update, response, "waiting for the first frame…", *texts)
    payload = entry.payload
    response.update(seq=entry.seq, pulse_id=entry.pulse_id, timestamp=entry.timestamp, received=entry.received,
                    colorscale=payload["colorscale"], ticktext=payload["ticktext"], bin=payload["bin"],
                    origin=[payload["x0"], payload["y0"]])
    unchanged = last.get("seq") == entry.seq and last.get("view") == response["view"] and last.get("stale") == stale
    figure = no_update if unchanged else image_patch(entry, age if stale else None, last)
    if request.get("texts") is False and last.get("stale") == stale and last.get("seq") is not None:
        # The browser asks for the texts only a few times a second (viewer.js): every changed text
        # makes dash-renderer re-index the whole layout, and nobody reads numbers changing at 20 Hz.
        return (figure, response, no_update, *([no_update] * len(READING_IDS)))
    texts = readings_text(latest, names.energy, names.rate, tuple(payload["shape"]))
    return (figure, response, image_info(entry, age), *texts)


def naive_image_update(source: Any, names: ChannelNames, request: dict | None) -> tuple:
    """Benchmark baseline only (SOV_NAIVE_IMAGE=1): what this panel would cost done the obvious way.

    A full-resolution `go.Figure(go.Heatmap(z=frame))` built for every request of every browser:
    no shared cache, no binning, no Patch, readings every time.
    """
    import plotly.graph_objects as go

    request = request or {}
    frame = source.buffer.latest_frame()
    buffer = source.buffer
    latest = buffer.read(since=buffer.count - 1)
    response = {"n": request.get("n"), "seq": None, "pulse_id": None, "stale": False}
    if frame is None:
        texts = readings_text(latest, names.energy, names.rate, None)
        return (no_update, response, "waiting for the first frame…", *texts)
    image = frame.image()
    figure = go.Figure(go.Heatmap(z=image, colorscale="Viridis"),
                       layout={"uirevision": "image", "margin": {"l": 50, "r": 10, "t": 10, "b": 30},
                               "yaxis": {"autorange": "reversed", "scaleanchor": "x"}})
    response.update(seq=frame.seq, pulse_id=frame.pulse_id, timestamp=frame.timestamp)
    texts = readings_text(latest, names.energy, names.rate, image.shape)
    return (figure, response, f"pulse {frame.pulse_id} (naive full-resolution figure)", *texts)


def register(app: Dash, source: Any, cache: FrameCache, names: ChannelNames, naive: bool = False) -> Any:
    """Register the image callbacks; returns the function answering one image request (for the fast
    path, which the app registers after its authentication and concurrency hooks)."""
    app.clientside_callback(ClientsideFunction("viewer", "settings"), Output(ids.IMAGE_SETTINGS, "data"),
                            Input(ids.COLORMAP, "value"), Input(ids.SCALE, "value"), Input(ids.RANGE_MODE, "value"),
                            Input(ids.RANGE_MIN, "value"), Input(ids.RANGE_MAX, "value"))
    app.clientside_callback(ClientsideFunction("viewer", "viewFromRelayout"), Output(ids.IMAGE_VIEW, "data"),
                            Input(ids.IMAGE_GRAPH, "relayoutData"), State(ids.IMAGE_VIEW, "data"),
                            prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("viewer", "imageAnswered"), Output(ids.IMAGE_LOOP_SINK, "data"),
                            Input(ids.IMAGE_RESPONSE, "data"), prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("viewer", "watchdog"), Output(ids.WATCHDOG_SINK, "data"),
                            Input(ids.WATCHDOG, "n_intervals"), State(ids.CONFIG, "data"), State(ids.PAUSED, "data"))
    app.clientside_callback(ClientsideFunction("viewer", "pause"),
                            Output(ids.PAUSED, "data"), Output(ids.PAUSE_BUTTON, "children"),
                            Output(ids.PAUSE_BUTTON, "color"),
                            Input(ids.PAUSE_BUTTON, "n_clicks"), State(ids.PAUSED, "data"))

    @app.callback(
        Output(ids.IMAGE_GRAPH, "figure"),
        Output(ids.IMAGE_RESPONSE, "data"),
        Output(ids.IMAGE_INFO, "children"),
        *[Output(reading, "children") for reading in READING_IDS],
        Input(ids.IMAGE_REQUEST, "data"),
        State(ids.IMAGE_RESPONSE, "data"),
        State(ids.IMAGE_VIEW, "data"),
        State(ids.IMAGE_SETTINGS, "data"),
        prevent_initial_call=True,
    )
    def refresh_image(request, last, view, settings):
        if naive:
            return naive_image_update(source, names, request)
        return answer(request, last, view, settings)

    def answer(request, last, view, settings):
        request = request if isinstance(request, dict) else {}
        size = {"width": request.get("w"), "height": request.get("h")}
        view = view if isinstance(view, dict) else {}
        settings = settings if isinstance(settings, dict) else None
        last = last if isinstance(last, dict) else None
        return image_update(cache, source, names, request, last, view_from_settings(settings, {**view, **size}))

    return None if naive else answer


def register_fast_path(app: Dash, answer: Any) -> None:
    """Answer the image callback's requests without Dash's generic dispatch.

    Every browser asks ~10-20 times a second, and for a cached frame the answer itself is cheap:
    Dash's dispatch around it (callback context, validation, plotly's JSON walk of the output)
    was ~40 % of the server's time per request. This hook runs after the app's other
    before_request hooks (authentication, the concurrency gate), recognises the image callback by
    its output spec, computes the same outputs with the same function (`answer`, from register)
    and writes the same answer
    Dash would (tests/test_performance_properties.py compares the two byte for byte, as JSON).
    Anything it does not recognise goes on to Dash. `server.config["SOV_IMAGE_FAST_PATH"] = False`
    turns it off.
    """
    import flask
    import orjson

    server = app.server
    server.config.setdefault("SOV_IMAGE_FAST_PATH", True)
    outputs = [(ids.IMAGE_GRAPH, "figure"), (ids.IMAGE_RESPONSE, "data"), (ids.IMAGE_INFO, "children"),
               *[(reading, "children") for reading in READING_IDS]]
    spec = "..{}..".format("...".join(f"{id_}.{prop}" for id_, prop in outputs))
    marker = f'"{spec}"'.encode()
    path = app.config.requests_pathname_prefix + "_dash-update-component"
    wanted = {f"{ids.IMAGE_REQUEST}.data": "request", f"{ids.IMAGE_RESPONSE}.data": "last",
              f"{ids.IMAGE_VIEW}.data": "view", f"{ids.IMAGE_SETTINGS}.data": "settings"}

    @server.before_request
    def image_fast_path():
        request = flask.request
        if request.method != "POST" or request.path != path or not server.config["SOV_IMAGE_FAST_PATH"]:
            return None
        raw = request.get_data(cache=True)
        if marker not in raw:
            return None
        try:
            body = orjson.loads(raw)
            if body.get("output") != spec:
                return None
            values = {}
            for item in [*body.get("inputs", []), *body.get("state", [])]:
                key = wanted.get(f"{item['id']}.{item['property']}")
                if key is not None:
                    values[key] = item.get("value")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            return None  # Dash answers (and rejects) what is not a well-formed image request
        if set(values) != set(wanted.values()):
            return None
        results = answer(values["request"], values["last"], values["view"], values["settings"])
        response: dict[str, dict[str, Any]] = {}
        for (id_, prop), value in zip(outputs, results):
            if value is no_update:
                continue
            if isinstance(value, Patch):
                value = value.to_plotly_json()
            response.setdefault(id_, {})[prop] = value
        if not response:
            return flask.Response(status=204)
        return flask.Response(orjson.dumps({"multi": True, "response": response}, option=orjson.OPT_SERIALIZE_NUMPY),
                              mimetype="application/json")

