"""Stream helpers of the benchmarks: pre-encoded bsread messages, a PUSH sender process, child
processes that report one result. The consumers are in bench/consumers.py.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable

CONFIGS: dict[str, dict] = {
    "f64-480x640": dict(width=640, height=480, dtype="float64", compression="none", profiles=True,
                        label="480×640 float64, uncompressed, with profiles"),
    "u16-2048-bslz4-prof": dict(width=2048, height=2048, dtype="uint16", compression="bitshuffle_lz4",
                                profiles=True, label="2048×2048 uint16, bitshuffle_lz4, with profiles"),
    "u16-2048-bslz4-noprof": dict(width=2048, height=2048, dtype="uint16", compression="bitshuffle_lz4",
                                  profiles=False, label="2048×2048 uint16, bitshuffle_lz4, no profiles"),
}
PROFILE_CHANNELS = ("image_profile_x", "image_profile_y")
MAIN_HEADER = '{"htype":"bsr_m-1.1","pulse_id":%d,"global_timestamp":{"sec":%d,"ns":%d},"hash":"%s"}'
FIRST_PULSE_ID = 1_000_000_000


# ------------------------------------------------------------------------------------------ messages


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


def main_header(pulse_id: int, data_hash: str, now: float | None = None) -> bytes:
    now = time.time() if now is None else now
    sec = int(now)
    return (MAIN_HEADER % (pulse_id, sec, int((now - sec) * 1e9), data_hash)).encode()


def message_bytes(pool: list[list[bytes]], hashes: list[str]) -> float:
    """Mean size of a message of the pool, main header included."""
    return statistics.fmean(sum(len(p) for p in parts) for parts in pool) + len(main_header(10**9, hashes[0]))


def inproc_messages(config: dict, pool_size: int, count: int, first: int = FIRST_PULSE_ID,
                    pool: tuple[list, list] | None = None) -> list[list]:
    """`count` messages (consecutive pulse ids) as zmq.Frame lists off an inproc socket pair, as the
    receiver gets them: each message is its own copy (kept frames hold their own bytes). `pool`:
    (messages, hashes) of build_pool, else built here."""
    import zmq

    messages, hashes = pool or build_pool(config, pool_size)
    context = zmq.Context()
    a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    a.bind("inproc://bench-messages")
    b.connect("inproc://bench-messages")
    out = []
    try:
        for i in range(count):
            a.send_multipart([main_header(first + i, hashes[i % len(messages)]), *messages[i % len(messages)]])
            out.append(b.recv_multipart(copy=False))
    finally:
        a.close(0)
        b.close(0)
        context.term()
    return out


# -------------------------------------------------------------------------------------------- sender


def _send_max(socket, pool, hashes, stop) -> int:
    """PUSH round-robin at maximum rate until `stop`; polls while no consumer is connected."""
    import zmq

    pulse_id, sent = FIRST_PULSE_ID, 0
    while not stop.is_set():
        if not socket.poll(100, zmq.POLLOUT):
            continue
        i = pulse_id % len(pool)
        socket.send_multipart([main_header(pulse_id, hashes[i]), *pool[i]], copy=False)
        pulse_id += 1
        sent += 1
    return sent


def _send_paced(socket, pool, hashes, stop, rate_hz: float, count: int) -> dict:
    """`count` messages at `rate_hz`, never blocking after the first: a full queue is a lost message."""
    import zmq

    pulse_id = FIRST_PULSE_ID
    sent = dropped = 0
    interval = 1.0 / rate_hz
    start = deadline = time.monotonic()
    while sent < count and not stop.is_set():
        i = pulse_id % len(pool)
        parts = [main_header(pulse_id, hashes[i]), *pool[i]]
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
    return {"sent": sent, "dropped_at_sender": dropped, "first_pulse_id": FIRST_PULSE_ID,
            "last_pulse_id": pulse_id - 1, "elapsed_s": time.monotonic() - start}


def sender_main(config: dict, pool_size: int, conn, stop, rate_hz: float = 0.0, count: int = -1) -> None:
    """Process body: bind a PUSH, report port and message size, then send (max rate, or paced after "go")."""
    import zmq

    pool, hashes = build_pool(config, pool_size)
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    conn.send({"port": port, "mean_bytes": message_bytes(pool, hashes)})
    if rate_hz <= 0:
        _send_max(socket, pool, hashes, stop)
    else:
        conn.recv()  # go
        conn.send(_send_paced(socket, pool, hashes, stop, rate_hz, count))
        stop.wait(30)
    socket.close(0)
    context.term()


def start_sender(ctx, config: dict, pool_size: int, rate_hz: float = 0.0, count: int = -1):
    """(process, pipe, stop event, {"port", "mean_bytes"})."""
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=sender_main, args=(config, pool_size, child, stop, rate_hz, count), daemon=True)
    proc.start()
    if not parent.poll(120):
        raise RuntimeError("sender did not start")
    return proc, parent, stop, parent.recv()


def stop_process(proc, stop=None) -> None:
    if stop is not None:
        stop.set()
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


def run_in_process(ctx, target: Callable, args: tuple, timeout: float) -> dict:
    """Run `target(*args, conn)` in a child process; its one reply, or {"error"}."""
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_reply, args=(target, args, child), daemon=True)
    proc.start()
    result = parent.recv() if parent.poll(timeout) else {"error": "timed out"}
    stop_process(proc)
    return result


def _reply(target: Callable, args: tuple, conn) -> None:
    try:
        result = target(*args)
    except BaseException as exc:  # reported, not raised: the parent decides
        result = {"error": f"{exc.__class__.__name__}: {exc}"}
    conn.send(result)
