"""Detector image: the figure (axes, colour bar, regions) when the camera's geometry changes, and the
settings that reach the painter (assets/painter.js) through clientside callbacks."""

from __future__ import annotations

import math
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, no_update

from components import ids
from components.image_figure import image_figure
from stream.cameras import CameraRegistry, CameraUnavailable
from stream.layout import Axis


def range_message(mode: str, zmin: Any, zmax: Any, scale: str) -> str:
    """Why a manual colour range cannot be used ('' when it can)."""
    if mode != "manual":
        return ""
    if zmin is None or zmax is None:
        return "give min and max"
    try:
        lo, hi = float(zmin), float(zmax)
    except (TypeError, ValueError):
        return "min and max must be numbers"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "min and max must be finite"
    if lo >= hi:
        return "min must be less than max"
    if scale == "log" and lo <= 0:
        return "a log scale needs min > 0"
    return ""


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(Output(ids.IMAGE_GRAPH, "figure"), Input(ids.IMAGE_GEOMETRY, "data"), Input(ids.COLORMAP, "value"),
                  State(ids.CAMERA_SELECT, "value"))
    def refresh_figure(geometry, colormap, camera_name):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable:
            return no_update
        frame = camera.frames.latest()
        shape = frame.shape if frame is not None else None
        axes: tuple[Axis, Axis] = camera.axes
        return image_figure(shape, axes, colormap or "Viridis", camera.rois.rois, revision=camera.name)

    @app.callback(Output(ids.RANGE_MESSAGE, "children"), Input(ids.RANGE_MODE, "value"), Input(ids.RANGE_MIN, "value"),
                  Input(ids.RANGE_MAX, "value"), Input(ids.SCALE, "value"))
    def check_range(mode, zmin, zmax, scale):
        return range_message(mode, zmin, zmax, scale)

    clientside = {
        "settings": (Output(ids.IMAGE_SETTINGS, "data"),
                     [Input(ids.COLORMAP, "value"), Input(ids.SCALE, "value"), Input(ids.RANGE_MODE, "value"),
                      Input(ids.RANGE_MIN, "value"), Input(ids.RANGE_MAX, "value"),
                      Input(ids.RANGE_MESSAGE, "children")]),
        "request": (Output(ids.IMAGE_REQUEST, "data"),
                    [Input(ids.CAMERA_SELECT, "value"), Input(ids.AVERAGE, "value"),
                     Input(ids.BACKGROUND_SUBTRACT, "value"), Input(ids.SATURATION, "value"),
                     Input(ids.SATURATION_LEVEL, "value"), Input(ids.CROSSHAIR, "value"),
                     Input(ids.HISTOGRAM_LOG, "value"), Input(ids.TOOLS, "is_open")]),
        "configure": (Output(ids.IMAGE_LOOP_SINK, "data"),
                      [Input(ids.IMAGE_REQUEST, "data"), Input(ids.IMAGE_SETTINGS, "data"),
                       Input(ids.PAUSED, "data"), Input(ids.CONFIG, "data"), Input(ids.IMAGE_VIEW, "data")]),
        "watchdog": (Output(ids.WATCHDOG_SINK, "data"), [Input(ids.WATCHDOG, "n_intervals")]),
        "step": (Output(ids.FRAME_LABEL, "title"), [Input(ids.FRAME_SLIDER, "value")]),
        "info": (Output(ids.IMAGE_INFO, "children"), [Input(ids.IMAGE_RESPONSE, "data")]),
    }
    for name, (output, inputs) in clientside.items():
        app.clientside_callback(ClientsideFunction("sov", name), output, *inputs)
    app.clientside_callback(ClientsideFunction("sov", "viewFromRelayout"), Output(ids.IMAGE_VIEW, "data"),
                            Input(ids.IMAGE_GRAPH, "relayoutData"), State(ids.IMAGE_VIEW, "data"),
                            prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("sov", "pause"),
                            Output(ids.PAUSED, "data"), Output(ids.PAUSE_BUTTON, "children"),
                            Output(ids.PAUSE_BUTTON, "color"),
                            Input(ids.PAUSE_BUTTON, "n_clicks"), State(ids.PAUSED, "data"))
    app.clientside_callback(ClientsideFunction("sov", "fullscreen"), Output(ids.FULLSCREEN_BUTTON, "active"),
                            Input(ids.FULLSCREEN_BUTTON, "n_clicks"), prevent_initial_call=True)
