#!/usr/bin/env python
"""Which body /api/frame should carry: raw uint8 levels, PNG of the levels, or either gzipped.

The server's cost is what matters first (every request shares its one GIL with the receiver threads);
then the bytes (a control-room link is 1-10 Gbit/s; 50 pages at 30 fps of 80 KB are 120 MB/s); lossy
formats (JPEG) are out: the painter's colours must equal plotly.js's, level for level.

    python bench/frame_format.py [--runs 200]

Frames: the built-in simulator's 480x640 camera rendered for a 640x520 graph (bin 2: 240 x 320 levels)
and a 2048x2048 uint16 frame rendered for the same graph, each through web.render.render. Prints a
table and writes bench/results/frame-format-<time>.json (with the load average).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import median, save, table  # noqa: E402
from stream.simulator import BeamModel  # noqa: E402
from web.render import View, render  # noqa: E402


def png_gray(levels: np.ndarray, level: int = 1) -> bytes:
    """A minimal 8-bit grayscale PNG (filter 'up' on every row), as a server would write it."""
    rows, cols = levels.shape
    up = np.empty((rows, cols + 1), dtype=np.uint8)
    up[:, 0] = 2  # filter type "up"
    up[0, 1:] = levels[0]
    up[1:, 1:] = levels[1:] - levels[:-1]  # uint8 wrap-around is what PNG wants

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(up.tobytes(), level))
            + chunk(b"IEND", b""))


def timed(work, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return median(times) * 1e3, result


def frames() -> dict[str, np.ndarray]:
    simulated = BeamModel(640, 480, seed=1).next()["image"]
    big = BeamModel(2048, 2048, dtype="uint16", seed=1).next()["image"]
    return {"480x640 float64 (simulator)": simulated, "2048x2048 uint16": big}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    load = os.getloadavg()
    view = View(bins_x=320, bins_y=260)
    rows = []
    for name, image in frames().items():
        render_ms, rendered = timed(lambda: render(image, view), max(10, args.runs // 10))
        levels = dict(rendered.parts)["levels"].reshape(rendered.meta["rows"], rendered.meta["cols"])
        raw = levels.tobytes()
        for label, encode in (("raw uint8", lambda: levels.tobytes()),
                              ("raw uint8, gzip 1", lambda: zlib.compress(raw, 1)),
                              ("PNG (zlib 1)", lambda: png_gray(levels, 1)),
                              ("PNG (zlib 6)", lambda: png_gray(levels, 6))):
            ms, body = timed(encode, args.runs)
            rows.append({"frame": name, "format": label, "encode_ms": round(ms, 3), "bytes": len(body),
                         "render_ms": round(render_ms, 2), "shape": list(levels.shape)})
    print(table(["frame", "format", "encode ms", "KiB", "(render ms)"],
                [[r["frame"], r["format"], r["encode_ms"], r["bytes"] / 1024, r["render_ms"]] for r in rows]))
    path = save("frame-format", {"command": "python bench/frame_format.py " + " ".join(sys.argv[1:]),
                                 "load_average_start": load, "load_average_end": os.getloadavg(), "results": rows})
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); results: {path}")

if __name__ == "__main__":
    main()
