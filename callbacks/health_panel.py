"""Health details: folded out under the header (their rows come with the header's refresh)."""

from __future__ import annotations

from dash import Dash, Input, Output, State

from components import ids
from stream.cameras import CameraRegistry


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(Output(ids.HEALTH_DETAILS, "is_open"), Input(ids.HEALTH_TOGGLE, "n_clicks"),
                  State(ids.HEALTH_DETAILS, "is_open"), prevent_initial_call=True)
    def toggle_health(_clicks, is_open):
        return not is_open
