#!/usr/bin/env python
"""Display benchmark: what browsers and polling clients get from the running dashboard.

    python bench/display.py                 (about 6 minutes)
    python bench/display.py --quick         (about 3 minutes, short windows)
    python bench/display.py --parts pages   (pages, http, big; default: pages and http)

Parts (each in its own module):
  pages  bench/display_pages.py: headless Chromium, 1 and 3 pages (each its own window), the app at
         -d 0.02 on the simulated 100 Hz 480x640 camera, modes `fast` (the app), `plotly` (the
         app's ?draw=plotly: every frame drawn by plotly.js) and `naive` (bench/naive_app.py:
         full-resolution go.Heatmap per dcc.Interval). Drawn frames and pulse -> pixels latency are
         counted in the page by bench/probe.js.
  http   bench/display_http.py: 1 and 50 clients polling /api/frame at 10 Hz against -d 0.1.
  big    bench/display_big.py: start_stream.py 2048x2048 uint16 at 100 Hz into app.py -o PORT.

Results: tables on stdout (figures, goals met / not met), raw JSON in bench/results/display-*.json.
Other processes share the machine: every figure carries the load average, and the pages rows the
CPU other processes used during the window (background).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is bench/, whose statistics.py would shadow the standard library's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import display_big, display_http, display_pages  # noqa: E402
from bench.common import RESULTS, save, table  # noqa: E402

MODES = ("fast", "plotly", "naive")


def run_pages(args: argparse.Namespace, log_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for n in args.pages:
        for mode in args.modes:
            print(f"pages: {mode}, {n} page(s) ...", flush=True)
            runs.append(display_pages.run(mode, n, args.period, args.warm, args.window, log_dir))
        if "naive" in args.modes and args.naive_period and not runs[-1]["mean_drawn_fps"]:
            print(f"pages: naive drew nothing at -d {args.period}; naive at -d {args.naive_period} ...", flush=True)
            runs.append(display_pages.run("naive", n, args.naive_period, args.warm, args.window, log_dir))
    return runs


def pages_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        pages = r["pages"]
        worst = max(pages, key=lambda p: p["latency_p99_ms"] or 0)
        rows.append([r["mode"], r["period_s"], r["n_pages"], r["min_drawn_fps"], r["mean_drawn_fps"],
                     max((p["latency_p50_ms"] or 0) for p in pages) or None, worst["latency_p99_ms"],
                     pages[0]["task_ms_per_frame"], pages[0]["script_ms_per_frame"], pages[0]["request_p50_ms"],
                     pages[0]["request_server_p50_ms"], r["render_ms"],
                     r["browser_cpu_ms_per_frame"], r["server_cpu_ms_per_frame"],
                     r["browser_cpu_pct"], r["server_cpu_pct"], r["background_cpu_pct"], r["load_average"][0]])
    return table(["mode", "-d", "pages", "drawn fps (min)", "drawn fps (mean)", "p50 ms (worst page)", "p99 ms (worst)",
                  "main thread ms/frame", "script ms/frame", "request ms p50", "of it server ms p50", "server render ms",
                  "browser CPU ms/frame", "server CPU ms/frame", "browser CPU %", "server CPU %",
                  "background CPU %", "load 1 min"], rows)


def http_table(result: dict[str, Any]) -> str:
    rows = []
    for key in ("idle", "one", "many"):
        r = result[key]
        rows.append([r["clients"], r["requests_per_s"], r["latency_p50_ms"], r["latency_p99_ms"], r["latency_max_ms"],
                     r["errors"], r["server_cpu_pct"], r.get("server_cpu_per_client_pct"), r["renders_per_s"],
                     r["render_ms"], r.get("load_generator_cpu_per_client_pct"), r["load_average"][0]])
    return table(["clients", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "server CPU %", "server CPU %/client",
                  "renders/s", "ms/render", "client CPU %/client", "load 1 min"], rows)


def find(runs: list[dict[str, Any]], mode: str, n: int, period: float | None = None) -> dict[str, Any] | None:
    return next((r for r in runs if r["mode"] == mode and r["n_pages"] == n
                 and (period is None or r["period_s"] == period)), None)


def goals(runs: list[dict[str, Any]], http: dict[str, Any] | None) -> list[list[Any]]:
    rows = []

    def goal(name: str, value: float | None, target: str, met: bool | None) -> None:
        rows.append([name, value, target, "—" if met is None else ("met" if met else "NOT met")])

    one, three = find(runs, "fast", 1), find(runs, "fast", 3)
    if one:
        p = one["pages"][0]
        goal("drawn fps, 1 page, -d 0.02", one["min_drawn_fps"], "≥ 30", one["min_drawn_fps"] >= 30)
        goal("pulse→pixels p50, 1 page (ms)", p["latency_p50_ms"], "≤ 60",
             p["latency_p50_ms"] is not None and p["latency_p50_ms"] <= 60)
        goal("pulse→pixels p99, 1 page (ms)", p["latency_p99_ms"], "≤ 200",
             p["latency_p99_ms"] is not None and p["latency_p99_ms"] <= 200)
    if three:
        goal("drawn fps, each of 3 pages (min)", three["min_drawn_fps"], "≥ 12", three["min_drawn_fps"] >= 12)
    if http:
        for key in ("one", "many"):
            r = http[key]
            goal(f"server CPU per client at 10 Hz, {r['clients']} client(s) (%)", r["server_cpu_per_client_pct"],
                 "≤ 2", r["server_cpu_per_client_pct"] <= 2)
        many = http["many"]
        goal(f"/api/frame p99, {many['clients']} clients (ms)", many["latency_p99_ms"], "< 50",
             many["latency_p99_ms"] is not None and many["latency_p99_ms"] < 50 and not many["errors"])
    for n in sorted({r["n_pages"] for r in runs}):
        fast = find(runs, "fast", n)
        bases = [r for r in runs if r["n_pages"] == n and r["mode"] in ("plotly", "naive")]
        for base in bases:
            if fast:
                ratio = fast["mean_drawn_fps"] / base["mean_drawn_fps"] if base["mean_drawn_fps"] else None
                goal(f"drawn fps fast/{base['mode']} (-d {base['period_s']}), {n} page(s), same run", ratio,
                     f"{fast['mean_drawn_fps']:.1f} / {base['mean_drawn_fps']:.1f} fps", None)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows (a proof it works, not figures)")
    parser.add_argument("--parts", default="pages,http", help="comma-separated: pages, http, big")
    parser.add_argument("--pages", default="1,3", help="numbers of pages, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help="pages modes, comma-separated: " + ", ".join(MODES))
    parser.add_argument("--period", type=float, default=0.02, help="the app's -d for the pages part")
    parser.add_argument("--naive-period", type=float, default=0.1,
                        help="-d of a second naive run if it draws nothing at --period (0: none)")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args(argv)
    args.pages = [int(n) for n in args.pages.split(",")]
    args.modes = [m for m in MODES if m in args.modes.split(",")]
    args.warm, args.window = (3.0, 6.0) if args.quick else (8.0, 20.0)
    parts = set(args.parts.split(","))
    log_dir = RESULTS / "logs"
    results: dict[str, Any] = {"quick": args.quick, "load_average_start": [round(v, 2) for v in os.getloadavg()]}
    runs = run_pages(args, log_dir) if "pages" in parts else []
    results["pages"] = runs
    http = None
    if "http" in parts:
        print(f"http: idle, 1 and {args.clients} clients ...", flush=True)
        http = results["http"] = display_http.run(args.clients, 10.0, 0.1, args.warm / 2, args.window / 2, log_dir)
    if "big" in parts:
        print("big: 2048x2048 uint16 at 100 Hz ...", flush=True)
        results["big"] = display_big.run(300 if args.quick else 1000, log_dir)
    results["goals"] = goals(runs, http)
    path = save("display", results)
    if runs:
        print("\n" + pages_table(runs))
    if http:
        print("\n" + http_table(http))
    if "big" in results:
        print("\n" + table(list(results["big"]), [list(results["big"].values())]))
    print("\n" + table(["goal", "value", "target", ""], results["goals"]))
    print(f"\nload average at the end: {[round(v, 2) for v in os.getloadavg()]}; results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
