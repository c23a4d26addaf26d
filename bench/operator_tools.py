#!/usr/bin/env python
"""Operator tools: what regions of interest and kept frames cost the receiver and the memory.

One command:  python bench/operator_tools.py           (20 s per soak, 100 kept frames)
              python bench/operator_tools.py --quick   (8 s per soak, 20 kept frames)

(a) ROIs. A paced 2048x2048 uint16 bitshuffle_lz4 stream (default 100 Hz, bench/streams.py sender
    in its own process) into our camera (stream.camera.Camera: Receiver thread, Ingest.pulse with
    stream/rois.py, history, kept frames) in another process, once with no ROI and once with 8
    boxes of 64x64 px set before the first message the way PUT /api/rois sets them (parse_rois,
    RoiSet.replace). Checked: sent == received, every pulse id in the history, every ROI column
    present with a value in every row; the receiver thread's CPU. Then, in process without a
    socket, Receiver.handle per message with 0, 1 and 8 ROIs (min of batches, interleaved): the first ROI pays
    for the rows the boxes cover (of a compressed image only those rows' blocks are decoded), each
    further one mostly for its own sums.
(b) Kept frames. A camera with --frames N (frame memory unbounded) is fed N messages (each its own
    copy, as off the socket) while watched, in a fresh process: RSS growth per kept frame, as
    received and after a viewer decoded every kept image, beside the message size and what
    stream/frames.py counts (Frame.nbytes).

Prints tables, writes bench/results/operator-tools-<time>.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MIB, save, table  # noqa: E402
from bench.consumers import bench_camera, handle_cpu, run_paced  # noqa: E402
from bench.streams import CONFIGS, inproc_messages, run_in_process  # noqa: E402

ROI_CONFIG = "u16-2048-bslz4-prof"
MEMORY_CONFIGS = ("f64-480x640", "u16-2048-bslz4-prof")


def roi_soaks(ctx, args) -> dict:
    results = {}
    for rois in (0, 8):
        print(f"== {rois} ROIs: {CONFIGS[args.config]['label']} at {args.hz:g} Hz for {args.seconds:g} s", flush=True)
        results[rois] = run_paced(ctx, CONFIGS[args.config], args.hz, args.seconds, 8, args.viewer_hz, rois=rois)
    return results


def roi_cpu(args) -> dict:
    """µs per message of Receiver.handle with 0, 1 and 8 ROIs (interleaved, 5 rounds: the machine's
    load drifts alike over the three), and per ROI."""
    config = CONFIGS[args.config]
    messages = inproc_messages(config, 8, 64)
    per_message = {n: float("inf") for n in (0, 1, 8)}
    for _ in range(5):
        for n in per_message:
            cpu = handle_cpu(config, 8, repeat=max(2, args.batches // 5), rois=n, messages=messages) * 1e6
            per_message[n] = min(per_message[n], cpu)
    return {"handle_us": per_message, "first_roi_us": per_message[1] - per_message[0],
            "eight_rois_us": per_message[8] - per_message[0], "further_roi_us": (per_message[8] - per_message[1]) / 7}


def roi_table(soaks: dict, cpu: dict) -> str:
    rows = []
    for rois, s in soaks.items():
        ok = (s["lost"] == 0 and s["all_pulse_ids"] and not s["rx_roi_columns_missing"]
              and s["rx_roi_nan_cells"] == 0)
        rows.append([rois, s["sent"], s["rx_received"], s["lost"], s["dropped_at_sender"],
                     "yes" if s["all_pulse_ids"] else "**no**",
                     "—" if not rois else ("yes" if not s["rx_roi_columns_missing"] and not s["rx_roi_nan_cells"]
                                           else f"**no** ({s['rx_roi_nan_cells']} NaN)"),
                     f"{s['rx_thread_cpu']:.0%} / {s['rx_thread_cpu_max_1s']:.0%}", f"{s['rx_process_cpu']:.0%}",
                     cpu["handle_us"][rois], "yes" if ok else "**no**"])
    return table(["ROIs", "sent", "received", "lost", "dropped at sender", "every pulse id in history",
                  "ROI columns in every row", "receiver thread CPU (mean / max 1 s)", "process CPU",
                  "in process µs per message", "no loss"], rows)


def kept_frames(config_name: str, count: int) -> dict:
    """Process body (a fresh process): RSS growth of a camera keeping `count` frames."""
    import gc

    import psutil

    from bench.streams import build_pool
    from stream.receiver import Receiver

    config = CONFIGS[config_name]
    pool = build_pool(config, 8)  # kept alive: only the received copies count
    rss = lambda: psutil.Process().memory_info().rss  # noqa: E731
    camera = bench_camera("tcp://127.0.0.1:1", frames=count, frame_memory=1 << 40)
    receiver = Receiver(camera.address, camera._on_message)  # never started: handle() only
    receiver.handle(inproc_messages(config, 8, 1, first=1, pool=pool)[0])  # first-message costs (layout, columns)
    gc.collect()
    before = rss()
    camera.touch()
    for i in range(count):  # one message at a time, as off the socket
        receiver.handle(inproc_messages(config, 8, 1, first=2 + i, pool=pool)[0])
    gc.collect()
    received = rss()
    frames = camera.frames.recent()
    size = frames[-1].message.nbytes
    for frame in frames:
        frame.image()
    decoded = rss()
    return {"frames": len(frames), "message_mib": size / MIB, "counted_mib": frames[-1].nbytes / MIB,
            "as_received_mib": (received - before) / MIB / len(frames),
            "decoded_mib": (decoded - before) / MIB / len(frames)}


def memory_table(memory: dict) -> str:
    return table(["stream", "kept frames", "message MiB", "RSS MiB per kept frame (as received)",
                  "RSS MiB per kept frame (images decoded)", "frames.py counts MiB", "RSS / message"],
                 [[CONFIGS[name]["label"], m["frames"], m["message_mib"], m["as_received_mib"], m["decoded_mib"],
                   m["counted_mib"], m["decoded_mib"] / m["message_mib"]] for name, m in memory.items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="8 s soaks, 20 kept frames, 8 batches")
    parser.add_argument("--seconds", type=float, help="per soak (default 20, quick 8)")
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--config", choices=list(CONFIGS), default=ROI_CONFIG, help="the ROI stream")
    parser.add_argument("--frames", type=int, help="kept frames (default 100, quick 20)")
    parser.add_argument("--batches", type=int, help="in-process batches (default 30, quick 8)")
    parser.add_argument("--viewer-hz", type=float, default=10.0)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (8.0 if args.quick else 20.0)
    args.frames = args.frames or (20 if args.quick else 100)
    args.batches = args.batches or (8 if args.quick else 30)
    load_start = os.getloadavg()
    ctx = mp.get_context("spawn")
    soaks = roi_soaks(ctx, args)
    cpu = roi_cpu(args)
    memory = {name: run_in_process(ctx, kept_frames, (name, args.frames), 300) for name in MEMORY_CONFIGS}
    load_end = os.getloadavg()
    texts = [roi_table(soaks, cpu),
             table(["in process, min of batches", "µs per message"],
                   [["no ROI", cpu["handle_us"][0]], ["1 ROI", cpu["handle_us"][1]], ["8 ROIs", cpu["handle_us"][8]],
                    ["added by the first ROI", cpu["first_roi_us"]], ["added by 8 ROIs", cpu["eight_rois_us"]],
                    ["added per ROI, 8 ROIs", cpu["eight_rois_us"] / 8],
                    ["added by each ROI after the first", cpu["further_roi_us"]]]),
             memory_table(memory)]
    print("\n" + "\n\n".join(texts))
    print(f"\nload average: {load_start[0]:.2f} at start, {load_end[0]:.2f} at the end (1 min), {os.cpu_count()} cores")
    path = save("operator-tools", {"command": "python bench/operator_tools.py " + " ".join(sys.argv[1:] if argv is None
                                                                                         else argv),
                                   "args": vars(args), "load_average_start": load_start, "load_average_end": load_end,
                                   "roi_soaks": soaks, "roi_cpu": cpu, "kept_frames": memory, "tables": texts})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
