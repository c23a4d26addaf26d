"""Ingest benchmark: how fast can a consumer take bsread messages off a local ZeroMQ socket?

One command:  python bench/ingest.py            (a few minutes, includes a 60 s soak)
              python bench/ingest.py --quick    (short windows, one repetition, 10 s soak)

A raw pyzmq PUSH (its own process) replays a pool of pre-encoded messages at maximum rate; only the
main header is re-encoded per message, so pulse ids stay consecutive. Each consumer runs in its own
process and is measured for a fixed window after a warm-up:

  raw   recv_multipart(copy=False), no decoding at all (the ceiling of this machine)
  ours  stream.receiver.Receiver into a stream.ring_buffer.RingBuffer, while the main thread plays
        a viewer that reads the latest frame (decoding it) and the new history rows at --viewer-hz
  psi   psi-bsread's Source (PULL), reading message.data.data['image'].value of every message

for each stream configuration, interleaved (raw, ours, psi, raw, ours, psi, ...), and the median of
the repetitions is reported. The soak then sends a paced 2048x2048 uint16 stream (default 100 Hz,
60 s) to our Receiver and checks that nothing was lost, that the ring buffer holds every pulse id
and how much CPU the receiver thread used (from /proc/self/task/<tid>/stat).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS: dict[str, dict] = {
    "f64-480x640": dict(width=640, height=480, dtype="float64", compression="none", profiles=True,
                        label="480x640 float64, uncompressed, with profiles"),
    "u16-2048-bslz4-prof": dict(width=2048, height=2048, dtype="uint16", compression="bitshuffle_lz4",
                                profiles=True, label="2048x2048 uint16, bitshuffle_lz4, with profiles"),
    "u16-2048-bslz4-noprof": dict(width=2048, height=2048, dtype="uint16", compression="bitshuffle_lz4",
                                  profiles=False, label="2048x2048 uint16, bitshuffle_lz4, no profiles"),
}
CONSUMERS = ("raw", "ours", "psi")
PROFILE_CHANNELS = ("image_profile_x", "image_profile_y")
CLK_TCK = os.sysconf("SC_CLK_TCK")

MAIN_HEADER = '{"htype":"bsr_m-1.1","pulse_id":%d,"global_timestamp":{"sec":%d,"ns":%d},"hash":"%s"}'


# ------------------------------------------------------------------------------------------ sender


def build_pool(config: dict, size: int, seed: int = 1) -> tuple[list[list[bytes]], list[str]]:
    """`size` distinct encoded messages (without main header) and their data-header hashes."""
    from stream.encoder import Encoder
    from stream.simulator import BeamModel

    model = BeamModel(config["width"], config["height"], config["dtype"], seed=seed)
    encoder = Encoder()
    comp = config["compression"]
    compression = {"image": comp, "image_profile_x": comp, "image_profile_y": comp}
    pool, hashes = [], []
    for index in range(size):
        values = model.next()
        if not config["profiles"]:
            for name in PROFILE_CHANNELS:
                values.pop(name)
        parts = encoder.encode(index, time.time(), values, compression=compression)
        hashes.append(json.loads(parts[0])["hash"])
        pool.append(parts[1:])
    return pool, hashes


def sender_main(config: dict, pool_size: int, conn, stop, rate_hz: float = 0.0, count: int = -1) -> None:
    """PUSH the pool round-robin: as fast as possible (rate_hz=0) or paced, never blocking (soak)."""
    import zmq

    pool, hashes = build_pool(config, pool_size)
    sizes = [sum(len(p) for p in parts) for parts in pool]
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    header_size = len(MAIN_HEADER % (10**9, 1_700_000_000, 0, hashes[0]))
    conn.send({"port": port, "mean_bytes": statistics.fmean(sizes) + header_size})
    pulse_id = 1_000_000_000
    sent = dropped = 0
    n = len(pool)
    if rate_hz <= 0:  # maximum rate until told to stop; waits (polls) while no consumer is connected
        while not stop.is_set():
            if not socket.poll(100, zmq.POLLOUT):
                continue
            now = time.time()
            sec = int(now)
            i = pulse_id % n
            header = (MAIN_HEADER % (pulse_id, sec, int((now - sec) * 1e9), hashes[i])).encode()
            socket.send_multipart([header, *pool[i]], copy=False)
            pulse_id += 1
            sent += 1
    else:  # paced: a camera does not wait for its consumer; a full queue is a lost message
        conn.recv()  # go
        first = pulse_id
        interval = 1.0 / rate_hz
        deadline = time.monotonic()
        start = time.monotonic()
        while sent < count and not stop.is_set():
            now = time.time()
            sec = int(now)
            i = pulse_id % n
            parts = [(MAIN_HEADER % (pulse_id, sec, int((now - sec) * 1e9), hashes[i])).encode(), *pool[i]]
            if sent == 0:
                socket.send_multipart(parts, copy=False)  # blocks until the receiver is connected
                start = deadline = time.monotonic()
            else:
                try:
                    socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    dropped += 1
            sent += 1
            pulse_id += 1
            deadline += interval
            wait = deadline - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        conn.send({"sent": sent, "dropped_at_sender": dropped, "first_pulse_id": first,
                   "last_pulse_id": pulse_id - 1, "elapsed_s": time.monotonic() - start})
        stop.wait(30)
    socket.close(0)
    context.term()


# ---------------------------------------------------------------------------------------- consumers


def _thread_cpu(tid: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _window_loop(receive, warmup: float, duration: float, timeout: float = 30.0) -> dict:
    """Call receive() (returns True per message) and time the messages of the measurement window."""
    perf = time.perf_counter
    give_up = perf() + timeout
    first = None
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
        if first is None:
            first = now
            start = first + warmup
            end = start + duration
            give_up = end + timeout
        if now < start:
            continue
        if t_start is None:
            t_start = now  # the window starts at the end of this message
            cpu0 = time.process_time()
            continue
        if now >= end:
            break
        n += 1
        t_last = now
    cpu = time.process_time() - cpu0
    elapsed = (t_last - t_start) if t_last is not None else duration
    return {"messages": n, "elapsed_s": elapsed, "msgs": n / elapsed if elapsed > 0 else 0.0,
            "process_cpu": cpu / elapsed if elapsed > 0 else 0.0}


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
        return _window_loop(receive, warmup, duration)
    finally:
        socket.close(0)
        context.term()


def consume_psi(address: str, warmup: float, duration: float) -> dict:
    import logging

    import bsread

    logging.getLogger("mflow").setLevel(logging.CRITICAL)  # a receive timeout is logged as an error
    port = int(address.rsplit(":", 1)[1])
    source = bsread.Source(host="127.0.0.1", port=port, mode=bsread.PULL, receive_timeout=200)
    source.connect()

    def receive() -> bool:
        message = source.receive()
        if message is None:
            return False
        message.data.data["image"].value  # the decoded image (psi-bsread decodes every channel)
        return True

    try:
        return _window_loop(receive, warmup, duration)
    finally:
        source.disconnect()


class Viewer:
    """What a dashboard does between messages: look at the latest frame and fetch new history rows."""

    def __init__(self, buffer, hz: float) -> None:
        self.buffer, self.interval = buffer, (1.0 / hz if hz > 0 else None)
        self.since = 0
        self.frames = 0
        self.next = time.monotonic()

    def run_until(self, deadline: float) -> None:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if self.interval is None or now < self.next:
                time.sleep(min(deadline, self.next if self.interval else deadline) - now)
                continue
            self.next += self.interval
            if self.next < now:
                self.next = now + self.interval
            frame = self.buffer.latest_frame()
            if frame is not None:
                frame.image()
                self.frames += 1
            self.since = self.buffer.read(since=self.since).end


def _wait_first(buffer, timeout: float = 30.0) -> None:
    give_up = time.monotonic() + timeout
    while buffer.count == 0:
        if time.monotonic() > give_up:
            raise TimeoutError("no messages")
        time.sleep(0.005)


def consume_ours(address: str, warmup: float, duration: float, viewer_hz: float) -> dict:
    from stream.receiver import Receiver
    from stream.ring_buffer import RingBuffer

    buffer = RingBuffer()
    receiver = Receiver(address, buffer).start()
    tid = receiver._thread.native_id
    try:
        _wait_first(buffer)
        viewer = Viewer(buffer, viewer_hz)
        viewer.run_until(time.monotonic() + warmup)
        t0, c0, thr0, cpu0 = time.perf_counter(), buffer.count, _thread_cpu(tid), time.process_time()
        viewer.run_until(time.monotonic() + duration)
        t1, c1, thr1, cpu1 = time.perf_counter(), buffer.count, _thread_cpu(tid), time.process_time()
        health = receiver.health()
    finally:
        receiver.stop()
    elapsed = t1 - t0
    return {"messages": c1 - c0, "elapsed_s": elapsed, "msgs": (c1 - c0) / elapsed,
            "process_cpu": (cpu1 - cpu0) / elapsed, "thread_cpu": (thr1 - thr0) / elapsed,
            "viewer_frames": viewer.frames, "invalid": health.invalid, "missed": health.missed_pulses,
            "restarts": health.receiver_restarts}


def consumer_main(kind: str, address: str, warmup: float, duration: float, viewer_hz: float, conn) -> None:
    try:
        if kind == "raw":
            result = consume_raw(address, warmup, duration)
        elif kind == "psi":
            result = consume_psi(address, warmup, duration)
        else:
            result = consume_ours(address, warmup, duration, viewer_hz)
    except BaseException as exc:  # reported, not raised: the parent decides
        result = {"error": f"{exc.__class__.__name__}: {exc}"}
    conn.send(result)


def soak_consumer_main(address: str, viewer_hz: float, conn, stop) -> None:
    import numpy as np

    from stream.receiver import Receiver
    from stream.ring_buffer import STATS_COLUMNS, RingBuffer

    buffer = RingBuffer()
    receiver = Receiver(address, buffer).start()
    tid = receiver._thread.native_id
    conn.send("ready")
    _wait_first(buffer, timeout=60)
    viewer = Viewer(buffer, viewer_hz)
    t0, thr0, cpu0 = time.monotonic(), _thread_cpu(tid), time.process_time()
    samples = []  # receiver-thread CPU fraction per second
    last_t, last_thr = t0, thr0
    while not stop.is_set():
        viewer.run_until(last_t + 1.0)
        now, thr = time.monotonic(), _thread_cpu(tid)
        samples.append((thr - last_thr) / (now - last_t))
        last_t, last_thr = now, thr
    t1, thr1, cpu1 = last_t, last_thr, time.process_time()
    receiver.stop()
    health = receiver.health()
    history = buffer.read(0)
    pulse_ids = history.column("pulse_id")
    conn.send({
        "received": buffer.count, "elapsed_s": t1 - t0,
        "thread_cpu": (thr1 - thr0) / (t1 - t0), "thread_cpu_max_1s": max(samples[:-1] or samples),
        "process_cpu": (cpu1 - cpu0) / (t1 - t0),
        "first_pulse_id": int(pulse_ids[0]) if len(pulse_ids) else None,
        "last_pulse_id": int(pulse_ids[-1]) if len(pulse_ids) else None,
        "rows": len(pulse_ids),
        "consecutive": bool(len(pulse_ids) and (pulse_ids[1:] - pulse_ids[:-1] == 1).all()),
        "missed": health.missed_pulses, "duplicated": health.duplicated_pulses,
        "reverted": health.reverted_pulses, "invalid": health.invalid, "restarts": health.receiver_restarts,
        "viewer_frames": viewer.frames,
        "stats_nan": int(np.isnan(history.column(STATS_COLUMNS[1])).sum()),  # rows without a centroid
    })


def handle_cpu(config: dict, pool_size: int, repeat: int = 30) -> float:
    """CPU seconds per message of Receiver.handle (decode + RingBuffer.append), in process, no socket.

    Frames come from an inproc socket pair, so they are zmq.Frames as in the real receiver. The
    minimum over `repeat` batches is reported: the least disturbed by other work on the machine.
    """
    import timeit

    import zmq

    from stream.receiver import Receiver
    from stream.ring_buffer import RingBuffer

    pool, hashes = build_pool(config, pool_size)
    context = zmq.Context()
    a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    a.bind("inproc://handle-cpu")
    b.connect("inproc://handle-cpu")
    messages = []
    for i in range(64):
        pulse_id = 10**9 + i
        a.send_multipart([(MAIN_HEADER % (pulse_id, 1_700_000_000, 0, hashes[i % len(pool)])).encode(),
                          *pool[i % len(pool)]], copy=False)
        messages.append(b.recv_multipart(copy=False))
    receiver = Receiver("tcp://127.0.0.1:1", RingBuffer())  # never started: handle() only
    counter = iter(range(10**12))

    def one() -> None:
        receiver.handle(messages[next(counter) % len(messages)])

    batch = 20 if config["width"] * config["height"] < 10**6 else 4
    best = min(timeit.repeat(one, number=batch, repeat=repeat, timer=time.process_time)) / batch
    a.close(0)
    b.close(0)
    context.term()
    return best


# ------------------------------------------------------------------------------------- orchestration


def _start_sender(ctx, config: dict, pool_size: int, rate_hz: float = 0.0, count: int = -1):
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=sender_main, args=(config, pool_size, child, stop, rate_hz, count), daemon=True)
    proc.start()
    if not parent.poll(120):
        raise RuntimeError("sender did not start")
    info = parent.recv()
    return proc, parent, stop, info


def _stop(proc, stop) -> None:
    stop.set()
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


def run_consumer(ctx, kind: str, address: str, args) -> dict:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=consumer_main, args=(kind, address, args.warmup, args.seconds, args.viewer_hz, child),
                       daemon=True)
    proc.start()
    limit = 60 + args.warmup + args.seconds
    result = parent.recv() if parent.poll(limit) else {"error": "consumer timed out"}
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    return result


def run_throughput(ctx, args) -> dict:
    results: dict = {}
    for name in args.configs:
        config = CONFIGS[name]
        print(f"\n== {name}: {config['label']} (pool of {args.pool} messages)", flush=True)
        proc, _conn, stop, info = _start_sender(ctx, config, args.pool)
        address = f"tcp://127.0.0.1:{info['port']}"
        mean_bytes = info["mean_bytes"]
        print(f"   message size {mean_bytes / 1e6:.2f} MB", flush=True)
        runs: dict[str, list] = {kind: [] for kind in args.consumers}
        try:
            for rep in range(args.repeat):
                for kind in args.consumers:
                    r = run_consumer(ctx, kind, address, args)
                    runs[kind].append(r)
                    if "error" in r:
                        print(f"   [{rep + 1}] {kind:<4} ERROR {r['error']}", flush=True)
                        continue
                    extra = (f"  receiver thread {r['thread_cpu']:.0%} ({r['thread_cpu'] / r['msgs'] * 1e6:.0f} us/msg)"
                             if "thread_cpu" in r else "")
                    print(f"   [{rep + 1}] {kind:<4} {r['msgs']:8.1f} msg/s  {r['msgs'] * mean_bytes / 1e6:8.1f} MB/s"
                          f"  process cpu {r['process_cpu']:.0%}{extra}", flush=True)
        finally:
            _stop(proc, stop)
        summary = {}
        for kind, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                summary[kind] = {"error": rs[0]["error"] if rs else "not run"}
                continue
            med = statistics.median(r["msgs"] for r in ok)
            summary[kind] = {"msgs": med, "mbs": med * mean_bytes / 1e6, "runs": [r["msgs"] for r in ok],
                             "process_cpu": statistics.median(r["process_cpu"] for r in ok)}
            if kind == "ours":
                summary[kind]["thread_cpu"] = statistics.median(r["thread_cpu"] for r in ok)
                summary[kind]["thread_us_per_msg"] = statistics.median(r["thread_cpu"] / r["msgs"] * 1e6 for r in ok)
                summary[kind]["invalid"] = sum(r["invalid"] for r in ok)
                summary[kind]["restarts"] = sum(r["restarts"] for r in ok)
        results[name] = {"label": config["label"], "mean_bytes": mean_bytes, "summary": summary, "runs": runs}
    return results


def run_soak(ctx, args) -> dict:
    config = CONFIGS[args.soak_config]
    count = int(round(args.soak_hz * args.soak_seconds))
    print(f"\n== soak: {config['label']} at {args.soak_hz:g} Hz for {args.soak_seconds:g} s ({count} messages)",
          flush=True)
    sproc, sconn, sstop, info = _start_sender(ctx, config, args.pool, rate_hz=args.soak_hz, count=count)
    address = f"tcp://127.0.0.1:{info['port']}"
    cparent, cchild = ctx.Pipe()
    cstop = ctx.Event()
    cproc = ctx.Process(target=soak_consumer_main, args=(address, args.viewer_hz, cchild, cstop), daemon=True)
    cproc.start()
    try:
        if not cparent.poll(60):
            raise RuntimeError("soak consumer did not start")
        cparent.recv()
        sconn.send("go")
        if not sconn.poll(args.soak_seconds * 2 + 60):
            raise RuntimeError("soak sender did not finish")
        sent = sconn.recv()
        time.sleep(1.0)  # let the last messages arrive
        cstop.set()
        if not cparent.poll(60):
            raise RuntimeError("soak consumer did not report")
        got = cparent.recv()
    finally:
        cstop.set()
        cproc.join(10)
        if cproc.is_alive():
            cproc.terminate()
        _stop(sproc, sstop)
    result = {**sent, **{f"rx_{k}": v for k, v in got.items()}, "config": args.soak_config,
              "label": config["label"], "hz": args.soak_hz, "seconds": args.soak_seconds,
              "mean_bytes": info["mean_bytes"]}
    result["lost"] = sent["sent"] - got["received"]
    result["all_pulse_ids"] = (got["rows"] == sent["sent"] and got["consecutive"]
                               and got["first_pulse_id"] == sent["first_pulse_id"]
                               and got["last_pulse_id"] == sent["last_pulse_id"])
    return result


# ------------------------------------------------------------------------------------------- report


def machine() -> dict:
    import numpy
    import zmq

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        psi = version("psi-bsread")
    except Exception:
        psi = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(), "numpy": numpy.__version__, "psi_bsread": psi,
            "kernel": platform.release()}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def ratio(a: dict, b: dict) -> float | None:
    if "msgs" not in a or "msgs" not in b or not b["msgs"]:
        return None
    return a["msgs"] / b["msgs"]


GOALS = {  # config -> (numerator, denominator, minimum)
    "f64-480x640": ("ours", "raw", 0.9),
    "u16-2048-bslz4-prof": ("ours", "psi", 2.0),
    "u16-2048-bslz4-noprof": ("ours", "psi", 1.2),
}


def report(results: dict, soak: dict | None, args, info: dict) -> str:
    def fmt(x, spec=".2f"):
        return "–" if x is None else format(x, spec)

    lines = ["| stream | msg size | raw msg/s | raw MB/s | ours msg/s | ours MB/s | psi msg/s | psi MB/s |"
             " ours/raw | psi/raw | ours/psi | goal | met |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, res in results.items():
        s = res["summary"]
        cells = []
        for kind in CONSUMERS:
            k = s.get(kind, {})
            cells += [fmt(k.get("msgs"), ".0f"), fmt(k.get("mbs"), ".0f")]
        raw, ours, psi = s.get("raw", {}), s.get("ours", {}), s.get("psi", {})
        goal = GOALS.get(name)
        met = "–"
        goal_text = "–"
        if goal:
            num, den, minimum = goal
            value = ratio(s.get(num, {}), s.get(den, {}))
            goal_text = f"{num}/{den} ≥ {minimum:g}"
            met = "–" if value is None else ("yes" if value >= minimum else "**no**")
        lines.append(f"| {res['label']} | {res['mean_bytes'] / 1e6:.2f} MB | " + " | ".join(cells)
                     + f" | {fmt(ratio(ours, raw))} | {fmt(ratio(psi, raw))} | {fmt(ratio(ours, psi))}"
                     + f" | {goal_text} | {met} |")
    lines.append("")
    lines.append("| stream | ours: receiver thread CPU | ours: thread CPU per message | Receiver.handle CPU per message"
                 " (in process) | ours: process CPU | raw: process CPU | psi: process CPU |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, res in results.items():
        s = res["summary"]
        lines.append(f"| {res['label']} | {fmt(s.get('ours', {}).get('thread_cpu'), '.0%')} | "
                     f"{fmt(s.get('ours', {}).get('thread_us_per_msg'), '.0f')} µs | "
                     f"{fmt(res['handle_cpu_s'] * 1e6 if 'handle_cpu_s' in res else None, '.0f')} µs | "
                     f"{fmt(s.get('ours', {}).get('process_cpu'), '.0%')} | "
                     f"{fmt(s.get('raw', {}).get('process_cpu'), '.0%')} | {fmt(s.get('psi', {}).get('process_cpu'), '.0%')} |")
    if soak:
        ok = soak["lost"] == 0 and soak["all_pulse_ids"] and soak["rx_thread_cpu"] < 0.5
        lines += ["", f"Soak ({soak['label']}, {soak['hz']:g} Hz for {soak['seconds']:g} s, "
                      f"{soak['mean_bytes'] / 1e6:.2f} MB/message, viewer at {args.viewer_hz:g} Hz):", "",
                  "| sent | received | lost | dropped at sender | ring buffer has every pulse id | missed/dup/reverted |"
                  " invalid | receiver thread CPU (mean / max 1 s) | process CPU | goal met |",
                  "|---:|---:|---:|---:|---|---|---:|---:|---:|---|",
                  f"| {soak['sent']} | {soak['rx_received']} | {soak['lost']} | {soak['dropped_at_sender']} | "
                  f"{'yes' if soak['all_pulse_ids'] else '**no**'} | {soak['rx_missed']}/{soak['rx_duplicated']}/"
                  f"{soak['rx_reverted']} | {soak['rx_invalid']} | {soak['rx_thread_cpu']:.1%} / "
                  f"{soak['rx_thread_cpu_max_1s']:.0%} | {soak['rx_process_cpu']:.0%} | {'yes' if ok else '**no**'} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 1 repetition, 10 s soak")
    parser.add_argument("--seconds", type=float, help="measurement window per consumer (default 5, quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up before each window (default 1, quick 0.5)")
    parser.add_argument("--repeat", type=int, help="repetitions per consumer; the median is reported (default 3)")
    parser.add_argument("--pool", type=int, default=8, help="distinct pre-encoded messages (default 8)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--consumers", nargs="+", choices=CONSUMERS, default=list(CONSUMERS))
    parser.add_argument("--viewer-hz", type=float, default=10.0,
                        help="how often the 'ours' consumer reads the latest frame and new rows (0 = never)")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--skip-handle-cpu", action="store_true", help="skip the in-process CPU-per-message check")
    parser.add_argument("--soak-only", action="store_true")
    parser.add_argument("--soak-seconds", type=float, help="default 60, quick 10")
    parser.add_argument("--soak-hz", type=float, default=100.0)
    parser.add_argument("--soak-config", choices=list(CONFIGS), default="u16-2048-bslz4-noprof")
    parser.add_argument("--json", type=Path, help="also write raw results here (default bench/results/ingest-*.json)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.soak_seconds = args.soak_seconds or (10.0 if args.quick else 60.0)

    info = machine()
    command = "python bench/ingest.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {info['nproc']} x {info['cpu']}  python {info['python']}  "
          f"pyzmq {info['pyzmq']} (libzmq {info['libzmq']})  numpy {info['numpy']}  psi-bsread {info['psi_bsread']}")
    print(f"command: {command}")
    load_start = loadavg()
    print(f"load average at start: {load_start}")
    if float(load_start.split()[0]) > 0.5 * (os.cpu_count() or 1):
        print("WARNING: the machine is busy; the consumers compete with other work for the CPU, so rates and"
              " ratios are not representative")
    print(f"window {args.seconds:g} s after {args.warmup:g} s warm-up, {args.repeat} repetition(s), "
          f"viewer {args.viewer_hz:g} Hz")
    ctx = mp.get_context("spawn")
    started = time.monotonic()
    cpu = {}
    if not args.soak_only and not args.skip_handle_cpu:
        print("\n== Receiver.handle CPU per message (in process, no socket; min of 30 batches)", flush=True)
        for name in args.configs:
            cpu[name] = handle_cpu(CONFIGS[name], args.pool)
            print(f"   {name:24s} {cpu[name] * 1e6:8.0f} µs", flush=True)
    results = {} if args.soak_only else run_throughput(ctx, args)
    for name, value in cpu.items():
        results[name]["handle_cpu_s"] = value
    soak = None if args.skip_soak else run_soak(ctx, args)
    text = report(results, soak, args, info)
    load_end = loadavg()
    print("\n" + text)
    print(f"\nload average: {load_start} at start, {load_end} at the end")
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    out = args.json or ROOT / "bench" / "results" / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": info, "command": command,
                               "loadavg_start": load_start, "loadavg_end": load_end,
                               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "throughput": results, "soak": soak, "report": text}, indent=1, default=str))
    print(f"raw results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
