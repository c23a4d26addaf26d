"""A paced bsread camera in its own process, for fault, load and soak tests (the thing that gets killed).

    python -m tests.sender --port 9999 [--mode push|pub] [--rate 100] [--count N] [--start-pulse 1]

Binds 127.0.0.1:PORT, prints one JSON line when bound and one when done ({"sent", "dropped", ...}).
Messages come from a pre-encoded pool of simulated-camera frames; only the main header is encoded
per message, so 100 Hz costs the sender almost nothing. A camera does not wait for its consumer:
after the first message, a send that would block is a dropped message (counted). SIGTERM/SIGINT end
it cleanly (the final line is still printed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

MAIN_HEADER = '{"htype":"bsr_m-1.1","pulse_id":%d,"global_timestamp":{"sec":%d,"ns":%d},"hash":"%s"}'


def build_pool(width: int, height: int, dtype: str, compression: str, size: int = 8) -> tuple[list[list[bytes]], str]:
    """`size` encoded camera messages without their main header, and the data-header hash."""
    from stream.encoder import Encoder
    from stream.simulator import BeamModel

    model = BeamModel(width, height, dtype, seed=1)
    encoder = Encoder()
    comp = {"image": compression, "image_profile_x": compression, "image_profile_y": compression}
    pool = []
    digest = ""
    for index in range(size):
        parts = encoder.encode(index, time.time(), model.next(), compression=comp)
        digest = json.loads(parts[0])["hash"]
        pool.append(parts[1:])
    return pool, digest


class _Stop(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("push", "pub"), default="push")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--count", type=int, default=-1, help="messages to send, -1 = until SIGTERM")
    parser.add_argument("--start-pulse", type=int, default=1)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--dtype", choices=("float64", "uint16"), default="float64")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--sndhwm", type=int, default=1000)
    args = parser.parse_args(argv)

    def stop(_signum, _frame):
        raise _Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pool, digest = build_pool(args.width, args.height, args.dtype, args.compression)
    context = zmq.Context()
    socket = context.socket(zmq.PUSH if args.mode == "push" else zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, args.sndhwm)
    deadline_bind = time.monotonic() + 10
    while True:  # the previous incarnation's port may still be closing
        try:
            socket.bind(f"tcp://127.0.0.1:{args.port}")
            break
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline_bind:
                raise
            time.sleep(0.05)
    print(json.dumps({"event": "bound", "port": args.port, "start_pulse_id": args.start_pulse}), flush=True)
    attempts = sent = dropped = 0
    pulse_id = args.start_pulse
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    start = deadline = time.monotonic()
    late = 0.0
    try:
        while args.count < 0 or attempts < args.count:
            now = time.time()
            sec = int(now)
            parts = [(MAIN_HEADER % (pulse_id, sec, int((now - sec) * 1e9), digest)).encode(),
                     *pool[pulse_id % len(pool)]]
            if attempts == 0 and args.mode == "push":
                while not socket.poll(100, zmq.POLLOUT):  # wait for the receiver to connect
                    pass
                start = deadline = time.monotonic()
            try:
                socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                sent += 1
            except zmq.Again:
                dropped += 1
            attempts += 1
            pulse_id += 1
            if interval:
                deadline += interval
                wait = deadline - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late = max(late, -wait)
    except _Stop:
        pass
    elapsed = time.monotonic() - start
    print(json.dumps({"event": "done", "attempts": attempts, "sent": sent, "dropped": dropped, "first_pulse_id": args.start_pulse,
                      "last_pulse_id": pulse_id - 1, "elapsed_s": round(elapsed, 3),
                      "rate_hz": round(attempts / elapsed, 2) if elapsed > 0 else 0.0,
                      "max_late_s": round(late, 4)}), flush=True)
    socket.setsockopt(zmq.LINGER, 2000)  # a counted run hands over its last messages before closing
    socket.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
