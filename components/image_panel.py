"""Detector image panel: the toolbar, the operator tools (folded), the graph with the painter's layer."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from web.render import COLORMAPS

from . import ids
from .image_figure import image_figure
from .tools_panel import tools_panel


def _toolbar() -> dbc.Row:
    def col(child, **kwargs) -> dbc.Col:
        return dbc.Col(child, width="auto", **kwargs)

    return dbc.Row([
        col(dbc.Select(id=ids.COLORMAP, options=[{"label": c, "value": c} for c in COLORMAPS], value="Viridis",
                       size="sm")),
        col(dbc.RadioItems(id=ids.SCALE, options=[{"label": "linear", "value": "linear"}, {"label": "log", "value": "log"}],
                           value="linear", inline=True, className="small")),
        col(dbc.RadioItems(id=ids.RANGE_MODE, options=[{"label": "auto", "value": "auto"},
                                                        {"label": "manual", "value": "manual"}],
                           value="auto", inline=True, className="small")),
        col(dbc.Input(id=ids.RANGE_MIN, type="number", placeholder="min", size="sm", debounce=True,
                      className="range-input")),
        col(dbc.Input(id=ids.RANGE_MAX, type="number", placeholder="max", size="sm", debounce=True,
                      className="range-input")),
        col(html.Span(id=ids.RANGE_MESSAGE, className="small text-danger")),
        col(dbc.Switch(id=ids.CROSSHAIR, label="crosshair", value=True, className="small mb-0")),
        dbc.Col(className="flex-grow-1"),
        col(dbc.Button("Tools", id=ids.TOOLS_BUTTON, color="secondary", size="sm", outline=True, n_clicks=0)),
        col(dbc.Button("Pause", id=ids.PAUSE_BUTTON, color="warning", size="sm", outline=True, n_clicks=0,
                       title="pause this page's picture (space)")),
        col(dbc.Button("Full", id=ids.FULLSCREEN_BUTTON, color="secondary", size="sm", outline=True, n_clicks=0,
                       title="full screen (f)")),
    ], className="g-1 align-items-center flex-nowrap image-toolbar")


def image_panel() -> html.Div:
    return html.Div([
        _toolbar(),
        dbc.Collapse(tools_panel(), id=ids.TOOLS, is_open=False),
        html.Div([
            html.Div(id=ids.IMAGE_CANVAS, className="image-canvas"),
            dcc.Graph(id=ids.IMAGE_GRAPH, figure=image_figure(None), className="image-graph", responsive=True,
                      config={"displaylogo": False, "scrollZoom": False, "doubleClick": "reset",
                              "modeBarButtonsToAdd": ["drawrect"],
                              "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d", "toImage"]}),
            html.Div(id=ids.IMAGE_OVERLAY, className="image-overlay"),
        ], className="image-area"),
        html.Div([
            html.Div(dcc.Slider(id=ids.FRAME_SLIDER, min=0, max=0, step=1, value=0, marks=None,
                                updatemode="drag"), className="frame-slider"),
            html.Span(id=ids.FRAME_LABEL, className="small"),
        ], className="frame-stepper"),
        html.Div(id=ids.IMAGE_INFO, className="small text-muted image-info"),
        dcc.Store(id=ids.IMAGE_GEOMETRY),
        dcc.Store(id=ids.IMAGE_REQUEST),
        dcc.Store(id=ids.IMAGE_RESPONSE),
        dcc.Store(id=ids.IMAGE_VIEW, data={}),
        dcc.Store(id=ids.IMAGE_SETTINGS),
        dcc.Store(id=ids.PAUSED, data=False),
        dcc.Store(id=ids.IMAGE_LOOP_SINK),
        dcc.Store(id=ids.WATCHDOG_SINK),
        dcc.Interval(id=ids.WATCHDOG, interval=1000),
    ], id=ids.IMAGE_PANEL, className="image-panel panel")
