"""The `pages` part of bench/display.py: N headless Chromium windows on one app, each its own
driver session (a window of its own, as on separate screens), bench/probe.js injected before the
page's scripts. Per page: drawn fps, pulse -> pixels p50/p99, main-thread task and script time per
drawn frame (Chromium's Performance.getMetrics); browser CPU (all Chromium processes) and server CPU.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

import psutil

from bench.common import ROOT, App, cpu_seconds, machine_busy_seconds, median, percentile, renders_between, \
    running_app, wait_for, with_children
from tests.browser import CHROMEDRIVER, CHROMIUM, FLAGS  # the browser tests' Chromium, flags and all

VIEWPORT = (1920, 1080)
PROBE = (ROOT / "bench" / "probe.js").read_text()
MODES = {  # mode -> (script, path of the page)
    "fast": (None, "/"),
    "plotly": (None, "/?draw=plotly"),
    "naive": (ROOT / "bench" / "naive_app.py", "/"),
}


@contextlib.contextmanager
def page(url: str, probe: bool = True) -> Iterator[Any]:
    """One Chromium window (its own driver session) showing `url`, the probe injected first."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
        if probe:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
        driver.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
        driver.get(url)
        yield driver
    finally:
        driver.quit()


def browser_processes(drivers: list[Any]) -> list[psutil.Process]:
    processes = []
    for driver in drivers:
        with contextlib.suppress(psutil.Error):
            processes += with_children(psutil.Process(driver.service.process.pid))[1:]  # not chromedriver
    return processes


def process_type(process: psutil.Process) -> str:
    """Chromium's role of a process (--type=renderer, gpu-process, utility; none: the browser)."""
    try:
        flags = [a for a in process.cmdline() if a.startswith("--type=")]
    except psutil.Error:
        return "gone"
    return flags[0][7:] if flags else "browser"


def cpu_by_type(processes: list[psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = {}
    for process in processes:
        kind = process_type(process)
        out[kind] = out.get(kind, 0.0) + cpu_seconds([process])
    return out


def metrics(driver: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}


def take(driver: Any) -> dict[str, Any]:
    return driver.execute_script("return window.__probe ? window.__probe.take() : null;")


def per_page(probe: dict[str, Any], before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    seconds = probe["ms"] / 1000
    drawn = probe["drawn"]
    lat = probe["latencies_ms"]

    def per_frame(name: str) -> float | None:
        return (after.get(name, 0) - before.get(name, 0)) * 1000 / drawn if drawn else None

    return {"drawn_fps": drawn / seconds if seconds else 0.0, "answers_per_s": probe["answers"] / seconds,
            "requests_per_s": len(probe.get("rtt_ms", [])) / seconds,
            "latency_p50_ms": median(lat), "latency_p99_ms": percentile(lat, 99), "latency_n": len(lat),
            "request_p50_ms": median(probe.get("rtt_ms", [])), "request_server_p50_ms": median(probe.get("server_ms", [])),
            "task_ms_per_frame": per_frame("TaskDuration"), "script_ms_per_frame": per_frame("ScriptDuration"),
            "layout_ms_per_frame": per_frame("LayoutDuration"),
            "recalc_style_ms_per_frame": per_frame("RecalcStyleDuration")}


def measure(app: App, drivers: list[Any], window_s: float) -> dict[str, Any]:
    """One measurement window over pages already warm."""
    browsers = browser_processes(drivers)
    server = with_children(app.ps)
    me = psutil.Process(os.getpid())
    for driver in drivers:
        take(driver)
    before = [metrics(d) for d in drivers]
    d0, types0 = app.diagnostics(), cpu_by_type(browsers)
    cpu0 = (cpu_seconds(browsers), cpu_seconds(server), cpu_seconds([me]), machine_busy_seconds())
    t0 = time.monotonic()
    time.sleep(window_s)
    probes = [take(d) for d in drivers]
    elapsed = time.monotonic() - t0
    cpu1 = (cpu_seconds(browsers), cpu_seconds(server), cpu_seconds([me]), machine_busy_seconds())
    after = [metrics(d) for d in drivers]
    d1, types1 = app.diagnostics(), cpu_by_type(browsers)
    browser, server_s, bench, busy = (b - a for a, b in zip(cpu0, cpu1))
    return {"pages": [per_page(p, b, a) for p, b, a in zip(probes, before, after)],
            "browser_cpu_pct": 100 * browser / elapsed, "server_cpu_pct": 100 * server_s / elapsed,
            "background_cpu_pct": 100 * max(0.0, busy - browser - server_s - bench) / elapsed,
            "window_s": elapsed, "load_average": [round(v, 2) for v in os.getloadavg()],
            "browser_cpu_pct_by_process": {k: 100 * (v - types0.get(k, 0.0)) / elapsed for k, v in types1.items()},
            **renders_between(d0, d1, elapsed)}


def first_frame(driver: Any, timeout_s: float = 40.0) -> float | None:
    """Seconds until the page drew its first frame; None if it drew none (then the window still
    runs: the naive baseline at short periods never draws, Dash drops answers overtaken by the next
    interval's request)."""
    t0 = time.monotonic()
    try:
        wait_for(lambda: (take(driver) or {}).get("drawn"), timeout_s, "no frame drawn", interval=0.5)
    except RuntimeError:
        return None
    return time.monotonic() - t0


def run(mode: str, n_pages: int, period_s: float, warm_s: float, window_s: float, log_dir: Path) -> dict[str, Any]:
    script, path = MODES[mode]
    args = ["-d", str(period_s)] + ([] if script else ["--diagnostics"])
    with running_app(args, log_dir / f"pages-{mode}-{n_pages}.log", script) as app, \
            contextlib.ExitStack() as stack:
        drivers = [stack.enter_context(page(app.url + path)) for _ in range(n_pages)]
        first = [first_frame(driver) for driver in drivers]
        time.sleep(warm_s)
        result = measure(app, drivers, window_s)
    result.update(mode=mode, n_pages=n_pages, period_s=period_s, first_frame_s=first)
    fps = [p["drawn_fps"] for p in result["pages"]]
    result["min_drawn_fps"] = min(fps)
    result["mean_drawn_fps"] = sum(fps) / len(fps)
    total = sum(fps)  # CPU per drawn frame, all pages together (server: with the camera's own ingest)
    result["browser_cpu_ms_per_frame"] = 10 * result["browser_cpu_pct"] / total if total else None
    result["server_cpu_ms_per_frame"] = 10 * result["server_cpu_pct"] / total if total else None
    return result
