"""Header badge, message rate, health panel and the channel list, refreshed once a second."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, no_update

from components import ids
from components.health_panel import health_rows, state_badge, status_document


def source_status(source: Any) -> dict:
    return status_document(source.health(), source.label, source.simulated, source.buffer.nonfinite_values)


def register(app: Dash, source: Any) -> None:
    @app.callback(
        Output(ids.STREAM_STATE, "children"),
        Output(ids.STREAM_STATE, "color"),
        Output(ids.STREAM_RATE, "children"),
        Output(ids.HEALTH_PANEL, "children"),
        Output(ids.CHANNEL_SELECT, "options"),
        Input(ids.HEALTH_INTERVAL, "n_intervals"),
        State(ids.CHANNEL_SELECT, "options"),
    )
    def refresh_health(_n, options):
        status = source_status(source)
        text, color = state_badge(status["state"])
        channels = [{"label": name, "value": name} for name in status["channels"]]
        return (text, color, f"{status['rate_hz']:.1f} Hz", health_rows(status),
                channels if channels != options else no_update)
