"""History charts, pure: rows of the ring buffer -> time buckets -> chart figures and increments.

Buckets are fixed slices of pulse time (`width_s`, aligned to multiples of it), so a chart's points
map to time exactly: every bucket is sent, an empty one as a gap (the stream was silent), and a
window of 1 min holds the last 60 s of pulse time, the rows the CSV export of that window holds.
Each bucket carries its mean and its min-max band, so shot-to-shot spread shows. Only complete
buckets are sent; each tick sends the ones the browser has not seen (`extendData`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from stream.ring_buffer import History

MAX_POINTS = 300  # buckets per window and trace (SVG redraw cost grows with them)
WINDOWS = {"1 min": 60.0, "10 min": 600.0, "1 h": 3600.0, "all": None}
DEFAULT_WINDOW = "1 min"
NOMINAL_RATE_HZ = 100.0  # until the stream's rate is measured
MIN_PULSES_PER_BUCKET = 2.5  # a bucket holds this many pulse intervals at least: no false gaps
NICE_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 12, 15, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
COLORS = ("#3498db", "#e67e22", "#2ecc71", "#e74c3c")
FAST_TICKS = {"tickangle": 0, "ticklabeloverflow": "allow"}  # no forced layout per tick label


@dataclass(frozen=True)
class Series:
    column: str
    label: str
    axis: str = "y"  # "y" (left) or "y2" (right)


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str  # left axis
    series: tuple[Series, ...]
    unit2: str = ""  # right axis, when a series uses it
    empty: str = ""  # what to show when there is nothing to chart

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(s.column for s in self.series)


def bucket_width(window: str, rate_hz: float, span_s: float) -> float:
    """Seconds per bucket: the window in MAX_POINTS slices, never thinner than a few pulse intervals."""
    seconds = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    rate = rate_hz if rate_hz and math.isfinite(rate_hz) and rate_hz > 0 else NOMINAL_RATE_HZ
    if seconds is None:  # "all": what is buffered, re-bucketed when it doubles
        seconds = max(span_s, 1.0)
    wanted = max(seconds / MAX_POINTS, MIN_PULSES_PER_BUCKET / rate)
    return next((w for w in NICE_WIDTHS if w >= wanted - 1e-9), float(math.ceil(wanted)))


def bucketize(history: History, width_s: float, first: int, last: int, columns: Sequence[str], x_mode: str
              ) -> dict[str, list]:
    """Buckets first..last (inclusive, index = floor(time / width)) of `history`'s rows.

    Returns {"x": [...], column: {"mean", "min", "max"}: lists}; an empty bucket is None everywhere
    (a gap). x is the bucket's middle (ms since epoch, UTC) or the pulse id of its last row.
    """
    n = max(0, last - first + 1)
    t = history.column("timestamp")
    index = np.floor(t / width_s)
    keep = np.isfinite(index) & (index >= first) & (index <= last)
    slot = (index[keep] - first).astype(np.int64)
    counts = np.bincount(slot, minlength=n)[:n]
    out: dict[str, Any] = {}
    if x_mode == "pulse_id":
        pulse = history.column("pulse_id")[keep]
        last_pulse = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last_pulse, slot, pulse)
        out["x"] = [int(p) if c else None for p, c in zip(last_pulse.tolist(), counts.tolist())]
    else:
        middles = (np.arange(first, first + n) + 0.5) * width_s * 1000.0
        out["x"] = [round(m) for m in middles.tolist()]  # whole ms: buckets are 50 ms at least
    for name in columns:
        column = history.columns.get(name)
        values = column[keep] if column is not None else np.full(slot.size, np.nan)
        out[name] = _bucket_stats(values, slot, n)
    return out


def _bucket_stats(values: np.ndarray, slot: np.ndarray, n: int) -> dict[str, list]:
    finite = np.isfinite(values)
    count = np.bincount(slot[finite], minlength=n)[:n]
    total = np.bincount(slot[finite], weights=values[finite], minlength=n)[:n]
    low = np.full(n, np.inf)
    high = np.full(n, -np.inf)
    np.minimum.at(low, slot[finite], values[finite])
    np.maximum.at(high, slot[finite], values[finite])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    digits = significant_digits(values[finite])

    def listed(a: np.ndarray) -> list:
        return [float(f"{v:.{digits}g}") if c else None for v, c in zip(a.tolist(), count.tolist())]

    return {"mean": listed(mean), "min": listed(low), "max": listed(high)}


def significant_digits(values: np.ndarray) -> int:
    """Digits that resolve a thousandth of the values' spread at their magnitude (6 at least): 6 for 5.0-5.5 GeV,
    11 for epoch seconds; a chart needs no more, and half the bytes are digits (the CSV has them all)."""
    if values.size == 0:
        return 6
    magnitude = float(np.max(np.abs(values)))
    spread = float(values.max() - values.min())
    if magnitude == 0 or spread == 0:
        return 6
    return int(min(15, max(6, math.ceil(math.log10(magnitude / spread)) + 3)))


def band(data: Mapping[str, Any], column: str, width_x: float) -> tuple[list, list]:
    """Each bucket's min-max as its own closed quadrilateral (x0 max, x1 max, x1 min, x0 min, gap).

    A filled trace ("toself") closes each piece between gaps on its own, so an empty bucket stays
    empty (plotly.js's "tonexty" fills across gaps), and trimming old points five at a time
    removes whole buckets.
    """
    xs: list = []
    ys: list = []
    stats = data.get(column, {"min": [], "max": []})
    for x, low, high in zip(data.get("x", []), stats["min"], stats["max"]):
        if x is None or low is None:  # an empty bucket keeps its five places: trimming stays aligned
            xs += [None] * 5
            ys += [None] * 5
            continue
        left, right = x - width_x / 2, x + width_x / 2
        xs += [left, right, right, left, None]
        ys += [high, high, low, low, None]
    return xs, ys


def traces(chart: Chart, data: Mapping[str, Any], width_x: float) -> list[dict[str, Any]]:
    """Per series: its band (each bucket's min to max, filled) and its mean line."""
    out = []
    for index, series in enumerate(chart.series):
        color = COLORS[index % len(COLORS)]
        stats = data.get(series.column, {"mean": []})
        xs, ys = band(data, series.column, width_x)
        out.append({"type": "scatter", "mode": "lines", "name": plotly_text(f"{series.label} min–max"), "x": xs, "y": ys,
                    "yaxis": series.axis, "fill": "toself", "fillcolor": _transparent(color),
                    "line": {"width": 0, "color": color}, "hoverinfo": "skip", "showlegend": False})
        out.append({"type": "scatter", "mode": "lines", "name": plotly_text(series.label), "x": list(data.get("x", [])),
                    "y": list(stats["mean"]), "yaxis": series.axis, "connectgaps": False,
                    "line": {"width": 1.3, "color": color}})
    return out


def _transparent(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.28)"


def history_figure(chart: Chart, data: Mapping[str, Any], x_mode: str, revision: str, width_x: float
                   ) -> dict[str, Any]:
    """A complete chart (plain dict, no go.Figure). `width_x`: a bucket's width on the x axis."""
    x_axis: dict[str, Any] = {"gridcolor": "#444", "nticks": 7, **FAST_TICKS}
    if x_mode == "pulse_id":  # full integers: real pulse ids are ~1.5e10 and must not read "15G"
        x_axis.update(type="linear", tickformat="d", hoverformat="d", title={"text": "pulse id", "standoff": 2})
    else:
        x_axis.update(type="date", title={"text": "time (UTC)", "standoff": 2}, tickformat="%H:%M:%S",
                      hoverformat="%Y-%m-%d %H:%M:%S.%L")
    layout: dict[str, Any] = {
        "uirevision": revision, "margin": {"l": 58, "r": 54 if chart.unit2 else 12, "t": 20, "b": 34},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", "font": {"color": "#ddd", "size": 10},
        "title": {"text": plotly_text(chart.title), "font": {"size": 11}, "x": 0.01, "y": 0.98, "yanchor": "top"},
        "showlegend": len(chart.series) > 1, "hovermode": "x",
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom",
                   "font": {"size": 9}, "traceorder": "normal"},
        "xaxis": x_axis,
        "yaxis": {"gridcolor": "#444", "title": {"text": plotly_text(chart.unit), "standoff": 2}, "nticks": 4,
                  **FAST_TICKS},
    }
    if chart.unit2:
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False, "nticks": 4, "tickmode": "auto",
                            "title": {"text": plotly_text(chart.unit2), "standoff": 2}, **FAST_TICKS}
    if not chart.series:
        layout.update(xaxis={"visible": False}, yaxis={"visible": False}, annotations=[{
            "text": plotly_text(chart.empty), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"color": "#999", "size": 12}}])
    return {"data": traces(chart, data, width_x), "layout": layout}


def extend_data(chart: Chart, data: Mapping[str, Any], max_points: int, width_x: float
                ) -> tuple[dict, list, dict] | None:
    """extendData for one chart's traces (band and mean per series), or None when there is nothing new.

    `max_points` buckets are kept: as many points of a mean line, five times as many of a band.
    """
    if not chart.series or not data.get("x"):
        return None
    xs, ys, limits = [], [], []
    for series in chart.series:
        band_x, band_y = band(data, series.column, width_x)
        xs += [band_x, data["x"]]
        ys += [band_y, data[series.column]["mean"]]
        limits += [5 * max_points, max_points]
    return {"x": xs, "y": ys}, list(range(len(xs))), {"x": limits, "y": limits}  # plotly.js extendTraces


def plotly_text(text: str) -> str:
    """Stream-supplied text (channel names) for plotly titles and legends, which understand a little
    HTML: `<a href=...>` would become a link in the operator's page. Entities show as the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def window_statistics(history: History, columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """mean/std/min/max/n of each column over the rows given (NaN ignored)."""
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
