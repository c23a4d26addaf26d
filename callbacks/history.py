"""History charts: full figures when a browser connects or changes settings, increments afterwards."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, no_update
from dash._utils import to_json

from components import ids
from components.history_panel import (BEAM_TRACES, MAX_POINTS, WINDOWS, bucket_rows, bucketize, extend_data, history_figure,
                                      stats_table, window_rows, window_start, window_statistics)
from stream.ring_buffer import ChannelNames, RingBuffer

GRAPHS = (ids.ENERGY_HISTORY, ids.RATE_HISTORY, ids.BEAM_HISTORY, ids.CHANNEL_HISTORY)
STATS_TTL_S = 1.0  # window statistics are shared by all browsers and refreshed at most once a second


class StatsCache:
    """mean/std/min/max over a window, computed at most once per STATS_TTL_S per (window, columns)."""

    def __init__(self, buffer: RingBuffer) -> None:
        self.buffer = buffer
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}
        self._tables: dict[tuple, tuple[float, Any, Any]] = {}

    def table(self, window: str, columns: tuple[str, ...], rate_hz: float, units: dict[str, str]) -> tuple[float, Any]:
        """(stamp, statistics table) of a window, built and serialised once per refresh for every browser.

        The table goes out as plain JSON: building and serialising ~20 components per request was
        the largest part of a history tick's server time.
        """
        stats = self.get(window, columns, rate_hz)
        key = (window, columns, tuple(sorted(units.items())))
        with self._lock:
            hit = self._tables.get(key)
            if hit is not None and hit[1] is stats:
                return hit[0], hit[2]
        table = json.loads(to_json(stats_table(stats, units)))
        stamp = time.monotonic()
        with self._lock:
            if len(self._tables) > 64:
                self._tables.clear()
            self._tables[key] = (stamp, stats, table)
        return stamp, table

    def get(self, window: str, columns: tuple[str, ...], rate_hz: float) -> dict:
        key = (window, columns)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < STATS_TTL_S:
                return hit[1]
        start = window_start(self.buffer.count, window, rate_hz, self.buffer.capacity)
        stats = window_statistics(self.buffer.read(since=start), columns)
        with self._lock:
            if len(self._entries) > 64:
                self._entries.clear()
            self._entries[key] = (now, stats)
        return stats


def chart_columns(names: ChannelNames, channel: str | None) -> tuple[tuple[str, ...], ...]:
    return ((names.energy,), (names.rate,), BEAM_TRACES, (channel,) if channel else ())


def history_update(buffer: RingBuffer, rate_hz: float, names: ChannelNames, window: str, x_mode: str,
                   channel: str | None, last: dict | None, reset: bool, request_n: Any) -> tuple[list, list, dict]:
    """(figures, extends, response) for one browser. Figures are sent on (re)connect or settings
    change; otherwise only the complete buckets the browser has not seen go out as extendData."""
    window = window if window in WINDOWS else "1 min"
    x_mode = "pulse_id" if x_mode == "pulse_id" else "time"
    channel = channel if channel in buffer.scalar_channels else None
    key = [window, x_mode, channel]
    charts = chart_columns(names, channel)
    all_columns = tuple(dict.fromkeys(c for chart in charts for c in chart))
    last = last or {}
    count = buffer.count
    k = bucket_rows(window, rate_hz, min(count, buffer.capacity), buffer.capacity)
    # Buckets twice as coarse are due (the "all" window filled up, or the rate rose): redraw.
    rebucket = isinstance(last.get("k"), int) and k >= 2 * last["k"]
    if (reset or rebucket or last.get("key") != key or not isinstance(last.get("cursor"), int)
            or last["cursor"] > count):
        start = window_start(count, window, rate_hz, buffer.capacity)
        cursor, data = bucketize(buffer.read(since=start), k, all_columns, x_mode)
        # Room for the whole window, not only for the rows buffered now: a browser that connects
        # early must not be stuck with a chart as short as the history was then.
        points = math.ceil(window_rows(window, rate_hz, buffer.capacity) / k) + 1
        titles = (("Beam energy", "GeV"), ("Repetition rate", "Hz"), ("Beam centroid and rms size", "px"),
                  (channel or "(choose a channel)", ""))
        figures = [history_figure(title, unit, chart, data, x_mode, uirevision=f"{graph}-{window}-{x_mode}")
                   for graph, (title, unit), chart in zip(GRAPHS, titles, charts)]
        response = {"n": request_n, "key": key, "k": k, "cursor": cursor, "points": points}
        return figures, [no_update] * len(GRAPHS), response
    k = int(last.get("k") or 1)
    since = max(last["cursor"], ((count - buffer.capacity) // k + 1) * k if count > buffer.capacity else 0)
    cursor, data = bucketize(buffer.read(since=since), k, all_columns, x_mode)
    points = int(last.get("points") or MAX_POINTS)
    extends = [extend_data(chart, data, points) or no_update for chart in charts]
    extends += [no_update] * (len(GRAPHS) - len(extends))
    response = {**last, "n": request_n, "cursor": cursor}
    return [no_update] * len(GRAPHS), extends, response


def register(app: Dash, source: Any, names: ChannelNames) -> None:
    buffer = source.buffer
    stats_cache = StatsCache(buffer)
    app.clientside_callback(ClientsideFunction("viewer", "historyAnswered"), Output(ids.HISTORY_LOOP_SINK, "data"),
                            Input(ids.HISTORY_RESPONSE, "data"), prevent_initial_call=True)

    @app.callback(
        *[Output(graph, "figure") for graph in GRAPHS],
        *[Output(graph, "extendData") for graph in GRAPHS],
        Output(ids.HISTORY_RESPONSE, "data"),
        Output(ids.HISTORY_STATS, "children"),
        Input(ids.HISTORY_REQUEST, "data"),
        Input(ids.HISTORY_WINDOW, "value"),
        Input(ids.HISTORY_XAXIS, "value"),
        Input(ids.CHANNEL_SELECT, "value"),
        State(ids.HISTORY_RESPONSE, "data"),
        prevent_initial_call=True,
    )
    def refresh_history(request, window, x_mode, channel, last):
        rate = source.health().rate_hz
        reset = ctx.triggered_id != ids.HISTORY_REQUEST
        figures, extends, response = history_update(buffer, rate, names, window, x_mode, channel, last, reset,
                                                    (request or {}).get("n"))
        columns = tuple(c for c in (names.energy, names.rate, response["key"][2]) if c)
        units = {names.energy: "GeV", names.rate: "Hz"}
        stamp, table = stats_cache.table(response["key"][0], columns, rate, units)
        unchanged = isinstance(last, dict) and last.get("stats_at") == stamp and not reset
        response["stats_at"] = stamp
        return (*figures, *extends, response, no_update if unchanged else table)
