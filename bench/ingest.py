#!/usr/bin/env python
"""Ingest benchmark: how fast can a consumer take bsread messages off a local ZeroMQ socket?

One command:  python bench/ingest.py            (a few minutes, includes a 60 s soak)
              python bench/ingest.py --quick    (short windows, one repetition, 10 s soak)

A raw pyzmq PUSH (its own process) replays a pool of pre-encoded messages at maximum rate; only the
main header is re-encoded per message, so pulse ids stay consecutive. Each consumer runs in its own
process and is measured for a fixed window after a warm-up:

  raw   recv_multipart(copy=False), no decoding at all (the ceiling of this machine)
  ours  stream.camera.Camera (its Receiver thread, Ingest.pulse, history, kept frames; at full rate
        the beam statistics keep to their budget, stream/budget.py: the share measured is shown), while the
        main thread plays a viewer that reads the latest frame (decoding it) and the new history
        rows at --viewer-hz
  psi   psi-bsread's Source (PULL), reading message.data.data['image'].value of every message

for each stream configuration, interleaved (raw, ours, psi, raw, ours, psi, ...); the median of the
repetitions is reported. The soak then sends a paced 2048x2048 uint16 stream (default 100 Hz, 60 s)
to our camera and checks that nothing was lost, that the history holds every pulse id and how much
CPU the receiver thread used. Prints tables, writes bench/results/ingest-<time>.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save, table  # noqa: E402
from bench.consumers import consume, handle_cpu, medians, run_paced  # noqa: E402
from bench.streams import CONFIGS, run_in_process, start_sender, stop_process  # noqa: E402

CONSUMERS = ("raw", "ours", "psi")
GOALS = {  # config -> (numerator, denominator, minimum)
    "f64-480x640": ("ours", "raw", 0.9),
    "u16-2048-bslz4-prof": ("ours", "psi", 2.0),
    "u16-2048-bslz4-noprof": ("ours", "psi", 1.2),
}


def measure_config(ctx, name: str, args) -> dict:
    """Every consumer against one sender, interleaved, --repeat times; medians."""
    config = CONFIGS[name]
    proc, _conn, stop, info = start_sender(ctx, config, args.pool)
    address = f"tcp://127.0.0.1:{info['port']}"
    print(f"\n== {name}: {config['label']}, {info['mean_bytes'] / 1e6:.2f} MB per message", flush=True)
    runs: dict[str, list] = {kind: [] for kind in args.consumers}
    try:
        for rep in range(args.repeat):
            for kind in args.consumers:
                r = run_in_process(ctx, consume, (kind, address, args.warmup, args.seconds, args.viewer_hz),
                                   60 + args.warmup + args.seconds)
                runs[kind].append(r)
                text = r["error"] if "error" in r else f"{r['msgs']:8.1f} msg/s  process CPU {r['process_cpu']:.0%}"
                if "measured_share" in r:
                    text += f"  beam statistics measured {r['measured_share']:.0%}"
                print(f"   [{rep + 1}] {kind:<4} {text}", flush=True)
    finally:
        stop_process(proc, stop)
    summary = {kind: medians(rs, ("msgs", "process_cpu", "thread_cpu", "measured_share")) for kind, rs in runs.items()}
    ours = [r for r in runs.get("ours", []) if "error" not in r]
    if ours:
        summary["ours"]["thread_us_per_msg"] = sorted(r["thread_cpu"] / r["msgs"] * 1e6 for r in ours)[len(ours) // 2]
        summary["ours"]["invalid"] = sum(r["invalid"] for r in ours)
        summary["ours"]["restarts"] = sum(r["restarts"] for r in ours)
    return {"label": config["label"], "mean_bytes": info["mean_bytes"], "summary": summary, "runs": runs}


def ratio(summary: dict, num: str, den: str) -> float | None:
    a, b = summary.get(num, {}).get("msgs"), summary.get(den, {}).get("msgs")
    return a / b if a is not None and b else None


def throughput_table(results: dict) -> str:
    rows = []
    for name, res in results.items():
        s = res["summary"]
        num, den, minimum = GOALS[name]
        value = ratio(s, num, den)
        rows.append([res["label"], f"{res['mean_bytes'] / 1e6:.2f} MB",
                     *(s.get(kind, {}).get("msgs") for kind in CONSUMERS),
                     ratio(s, "ours", "raw"), ratio(s, "ours", "psi"), f"{num}/{den} ≥ {minimum:g}",
                     "—" if value is None else ("yes" if value >= minimum else "**no**"),
                     measured(s.get("ours", {}).get("measured_share"))])
    return table(["stream", "msg size", "raw msg/s", "ours msg/s", "psi msg/s", "ours/raw", "ours/psi", "goal",
                  "met", "ours: pulses measured at this rate"], rows)


def measured(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def cpu_table(results: dict) -> str:
    def pct(value):
        return None if value is None else f"{value:.0%}"

    rows = [[res["label"], pct(res["summary"].get("ours", {}).get("thread_cpu")),
             res["summary"].get("ours", {}).get("thread_us_per_msg"),
             res.get("handle_cpu_s") and res["handle_cpu_s"] * 1e6,
             *(pct(res["summary"].get(kind, {}).get("process_cpu")) for kind in CONSUMERS)]
            for res in results.values()]
    return table(["stream", "ours: receiver thread CPU", "ours: thread µs per message",
                  "in process, no socket: µs per message", "raw process CPU", "ours process CPU",
                  "psi process CPU"], rows)


def soak_table(soak: dict) -> str:
    ok = (soak["lost"] == 0 and soak["all_pulse_ids"] and soak["rx_thread_cpu"] < 0.5
          and soak["rx_statistics_skipped"] == 0)
    return table(["sent", "received", "lost", "dropped at sender", "history has every pulse id",
                  "beam statistics skipped", "missed/dup/reverted", "invalid",
                  "receiver thread CPU (mean / max 1 s)", "process CPU", "goal: 0 lost, 0 skipped, thread < 50 %"],
                 [[soak["sent"], soak["rx_received"], soak["lost"], soak["dropped_at_sender"],
                   "yes" if soak["all_pulse_ids"] else "**no**", soak["rx_statistics_skipped"],
                   f"{soak['rx_missed']}/{soak['rx_duplicated']}/{soak['rx_reverted']}", soak["rx_invalid"],
                   f"{soak['rx_thread_cpu']:.0%} / {soak['rx_thread_cpu_max_1s']:.0%}",
                   f"{soak['rx_process_cpu']:.0%}", "yes" if ok else "**no**"]])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 1 repetition, 10 s soak")
    parser.add_argument("--seconds", type=float, help="measurement window per consumer (default 5, quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up before each window (default 1, quick 0.5)")
    parser.add_argument("--repeat", type=int, help="repetitions per consumer; the median is reported (default 3)")
    parser.add_argument("--pool", type=int, default=8, help="distinct pre-encoded messages")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--consumers", nargs="+", choices=CONSUMERS, default=list(CONSUMERS))
    parser.add_argument("--viewer-hz", type=float, default=10.0,
                        help="how often the 'ours' consumer reads the latest frame and new rows (0 = never)")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--skip-handle-cpu", action="store_true", help="skip the in-process CPU per message")
    parser.add_argument("--soak-only", action="store_true")
    parser.add_argument("--soak-seconds", type=float, help="default 60, quick 10")
    parser.add_argument("--soak-hz", type=float, default=100.0)
    parser.add_argument("--soak-config", choices=list(CONFIGS), default="u16-2048-bslz4-noprof")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.soak_seconds = args.soak_seconds or (10.0 if args.quick else 60.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/ingest.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load_start = os.getloadavg()
    print(f"{command}\nload average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
          f" ({os.cpu_count()} cores)", flush=True)
    ctx = mp.get_context("spawn")
    results = {}
    if not args.soak_only:
        results = {name: measure_config(ctx, name, args) for name in args.configs}
        if not args.skip_handle_cpu:
            for name in args.configs:
                results[name]["handle_cpu_s"] = handle_cpu(CONFIGS[name], args.pool)
    soak = None
    if not args.skip_soak:
        print(f"\n== soak: {CONFIGS[args.soak_config]['label']} at {args.soak_hz:g} Hz for {args.soak_seconds:g} s",
              flush=True)
        soak = run_paced(ctx, CONFIGS[args.soak_config], args.soak_hz, args.soak_seconds, args.pool, args.viewer_hz)
    load_end = os.getloadavg()
    texts = [throughput_table(results), cpu_table(results)] if results else []
    if soak:
        texts.append(soak_table(soak))
    print("\n" + "\n\n".join(texts))
    print(f"\nload average: {load_start[0]:.2f} at start, {load_end[0]:.2f} at the end (1 min)")
    path = save("ingest", {"command": command, "args": vars(args), "load_average_start": load_start,
                           "load_average_end": load_end, "throughput": results, "soak": soak,
                           "tables": texts, "date": time.strftime("%Y-%m-%d %H:%M")})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
