"""Health: the header's state badge, rate and health line, and the full table, once a second."""

from __future__ import annotations

from dash import Dash, Input, Output, State

from components import ids
from components.health_panel import health_line, health_rows, state_badge
from components.status import status_document
from stream.cameras import CameraRegistry, CameraUnavailable


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(
        Output(ids.STREAM_STATE, "children"),
        Output(ids.STREAM_STATE, "color"),
        Output(ids.STREAM_RATE, "children"),
        Output(ids.STREAM_LABEL, "children"),
        Output(ids.SIMULATED_BADGE, "style"),
        Output(ids.HEALTH_LINE, "children"),
        Output(ids.HEALTH_PANEL, "children"),
        Input(ids.HEALTH_INTERVAL, "n_intervals"),
        Input(ids.CAMERA_SELECT, "value"),
    )
    def refresh_health(_n, camera_name):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable as exc:
            return "unavailable", "danger", "— Hz", "", {"display": "none"}, str(exc), []
        status = status_document(camera, registry.camserver_error)
        text, color = state_badge(status["state"])
        simulated = {"display": "inline-block" if status["simulated"] else "none"}
        return (text, color, f"{status['rate_hz']:.1f} Hz", status["stream"], simulated, health_line(status),
                health_rows(status))

    @app.callback(Output(ids.HEALTH_DETAILS, "is_open"), Input(ids.HEALTH_TOGGLE, "n_clicks"),
                  State(ids.HEALTH_DETAILS, "is_open"), prevent_initial_call=True)
    def toggle_health(_clicks, is_open):
        return not is_open
