"""CSV export: the button (dcc.Download) and the HTTP API, both read only the ring buffer."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import flask
from dash import Dash, Input, Output, State, dcc

from components import ids
from components.export import readings_csv
from components.history_panel import WINDOWS
from stream.ring_buffer import History, RingBuffer

from .health import source_status

MAX_SECONDS = 10 * 365 * 86400.0


def recent_readings(buffer: RingBuffer, seconds: float | None) -> History:
    """Rows whose pulse time is within `seconds` of the newest pulse (all rows for None)."""
    if seconds is None:
        return buffer.read()
    newest = buffer.read(since=buffer.count - 1)
    if len(newest) == 0:
        return newest
    return buffer.read(newer_than=float(newest.column("timestamp")[-1]) - seconds)


def csv_filename() -> str:
    return "readings-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ".csv"


def register(app: Dash, source: Any) -> None:
    buffer = source.buffer

    @app.callback(
        Output(ids.EXPORT_DOWNLOAD, "data"),
        Input(ids.EXPORT_BUTTON, "n_clicks"),
        State(ids.HISTORY_WINDOW, "value"),
        prevent_initial_call=True,
    )
    def export_csv(_clicks, window):
        history = recent_readings(buffer, WINDOWS.get(window, WINDOWS["1 min"]))
        return dcc.send_string(readings_csv(history), csv_filename(), type="text/csv")


def register_api(server: flask.Flask, source: Any) -> None:
    buffer = source.buffer

    @server.get("/api/status")
    def api_status():
        return flask.jsonify(source_status(source))

    @server.get("/api/readings.csv")
    def api_readings():
        raw = flask.request.args.get("seconds")
        seconds = None
        if raw is not None:
            try:
                seconds = float(raw)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
                return flask.Response("seconds must be a positive number of seconds\n", status=400,
                                      mimetype="text/plain")
        body = readings_csv(recent_readings(buffer, seconds))
        return flask.Response(body, mimetype="text/csv",
                              headers={"Content-Disposition": f'attachment; filename="{csv_filename()}"'})
