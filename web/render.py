"""Pure rendering of one camera frame for one view: the visible region, binned to the screen, as levels.

The browser paints levels 0…254 through the view's colour scale (the same stops plotly.js gets, so
the two agree pixel for pixel); 255 marks a bin holding a saturated pixel (drawn in a warning
colour). Square bins keep the beam's aspect honest. Everything here is numpy in, plain values out.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.colors

from components.formatting import format_value

COLORMAPS = {"Viridis": "Viridis", "Inferno": "Inferno", "Plasma": "Plasma", "Cividis": "Cividis",
             "Grey": "Greys_r", "Jet": "Jet", "Hot": "Hot"}  # shown name -> plotly's name
SATURATED_COLOR = "rgb(255, 0, 255)"
TOP_LEVEL = 254  # levels 0..254 carry the colour scale
SATURATED = 255
MAX_BINS = 1024  # per axis, whatever the browser claims
HOLD_FRACTION = 0.6  # an automatic colour range is kept while a frame spans at least this much of it
HISTOGRAM_BINS = 128


@dataclass(frozen=True)
class View:
    """What one browser wants to see; equal views share one rendered frame."""

    colormap: str = "Viridis"
    scale: str = "linear"  # "linear" | "log"
    zmin: float | None = None  # manual colour range in image units; None = automatic
    zmax: float | None = None
    region: tuple[int, int, int, int] | None = None  # visible pixels [c0, c1) x [r0, r1); None = all
    bins_x: int = 320
    bins_y: int = 260
    average: int = 1  # mean of the last N frames
    background: bool = False  # subtract the camera's background
    saturation: float | None = None  # pixels at or above this are saturated; None = off


@dataclass(frozen=True)
class Rendered:
    meta: dict[str, Any]  # JSON-ready
    parts: tuple[tuple[str, np.ndarray], ...]  # name -> 1-D array (levels uint8, profiles float32, ...)


def saturation_level(dtype: np.dtype, chosen: float | None) -> float | None:
    """Pixels at or above this are saturated: the chosen level, else the image type's maximum
    (integer cameras; a float camera has none)."""
    if chosen is not None and math.isfinite(chosen):
        return float(chosen)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else None


def colorscale(name: str) -> list[list[Any]]:
    """The colour stops of a colormap as [t, "rgb(r, g, b)"] (what both plotly.js and the painter use)."""
    return [list(stop) for stop in _colorscale(name)]


@functools.lru_cache(maxsize=None)
def _colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """Resolved once per name: plotly's validators cost ~0.5 ms a call, every render used to pay it."""
    stops = plotly.colors.get_colorscale(COLORMAPS.get(name, "Viridis"))
    out = []
    for t, colour in stops:
        rgb = plotly.colors.hex_to_rgb(colour) if colour.startswith("#") else plotly.colors.unlabel_rgb(colour)
        out.append((float(t), "rgb({}, {}, {})".format(*(int(round(c)) for c in rgb))))
    return tuple(out)


def region_of(shape: tuple[int, int], region: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """The requested region clipped to the image; the whole image when nothing valid remains."""
    height, width = shape
    if region is None:
        return 0, width, 0, height
    c0, c1, r0, r1 = region
    c0, c1 = max(0, min(c0, width - 1)), max(1, min(c1, width))
    r0, r1 = max(0, min(r0, height - 1)), max(1, min(r1, height))
    if c1 <= c0:
        c0, c1 = 0, width
    if r1 <= r0:
        r0, r1 = 0, height
    return c0, c1, r0, r1


def bin_factor(region: tuple[int, int, int, int], bins_x: int, bins_y: int) -> int:
    """One square bin factor so the region fits the screen bins."""
    c0, c1, r0, r1 = region
    fx = math.ceil((c1 - c0) / max(1, min(MAX_BINS, bins_x)))
    fy = math.ceil((r1 - r0) / max(1, min(MAX_BINS, bins_y)))
    return max(1, fx, fy)


def block_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Block-average by f × f (float32), NaN pixels left out; a ragged edge becomes a smaller last block."""
    if f == 1:
        return image.astype(np.float32, copy=False)
    h, w = image.shape
    hb, wb = -(-h // f), -(-w // f)
    floats = image.dtype.kind in "fc"
    if f <= 16:  # f² strided adds beat numpy's mean over two strided axes by 3-5x
        total = np.zeros((hb, wb), dtype=np.float64)
        for i in range(f):
            for j in range(f):
                part = image[i::f, j::f]
                total[:part.shape[0], :part.shape[1]] += part
        rows, cols = np.full(hb, f), np.full(wb, f)  # pixels per block: the last ones of a ragged edge fewer
        rows[-1], cols[-1] = h - (hb - 1) * f, w - (wb - 1) * f
        mean = (total / np.outer(rows, cols)).astype(np.float32)
        if not floats or not np.isnan(mean).any():
            return mean
    elif not (h % f or w % f) and (not floats or not np.isnan(image).any()):
        return image.reshape(hb, f, wb, f).mean(axis=(1, 3), dtype=np.float32)
    # NaN pixels or a ragged edge: pad with NaN and average what each block has
    padded = np.full((hb * f, wb * f), np.nan, dtype=np.float32)
    padded[:h, :w] = image
    blocks = padded.reshape(hb, f, wb, f)
    present = ~np.isnan(blocks)
    total = np.where(present, blocks, 0.0).sum(axis=(1, 3), dtype=np.float64)
    with np.errstate(all="ignore"):  # a block of NaN only is NaN (nanmean would warn from every thread)
        return (total / present.sum(axis=(1, 3))).astype(np.float32)


def block_any(mask: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return mask
    h, w = mask.shape
    hb, wb = -(-h // f), -(-w // f)
    padded = np.zeros((hb * f, wb * f), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(hb, f, wb, f).any(axis=(1, 3))


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


def colour_range(shown: np.ndarray, view: View, hold: tuple[float, float] | None,
                 finite: np.ndarray | None = None) -> tuple[float, float, bool]:
    """(lo, hi, automatic) in the units of `shown` (log10 of the image for a log view); `finite`:
    the finite values of `shown` when the caller has them already."""
    manual = view.zmin is not None and view.zmax is not None
    if manual:
        lo, hi = float(view.zmin), float(view.zmax)  # type: ignore[arg-type]
        if view.scale == "log":
            lo, hi = math.log10(lo), math.log10(hi)
        return lo, hi, False
    if finite is None:
        finite = shown[np.isfinite(shown)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = nice_range(lo, hi) if view.scale == "linear" else (math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10)
    if hold is not None:
        held_lo, held_hi = hold
        if held_lo <= lo and hi <= held_hi and hi - lo >= HOLD_FRACTION * (held_hi - held_lo):
            lo, hi = held_lo, held_hi
    if not hi > lo:  # a constant frame; beyond 1e16, lo + 1 == lo
        hi = lo + max(1.0, abs(lo) * 1e-6)
    return lo, hi, True


def to_levels(shown: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        levels = (shown - np.float32(lo)) * np.float32(TOP_LEVEL / (hi - lo))
        np.fmax(levels, 0, out=levels)  # fmax/fmin return the number where the other is NaN: NaN -> 0
        np.fmin(levels, TOP_LEVEL, out=levels)
    return levels.astype(np.uint8)


def colour_ticks(lo: float, hi: float, scale: str) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at round values: positions on the level scale, labels in image units."""
    if scale == "log":
        values = _log_ticks(lo, hi)
        positions = [(math.log10(v) - lo) / (hi - lo) * TOP_LEVEL for v in values]
    else:
        values = _linear_ticks(lo, hi)
        positions = [(v - lo) / (hi - lo) * TOP_LEVEL for v in values]
    return [round(p, 3) for p in positions], tick_labels(values)


def tick_labels(values: list[float]) -> list[str]:
    """One style for one colour bar: whole counts with every digit, else the readings' format."""
    if values and all(abs(v - round(v)) < 1e-9 * max(1.0, abs(v)) and abs(v) < 1e9 for v in values):
        return [str(int(round(v))) for v in values]
    return [format_value(v) for v in values]


def _linear_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    span = hi - lo
    step = 10.0 ** math.floor(math.log10(span / target))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if span / (step * factor) <= target:
            step *= factor
            break
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 10, 100, ... within [10**lo, 10**hi]; with 1-2-5 between them when there are few decades."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    mantissas = (1, 2, 5) if hi - lo <= 3 else (1,)
    values = [m * 10.0**d for d in decades for m in mantissas]
    inside = [v for v in values if lo - 1e-9 <= math.log10(v) <= hi + 1e-9]
    return inside or [10.0 ** lo, 10.0 ** hi]


def histogram(finite: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float, float]:
    """Counts of the displayed bins (their finite values) over their own extent (not the colour range,
    which is marked on it): HISTOGRAM_BINS equal bins, the last one closed, as np.histogram's."""
    if finite.size == 0:
        return np.zeros(HISTOGRAM_BINS, dtype=np.float32), lo, hi
    first, last = float(finite.min()), float(finite.max())
    if not last > first or not math.isfinite(last - first):
        counts, _ = np.histogram(finite, bins=HISTOGRAM_BINS, range=(first, max(last, first + 1.0)))
        return counts.astype(np.float32), first, max(last, first + 1.0)
    with np.errstate(all="ignore"):
        scaled = (finite - finite.dtype.type(first)) * finite.dtype.type(HISTOGRAM_BINS / (last - first))
    index = scaled.astype(np.intp)  # bincount's own type: any other is converted in a fresh array (slower)
    np.minimum(index, HISTOGRAM_BINS - 1, out=index)
    return np.bincount(index, minlength=HISTOGRAM_BINS).astype(np.float32), first, last


def block_mean_1d(values: np.ndarray, f: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    n = -(-values.size // f)
    padded = np.full(n * f, np.nan)
    padded[:values.size] = values
    with np.errstate(all="ignore"):
        return np.nanmean(padded.reshape(n, f), axis=1).astype(np.float32)


def render(image: np.ndarray, view: View, hold: tuple[float, float] | None = None,
           saturated: np.ndarray | None = None, curves_x: dict[str, np.ndarray] | None = None,
           curves_y: dict[str, np.ndarray] | None = None) -> Rendered:
    """Render `image` (the frame as shown: averaged / background-subtracted already) for `view`.

    `saturated`: boolean mask of the raw frame's saturated pixels (same shape), or None.
    `curves_x/_y`: full-length profile-panel curves ("profile", "fit", "stream fit") in image
    units per pixel column / row; they are cut to the region and binned like the picture.
    """
    c0, c1, r0, r1 = region = region_of(image.shape, view.region)
    f = bin_factor(region, view.bins_x, view.bins_y)
    values = block_mean(image[r0:r1, c0:c1], f)
    with np.errstate(all="ignore"):
        shown = np.log10(np.where(values > 0, values, np.nan)) if view.scale == "log" else values
    finite = values[np.isfinite(values)]
    lo, hi, automatic = colour_range(shown, view, hold, finite if shown is values else None)
    levels = to_levels(shown, lo, hi)
    count = 0
    if saturated is not None:
        mask = saturated[r0:r1, c0:c1]
        count = int(np.count_nonzero(mask))
        if count:
            levels[block_any(mask, f)] = SATURATED
    tickvals, ticktext = colour_ticks(lo, hi, view.scale)
    counts, h_lo, h_hi = histogram(finite, lo, hi)
    parts = [("levels", levels.reshape(-1)), ("histogram", counts)]
    for axis, curves, a, b in (("x", curves_x, c0, c1), ("y", curves_y, r0, r1)):
        for name, curve in (curves or {}).items():
            parts.append((f"{axis}_{name}", block_mean_1d(curve[a:b], f)))
    meta = {
        "region": [c0, c1, r0, r1], "bin": f, "rows": int(levels.shape[0]), "cols": int(levels.shape[1]),
        # The colour range in image units, and in the units the levels were scaled in (log10 for
        # a log view), which the next frame of this view may hold on to.
        "range": [10.0**lo, 10.0**hi] if view.scale == "log" else [lo, hi], "scaled_range": [lo, hi],
        "auto": automatic, "scale": view.scale,
        "colorscale": colorscale(view.colormap), "saturated_color": SATURATED_COLOR,
        "ticks": {"vals": tickvals, "text": ticktext},
        "histogram": {"lo": h_lo, "hi": h_hi, "bins": HISTOGRAM_BINS},
        "peak": float(finite.max()) if finite.size else None, "saturated": count,
    }
    return Rendered(meta, tuple(parts))
