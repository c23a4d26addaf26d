"""Readings panel: the newest pulse's values as text, with units; and the pure builder of those texts.

Positions and sizes read in the image's units (µm when calibrated, with pixels beside them); the
stream's own statistics (cam_server's) are labelled as the stream's.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from dash import dcc, html

from stream.ingest import calibrated_name
from stream.layout import Axis, StreamLayout
from stream.ring_buffer import History

from . import ids
from .formatting import format_value, iso_utc, pulse_id, with_unit

READINGS = ((ids.BEAM_ENERGY, "Beam energy"), (ids.REPETITION_RATE, "Repetition rate"), (ids.PULSE_ID, "Pulse id"),
            (ids.TIMESTAMP, "Time (UTC)"), (ids.IMAGE_SIZE, "Image"), (ids.CENTROID, "Centroid x, y"),
            (ids.RMS_SIZE, "RMS size x × y"), (ids.FIT, "Gaussian fit"), (ids.STREAM_STATISTICS, "Stream's own"),
            (ids.SATURATED, "Saturated"), (ids.ROI_VALUES, "Regions"))
READING_IDS = tuple(reading_id for reading_id, _ in READINGS)
NOT_IN_STREAM = "not in stream"


def _pair(row: Mapping[str, float], column: str, axes: tuple[Axis, Axis], sep: str = ", ") -> str:
    """'x, y unit (x, y px)' of a statistics column pair, in axis units when calibrated."""
    x, y = row.get(f"{column}_x", math.nan), row.get(f"{column}_y", math.nan)
    if not (math.isfinite(x) and math.isfinite(y)):
        return "—"
    pixels = f"{format_value(x)}{sep}{format_value(y)} px"
    axis_x, axis_y = axes
    if not (axis_x.calibrated and axis_y.calibrated):
        if axis_x.identity and axis_y.identity or column != "beam_centroid":
            return pixels
        # mirrored pixel axes: positions as the axes read them, the pixel indices beside
        return f"{format_value(axis_x.at(x))}{sep}{format_value(axis_y.at(y))} px (pixel {pixels[:-3]})"
    cx = row.get(calibrated_name(f"{column}_x", axis_x.unit), math.nan)
    cy = row.get(calibrated_name(f"{column}_y", axis_y.unit), math.nan)
    return f"{format_value(cx)}{sep}{format_value(cy)} {axis_x.unit} ({pixels})"


def _fit(row: Mapping[str, float], axes: tuple[Axis, Axis]) -> str:
    out = []
    for name, axis in zip("xy", axes):
        mean, sigma = row.get(f"beam_fit_mean_{name}", math.nan), row.get(f"beam_fit_sigma_{name}", math.nan)
        if not (math.isfinite(mean) and math.isfinite(sigma)):
            out.append(f"{name}: —")
            continue
        if axis.calibrated or not axis.identity:
            mean, sigma, unit = axis.at(mean), abs(axis.step) * sigma, axis.unit
        else:
            unit = "px"
        out.append(f"{name}: m={format_value(mean)} σ={format_value(sigma)} {unit}")
    return " · ".join(out)


def _stream_statistics(row: Mapping[str, float], layout: StreamLayout | None, axes: tuple[Axis, Axis]) -> str:
    if layout is None or not layout.stream_statistics:
        return NOT_IN_STREAM
    unit = axes[0].unit
    out = []
    for label, x_name, y_name in layout.stream_statistics:
        if label in ("centre of mass", "fit mean", "fit σ"):
            x, y = row.get(x_name or "", math.nan), row.get(y_name or "", math.nan)
            out.append(f"{label} {format_value(x)}, {format_value(y)}")
    return (" · ".join(out) + f" {unit}") if out else NOT_IN_STREAM


def _rois(row: Mapping[str, float], names: tuple[str, ...]) -> str:
    if not names:
        return "none"
    return " · ".join(f"{name}: Σ {format_value(row.get(f'roi_{name}_sum', math.nan))}, "
                      f"max {format_value(row.get(f'roi_{name}_max', math.nan))}" for name in names)


def readings_text(latest: History, layout: StreamLayout | None, axes: tuple[Axis, Axis],
                  shape: tuple[int, int] | None, saturated: int | None, rois: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Texts for READING_IDS from the newest history row (dashes when there is none)."""
    if len(latest) == 0:
        return ("—",) * len(READING_IDS)
    row: dict[str, Any] = {name: col[-1] for name, col in latest.columns.items()}
    energy = layout.energy if layout else None
    rate = layout.rate if layout else None
    size = "—"
    if shape:
        height, width = shape
        size = f"{width} × {height} px" + (f" (axes in {axes[0].unit})" if axes[0].calibrated else "")
    return (
        with_unit(row.get(energy), "GeV", ".4f") if energy else NOT_IN_STREAM,
        with_unit(row.get(rate), "Hz", ".2f") if rate else NOT_IN_STREAM,
        pulse_id(row["pulse_id"]),
        iso_utc(float(row["timestamp"])) or "—",
        size,
        _pair(row, "beam_centroid", axes),
        _pair(row, "beam_rms", axes, " × "),
        _fit(row, axes),
        _stream_statistics(row, layout, axes),
        "—" if saturated is None else f"{saturated:,} px",
        _rois(row, rois),
    )


def readings_panel() -> html.Div:
    items = [html.Div([html.Div(label, className="reading-label"),
                       html.Div("—", id=reading_id, className="reading-value")], className="reading")
             for reading_id, label in READINGS]
    # 4 Hz: as fast as anyone reads numbers; the frame on screen carries its own pulse id.
    return html.Div([html.Div(items, className="readings"), dcc.Interval(id=ids.READINGS_INTERVAL, interval=250)],
                    className="readings-panel panel")
