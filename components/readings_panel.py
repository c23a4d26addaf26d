"""Readings panel: the latest pulse's values as text, with units."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from stream.ring_buffer import History

from . import ids
from .image_panel import format_value

READING_IDS = (ids.BEAM_ENERGY, ids.REPETITION_RATE, ids.PULSE_ID, ids.TIMESTAMP, ids.IMAGE_SIZE, ids.CENTROID,
               ids.RMS_SIZE)


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with microseconds, e.g. 2026-11-25T12:00:00.123456Z."""
    if not math.isfinite(epoch_s):
        return ""
    try:
        stamp = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(value: Any, unit: str, digits: str = ".4f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:{digits}} {unit}".strip() if math.isfinite(number) else "—"


def readings_text(latest: History, energy: str, rate: str, image_shape: tuple[int, ...] | None) -> tuple[str, ...]:
    """Texts for READING_IDS from the newest history row (or dashes when there is none)."""
    if len(latest) == 0:
        return ("—",) * len(READING_IDS)
    row = {name: col[-1] for name, col in latest.columns.items()}
    size = f"{image_shape[1]} × {image_shape[0]} px" if image_shape and len(image_shape) == 2 else "—"
    centroid = (f"{format_value(row['beam_centroid_x'])}, {format_value(row['beam_centroid_y'])} px"
                if math.isfinite(row["beam_centroid_x"]) else "—")
    rms = f"{format_value(row['beam_rms_x'])} × {format_value(row['beam_rms_y'])} px" if math.isfinite(row["beam_rms_x"]) else "—"
    return (
        _number(row.get(energy), "GeV"),
        _number(row.get(rate), "Hz", ".2f"),
        str(int(row["pulse_id"])),
        iso_utc(float(row["timestamp"])) or "—",
        size,
        centroid,
        rms,
    )


def readings_panel() -> dbc.Card:
    labels = ("Beam energy", "Repetition rate", "Pulse id", "Timestamp (UTC)", "Image size", "Centroid x, y",
              "RMS size x × y")
    items = [
        html.Div([html.Div(label, className="reading-label"), html.Div("—", id=reading_id, className="reading-value")],
                 className="reading")
        for label, reading_id in zip(labels, READING_IDS)
    ]
    return dbc.Card(dbc.CardBody(items, className="readings"), className="mb-3")
