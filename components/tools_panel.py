"""Operator tools, folded under the image toolbar: averaging, background, saturation, regions of
interest, the histogram of the frame on screen, snapshots. Averaging, background subtraction and
saturation marking are this page's view only; regions and the background are shared by every viewer."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from stream.background import DEFAULT_GRAB_FRAMES, MAX_GRAB_FRAMES
from web.processing import MAX_AVERAGE

from . import ids


def _group(title: str, *children) -> dbc.Col:
    return dbc.Col(html.Div([html.Div(title, className="tool-title"), *children], className="tool-group"),
                   width="auto")


def tools_panel() -> html.Div:
    return html.Div([
        dbc.Row([
            _group("Average", dbc.InputGroup([
                dbc.Input(id=ids.AVERAGE, type="number", min=1, max=MAX_AVERAGE, step=1, value=1, size="sm",
                          debounce=True, className="small-input"),
                dbc.InputGroupText("frames")], size="sm")),
            _group("Background", dbc.InputGroup([
                dbc.Input(id=ids.BACKGROUND_FRAMES, type="number", min=1, max=MAX_GRAB_FRAMES, step=1,
                          value=DEFAULT_GRAB_FRAMES, size="sm", className="small-input"),
                dbc.Button("Grab", id=ids.BACKGROUND_GRAB, size="sm", color="info", outline=True, n_clicks=0),
                dbc.Button("Clear", id=ids.BACKGROUND_CLEAR, size="sm", color="secondary", outline=True, n_clicks=0),
            ], size="sm"),
                dbc.Switch(id=ids.BACKGROUND_SUBTRACT, label="subtract", value=False, className="small mb-0"),
                html.Div(id=ids.BACKGROUND_STATE, className="small text-muted")),
            _group("Saturation", dbc.Switch(id=ids.SATURATION, label="mark", value=True, className="small mb-0"),
                   dbc.Input(id=ids.SATURATION_LEVEL, type="number", placeholder="dtype max", size="sm",
                             debounce=True, className="small-input")),
            _group("Regions of interest", dbc.InputGroup([
                dbc.Input(id=ids.ROI_NAME, placeholder="name, then draw ▭", size="sm", maxLength=32,
                          className="roi-name"),
                dbc.Button("Clear all", id=ids.ROI_CLEAR, size="sm", color="secondary", outline=True, n_clicks=0),
            ], size="sm"), html.Div(id=ids.ROI_LIST, className="small"),
                html.Div(id=ids.ROI_MESSAGE, className="small text-danger")),
            _group("Histogram", html.Div(id=ids.HISTOGRAM, className="histogram-plot"),
                   dbc.Switch(id=ids.HISTOGRAM_LOG, label="log counts", value=True, className="small mb-0")),
            _group("Snapshot", dbc.ButtonGroup([
                dbc.Button("PNG", id=ids.SNAPSHOT_PNG, size="sm", color="info", outline=True, n_clicks=0),
                dbc.Button("HDF5", id=ids.SNAPSHOT_H5, size="sm", color="info", outline=True, n_clicks=0),
            ], size="sm")),
        ], className="g-2 flex-nowrap tools-row"),
        dcc.Store(id=ids.ROI_VERSION),
        dcc.Interval(id=ids.TOOLS_INTERVAL, interval=1000, disabled=True),
        dcc.Store(id=ids.HISTORY_LOOP_SINK),
    ], className="tools")
