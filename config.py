"""Command-line options of the dashboard and the `Config` they become (README "Command line").

`parse_args(argv) -> Config` validates everything and ends with one sentence and exit code 2 on a
bad option; it starts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from stream.layout import ChannelNames

_ADDRESS = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+|\*):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
DEFAULT_STREAM_NAME = "stream"  # a single stream given without a name
SIMULATED_NAME = "simulated"


@dataclass(frozen=True)
class StreamOption:
    name: str
    address: str  # tcp://host:port


@dataclass(frozen=True)
class Config:
    streams: tuple[StreamOption, ...]  # fixed cameras; none (and no cam_server) = built-in simulated camera
    mode: str  # "pull" | "sub" for the fixed streams (cam_server's are PUB: always sub)
    camserver: str | None  # the pipeline server's REST base URL
    period_s: float  # display update period
    host: str  # web server interface
    port: int  # web server port
    history: int  # ring-buffer rows per camera
    frames: int  # recent frames kept per watched camera
    frame_memory: int  # bytes of recent frames per camera
    max_cameras: int
    grace_s: float  # a cam_server camera nobody watches is disconnected after this
    data_dir: Path | None  # backgrounds (and regions) kept across restarts
    names: ChannelNames
    threads: int  # waitress worker threads
    auth: str | None = None  # "user:password" for HTTP basic auth, None = off
    diagnostics: bool = False  # /api/diagnostics (render counts, for tests and benchmarks)

    @property
    def simulated(self) -> bool:
        return not self.streams and self.camserver is None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear sentence, exit code 2, no traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bounded(kind: type, lo: float, hi: float, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g} {what}".rstrip())
        return value
    return parse


_seconds = _bounded(float, 0.01, 60, "seconds")
_port = _bounded(int, 1, 65535, "")


def _stream(text: str) -> StreamOption:
    name, sep, address = text.strip().rpartition("=")
    if not sep:
        name = ""
    match = _ADDRESS.match(address)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise argparse.ArgumentTypeError(f"expected [NAME=]tcp://host:port, got {text!r}")
    if sep and not _NAME.match(name):
        raise argparse.ArgumentTypeError(f"camera name {name!r}: use letters, digits and _ . : -")
    return StreamOption(name, address)


def _url(text: str) -> str:
    if not re.match(r"^https?://[A-Za-z0-9_.\-\[\]:]+(/[^\s]*)?$", text.strip()):
        raise argparse.ArgumentTypeError(f"expected http://host:port, got {text!r}")
    return text.strip().rstrip("/")


def _parser() -> _Parser:
    parser = _Parser(prog="app.py", description="Stream Online Viewer: live dashboard for bsread camera streams.",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    stream = parser.add_argument_group("cameras (none given: built-in simulated camera)")
    stream.add_argument("-o", "--stream-port", type=_port, help="port of the bsread stream at tcp://HOST:PORT")
    stream.add_argument("-s", "--stream-host", default="127.0.0.1", help="host of the bsread stream (with -o)")
    stream.add_argument("--stream", type=_stream, action="append", default=[], metavar="[NAME=]ADDRESS",
                        help="a stream tcp://host:port, optionally named; repeat for several cameras")
    stream.add_argument("--mode", choices=("pull", "sub"), default="pull", help="ZeroMQ socket type for the streams")
    stream.add_argument("--camserver", type=_url, help="cam_server pipeline server REST URL: offer its cameras")
    stream.add_argument("--max-cameras", type=_bounded(int, 1, 64, ""), default=8, help="cameras connected at once")
    stream.add_argument("--grace", type=_bounded(float, 1, 86400, "seconds"), default=60.0,
                        help="seconds before a cam_server camera nobody watches is disconnected")
    roles = parser.add_argument_group("channels (detected from the stream unless given)")
    roles.add_argument("--image-channel", default="image", help="channel holding the 2-D detector image")
    roles.add_argument("--energy-channel", default="beam_energy", help="channel holding the beam energy (GeV)")
    roles.add_argument("--rate-channel", default="repetition_rate", help="channel holding the repetition rate (Hz)")
    for axis in ("x", "y"):
        roles.add_argument(f"--{axis}-profile-channel", help=f"{axis} profile channel; None: detected")
        roles.add_argument(f"--{axis}-axis-channel", help=f"{axis} axis calibration channel; None: detected")
    keep = parser.add_argument_group("memory and files")
    keep.add_argument("--history", type=int, default=360_000, help="rows of history per camera (1 h at 100 Hz)")
    keep.add_argument("--frames", type=_bounded(int, 1, 10_000, ""), default=100,
                      help="recent frames kept per watched camera (paused pages step through them)")
    keep.add_argument("--frame-memory", type=_bounded(int, 16, 1 << 20, "MiB"), default=512,
                      help="MiB of recent frames per camera")
    keep.add_argument("--data-dir", type=Path, help="directory keeping backgrounds across restarts")
    web = parser.add_argument_group("web server")
    web.add_argument("-d", "--delay", type=_seconds, default=0.1,
                     help="seconds between display updates (the history records every message regardless)")
    web.add_argument("--host", default="127.0.0.1", help="interface to serve on (0.0.0.0 = all; see --auth)")
    web.add_argument("--port", type=_port, default=5000, help="port to serve on")
    web.add_argument("--threads", type=int, default=16, help="web server worker threads")
    web.add_argument("--auth", default=os.environ.get("SOV_AUTH"),
                     help="require HTTP basic auth 'user:password' (default from $SOV_AUTH; never logged)")
    web.add_argument("--diagnostics", action="store_true", help="serve /api/diagnostics (render counts)")
    return parser


def parse_args(argv: list[str] | None = None) -> Config:
    parser = _parser()
    args = parser.parse_args(argv)
    streams = list(args.stream)
    unnamed = [s for s in streams if not s.name]
    if args.stream_port:
        if unnamed:
            parser.error("give either --stream or -o/--stream-port, not both")
        host = args.stream_host.strip()
        if not re.match(r"^[A-Za-z0-9_.\-:\[\]]+$", host):
            parser.error(f"invalid stream host {host!r}")
        streams.insert(0, StreamOption("", f"tcp://{host}:{args.stream_port}"))
        unnamed = [streams[0]]
    if len(unnamed) > 1:
        parser.error("several streams need names: --stream NAME=tcp://host:port")
    streams = [StreamOption(s.name or DEFAULT_STREAM_NAME, s.address) for s in streams]
    if len({s.name for s in streams}) != len(streams):
        parser.error("camera names must be unique")
    if len(streams) > args.max_cameras:
        parser.error(f"{len(streams)} streams but --max-cameras is {args.max_cameras}")
    if not 2 <= args.history <= 10_000_000:
        parser.error("--history must be between 2 and 10000000 rows")
    if not 1 <= args.threads <= 256:
        parser.error("--threads must be between 1 and 256")
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth must look like user:password")
    names = ChannelNames(image=args.image_channel, energy=args.energy_channel, rate=args.rate_channel,
                         profile_x=args.x_profile_channel, profile_y=args.y_profile_channel,
                         axis_x=args.x_axis_channel, axis_y=args.y_axis_channel)
    return Config(streams=tuple(streams), mode=args.mode, camserver=args.camserver, period_s=args.delay,
                  host=args.host, port=args.port, history=args.history, frames=args.frames,
                  frame_memory=args.frame_memory * 1024 * 1024, max_cameras=args.max_cameras, grace_s=args.grace,
                  data_dir=args.data_dir, names=names, threads=args.threads, auth=args.auth or None,
                  diagnostics=args.diagnostics)
