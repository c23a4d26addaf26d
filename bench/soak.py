#!/usr/bin/env python
"""Soak and load: the real app under 100 Hz input and 50 polling browsers, for minutes.

One command:  python bench/soak.py                 (10 minutes, 50 clients, 100 Hz)
              python bench/soak.py --quick         (30 s)
              python bench/soak.py --minutes 60 --clients 20

What runs (all on 127.0.0.1, every process stops by itself):
  app      `python app.py --stream tcp://127.0.0.1:P` in its own process (its RSS is what is measured)
  sender   `python -m tests.sender` in its own process: the simulated 480x640 float64 camera with profiles,
           paced at --rate Hz, counting every message it could not hand to ZeroMQ
  clients  --clients threads, each playing one browser tab with tests/dash_client.py: the painter's
           frame loop (GET /api/frame, self-clocked at the app's display period, 0.1 s), the readings
           (0.25 s), the history charts (1 s) and the 1 s interval (health, camera list, tools), the
           Dash callbacks posted as dash-renderer posts them

Pass criteria (exit code 1 otherwise): 0 HTTP errors, 0 messages lost (sent by the sender but not
received by the app), 0 invalid messages, RSS growth over the measured window below --max-growth-mb,
receiver thread never restarted, clean SIGTERM exit. Prints a table; raw results (with the machine
and its load average): bench/results/soak-<time>.json, the app's log beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from bench.common import RESULTS, App, free_port, get_json, percentile, save, table  # noqa: E402
from bench.common import wait_for as _wait_for  # noqa: E402
from tests.dash_client import DashClient, shared_page  # noqa: E402

WARMUP_S = 10.0
SAMPLE_S = 5.0


def _status(url: str) -> dict:
    return get_json(url + "/api/status", timeout=10)


def wait_for(predicate, timeout: float, what: str):
    """common.wait_for, with a refused or timed-out request counted as "not yet"."""
    def attempt():
        try:
            return predicate()
        except OSError:
            return None

    return _wait_for(attempt, timeout, what)


LOOPS = ("frame", "readings", "history", "health")


class Client(threading.Thread):
    """One browser tab: its four self-clocked loops multiplexed on one thread."""

    def __init__(self, url: str, page: dict, stop: threading.Event, image_period_s: float,
                 slow_period_s: float, offset_s: float) -> None:
        super().__init__(daemon=True)
        self.client = DashClient.http(url, timeout=30, **page)
        self.stop_event = stop
        self.periods = {"frame": image_period_s, "readings": 0.25, "history": slow_period_s, "health": slow_period_s}
        self.offset_s = offset_s
        self.latencies: dict[str, list[float]] = {name: [] for name in self.periods}
        self.errors: list[str] = []
        self.bytes = 0
        self.frames_seen: set[int] = set()
        self.recording = False

    def call(self, name: str) -> None:
        if name == "frame":
            reply = self.client.frame()
            if reply.status not in (200, 204):
                raise RuntimeError(f"HTTP {reply.status}")
            self.bytes += reply.size if self.recording else 0
            if reply.status == 200 and self.recording:
                self.frames_seen.add(reply.body[0]["seq"])
        else:
            getattr(self.client, name)()  # raises on an HTTP error

    def run(self) -> None:
        try:
            self.client.load()
        except Exception as exc:  # the page did not even open
            self.errors.append(f"load: {exc.__class__.__name__}: {exc}")
            return
        now = time.monotonic() + self.offset_s
        due = {name: now for name in self.periods}
        while not self.stop_event.is_set():
            name = min(due, key=due.get)
            wait = due[name] - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                break
            started = time.monotonic()
            try:
                self.call(name)
            except Exception as exc:  # timeouts, resets, HTTP errors: all count as errors
                self.errors.append(f"{name}: {exc.__class__.__name__}: {exc}")
                due[name] = time.monotonic() + self.periods[name]
                continue
            if self.recording:
                self.latencies[name].append(time.monotonic() - started)
            due[name] = started + self.periods[name]  # self-clocking: next request a period after this one


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ms = {f"p{q}_ms": round(percentile(values, q) * 1000, 2) for q in (50, 95, 99)}
    return {"n": len(values), **ms, "max_ms": round(max(values) * 1000, 2)}


def start_sender(args, port: int, duration: float) -> subprocess.Popen:
    total = int(args.rate * (WARMUP_S + duration))
    return subprocess.Popen([sys.executable, "-m", "tests.sender", "--port", str(port), "--rate", str(args.rate),
                             "--count", str(total), "--sndhwm", str(args.sndhwm)],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)


def start_clients(url: str, args, stop: threading.Event) -> list[Client]:
    page = shared_page(url)  # /_dash-dependencies and /_dash-layout, fetched once for every client
    clients = [Client(url, page, stop, args.image_period, args.slow_period, i * args.image_period / args.clients)
               for i in range(args.clients)]
    for client in clients:
        client.start()
    return clients


def sample(url: str, proc: psutil.Process, t_s: float) -> dict:
    status = _status(url)
    return {"t_s": round(t_s, 1), "rss_mb": round(proc.memory_info().rss / 1e6, 1), "received": status["received"],
            "threads": proc.num_threads(), "fds": proc.num_fds(), "state": status["state"],
            "rate_hz": status["rate_hz"], "loadavg_1min": round(os.getloadavg()[0], 2)}


def measure(url: str, proc: psutil.Process, clients: list[Client], duration: float, verbose: bool) -> dict:
    """Record for `duration` seconds, sampling RSS, threads, fds and the stream every few seconds."""
    for client in clients:
        client.recording = True
    samples = [sample(url, proc, 0.0)]
    started = time.monotonic()
    cpu0, my_cpu0 = proc.cpu_times(), psutil.Process().cpu_times()
    io0 = proc.io_counters() if hasattr(proc, "io_counters") else None
    while (left := duration - (time.monotonic() - started)) > 0:
        time.sleep(min(SAMPLE_S, duration / 15, left))
        samples.append(sample(url, proc, time.monotonic() - started))
        if verbose:
            print(json.dumps(samples[-1]), flush=True)
    elapsed = time.monotonic() - started
    for client in clients:
        client.recording = False
    cpu1, my_cpu1 = proc.cpu_times(), psutil.Process().cpu_times()
    io1 = proc.io_counters() if io0 is not None else None
    cpu = lambda a, b: 100 * ((b.user + b.system) - (a.user + a.system)) / elapsed  # noqa: E731
    return {"elapsed": elapsed, "samples": samples, "app_cpu_percent": round(cpu(cpu0, cpu1), 1),
            "clients_cpu_percent": round(cpu(my_cpu0, my_cpu1), 1),
            "app_write_bytes": None if io1 is None else io1.write_bytes - io0.write_bytes}


def finish(url: str, sender: subprocess.Popen, clients: list[Client], stop: threading.Event, duration: float):
    """Stop the clients, wait for the sender's count and for the app to have received it all."""
    stop.set()
    for client in clients:
        client.join(35)
        client.client.close()
    out, _ = sender.communicate(timeout=max(60.0, WARMUP_S + duration))
    done = [json.loads(line) for line in out.splitlines() if '"done"' in line][-1]
    final = wait_for(lambda: (lambda s: s if s["received"] >= done["sent"] or s["state"] == "stalled" else None)(
        _status(url)), 30, "app did not receive the last messages")
    return done, final


def rss_figures(samples: list[dict], rss_end: float) -> dict:
    """RSS swings by ~100 MB with glibc's handling of 2.4 MB frames: growth compares the medians of
    the first and last quarter of the window, beside a linear fit (MB per minute)."""
    xs, ys = [s["t_s"] / 60 for s in samples], [s["rss_mb"] for s in samples]
    slope = statistics.linear_regression(xs, ys).slope if len(samples) >= 3 else 0.0
    quarter = max(1, len(ys) // 4)
    growth = statistics.median(ys[-quarter:]) - statistics.median(ys[:quarter])
    return {"start": ys[0], "end": round(rss_end, 1), "max": max(ys + [rss_end]), "growth": round(growth, 1),
            "slope_mb_per_min": round(slope, 3)}


def sigterm(app: App) -> dict:
    t0 = time.monotonic()
    app.process.send_signal(signal.SIGTERM)
    code = app.process.wait(15)
    return {"code": code, "seconds": round(time.monotonic() - t0, 2)}


def failures_of(result: dict, args) -> list[str]:
    failures = []
    if result["http_errors"]:
        failures.append(f"{result['http_errors']} HTTP errors")
    if result["lost_messages"] or result["sender"]["dropped"]:
        failures.append(f"{result['lost_messages']} lost, {result['sender']['dropped']} dropped at the sender")
    if result["app_status"]["invalid"] or result["app_status"]["receiver_restarts"]:
        failures.append("invalid messages or receiver restarts")
    if result["rss_mb"]["growth"] > args.max_growth_mb:
        failures.append(f"RSS grew {result['rss_mb']['growth']} MB")
    if result["sigterm_exit"]["code"] != 0 or result["sigterm_exit"]["seconds"] > 2.0:
        failures.append(f"SIGTERM exit code {result['sigterm_exit']['code']} after {result['sigterm_exit']['seconds']} s")
    return failures


def result_of(args, measured: dict, done: dict, final: dict, clients: list[Client], rss: dict, exit_: dict) -> dict:
    elapsed, samples = measured["elapsed"], measured["samples"]
    errors = [e for client in clients for e in client.errors]
    latencies = {name: _percentiles([v for c in clients for v in c.latencies[name]]) for name in LOOPS}
    requests = sum(v["n"] for v in latencies.values())
    frames = [len(c.frames_seen) for c in clients]
    loads = [x["loadavg_1min"] for x in samples[1:]]
    return {
        "config": {"minutes": args.minutes, "clients": args.clients, "rate_hz": args.rate, "threads": args.threads,
                   "sender_hwm": args.sndhwm, "image_period_s": args.image_period,
                   "slow_period_s": args.slow_period, "warmup_s": WARMUP_S},
        "measured_s": round(elapsed, 1), "sender": done,
        "app_status": {k: final[k] for k in ("received", "invalid", "invalid_by_reason", "missed_pulses",
                                             "duplicated_pulses", "reverted_pulses", "receiver_restarts",
                                             "nonfinite_values")},
        "lost_messages": done["sent"] - final["received"], "http_requests": requests,
        "http_requests_per_s": round(requests / elapsed, 1), "http_errors": len(errors),
        "http_error_examples": errors[:10], "latency": latencies,
        "distinct_frames_per_client_per_s": round(statistics.fmean(frames) / elapsed, 2) if frames else 0,
        "response_mb": round(sum(c.bytes for c in clients) / 1e6, 1), "rss_mb": rss,
        "threads": {"start": samples[0]["threads"], "end": samples[-1]["threads"]},
        "fds": {"start": samples[0]["fds"], "end": samples[-1]["fds"]},
        **{k: measured[k] for k in ("app_cpu_percent", "clients_cpu_percent", "app_write_bytes")},
        "sigterm_exit": exit_,
        # Other processes on the machine compete for the CPU too (a shared 2-core machine).
        "loadavg_1min": {"min": min(loads) if loads else None, "max": max(loads) if loads else None},
        "samples": samples,
    }


def run(args) -> dict:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stream_port, duration = free_port(), args.minutes * 60.0
    app = App(["--stream", f"tcp://127.0.0.1:{stream_port}", "--threads", str(args.threads)],
              RESULTS / f"soak-{stamp}-app.log")
    url, sender, stop = app.url, None, threading.Event()
    try:
        sender = start_sender(args, stream_port, duration)
        wait_for(lambda: _status(url)["state"] == "live", 60, "stream did not go live")
        clients = start_clients(url, args, stop)
        time.sleep(WARMUP_S)  # benchmark pacing, not synchronisation: the warm-up window
        measured = measure(url, app.ps, clients, duration, args.verbose)
        done, final = finish(url, sender, clients, stop, duration)
        rss = rss_figures(measured["samples"], app.rss_mib() * 1024 * 1024 / 1e6)
        result = result_of(args, measured, done, final, clients, rss, sigterm(app))
        result["failures"] = failures_of(result, args)
        return result
    finally:
        stop.set()
        if sender is not None and sender.poll() is None:
            sender.send_signal(signal.SIGTERM)
            try:
                sender.wait(10)
            except subprocess.TimeoutExpired:
                sender.kill()
        app.stop()


def report(r: dict) -> str:
    lat, st = r["latency"], r["app_status"]
    rows = [["measured", f"{r['measured_s']:.0f} s (+{r['config']['warmup_s']:.0f} s warm-up), "
                         f"{r['config']['clients']} clients, {r['config']['rate_hz']:.0f} Hz input"],
            ["sender", f"{r['sender']['sent']} sent, {r['sender']['dropped']} dropped, {r['sender']['rate_hz']} Hz"],
            ["app", f"received {st['received']}, lost {r['lost_messages']}, missed pulses {st['missed_pulses']}, "
                    f"invalid {st['invalid']}, receiver restarts {st['receiver_restarts']}"],
            ["http", f"{r['http_requests']} requests ({r['http_requests_per_s']}/s), {r['http_errors']} errors"]]
    rows += [[f"{name} latency", f"n={p['n']} p50 {p['p50_ms']} / p95 {p['p95_ms']} / p99 {p['p99_ms']} / "
                                 f"max {p['max_ms']} ms" + (" (goal: p99 < 50 ms)" if name == "frame" else "")]
             for name, p in lat.items() if p["n"]]
    rss = r["rss_mb"]
    rows += [["frames shown per client", f"{r['distinct_frames_per_client_per_s']} /s"],
             ["RSS MB", f"{rss['start']} → {rss['end']} (max {rss['max']}, growth {rss['growth']} first→last "
                        f"quarter median, slope {rss['slope_mb_per_min']} MB/min)"],
             ["threads, fds", f"{r['threads']['start']} → {r['threads']['end']}, {r['fds']['start']} → {r['fds']['end']}"],
             ["app CPU (client threads)", f"{r['app_cpu_percent']} % ({r['clients_cpu_percent']} %)"],
             ["disk writes, SIGTERM exit", f"{r['app_write_bytes']} B, code {r['sigterm_exit']['code']} in "
                                           f"{r['sigterm_exit']['seconds']} s"],
             ["load average (1 min)", f"{r['loadavg_1min']['min']}–{r['loadavg_1min']['max']}"],
             ["result", "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])]]
    return table(["soak", "value"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak/load test of the running app.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured duration")
    parser.add_argument("--quick", action="store_true", help="30 s instead of --minutes")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0, help="input messages per second")
    parser.add_argument("--threads", type=int, default=16, help="app's waitress threads")
    parser.add_argument("--image-period", type=float, default=0.1, help="s between a client's frame requests")
    parser.add_argument("--slow-period", type=float, default=1.0, help="s between history / health requests")
    parser.add_argument("--sndhwm", type=int, default=10,
                        help="sender's queue in messages (psi-bsread's Sender default is 10)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="print a sample every 5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 0.5
    result = run(args)
    text = report(result)
    print(text)
    print(f"results: {save('soak', {**result, 'command': 'python bench/soak.py ' + ' '.join(sys.argv[1:]), 'table': text})}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
