"""The `http` part of bench/display.py: Python clients (threads of this process, one keep-alive
http.client connection each) polling GET /api/frame as the page does: one request at a time, at a
fixed rate, `after=<seq shown>` so that an unchanged frame costs a 204. A few view sizes, so that
the server renders more than one view per display period.

Server CPU per client = (server CPU with N clients - server CPU with none) / N.
"""

from __future__ import annotations

import http.client
import json
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import App, cpu_seconds, median, percentile, renders_between, running_app, with_children

VIEWS = ((320, 260), (640, 480), (480, 360), (200, 160), (960, 720))  # w, h bins asked for


class Client(threading.Thread):
    def __init__(self, port: int, view: tuple[int, int], rate_hz: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.view, self.period, self.stop = port, view, 1 / rate_hz, stop
        self.latencies: list[float] = []
        self.codes: dict[int, int] = {}
        self.errors: list[str] = []
        self.recording = False

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        seq = None
        due = time.monotonic()
        while not self.stop.is_set():
            query = f"/api/frame?w={self.view[0]}&h={self.view[1]}" + (f"&after={seq}" if seq is not None else "")
            t0 = time.perf_counter()
            try:
                conn.request("GET", query)
                reply = conn.getresponse()
                body = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                body, reply = b"", None
            elapsed = time.perf_counter() - t0
            if reply is not None:
                if reply.status == 200:
                    (n,) = struct.unpack_from("<I", body)
                    seq = json.loads(body[4:4 + n])["seq"]
                if self.recording:
                    self.latencies.append(elapsed * 1000)
                    self.codes[reply.status] = self.codes.get(reply.status, 0) + 1
            due += self.period
            now = time.monotonic()
            if due < now - self.period:
                due = now  # fell more than a period behind: restart the cadence, as the page does
            time.sleep(max(0.0, due - now))
        conn.close()


def window(app: App, clients: list[Client], warm_s: float, window_s: float) -> dict[str, Any]:
    time.sleep(warm_s)
    server, me = with_children(app.ps), [psutil.Process(os.getpid())]
    for c in clients:
        c.recording = True
    d0, s0, m0, t0 = app.diagnostics(), cpu_seconds(server), cpu_seconds(me), time.monotonic()
    time.sleep(window_s)
    s1, m1, elapsed, d1 = cpu_seconds(server), cpu_seconds(me), time.monotonic() - t0, app.diagnostics()
    for c in clients:
        c.recording = False
    latencies = [v for c in clients for v in c.latencies]
    codes: dict[str, int] = {}
    for c in clients:
        for code, count in c.codes.items():
            codes[str(code)] = codes.get(str(code), 0) + count
    errors = sum(len(c.errors) for c in clients) + sum(v for k, v in codes.items() if k not in ("200", "204"))
    return {"clients": len(clients), "requests_per_s": len(latencies) / elapsed,
            "latency_p50_ms": median(latencies), "latency_p99_ms": percentile(latencies, 99),
            "latency_max_ms": max(latencies) if latencies else None, "codes": codes, "errors": errors,
            "server_cpu_pct": 100 * (s1 - s0) / elapsed, "load_generator_cpu_pct": 100 * (m1 - m0) / elapsed,
            "load_average": [round(v, 2) for v in os.getloadavg()], **renders_between(d0, d1, elapsed)}


def view(i: int) -> tuple[int, int]:
    """Most clients share the default view (one window size); every 10th has its own size."""
    return VIEWS[1 + (i // 10) % (len(VIEWS) - 1)] if i % 10 == 9 else VIEWS[0]


def load(app: App, n: int, rate_hz: float, warm_s: float, window_s: float) -> dict[str, Any]:
    stop = threading.Event()
    clients = [Client(app.port, view(i), rate_hz, stop) for i in range(n)]
    for c in clients:
        c.start()
    try:
        return window(app, clients, warm_s, window_s)
    finally:
        stop.set()
        for c in clients:
            c.join(10)


def run(n_clients: int, rate_hz: float, period_s: float, warm_s: float, window_s: float,
        log_dir: Path) -> dict[str, Any]:
    with running_app(["-d", str(period_s), "--diagnostics"], log_dir / "http.log") as app:
        idle = window(app, [], warm_s, window_s)
        one = load(app, 1, rate_hz, warm_s, window_s)
        many = load(app, n_clients, rate_hz, warm_s, window_s)
    for result in (one, many):
        result["server_cpu_per_client_pct"] = (result["server_cpu_pct"] - idle["server_cpu_pct"]) / result["clients"]
        result["load_generator_cpu_per_client_pct"] = result["load_generator_cpu_pct"] / result["clients"]
    return {"period_s": period_s, "rate_hz": rate_hz, "views": len(VIEWS), "idle": idle, "one": one, "many": many}
