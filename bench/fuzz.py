#!/usr/bin/env python
"""Fuzz campaign, long version: 10 000 mutated/odd bsread messages into the running app, plus a decoder hammer.

One command:  python bench/fuzz.py                      (10 000 messages into the app + 100 000 decoded)
              python bench/fuzz.py --messages 2000 --decode 0 --seed 3

1. The campaign (tests/fuzz_runner.py): `python app.py --stream ...` as a subprocess, a PUSH sending
   the fuzz cases of tests/fuzz_messages.py over real ZeroMQ while simulated pages (tests/dash_client.py)
   run their frame loop (/api/frame) and poll readings and health; then lockstep checks of the lazy (render-time / record-time) paths and of
   valid-but-odd data. Pass = no crash, receiver alive and never restarted, every message accounted
   for by reason in /api/status and the health panel, next good frame displayed, RSS bounded.
2. The decoder hammer: --decode cases decoded in a child process with *every* value decompressed
   (images included), straight into the bitshuffle/lz4 C code; a segfault shows as exit code -11.

Prints a table; raw results (with the machine and its load average): bench/results/fuzz-<time>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save, table  # noqa: E402

HAMMER = r"""
import collections, faulthandler, json, sys, time
import numpy as np
faulthandler.enable()
sys.path.insert(0, sys.argv[3])
from stream.protocol import BsreadError, Decoder
from tests.fuzz_messages import Fuzzer
fuzzer, decoder = Fuzzer(int(sys.argv[1])), Decoder()
outcomes = collections.Counter()
started = time.monotonic()
for _ in range(int(sys.argv[2])):
    case = fuzzer.case()
    try:
        message = decoder.decode(case.frames)
    except BsreadError as exc:
        outcomes["rejected:" + exc.reason] += 1
        continue
    outcomes["accepted"] += 1
    for channel in message.channels.values():
        try:
            channel.value
            if len(channel.spec.shape) == 2:
                channel.take_rows(np.arange(0, channel.spec.shape[0], 3))
        except BsreadError as exc:
            outcomes["bad-value:" + exc.reason] += 1
print(json.dumps({"outcomes": outcomes, "seconds": time.monotonic() - started}))
"""


def hammer(cases: int, seed: int) -> dict:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", HAMMER, str(seed), str(cases), str(ROOT)], capture_output=True,
                          text=True, timeout=3600)
    result = {"cases": cases, "seed": seed, "exit_code": proc.returncode, "seconds": round(time.monotonic() - started, 1)}
    if proc.returncode == 0:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        result["outcomes"] = dict(sorted(result["outcomes"].items()))
    else:
        result["stderr"] = proc.stderr[-3000:]
    return result


def summary(campaign: dict, decoded: dict | None) -> str:
    a = campaign["figures"]["phase_a"]
    status, rss = campaign["final_status"], campaign["rss_mb"]
    counts = collections.Counter(a["app_invalid_by_reason"])
    rows = [["messages sent into the app", f"{a['messages']} in {a['seconds']} s ({a['messages_per_s']}/s)"],
            ["accepted / rejected on arrival", f"{a['accepted']} / {sum(a['rejected_on_arrival'].values())}"],
            ["bad values when recorded", sum(a["bad_values_when_recorded"].values())],
            ["bad images when rendered", f"{a['bad_images_when_rendered']} ({a['frames_requested']} frame requests)"],
            ["app's invalid_by_reason", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))],
            ["lockstep lazy-path checks", campaign["figures"]["phase_b"]],
            ["receiver state, restarts, exit code",
             f"{status['state']}, {status['receiver_restarts']}, {campaign['app_exit_code']}"],
            ["RSS MB (after warm-up → after fuzz → end)", f"{rss['after_warmup']} → {rss['after_fuzz']} → {rss['end']}"],
            ["threads", f"{campaign['threads']['after_warmup']} → {campaign['threads']['end']}"]]
    if decoded is not None:
        rows.append(["decoder hammer", f"{decoded['cases']} cases, exit code {decoded['exit_code']}, "
                                       f"{decoded['seconds']:.0f} s: {decoded.get('outcomes', decoded.get('stderr'))}"])
    return table(["fuzz", "result"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the running app and the decoder.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="fuzz cases sent into the running app")
    parser.add_argument("--decode", type=int, default=100_000, help="cases for the decoder hammer (0 = skip)")
    parser.add_argument("--rounds", type=int, default=40, help="lockstep rounds of the lazy-path checks")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from tests.fuzz_runner import run_campaign

    load_start = os.getloadavg()
    started = time.monotonic()
    campaign = run_campaign(args.messages, seed=args.seed, lockstep_rounds=args.rounds)
    campaign["seconds"] = round(time.monotonic() - started, 1)
    decoded = hammer(args.decode, args.seed + 1000) if args.decode else None
    failures = list(campaign["failures"])
    if decoded is not None and decoded["exit_code"] != 0:
        failures.append(f"decoder hammer exited with {decoded['exit_code']}")
    load_end = os.getloadavg()
    text = summary(campaign, decoded)
    print(f"fuzz campaign, seed {args.seed}\n{text}")
    print(f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at the end (1 min)")
    path = save("fuzz", {"command": "python bench/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv),
                         "load_average_start": load_start, "load_average_end": load_end, "campaign": campaign,
                         "decoder_hammer": decoded, "failures": failures, "table": text})
    print(f"results: {path}")
    print("PASS" if not failures else "FAIL: " + "; ".join(failures[:10]))
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
