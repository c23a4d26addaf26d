"""The whole page, assembled from the panels: one screen (CSS grid, assets/viewer.css)."""

from __future__ import annotations

from dash import dcc, html

from . import ids
from .header import camera_message, status_bar
from .health_panel import health_details
from .history_panel import history_panel
from .image_panel import image_panel
from .readings_panel import readings_panel


def page(cameras: list[str], camera: str | None, period_s: float) -> html.Div:
    """`camera`: the one to open (the page's ?camera=, else the default)."""
    return html.Div([
        dcc.Location(id=ids.LOCATION, refresh=False),
        status_bar(cameras, camera),
        health_details(),
        camera_message(),
        html.Div([
            image_panel(),
            html.Div([readings_panel(), history_panel()], className="side"),
        ], className="main"),
        # The painter reads its period from here (see assets/painter.js).
        dcc.Store(id=ids.CONFIG, data={"image_period_ms": int(period_s * 1000)}),
        dcc.Interval(id=ids.HEALTH_INTERVAL, interval=1000),
    ], className="page")
