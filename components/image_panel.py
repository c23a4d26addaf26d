"""Detector image panel: layout, and the pure renderer from a camera frame to a compact heatmap payload.

The browser is the bottleneck (a full-resolution plotly heatmap costs ~46 ms to draw), so the server
sends only what the view shows: the visible region, block-averaged to about one value per
`SCREEN_PX_PER_BIN` screen pixels, as base64 uint8 levels with a colour bar labelled in physical units.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
from dash import dcc, html

from . import ids

COLORMAPS = ("Viridis", "Inferno", "Plasma", "Cividis", "Greys", "Jet", "Hot")
SCREEN_PX_PER_BIN = 2  # one image bin per 2x2 screen pixels keeps browser drawing cheap
DEFAULT_GRAPH_PX = (640, 520)  # until the browser reports the graph's real size
MAX_BINS = 1024  # per axis, whatever the browser claims
IMAGE_DOMAIN_X = (0.0, 0.80)
IMAGE_DOMAIN_Y = (0.0, 0.78)
PROFILE_DOMAIN_X = (0.84, 1.0)
PROFILE_DOMAIN_Y = (0.82, 1.0)
LEVELS = 255
HOLD_FRACTION = 0.6  # an automatic colour range is kept while a frame spans at least this much of it
FAST_TICKS = {"tickangle": 0, "ticklabeloverflow": "allow"}  # axis settings that keep redraws cheap


@dataclass(frozen=True)
class ImageView:
    """What one browser wants to see; equal views share one rendered payload."""

    colormap: str = "Viridis"
    scale: str = "linear"  # "linear" | "log"
    zmin: float | None = None  # None = automatic
    zmax: float | None = None
    x_range: tuple[int, int] | None = None  # visible pixel columns [x0, x1), None = all
    y_range: tuple[int, int] | None = None
    bins_x: int = DEFAULT_GRAPH_PX[0] // SCREEN_PX_PER_BIN
    bins_y: int = DEFAULT_GRAPH_PX[1] // SCREEN_PX_PER_BIN


def view_from_settings(settings: dict | None, view: dict | None) -> ImageView:
    """Build an ImageView from the browser's stores, validating everything (they are user input)."""
    settings = settings or {}
    view = view or {}
    colormap = settings.get("colormap") if settings.get("colormap") in COLORMAPS else "Viridis"
    scale = "log" if settings.get("scale") == "log" else "linear"
    zmin = zmax = None
    if settings.get("range_mode") == "manual":
        zmin, zmax = _finite(settings.get("zmin")), _finite(settings.get("zmax"))
        if zmin is not None and zmax is not None and zmin >= zmax:
            zmin = zmax = None
    width = _finite(view.get("width")) or DEFAULT_GRAPH_PX[0]
    height = _finite(view.get("height")) or DEFAULT_GRAPH_PX[1]
    bins_x = int(min(MAX_BINS, max(8, width * (IMAGE_DOMAIN_X[1] - IMAGE_DOMAIN_X[0]) / SCREEN_PX_PER_BIN)))
    bins_y = int(min(MAX_BINS, max(8, height * (IMAGE_DOMAIN_Y[1] - IMAGE_DOMAIN_Y[0]) / SCREEN_PX_PER_BIN)))
    return ImageView(colormap, scale, zmin, zmax, _pixel_range(view.get("x")), _pixel_range(view.get("y")),
                     bins_x, bins_y)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _pixel_range(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    lo, hi = _finite(value[0]), _finite(value[1])
    if lo is None or hi is None:
        return None
    lo, hi = sorted((lo, hi))
    lo_i, hi_i = int(math.floor(lo + 0.5)), int(math.ceil(hi + 0.5))
    lo_i, hi_i = max(lo_i, -(2**31)), min(hi_i, 2**31)
    return (lo_i, hi_i) if hi_i > lo_i else None


def typed_array(array: np.ndarray) -> dict[str, str]:
    """plotly.js typed-array spec (base64); numpy inside a Patch would otherwise go out as a list."""
    array = np.ascontiguousarray(array)
    dtype = {"uint8": "u1", "uint16": "u2", "float32": "f4", "float64": "f8", "int32": "i4"}[array.dtype.name]
    spec = {"dtype": dtype, "bdata": base64.b64encode(array.tobytes()).decode("ascii")}
    if array.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in array.shape)
    return spec


def _bin(image: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Block-average by integer factors (float32); the ragged edge is dropped."""
    h, w = image.shape[0] // fy, image.shape[1] // fx
    if fy == 1 and fx == 1:
        return image.astype(np.float32, copy=False)
    cropped = image[: h * fy, : w * fx]
    return cropped.reshape(h, fy, w, fx).mean(axis=(1, 3), dtype=np.float32)


def render_image(image: np.ndarray, view: ImageView, hold: tuple[float, float] | list[float] | None = None
                 ) -> dict[str, Any]:
    """Render one frame for one view. Returns plain JSON-ready values (typed arrays for the data).

    `hold` is the automatic colour range of this view's previous frame ("range" of its payload): it
    is kept while the new frame fits inside it and spans at least HOLD_FRACTION of it, so the colour
    bar (and with it the page's layout) does not change with every frame's noise.
    """
    height, width = image.shape
    x0, x1 = view.x_range or (0, width)
    y0, y1 = view.y_range or (0, height)
    x0, x1 = max(0, min(x0, width - 1)), max(1, min(x1, width))
    y0, y1 = max(0, min(y0, height - 1)), max(1, min(y1, height))
    if x1 <= x0:
        x0, x1 = 0, width
    if y1 <= y0:
        y0, y1 = 0, height
    region = image[y0:y1, x0:x1]
    fx = max(1, math.ceil(region.shape[1] / view.bins_x))
    fy = max(1, math.ceil(region.shape[0] / view.bins_y))
    # Square bins keep the beam's aspect ratio honest; only a strip thinner than one bin gets
    # a shorter bin across it (a square one would leave the long side beyond the view's bins).
    f = max(fx, fy)
    fy, fx = min(f, region.shape[0]), min(f, region.shape[1])
    f = max(fx, fy)
    binned = _bin(region, fy, fx)
    finite = np.isfinite(binned)
    all_finite = bool(finite.all())
    values = binned if all_finite else np.where(finite, binned, np.nan)
    if view.scale == "log":
        positive = values[values > 0] if values.size else values
        floor = float(positive.min()) if positive.size else 1.0
        shown = np.log10(np.where(values > 0, values, floor)).astype(np.float32)
        lo_req = math.log10(view.zmin) if view.zmin is not None and view.zmin > 0 else None
        hi_req = math.log10(view.zmax) if view.zmax is not None and view.zmax > 0 else None
    else:
        shown = values
        lo_req, hi_req = view.zmin, view.zmax
    if lo_req is None or hi_req is None:
        with np.errstate(all="ignore"):
            auto_lo = float(np.nanmin(shown)) if np.isfinite(shown).any() else 0.0
            auto_hi = float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0
        auto_lo, auto_hi = nice_range(auto_lo, auto_hi)
        if hold is not None and len(hold) == 2:
            held_lo, held_hi = float(hold[0]), float(hold[1])
            if held_lo <= auto_lo and auto_hi <= held_hi and auto_hi - auto_lo >= HOLD_FRACTION * (held_hi - held_lo):
                auto_lo, auto_hi = held_lo, held_hi
    lo = lo_req if lo_req is not None else auto_lo
    hi = hi_req if hi_req is not None else auto_hi
    if not hi > lo:
        hi = lo + 1.0
    with np.errstate(all="ignore"):
        levels = (shown - np.float32(lo)) * np.float32(LEVELS / (hi - lo))
        np.clip(levels, 0, LEVELS, out=levels)
    if not all_finite:
        levels = np.nan_to_num(levels, nan=0.0)
    z = levels.astype(np.uint8)
    with np.errstate(all="ignore"):
        profile_x = np.nan_to_num(values.sum(axis=0, dtype=np.float64) * fy).astype(np.float32)
        profile_y = np.nan_to_num(values.sum(axis=1, dtype=np.float64) * fx).astype(np.float32)
        peak = float(np.nanmax(values)) if np.isfinite(values).any() else math.nan
    ticks = np.linspace(0, LEVELS, 5)
    tick_values = lo + (hi - lo) * ticks / LEVELS
    if view.scale == "log":
        tick_values = 10.0**tick_values
    return {
        "z": typed_array(z),
        "x0": x0 + (fx - 1) / 2.0,
        "dx": fx,
        "y0": y0 + (fy - 1) / 2.0,
        "dy": fy,
        "colorscale": view.colormap,
        "tickvals": ticks.tolist(),
        "ticktext": [format_value(v) for v in tick_values],
        "profile_x": typed_array(profile_x),
        "profile_y": typed_array(profile_y),
        "bin": f,
        "range": [float(lo), float(hi)] if lo_req is None or hi_req is None else None,
        "shape": [int(height), int(width)],
        "shown": [int(z.shape[0]), int(z.shape[1])],
        "peak": peak,
        "bytes": len(z.tobytes()),
    }


def nice_range(lo: float, hi: float) -> tuple[float, float]:
    """Widen [lo, hi] to round numbers (about 1/20 of the span), so an automatic colour range, and
    with it the colour bar, does not change with every frame's noise."""
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return lo, hi
    step = 10.0 ** math.floor(math.log10(span / 20.0))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if span / (step * factor) <= 20.0:
            step *= factor
            break
    # min/max: the rounded limits may miss the data by one ulp (e.g. 14 * 0.05 > 0.7).
    return min(lo, math.floor(lo / step) * step), max(hi, math.ceil(hi / step) * step)


def format_value(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-2):
        return f"{value:.2e}"
    return f"{value:.4g}"


def image_figure(uirevision: str = "image") -> dict[str, Any]:
    """The initial (empty) figure: heatmap plus x/y profiles beside it. Updated later by Patch."""
    # Every update redraws the axes: fixed tick angles and no overflow check spare plotly.js a forced
    # layout per tick label (about a quarter of its drawing time).
    axis = {"showgrid": False, "zeroline": False, "color": "#aaa", **FAST_TICKS}
    return {
        "data": [
            {
                "type": "heatmap",
                "z": [[0]],
                "zmin": 0,
                "zmax": LEVELS,
                "colorscale": "Viridis",
                "hovertemplate": "x %{x:.0f} px<br>y %{y:.0f} px<br>level %{z}/255<extra></extra>",
                "colorbar": {"orientation": "h", "y": -0.1, "yanchor": "top", "thickness": 12, "len": 0.8,
                             "x": 0.4, "tickvals": [], "ticktext": [], "tickfont": {"color": "#ccc"},
                             **FAST_TICKS},
                "xaxis": "x",
                "yaxis": "y",
            },
            {"type": "scatter", "mode": "lines", "name": "x profile", "y": [], "x0": 0, "dx": 1, "xaxis": "x",
             "yaxis": "y2", "line": {"color": "#f39c12", "width": 1}, "hoverinfo": "skip"},
            {"type": "scatter", "mode": "lines", "name": "y profile", "x": [], "y0": 0, "dy": 1, "xaxis": "x2",
             "yaxis": "y", "line": {"color": "#f39c12", "width": 1}, "hoverinfo": "skip"},
        ],
        "layout": {
            "uirevision": uirevision,
            "margin": {"l": 50, "r": 10, "t": 10, "b": 30},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"color": "#ddd"},
            "showlegend": False,
            "xaxis": {**axis, "domain": list(IMAGE_DOMAIN_X), "title": {"text": "x (px)"}, "constrain": "domain"},
            "yaxis": {**axis, "domain": list(IMAGE_DOMAIN_Y), "autorange": "reversed", "scaleanchor": "x",
                      "constrain": "domain", "title": {"text": "y (px)"}},
            # The profile axes carry no labels; invisible, they are not redrawn with every frame either.
            "xaxis2": {**axis, "domain": list(PROFILE_DOMAIN_X), "anchor": "y", "visible": False},
            "yaxis2": {**axis, "domain": list(PROFILE_DOMAIN_Y), "anchor": "x", "visible": False},
            "annotations": [],
        },
    }


def stale_annotation(age_s: float) -> list[dict[str, Any]]:
    return [{
        "text": f"STALE — last frame {age_s:.0f} s ago",
        "xref": "paper", "yref": "paper", "x": 0.4, "y": 0.4, "showarrow": False,
        "font": {"size": 22, "color": "#e74c3c"}, "bgcolor": "rgba(0,0,0,0.6)",
    }]


def image_panel() -> dbc.Card:
    controls = dbc.Row(
        [
            dbc.Col(dbc.Select(id=ids.COLORMAP, options=[{"label": c, "value": c} for c in COLORMAPS],
                               value="Viridis", size="sm"), width="auto"),
            dbc.Col(dbc.RadioItems(id=ids.SCALE, options=[{"label": "linear", "value": "linear"},
                                                         {"label": "log", "value": "log"}],
                                   value="linear", inline=True), width="auto"),
            dbc.Col(dbc.RadioItems(id=ids.RANGE_MODE, options=[{"label": "auto range", "value": "auto"},
                                                              {"label": "manual", "value": "manual"}],
                                   value="auto", inline=True), width="auto"),
            dbc.Col(dbc.Input(id=ids.RANGE_MIN, type="number", placeholder="min", size="sm", debounce=True,
                              style={"width": "6rem"}), width="auto"),
            dbc.Col(dbc.Input(id=ids.RANGE_MAX, type="number", placeholder="max", size="sm", debounce=True,
                              style={"width": "6rem"}), width="auto"),
            dbc.Col(dbc.Button("Pause", id=ids.PAUSE_BUTTON, color="warning", size="sm", outline=True,
                               n_clicks=0), width="auto"),
        ],
        className="g-2 align-items-center mb-1",
    )
    return dbc.Card(
        dbc.CardBody([
            controls,
            dcc.Graph(id=ids.IMAGE_GRAPH, figure=image_figure(), className="image-graph",
                      config={"displaylogo": False, "scrollZoom": False}, style={"height": "560px"}),
            html.Div(id=ids.IMAGE_INFO, className="small text-muted"),
            dcc.Store(id=ids.IMAGE_REQUEST),
            dcc.Store(id=ids.IMAGE_RESPONSE),
            dcc.Store(id=ids.IMAGE_VIEW, data={}),
            dcc.Store(id=ids.PAUSED, data=False),
            dcc.Store(id=ids.IMAGE_SETTINGS),
            dcc.Store(id=ids.IMAGE_LOOP_SINK),
        ]),
        className="h-100",
    )
