"""The whole page, assembled from the panels."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from . import ids
from .header import status_bar
from .health_panel import health_panel
from .history_panel import history_panel
from .image_panel import image_panel
from .readings_panel import readings_panel


def page(label: str, simulated: bool, period_s: float, history_period_s: float) -> html.Div:
    return html.Div([
        status_bar(label, simulated),
        dbc.Container([
            dbc.Row([
                dbc.Col(image_panel(), lg=7, className="mb-3"),
                dbc.Col([readings_panel(), health_panel()], lg=5, className="mb-3"),
            ]),
            dbc.Row(dbc.Col(history_panel())),
        ], fluid=True),
        # The browser's frame loops read their periods from here (see assets/viewer.js).
        dcc.Store(id=ids.CONFIG, data={"image_period_ms": int(period_s * 1000),
                                       "history_period_ms": int(history_period_s * 1000)}),
        dcc.Interval(id=ids.WATCHDOG, interval=1000),
        dcc.Store(id=ids.WATCHDOG_SINK),
        dcc.Interval(id=ids.HEALTH_INTERVAL, interval=1000),
    ])
