"""History charts: whole figures when a browser connects or changes settings, increments afterwards;
the window's statistics when they are unfolded; the channel choices of the fourth chart; the CSV
export link of the chosen window."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any
from urllib.parse import urlencode

import numpy as np

from dash import Dash, Input, Output, State, ctx, no_update

from components import ids
from components.history_figures import (WINDOWS, bucket_width, bucketize, extend_data, history_figure,
                                        window_statistics)
from components.history_panel import GRAPHS, charts_for, stats_table
from stream.cameras import CameraRegistry, CameraUnavailable
from stream.source import StreamSource
from stream.statistics import STATS_COLUMNS

STATS_TTL_S = 1.0  # window statistics are shared by all browsers and refreshed at most once a second
TABLE_COLUMNS = STATS_COLUMNS[:5]  # intensity, centroid, rms size: always in the statistics table


RATE_ROWS = 200  # pulses the chart's pulse rate is measured over


def pulse_rate(times: Any) -> float:
    """Pulses per second of pulse time over the newest rows (buckets slice pulse time, not the clock)."""
    finite = times[np.isfinite(times)]
    if finite.size < 2 or finite[-1] <= finite[0]:
        return 0.0
    return (finite.size - 1) / float(finite[-1] - finite[0])


def pulse_step(buffer: Any) -> float:
    """Pulse ids per message of the newest rows (1 for a camera at the machine's full rate)."""
    ids = buffer.read(max_rows=RATE_ROWS, only=()).column("pulse_id")
    if ids.size < 2 or ids[-1] <= ids[0]:
        return 1.0
    return float(ids[-1] - ids[0]) / (ids.size - 1)


def history_update(camera: StreamSource, window: str, x_mode: str, channel: str | None,
                   last: dict | None, reset: bool) -> tuple[list, list, dict]:
    """(figures, extends, response) for one browser's four charts."""
    buffer = camera.buffer
    window = window if window in WINDOWS else "1 min"
    x_mode = "pulse_id" if x_mode == "pulse_id" else "time"
    channel = channel if channel in buffer.channels or channel in buffer.computed else None
    charts = charts_for(camera.layout, camera.axes, channel)
    columns = tuple(dict.fromkeys(c for chart in charts for c in chart.columns))
    # buffer.serial: a camera reconnected has a new, empty history; the browser's cursor is void then.
    # The charts' columns and units in the key too: a calibration that arrives switches px to µm columns.
    spec = repr([(chart.title, chart.unit, chart.unit2, chart.columns) for chart in charts]).encode()
    key = {"camera": camera.name, "history": buffer.serial, "window": window, "x": x_mode, "channel": channel,
           "charts": hashlib.blake2s(spec, digest_size=6).hexdigest()}
    newest = buffer.newest_time()
    none = [no_update] * len(GRAPHS)
    if not math.isfinite(newest):
        empty = {"x": []}
        figures = [history_figure(chart, empty, x_mode, f"{graph}-{window}-{x_mode}", 0) for graph, chart in
                   zip(GRAPHS, charts)]
        return (figures if reset or (last or {}).get("key") != key else none), none, {"key": key, "next": None}
    seconds = WINDOWS[window]
    oldest = buffer.oldest_time() if seconds is None else newest - seconds
    rate_hz = pulse_rate(buffer.read(max_rows=RATE_ROWS, only=()).column("timestamp"))
    width = bucket_width(window, rate_hz, newest - oldest)
    complete = math.floor(newest / width) - 1  # the newest row's bucket is still filling
    last = last or {}
    stale = (reset or last.get("key") != key or last.get("w") != width or not isinstance(last.get("next"), int)
             or not isinstance(last.get("seq"), int) or last["seq"] > buffer.count
             or complete - last["next"] > last.get("points", 0))
    points = math.ceil((seconds or (newest - oldest) * 2) / width) + 1
    # a bucket's width on the x axis: ms of time, or (pulse-id axis) the pulses it spans
    width_x = width * 1000.0 if x_mode == "time" else width * rate_hz * pulse_step(buffer)
    if stale:
        start = newest - seconds if seconds is not None else oldest
        history = buffer.read(since=buffer.seq_at_time(start), only=columns)
        data = bucketize(history, width, math.floor(start / width), complete, columns, x_mode)
        figures = [history_figure(chart, data, x_mode, f"{graph}-{window}-{x_mode}", width_x)
                   for graph, chart in zip(GRAPHS, charts)]
        extends = none
    else:
        if complete < last["next"]:
            return none, none, last
        history = buffer.read(since=last["seq"], only=columns)
        data = bucketize(history, width, last["next"], complete, columns, x_mode)
        figures = none
        extends = [extend_data(chart, data, int(last["points"]), width_x) or no_update for chart in charts]
        points = int(last["points"])
    response = {"key": key, "w": width, "next": complete + 1, "seq": buffer.seq_at_time((complete + 1) * width),
                "points": points}
    return figures, extends, response


def export_href(camera: str | None, window: str | None) -> str:
    query = {"camera": camera} if camera else {}
    seconds = WINDOWS.get(window or "", WINDOWS["1 min"])
    if seconds is not None:
        query["seconds"] = f"{seconds:g}"
    return "api/readings.csv" + ("?" + urlencode(query) if query else "")


class StatsCache:
    """A window's statistics table, built at most once per STATS_TTL_S for every browser."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def table(self, camera: StreamSource, window: str, columns: tuple[str, ...]) -> Any:
        key = (camera.name, camera.buffer.serial, window, columns)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < STATS_TTL_S:
                return hit[1]
        history = camera.buffer.window(WINDOWS.get(window), only=columns)
        table = stats_table(window_statistics(history, columns), camera.layout)
        with self._lock:
            if len(self._entries) > 64:
                self._entries.clear()
            self._entries[key] = (now, table)
        return table


def channel_options(camera: StreamSource) -> list[dict[str, str]]:
    buffer = camera.buffer
    return ([{"label": name, "value": name} for name in buffer.channels]
            + [{"label": f"{name} (computed)", "value": name} for name in buffer.computed])


def register(app: Dash, registry: CameraRegistry) -> None:
    stats = StatsCache()

    @app.callback(
        *[Output(graph, "figure") for graph in GRAPHS],
        *[Output(graph, "extendData") for graph in GRAPHS],
        Output(ids.HISTORY_RESPONSE, "data"),
        Output(ids.HISTORY_STATS, "children"),
        Output(ids.CHANNEL_SELECT, "options"),
        Input(ids.HISTORY_REQUEST, "n_intervals"),
        Input(ids.HISTORY_WINDOW, "value"),
        Input(ids.HISTORY_XAXIS, "value"),
        Input(ids.CHANNEL_SELECT, "value"),
        Input(ids.CAMERA_SELECT, "value"),
        Input(ids.DETAILS, "is_open"),
        State(ids.HISTORY_RESPONSE, "data"),
        State(ids.CHANNEL_SELECT, "options"),
    )
    def refresh_history(_n, window, x_mode, channel, camera_name, details_open, last, shown_options):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable:
            return (*[no_update] * (2 * len(GRAPHS)), no_update, no_update, no_update)
        reset = ctx.triggered_id not in (ids.HISTORY_REQUEST, ids.DETAILS)
        figures, extends, response = history_update(camera, window, x_mode, channel, last, reset)
        table = no_update
        if details_open:
            key = response["key"]
            charts = charts_for(camera.layout, camera.axes, key["channel"])
            charted = tuple(dict.fromkeys([*(c for chart in charts for c in chart.columns), *TABLE_COLUMNS]))
            table = stats.table(camera, key["window"], charted)
        options = channel_options(camera)
        return (*figures, *extends, response, table, options if options != shown_options else no_update)

    @app.callback(Output(ids.DETAILS, "is_open"), Input(ids.DETAILS_TOGGLE, "n_clicks"), State(ids.DETAILS, "is_open"),
                  prevent_initial_call=True)
    def toggle_details(_clicks, is_open):
        return not is_open

    @app.callback(Output(ids.EXPORT_BUTTON, "href"), Input(ids.HISTORY_WINDOW, "value"),
                  Input(ids.CAMERA_SELECT, "value"))
    def export_link(window, camera_name):
        """The CSV of the chosen window (the rows its charts hold), from the API."""
        return export_href(camera_name, window)

