#!/usr/bin/env python
"""Simulated SwissFEL camera: sends bsread messages on a ZeroMQ PUSH (or PUB) socket.

    python start_stream.py -o 8888 -d 0.1 -n -1
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import zmq

from stream.compression import COMPRESSIONS, limit_openmp_threads
from stream.simulator import Simulator, SimulatorConfig


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, not {text!r}") from None
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise argparse.ArgumentTypeError("width and height must be between 1 and 16384")
    return width, height


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-o", "--port", type=int, default=8888, help="output port to bind")
    parser.add_argument("-d", "--delay", type=float, default=0.1, help="seconds between messages")
    parser.add_argument("-n", "--count", type=int, default=-1, help="number of images, -1 = endless")
    parser.add_argument("--mode", choices=("push", "pub"), default="push", help="ZeroMQ socket type")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none",
                        help="compression of the image and profile channels")
    parser.add_argument("--size", type=_size, default=(640, 480), help="image WIDTHxHEIGHT")
    parser.add_argument("--dtype", choices=("float64", "uint16"), default="float64", help="image pixel type")
    parser.add_argument("--bind-host", default="*", help="interface to bind; * = all interfaces")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("port must be between 0 and 65535")
    if args.delay < 0:
        parser.error("delay must be >= 0")
    width, height = args.size
    return SimulatorConfig(port=args.port, delay_s=args.delay, count=args.count, mode=args.mode,
                           compression=args.compression, width=width, height=height, dtype=args.dtype,
                           host=args.bind_host)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    limit_openmp_threads()
    simulator = Simulator(config)
    try:
        port = simulator.bind()
    except zmq.ZMQError as exc:
        print(f"start_stream.py: cannot bind tcp://{config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: simulator.stop(timeout=0))
    logging.info("sending %s on tcp://%s:%d (%s, %dx%d %s, every %.3f s)", "endlessly" if config.count < 0
                 else f"{config.count} messages", config.host, port, config.mode, config.width, config.height,
                 config.dtype, config.delay_s)
    sent = simulator.run()
    logging.info("sent %d messages", sent)
    # The socket lingers until its last messages have left; terminating the context waits for that.
    zmq.Context.instance().term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
