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


def register(app: Dash, source: Any, cache: FrameCache, names: ChannelNames, naive: bool = False) -> None:
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
        size = {"width": (request or {}).get("w"), "height": (request or {}).get("h")}
        return image_update(cache, source, names, request, last, view_from_settings(settings, {**(view or {}), **size}))

