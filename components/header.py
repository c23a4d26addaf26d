"""Header bar: title, stream address (or "simulated camera"), state badge, message rate."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from . import ids


def status_bar(label: str, simulated: bool) -> dbc.Navbar:
    badges = [
        dbc.Badge("waiting", id=ids.STREAM_STATE, color="warning", className="me-2 state-badge"),
        html.Span("— Hz", id=ids.STREAM_RATE, className="me-3 text-light small"),
    ]
    if simulated:
        badges.insert(0, dbc.Badge("SIMULATED", id=ids.SIMULATED_BADGE, color="info", className="me-2"))
    return dbc.Navbar(
        dbc.Container([
            html.Span("Stream Online Viewer", className="navbar-brand mb-0 h1"),
            html.Span(label, id=ids.STREAM_LABEL, className="text-light small me-auto stream-label"),
            html.Div(badges, className="d-flex align-items-center"),
        ], fluid=True),
        color="dark", dark=True, className="mb-3",
    )
