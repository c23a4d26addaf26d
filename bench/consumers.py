"""Consumers of the benchmarks: our camera (the real path: `stream.camera.Camera`, its `Receiver`
thread, `Ingest.pulse`, the history and the kept frames), raw pyzmq and psi-bsread (GPL, imported
only as a comparison consumer), measured over a window; our camera fed in process; a paced soak.
"""

from __future__ import annotations

import statistics
import time
import timeit
from typing import Any, Callable, Sequence

from bench.common import thread_cpu_seconds
from bench.streams import inproc_messages


# ---------------------------------------------------------------------------------------- our camera


def bench_camera(address: str, frames: int = 100, frame_memory: int = 512 * 1024 * 1024):
    """A camera on `address` (PULL, connect) with these kept-frame limits; not started."""
    from stream.camera import Camera, CameraSpec, Limits

    return Camera(CameraSpec("bench", address=address), limits=Limits(frames=frames, frame_memory=frame_memory))


def receiver_tid(camera) -> int:
    return camera._receiver._thread.native_id


def set_rois(camera, count: int, shape: tuple[int, int]) -> list[dict]:
    """`count` boxes of 64×64 pixels spread over an image of `shape` (height, width), set as
    PUT /api/rois sets them (web/tools_api.py: parse_rois, then RoiSet.replace)."""
    from stream.rois import parse_rois

    height, width = shape
    boxes = [{"name": f"r{i}", "x0": (i * width) // (count + 1), "x1": (i * width) // (count + 1) + 64,
              "y0": height // 2 - 32 + (i % 2) * 40, "y1": height // 2 + 32 + (i % 2) * 40} for i in range(count)]
    camera.rois.replace(parse_rois({"rois": boxes}, shape))
    return boxes


class Viewer:
    """What a dashboard does between messages: look at the latest frame, fetch the new history rows."""

    def __init__(self, camera, hz: float) -> None:
        self.camera, self.interval = camera, (1.0 / hz if hz > 0 else None)
        self.since = 0
        self.frames = 0
        self.next = time.monotonic()

    def run_until(self, deadline: float) -> None:
        while (now := time.monotonic()) < deadline:
            if self.interval is None or now < self.next:
                time.sleep(max(0.0, min(deadline, self.next if self.interval else deadline) - now))
                continue
            self.next = max(self.next + self.interval, now)
            self.camera.touch()
            frame = self.camera.frames.latest()
            if frame is not None:
                frame.image()
                self.frames += 1
            self.since = self.camera.buffer.read(since=self.since).end


def wait_first(camera, timeout: float = 30.0) -> None:
    give_up = time.monotonic() + timeout
    while camera.buffer.count == 0:
        if time.monotonic() > give_up:
            raise TimeoutError("no messages")
        time.sleep(0.005)


def handle_cpu(config: dict, pool_size: int, repeat: int = 30, rois: int = 0, messages: list | None = None) -> float:
    """CPU seconds per message of Receiver.handle into our camera (decode, Ingest.pulse, history row,
    kept frame), in process, no socket; the minimum of `repeat` batches (the least disturbed).
    `messages`: from inproc_messages, else 64 made here."""
    from stream.receiver import Receiver

    messages = messages or inproc_messages(config, pool_size, 64)
    camera = bench_camera("tcp://127.0.0.1:1")
    receiver = Receiver(camera.address, camera._on_message)  # never started: handle() only
    if rois:
        set_rois(camera, rois, (config["height"], config["width"]))
    receiver.handle(messages[-1])  # first-message costs (layout, history columns) are not per message
    counter = iter(range(10**12))

    def one() -> None:
        receiver.handle(messages[next(counter) % len(messages)])

    batch = 20 if config["width"] * config["height"] < 10**6 else 4
    return min(timeit.repeat(one, number=batch, repeat=repeat, timer=time.process_time)) / batch


# ------------------------------------------------------------------------------- windowed consumers


def window_loop(receive: Callable[[], bool], warmup: float, duration: float, timeout: float = 30.0) -> dict:
    """Call receive() (True per message) and count the messages of the window after `warmup`."""
    perf = time.perf_counter
    give_up = perf() + timeout
    start = end = t_start = t_last = None
    cpu0 = 0.0
    n = 0
    while True:
        got = receive()
        now = perf()
        if not got:
            if now > give_up:
                raise TimeoutError("no messages")
            continue
        if start is None:
            start, end = now + warmup, now + warmup + duration
            give_up = end + timeout
        if now < start:
            continue
        if t_start is None:
            t_start, cpu0 = now, time.process_time()  # the window starts at the end of this message
            continue
        if now >= end:
            break
        n, t_last = n + 1, now
    elapsed = (t_last - t_start) if t_last is not None else duration
    return {"messages": n, "elapsed_s": elapsed, "msgs": n / elapsed if elapsed > 0 else 0.0,
            "process_cpu": (time.process_time() - cpu0) / elapsed if elapsed > 0 else 0.0}


def consume_raw(address: str, warmup: float, duration: float) -> dict:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 64)
    socket.connect(address)

    def receive() -> bool:
        if not socket.poll(100):
            return False
        socket.recv_multipart(copy=False)
        return True

    try:
        return window_loop(receive, warmup, duration)
    finally:
        socket.close(0)
        context.term()


def consume_psi(address: str, warmup: float, duration: float) -> dict:
    import logging

    import bsread  # psi-bsread, GPL: a comparison peer only

    logging.getLogger("mflow").setLevel(logging.CRITICAL)  # a receive timeout is logged as an error
    source = bsread.Source(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]), mode=bsread.PULL,
                           receive_timeout=200)
    source.connect()

    def receive() -> bool:
        message = source.receive()
        if message is None:
            return False
        message.data.data["image"].value  # the decoded image (psi-bsread decodes every channel)
        return True

    try:
        return window_loop(receive, warmup, duration)
    finally:
        source.disconnect()


def consume_ours(address: str, warmup: float, duration: float, viewer_hz: float) -> dict:
    camera = bench_camera(address).start()
    tid = receiver_tid(camera)
    try:
        wait_first(camera)
        viewer = Viewer(camera, viewer_hz)
        viewer.run_until(time.monotonic() + warmup)
        t0, c0, thr0, cpu0 = time.perf_counter(), camera.buffer.count, thread_cpu_seconds(tid), time.process_time()
        skipped0 = camera.statistics_skipped
        viewer.run_until(time.monotonic() + duration)
        t1, c1, thr1, cpu1 = time.perf_counter(), camera.buffer.count, thread_cpu_seconds(tid), time.process_time()
        skipped = camera.statistics_skipped - skipped0
        health = camera.health()
    finally:
        camera.stop()
    elapsed = t1 - t0
    return {"messages": c1 - c0, "elapsed_s": elapsed, "msgs": (c1 - c0) / elapsed,
            "process_cpu": (cpu1 - cpu0) / elapsed, "thread_cpu": (thr1 - thr0) / elapsed,
            "viewer_frames": viewer.frames, "invalid": health.invalid, "missed": health.missed_pulses,
            "measured_share": 1.0 - skipped / max(c1 - c0, 1),
            "restarts": health.receiver_restarts}


CONSUMERS: dict[str, Callable[..., dict]] = {
    "raw": lambda address, warmup, duration, viewer_hz: consume_raw(address, warmup, duration),
    "ours": consume_ours,
    "psi": lambda address, warmup, duration, viewer_hz: consume_psi(address, warmup, duration),
}


def consume(kind: str, address: str, warmup: float, duration: float, viewer_hz: float) -> dict:
    return CONSUMERS[kind](address, warmup, duration, viewer_hz)


def medians(runs: Sequence[dict], keys: Sequence[str]) -> dict[str, Any]:
    """Median of each key over the runs without an error."""
    ok = [r for r in runs if "error" not in r]
    return {key: statistics.median(r[key] for r in ok) for key in keys if ok and all(key in r for r in ok)}



# ------------------------------------------------------------------------------------------ paced soak


def _history_checks(camera, roi_columns: Sequence[str]) -> dict:
    import numpy as np

    from stream.statistics import STATS_COLUMNS

    history = camera.buffer.read(0)
    ids = history.column("pulse_id")
    missing = [c for c in roi_columns if c not in history.columns]
    return {"rows": len(ids), "first_pulse_id": int(ids[0]) if len(ids) else None,
            "last_pulse_id": int(ids[-1]) if len(ids) else None,
            "consecutive": bool(len(ids) and (ids[1:] - ids[:-1] == 1).all()),
            "stats_nan": int(np.isnan(history.column(STATS_COLUMNS[1])).sum()),  # rows without a centroid
            "roi_columns_missing": missing,
            "roi_nan_cells": int(sum(np.isnan(history.column(c)).sum() for c in roi_columns if c not in missing))}


def soak_consumer(address: str, viewer_hz: float, rois: int, shape: tuple[int, int], conn, stop) -> None:
    """Process body: our camera until `stop`, sampling its receiver thread's CPU every second."""
    camera = bench_camera(address)
    if rois:  # before the first message: every row must have them
        set_rois(camera, rois, shape)
    columns = [c for roi in camera.rois.rois for c in roi.columns]
    camera.start()
    tid = receiver_tid(camera)
    conn.send("ready")
    wait_first(camera, timeout=60)
    viewer = Viewer(camera, viewer_hz)
    t0, thr0, cpu0 = time.monotonic(), thread_cpu_seconds(tid), time.process_time()
    samples, last_t, last_thr = [], t0, thr0
    while not stop.is_set():
        viewer.run_until(last_t + 1.0)
        now, thr = time.monotonic(), thread_cpu_seconds(tid)
        samples.append((thr - last_thr) / (now - last_t))
        last_t, last_thr = now, thr
    cpu1 = time.process_time()
    camera.stop()
    health = camera.health()
    conn.send({"received": health.received, "elapsed_s": last_t - t0,
               "thread_cpu": (last_thr - thr0) / (last_t - t0), "thread_cpu_max_1s": max(samples[:-1] or samples),
               "process_cpu": (cpu1 - cpu0) / (last_t - t0), "missed": health.missed_pulses,
               "duplicated": health.duplicated_pulses, "reverted": health.reverted_pulses,
               "invalid": health.invalid, "restarts": health.receiver_restarts, "viewer_frames": viewer.frames,
               "statistics_skipped": camera.statistics_skipped, **_history_checks(camera, columns)})


def run_paced(ctx, config: dict, hz: float, seconds: float, pool: int, viewer_hz: float, rois: int = 0) -> dict:
    """A paced stream into our camera in its own process: what was sent, received and kept."""
    from bench.streams import start_sender, stop_process

    count = int(round(hz * seconds))
    sproc, sconn, sstop, info = start_sender(ctx, config, pool, rate_hz=hz, count=count)
    cparent, cchild = ctx.Pipe()
    cstop = ctx.Event()
    address = f"tcp://127.0.0.1:{info['port']}"
    cproc = ctx.Process(target=soak_consumer, args=(address, viewer_hz, rois, (config["height"], config["width"]), cchild, cstop), daemon=True)
    cproc.start()
    try:
        if not cparent.poll(60):
            raise RuntimeError("soak consumer did not start")
        cparent.recv()
        sconn.send("go")
        if not sconn.poll(seconds * 2 + 60):
            raise RuntimeError("soak sender did not finish")
        sent = sconn.recv()
        time.sleep(1.0)  # let the last messages arrive
        cstop.set()
        if not cparent.poll(60):
            raise RuntimeError("soak consumer did not report")
        got = cparent.recv()
    finally:
        stop_process(cproc, cstop)
        stop_process(sproc, sstop)
    result = {**sent, **{f"rx_{k}": v for k, v in got.items()}, "label": config["label"], "hz": hz,
              "seconds": seconds, "rois": rois, "mean_bytes": info["mean_bytes"]}
    result["lost"] = sent["sent"] - got["received"]
    result["all_pulse_ids"] = (got["rows"] == sent["sent"] and got["consecutive"]
                               and got["first_pulse_id"] == sent["first_pulse_id"]
                               and got["last_pulse_id"] == sent["last_pulse_id"])
    return result
