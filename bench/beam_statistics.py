#!/usr/bin/env python
"""CPU time per message of the beam statistics (stream/statistics.py), the cases the receiver meets.

One command:  OMP_NUM_THREADS=1 python bench/statistics.py            (--runs 400 --frames 16)

Each case cycles through --frames distinct synthetic frames (tests/beam_frames.py: known Gaussian
spots, sigma 1.5-40 px, hot pixels) and times --runs calls with the thread's CPU clock
(time.thread_time: other processes' load shows less than in wall time, but still shows through
shared caches and cores). The 2048x2048 case starts from a bitshuffle_lz4 message made by
stream/encoder.py and decoded by stream/protocol.py, with a fresh ChannelValue per call (nothing
decoded yet), as the receiver gets it; the reference rows time the full decode and full-frame sums
that from_rows avoids. Prints a table of medians and writes bench/results/statistics-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stream.compression import limit_openmp_threads  # noqa: E402

limit_openmp_threads()  # before bitshuffle loads, as app.py does

import numpy as np  # noqa: E402

from stream import statistics  # noqa: E402
from stream.encoder import Encoder  # noqa: E402
from stream.protocol import decode  # noqa: E402
from tests.beam_frames import camera_frame, simulator_frame  # noqa: E402

GOALS_MS = {"profiles": 0.5, "image-480x640": 2.0, "rows-2048": 4.0}


def _time(calls: list[Callable[[], object]], runs: int) -> dict[str, float]:
    """Median and p90 CPU and wall milliseconds of `runs` calls, cycling through `calls`."""
    cpu, wall = [], []
    for i in range(runs):
        call = calls[i % len(calls)]
        c0, w0 = time.thread_time(), time.perf_counter()
        call()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    ms = lambda values, q: round(float(np.percentile(values, q)) * 1e3, 3)  # noqa: E731
    return {"cpu_median_ms": ms(cpu, 50), "cpu_p90_ms": ms(cpu, 90), "wall_median_ms": ms(wall, 50)}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=400, help="timed calls per case")
    parser.add_argument("--frames", type=int, default=16, help="distinct frames per case")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    results = {}
    print(f"{'case':<50} {'cpu median':>11} {'cpu p90':>8} {'wall med':>9} {'goal':>6}  (ms per message)")
    for name, (goal, calls) in cases(args.frames, args.seed).items():
        for call in calls[:3]:
            call()  # warm-up: first-call costs (imports, caches) are not per message
        timing = _time(calls, args.runs)
        limit = GOALS_MS.get(goal)
        results[name] = {**timing, "goal_ms": limit}
        print(f"{name:<50} {timing['cpu_median_ms']:>11.3f} {timing['cpu_p90_ms']:>8.3f} "
              f"{timing['wall_median_ms']:>9.3f} {'' if limit is None else f'{limit:>6.1f}'}")
    document = {
        "command": "OMP_NUM_THREADS=1 python bench/statistics.py " + " ".join(argv or sys.argv[1:]),
        "runs": args.runs, "frames": args.frames, "seed": args.seed,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "python": platform.python_version(), "numpy": np.__version__, "results": results,
    }
    out = ROOT / "bench" / "results" / f"statistics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f} (2 cores shared: figures are noisy); {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
