"""History panel: window and axis choice, CSV export, four charts, the window's statistics (folded).

Which columns each chart shows depends on the stream: beam energy and repetition rate when it has
them; a cam_server pipeline stream has neither and gets intensity and the fit's amplitude instead
(never an empty chart). Positions and sizes are in the image's units (µm when calibrated).
"""

from __future__ import annotations

from typing import Mapping

import dash_bootstrap_components as dbc
from dash import dcc, html

from stream.ingest import calibrated_name
from stream.layout import Axis, StreamLayout

from . import ids
from .formatting import format_value
from .history_figures import DEFAULT_WINDOW, WINDOWS, Chart, Series

GRAPHS = (ids.ENERGY_HISTORY, ids.RATE_HISTORY, ids.BEAM_HISTORY, ids.CHANNEL_HISTORY)
UNITS = {"beam_intensity": "counts", "beam_fit_amplitude_x": "counts", "beam_fit_amplitude_y": "counts",
         "beam_fit_offset_x": "counts", "beam_fit_offset_y": "counts"}


def column_unit(name: str, layout: StreamLayout | None) -> str:
    """The unit of a history column, as far as it is known."""
    if layout is not None and name == layout.energy:
        return "GeV"
    if layout is not None and name == layout.rate:
        return "Hz"
    if name in UNITS:
        return UNITS[name]
    if name.startswith("beam_"):
        return "µm" if name.endswith("_um") else "px"
    if name.startswith("roi_"):
        return "counts"
    return ""


def charts_for(layout: StreamLayout | None, axes: tuple[Axis, Axis], channel: str | None) -> tuple[Chart, ...]:
    axis_x = axes[0]
    calibrated = axis_x.calibrated and axes[1].calibrated
    unit = axis_x.unit if calibrated else "px"

    def beam(column: str) -> str:
        return calibrated_name(column, unit) if calibrated else column

    energy = layout.energy if layout else None
    rate = layout.rate if layout else None
    first = (Chart("Beam energy", "GeV", (Series(energy, "energy"),)) if energy else
             Chart("Beam intensity (no beam energy in this stream)", "counts", (Series("beam_intensity", "intensity"),)))
    second = (Chart("Repetition rate", "Hz", (Series(rate, "rate"),)) if rate else
              Chart("Gaussian fit amplitude (no repetition rate in this stream)", "counts",
                    (Series("beam_fit_amplitude_x", "x"), Series("beam_fit_amplitude_y", "y"))))
    third = Chart("Beam centroid (left) and rms size (right)", f"centroid ({unit})",
                  (Series(beam("beam_centroid_x"), "centroid x"), Series(beam("beam_centroid_y"), "centroid y"),
                   Series(beam("beam_rms_x"), "rms x", "y2"), Series(beam("beam_rms_y"), "rms y", "y2")),
                  unit2=f"rms size ({unit})")
    if channel:
        chart_unit = column_unit(channel, layout)
        fourth = Chart(channel, chart_unit or channel, (Series(channel, channel),))
    else:
        fourth = Chart("", "", (), empty="choose a channel or beam statistic above")
    return first, second, third, fourth


def stats_table(stats: Mapping[str, Mapping[str, float]], layout: StreamLayout | None) -> html.Table:
    """The window's statistics (channel names rendered as text)."""
    header = html.Tr([html.Th(h) for h in ("column", "mean", "std", "min", "max", "n")])
    rows = [header]
    for name, values in stats.items():
        unit = column_unit(name, layout)
        rows.append(html.Tr([html.Td(f"{name} ({unit})" if unit else name)]
                            + [html.Td(format_value(values[key])) for key in ("mean", "std", "min", "max")]
                            + [html.Td(str(values["n"]))]))
    return html.Table(rows, className="table table-sm table-dark mb-0 stats-table")


def _graph(graph_id: str) -> dcc.Graph:
    return dcc.Graph(id=graph_id, config={"displaylogo": False, "displayModeBar": False}, className="history-graph",
                     responsive=True, figure={"data": [], "layout": {"paper_bgcolor": "rgba(0,0,0,0)",
                                                                     "plot_bgcolor": "rgba(0,0,0,0)",
                                                                     "xaxis": {"visible": False},
                                                                     "yaxis": {"visible": False}}})


def history_panel() -> html.Div:
    controls = html.Div([
        dbc.RadioItems(id=ids.HISTORY_WINDOW, options=[{"label": w, "value": w} for w in WINDOWS],
                       value=DEFAULT_WINDOW, inline=True, className="small"),
        dbc.RadioItems(id=ids.HISTORY_XAXIS, options=[{"label": "time", "value": "time"},
                                                     {"label": "pulse id", "value": "pulse_id"}],
                       value="time", inline=True, className="small"),
        dcc.Dropdown(id=ids.CHANNEL_SELECT, options=[], value=None, clearable=True, placeholder="4th chart: channel…",
                     className="channel-select"),
        # A link to /api/readings.csv (its address follows the camera and window): the download
        # streams from the API instead of travelling inside a callback's answer.
        dbc.Button("Export CSV", id=ids.EXPORT_BUTTON, color="info", size="sm", outline=True, external_link=True,
                   href="api/readings.csv?seconds=60", download="readings.csv",
                   title="the readings of the chosen window"),
    ], className="history-controls")
    return html.Div([
        controls,
        html.Div([_graph(graph_id) for graph_id in GRAPHS], className="history-graphs"),
        html.Div([
            dbc.Button("statistics and parameters ▾", id=ids.DETAILS_TOGGLE, size="sm", color="link",
                       className="p-0 small", n_clicks=0),
            dbc.Collapse([html.Div(id=ids.HISTORY_STATS, className="small"),
                          html.Details([html.Summary("processing parameters", className="small"),
                                        html.Pre(id=ids.PARAMETERS, className="small parameters"),
                                        dcc.Store(id=ids.PARAMETERS_DIGEST)])],
                         id=ids.DETAILS, is_open=False),
        ], className="details"),
        dcc.Interval(id=ids.HISTORY_REQUEST, interval=1000),
        dcc.Store(id=ids.HISTORY_RESPONSE),
    ], className="history-panel panel")
