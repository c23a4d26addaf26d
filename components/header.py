"""Header bar: title, camera choice, stream address, state badge, rate and the compact health line."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from . import ids


def status_bar(cameras: list[str], camera: str | None) -> html.Div:
    return html.Div([
        html.Span("Stream Online Viewer", className="brand"),
        dcc.Dropdown(id=ids.CAMERA_SELECT, options=[{"label": name, "value": name} for name in cameras],
                     value=camera, clearable=False, searchable=True, placeholder="camera",
                     className="camera-select"),
        html.Span(id=ids.STREAM_LABEL, className="stream-label small text-light"),
        dbc.Badge("SIMULATED", id=ids.SIMULATED_BADGE, color="info", className="ms-1", style={"display": "none"}),
        dbc.Badge("waiting", id=ids.STREAM_STATE, color="warning", className="ms-2 state-badge"),
        html.Span("— Hz", id=ids.STREAM_RATE, className="ms-2 small text-light rate"),
        html.Span(id=ids.HEALTH_LINE, className="ms-3 small health-line"),
        dbc.Button("health ▾", id=ids.HEALTH_TOGGLE, size="sm", color="link", className="ms-1 p-0 small",
                   n_clicks=0),
    ], className="header")


def camera_message() -> html.Div:
    return html.Div(id=ids.CAMERA_MESSAGE, className="camera-message", role="alert")
