#!/usr/bin/env python
"""CPU time per message of the beam statistics (stream/statistics.py), the cases the receiver meets.

One command:  OMP_NUM_THREADS=1 python bench/beam_statistics.py    (--runs 400 --frames 16; --quick)

Part 1, the statistics functions: each case cycles through --frames distinct synthetic frames
(tests/beam_frames.py: known Gaussian spots, sigma 1.5-40 px, hot pixels) and times --runs calls with
the thread's CPU clock (time.thread_time: other processes' load shows less than in wall time, but
still shows through shared caches and cores). The 2048x2048 case starts from a bitshuffle_lz4
message made by stream/encoder.py and decoded by stream/protocol.py, with a fresh ChannelValue per
call (nothing decoded yet), as the receiver gets it; the reference rows time the full decode and
full-frame sums that from_rows avoids.

Part 2, the receiver's whole work per message with the beam statistics: Receiver.handle into a
stream.camera.Camera (decode, Ingest.pulse, history row, kept frame), in process without a socket,
for the three streams of bench/ingest.py; the minimum of --batches batches.

Prints tables, writes bench/results/beam-statistics-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.compression import limit_openmp_threads  # noqa: E402

limit_openmp_threads()  # before bitshuffle loads, as app.py does

import numpy as np  # noqa: E402

from bench.common import median, percentile, save, table  # noqa: E402
from bench.consumers import handle_cpu  # noqa: E402
from bench.streams import CONFIGS  # noqa: E402
from stream import statistics  # noqa: E402
from stream.encoder import Encoder  # noqa: E402
from stream.protocol import decode  # noqa: E402
from tests.beam_frames import camera_frame, simulator_frame  # noqa: E402

GOALS_MS = {"profiles": 0.5, "image-480x640": 2.0, "rows-2048": 4.0}


def _time(calls: list[Callable[[], object]], runs: int) -> dict[str, float]:
    """Median and p90 CPU and median wall milliseconds of `runs` calls, cycling through `calls`."""
    cpu, wall = [], []
    for i in range(runs):
        call = calls[i % len(calls)]
        c0, w0 = time.thread_time(), time.perf_counter()
        call()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_median_ms": median(cpu) * 1e3, "cpu_p90_ms": percentile(cpu, 90) * 1e3,
            "wall_median_ms": median(wall) * 1e3}


def _fresh_channel(parts: list) -> Callable[[], object]:
    """A call running from_rows on a not yet decoded image channel of `parts` (decoded outside the timing)."""
    state: dict[str, object] = {}

    def prepare() -> None:
        state["channel"] = decode(parts).channels["image"]

    def call() -> object:
        channel = state.pop("channel")
        result = statistics.from_rows(channel.spec.shape, channel.take_rows)
        prepare()
        return result

    prepare()
    return call


def cases(frames: int, seed: int) -> dict[str, tuple[str, list[Callable[[], object]]]]:
    rng = np.random.default_rng(seed)
    small = [camera_frame(rng, 480, 640)[0] for _ in range(frames)]
    big = [camera_frame(rng, 2048, 2048)[0] for _ in range(frames)]
    simulated = [simulator_frame(rng)[0] for _ in range(frames)]
    medium = [camera_frame(rng, 960, 1280)[0] for _ in range(frames)]
    encoder = Encoder()
    messages = [encoder.encode(1, 0.0, {"image": image}, compression="bitshuffle_lz4") for image in big]

    def profiles(images: list[np.ndarray]) -> list[Callable[[], object]]:
        pairs = [(i.sum(axis=0, dtype=np.int64), i.sum(axis=1, dtype=np.int64)) for i in images]  # cam_server's
        return [lambda p=p: statistics.from_profiles(*p) for p in pairs]

    return {
        "from_profiles 640+480 (int64)": ("profiles", profiles(small)),
        "from_profiles 2048+2048 (int64)": ("profiles", profiles(big)),
        "from_image 480x640 float64": ("image-480x640", [lambda i=i: statistics.from_image(i) for i in simulated]),
        "from_image 960x1280 uint16": ("", [lambda i=i: statistics.from_image(i) for i in medium]),
        "from_rows 2048x2048 uint16 bitshuffle_lz4": ("rows-2048", [_fresh_channel(m) for m in messages]),
        "reference: full decode 2048x2048 bitshuffle_lz4": (
            "", [lambda m=m: decode(m).channels["image"].value for m in messages]),
        "reference: both sums of a 2048x2048 uint16": (
            "", [lambda i=i: (i.sum(axis=0, dtype=np.int64), i.sum(axis=1, dtype=np.int64)) for i in big]),
    }


def functions(args) -> dict[str, dict]:
    results = {}
    for name, (goal, calls) in cases(args.frames, args.seed).items():
        for call in calls[:3]:
            call()  # warm-up: first-call costs (imports, caches) are not per message
        results[name] = {**_time(calls, args.runs), "goal_ms": GOALS_MS.get(goal)}
    return results


def receiver(args) -> dict[str, dict]:
    return {CONFIGS[name]["label"]: {"handle_us": handle_cpu(CONFIGS[name], 8, repeat=args.batches) * 1e6}
            for name in CONFIGS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=400, help="timed calls per case")
    parser.add_argument("--frames", type=int, default=16, help="distinct frames per case")
    parser.add_argument("--batches", type=int, default=30, help="batches of Receiver.handle per stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="--runs 60 --frames 4 --batches 8")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.frames, args.batches = 60, 4, 8
    load_before = os.getloadavg()
    results = functions(args)
    handled = receiver(args)
    load_after = os.getloadavg()
    texts = [table(["case", "CPU median ms", "CPU p90 ms", "wall median ms", "goal ms"],
                   [[name, r["cpu_median_ms"], r["cpu_p90_ms"], r["wall_median_ms"], r["goal_ms"]]
                    for name, r in results.items()]),
             table(["stream", "receiver CPU per message, in process (µs, min of batches)"],
                   [[name, r["handle_us"]] for name, r in handled.items()])]
    print("\n\n".join(texts))
    load = f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} ({os.cpu_count()} cores shared: figures are noisy)"
    command = "OMP_NUM_THREADS=1 python bench/beam_statistics.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = save("beam-statistics", {
        "command": command, "args": vars(args), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": load_before, "load_average_after": load_after,
        "functions": results, "receiver": handled, "tables": texts})
    print(f"{load}; {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
