"""History charts: layout, and pure builders from ring-buffer rows to bucketed chart data.

A browser never receives raw 100 Hz history: rows are averaged in buckets of `k` consecutive pulses
(k chosen so a window holds at most `MAX_POINTS` points), only complete buckets are sent, and each
tick sends only the buckets the browser has not seen (`extendData`, trimmed by `maxPoints`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import dash_bootstrap_components as dbc
import numpy as np
from dash import dcc, html

from stream.ring_buffer import History

from . import ids

MAX_POINTS = 600  # per trace in the browser: SVG redraw cost grows with it
FAST_TICKS = {"tickangle": 0, "ticklabeloverflow": "allow"}  # no forced layout per tick label
WINDOWS = {"1 min": 60.0, "10 min": 600.0, "1 h": 3600.0, "all": None}
DEFAULT_WINDOW = "1 min"
NOMINAL_RATE_HZ = 100.0  # until the stream's rate is measured

# Chart -> the columns it shows (beam chart: centroid and rms size in pixels).
BEAM_TRACES = ("beam_centroid_x", "beam_centroid_y", "beam_rms_x", "beam_rms_y")
TRACE_COLORS = ("#3498db", "#e67e22", "#2ecc71", "#e74c3c")


@dataclass(frozen=True)
class ChartSpec:
    """Which columns feed which chart (depends on the stream's channel names)."""

    energy: str
    rate: str
    channel: str | None  # the user's pick for the third chart

    def charts(self) -> tuple[tuple[str, ...], ...]:
        return ((self.energy,), (self.rate,), BEAM_TRACES, (self.channel,) if self.channel else ())


def bucket_rows(window: str, rate_hz: float, buffered_rows: int, capacity: int) -> int:
    """Pulses per displayed point for a window choice."""
    seconds = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    rate = rate_hz if rate_hz and math.isfinite(rate_hz) and rate_hz > 0 else NOMINAL_RATE_HZ
    rows = capacity if seconds is None else seconds * rate
    if seconds is None:
        rows = max(buffered_rows, 1)
    return max(1, math.ceil(min(rows, capacity) / MAX_POINTS))


def window_rows(window: str, rate_hz: float, capacity: int) -> int:
    """Rows a full window spans (row-based, so a sender's clock cannot skew it)."""
    seconds = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    rate = rate_hz if rate_hz and math.isfinite(rate_hz) and rate_hz > 0 else NOMINAL_RATE_HZ
    rows = capacity if seconds is None else int(seconds * rate)
    return min(rows, capacity)


def window_start(history_end: int, window: str, rate_hz: float, capacity: int) -> int:
    """First sequence number of the window."""
    return max(0, history_end - window_rows(window, rate_hz, capacity))


def bucketize(history: History, k: int, columns: Sequence[str], x_mode: str, complete_only: bool = True
              ) -> tuple[int, dict[str, list]]:
    """Average rows into buckets of k pulses aligned to seq // k.

    Returns (next cursor, {"x": [...], column: [...]}); NaN means no data (a gap in the chart).
    Only buckets that are complete (all k sequence numbers present) are returned when complete_only.
    """
    n = len(history)
    if n == 0:
        return history.start, {"x": [], **{c: [] for c in columns}}
    seq = history.column("seq")
    first = int(seq[0])
    aligned = ((first + k - 1) // k) * k  # drop a partial bucket at the start
    stop = ((int(seq[-1]) + 1) // k) * k if complete_only else int(seq[-1]) + 1
    lo = aligned - first
    hi = stop - first
    if hi <= lo:
        return max(aligned, history.start) if complete_only else history.end, {"x": [], **{c: [] for c in columns}}
    count = hi - lo
    buckets = math.ceil(count / k)
    starts = np.arange(0, count, k)
    out: dict[str, list] = {}
    if x_mode == "pulse_id":
        xs = history.column("pulse_id")[lo:hi]
        out["x"] = [int(v) for v in xs[np.minimum(starts + k - 1, count - 1)]]
    else:
        ts = history.column("timestamp")[lo:hi]
        last = ts[np.minimum(starts + k - 1, count - 1)]
        out["x"] = [_ms(v) for v in last]
    for name in columns:
        col = history.columns.get(name)
        if col is None:
            out[name] = [None] * buckets
            continue
        out[name] = _bucket_mean(col[lo:hi], k, buckets)
    return stop, out


def _ms(epoch_s: float) -> float | None:
    return round(float(epoch_s) * 1000.0, 1) if math.isfinite(epoch_s) else None


def _bucket_mean(values: np.ndarray, k: int, buckets: int) -> list:
    padded = np.full(buckets * k, np.nan)
    padded[: values.size] = values
    blocks = padded.reshape(buckets, k)
    valid = np.isfinite(blocks)
    counts = valid.sum(axis=1)
    sums = np.where(valid, blocks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return [float(v) if c else None for v, c in zip(means.tolist(), counts.tolist())]


def window_statistics(history: History, columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """mean/std/min/max of each column over the rows given (NaN ignored)."""
    result = {}
    for name in columns:
        col = history.columns.get(name)
        finite = col[np.isfinite(col)] if col is not None else np.empty(0)
        if finite.size == 0:
            result[name] = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
            continue
        result[name] = {"mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
                        "max": float(finite.max()), "n": int(finite.size)}
    return result


def plotly_text(text: str) -> str:
    """Stream-supplied text (channel names) for plotly titles and legends, which understand a little
    HTML: `<a href=...>` would become a link in the operator's page. Entities show as the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def history_figure(title: str, unit: str, names: Sequence[str], data: Mapping[str, list], x_mode: str,
                   uirevision: str) -> dict[str, Any]:
    """A complete chart (plain dict, no go.Figure): one line per column name."""
    traces = []
    for index, name in enumerate(names):
        traces.append({
            "type": "scatter", "mode": "lines", "name": plotly_text(name), "x": list(data.get("x", [])),
            "y": list(data.get(name, [])), "line": {"width": 1.2, "color": TRACE_COLORS[index % len(TRACE_COLORS)]},
            "connectgaps": False,
        })
    return {
        "data": traces,
        "layout": {
            "uirevision": uirevision,
            "margin": {"l": 55, "r": 10, "t": 28, "b": 30},
            "height": 210,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"color": "#ddd", "size": 11},
            "title": {"text": plotly_text(title), "font": {"size": 12}, "x": 0.01},
            "showlegend": len(names) > 1,
            "legend": {"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
            # Each increment redraws the axes: few ticks, fixed angles and no overflow check keep it cheap.
            "xaxis": {"type": "linear" if x_mode == "pulse_id" else "date", "gridcolor": "#444",
                      "title": {"text": "pulse id" if x_mode == "pulse_id" else ""}, "nticks": 8, **FAST_TICKS},
            "yaxis": {"gridcolor": "#444", "title": {"text": unit}, "nticks": 5, **FAST_TICKS},
        },
    }


def extend_data(names: Sequence[str], data: Mapping[str, list], max_points: int) -> tuple[dict, list, int] | None:
    """extendData value for one chart, or None when there is nothing new."""
    if not names or not data.get("x"):
        return None
    return ({"x": [data["x"]] * len(names), "y": [data.get(name, []) for name in names]},
            list(range(len(names))), max_points)


def history_panel() -> dbc.Card:
    def graph(graph_id: str) -> dcc.Graph:
        return dcc.Graph(id=graph_id, config={"displaylogo": False}, className="history-graph",
                         figure={"data": [], "layout": {"height": 210, "paper_bgcolor": "rgba(0,0,0,0)",
                                                        "plot_bgcolor": "rgba(0,0,0,0)"}})

    controls = dbc.Row([
        dbc.Col(dbc.RadioItems(id=ids.HISTORY_WINDOW, options=[{"label": w, "value": w} for w in WINDOWS],
                               value=DEFAULT_WINDOW, inline=True), width="auto"),
        dbc.Col(dbc.RadioItems(id=ids.HISTORY_XAXIS, options=[{"label": "time", "value": "time"},
                                                             {"label": "pulse id", "value": "pulse_id"}],
                               value="time", inline=True), width="auto"),
        dbc.Col(dbc.Button("Export CSV", id=ids.EXPORT_BUTTON, color="info", size="sm", outline=True),
                width="auto"),
        dcc.Download(id=ids.EXPORT_DOWNLOAD),
    ], className="g-3 align-items-center mb-2")
    return dbc.Card(dbc.CardBody([
        controls,
        html.Div(id=ids.HISTORY_STATS, className="small mb-2"),
        graph(ids.ENERGY_HISTORY),
        graph(ids.RATE_HISTORY),
        graph(ids.BEAM_HISTORY),
        dbc.Row([
            dbc.Col(html.Span("Third chart:", className="small"), width="auto"),
            dbc.Col(dcc.Dropdown(id=ids.CHANNEL_SELECT, options=[], value=None, clearable=True,
                                 placeholder="choose a scalar channel", className="channel-select"), width=6),
        ], className="g-2 align-items-center mt-2"),
        graph(ids.CHANNEL_HISTORY),
        dcc.Store(id=ids.HISTORY_REQUEST),
        dcc.Store(id=ids.HISTORY_RESPONSE),
        dcc.Store(id=ids.HISTORY_LOOP_SINK),
    ]))


def stats_table(stats: Mapping[str, Mapping[str, float]], units: Mapping[str, str]) -> html.Table:
    """Window statistics as a small table (channel names rendered as text)."""
    from .image_panel import format_value

    header = html.Tr([html.Th("channel"), html.Th("mean"), html.Th("std"), html.Th("min"), html.Th("max"),
                      html.Th("n")])
    rows = [header]
    for name, values in stats.items():
        unit = units.get(name, "")
        rows.append(html.Tr([html.Td(f"{name} ({unit})" if unit else name)]
                            + [html.Td(format_value(values[key])) for key in ("mean", "std", "min", "max")]
                            + [html.Td(str(values["n"]))]))
    return html.Table(rows, className="table table-sm table-dark mb-0 stats-table")


