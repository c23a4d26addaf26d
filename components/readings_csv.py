"""CSV export of the recorded readings (button and `/api/readings.csv` share this builder)."""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
import pandas as pd

from stream.ring_buffer import History

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LEAD_COLUMNS = ("pulse_id", "timestamp", "timestamp_epoch")


def csv_column_name(name: str) -> str:
    """Channel names go out exactly as in the stream, except that a leading formula character is
    quoted so a spreadsheet shows the name instead of evaluating it, and that a channel named like
    one of the lead columns gets " (channel)" appended instead of replacing that column."""
    if name in LEAD_COLUMNS:
        return name + " (channel)"
    return "'" + name if name.startswith(_FORMULA_START) else name


def readings_frame(history: History) -> pd.DataFrame:
    """pulse_id, timestamp (ISO-8601 UTC), timestamp_epoch, every scalar channel, then the columns
    computed per pulse: beam statistics in pixels, their calibrated copies, regions of interest."""
    epoch = history.column("timestamp")
    # Whole microseconds first: seconds * 1e9 in float would put 1800000000.01 at ...00.009999.
    micros = np.round(np.where(np.isfinite(epoch), epoch, np.nan) * 1e6)
    stamps = pd.to_datetime(micros, unit="us", utc=True, errors="coerce")
    iso = pd.Series(stamps).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    data: dict[str, object] = {
        "pulse_id": history.column("pulse_id"),
        "timestamp": iso.to_numpy(),
        "timestamp_epoch": epoch,
    }
    for name in history.channels:
        data[csv_column_name(name)] = history.column(name)
    for name in history.computed:
        data[name] = history.column(name)
    return pd.DataFrame(data)


def readings_csv(history: History) -> str:
    return "".join(readings_csv_chunks(history))


def readings_csv_chunks(history: History, rows: int = 20_000) -> Iterator[str]:
    """The CSV in pieces of `rows` rows (an hour at 100 Hz is 360 000 rows and ~100 MB: streamed,
    never one string, and the web threads get the GIL between pieces)."""
    frame = readings_frame(history)
    for start in range(0, max(len(frame), 1), rows):
        buffer = io.StringIO()
        frame.iloc[start:start + rows].to_csv(buffer, index=False, header=start == 0, lineterminator="\r\n")
        yield buffer.getvalue()
