#!/usr/bin/env python
"""Stream Online Viewer: a live web dashboard for bsread camera streams.

    python app.py                      # built-in simulated camera, http://127.0.0.1:5000
    python app.py -o 8888 [-s HOST]    # the bsread stream at tcp://HOST:8888
    python app.py --camserver URL      # the cameras of a cam_server pipeline server

Nothing is built or started at import: `main()` parses the options (config.py), starts the camera
connections (stream/cameras.py) and serves the Dash app with waitress (web/serve.py).
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

from config import SIMULATED_NAME, Config, parse_args

log = logging.getLogger("stream_online_viewer")

THEME = "slate"  # a dark Bootswatch theme, served from the installed bootstrap-flask package
VENDOR_URL = "/vendor/bootstrap.min.css"

__all__ = ["Config", "build_registry", "create_app", "main", "parse_args"]


def build_registry(config: Config, camserver: Any = None) -> Any:
    """The cameras of `config` (not started). `camserver`: a client to use instead of one for
    `config.camserver` (tests pass a stand-in's)."""
    from stream.camera import CameraSpec, Limits
    from stream.cameras import CameraRegistry
    from stream.simulator import SimulatorConfig

    specs = []
    if config.simulated:
        # In-process camera: inproc hands the frames to the receiver without copies or a TCP stack.
        simulator = SimulatorConfig(port=0, delay_s=0.01, host="127.0.0.1", mode="push", transport="inproc")
        specs.append(CameraSpec(SIMULATED_NAME, simulator=simulator, source="built-in simulated camera"))
    for stream in config.streams:
        specs.append(CameraSpec(stream.name, address=stream.address, mode=config.mode, source=stream.address))
    if camserver is None and config.camserver:
        from stream.camserver import CamServerClient

        camserver = CamServerClient(config.camserver)
    limits = Limits(history=config.history, frames=config.frames, frame_memory=config.frame_memory,
                    data_dir=config.data_dir)
    return CameraRegistry(specs, camserver, config.names, limits, config.max_cameras, config.grace_s)


def _bootstrap_css_dir() -> Path:
    import flask_bootstrap

    return Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5" / "css" / "bootswatch" / THEME


def create_app(config: Config, registry: Any) -> Any:
    """Build the Dash app around a (started or fake) camera registry. Starts no threads."""
    import dash_bootstrap_components as dbc  # noqa: F401  (registers the components)
    import flask
    from dash import Dash

    from callbacks import header, health_panel, history_panel, image_panel, readings_panel, tools_panel
    from components.layout import page
    from web import api, protections, tools_api
    from web.diagnostics import Diagnostics
    from web.frame_service import FrameService

    server = flask.Flask(__name__)
    app = Dash(__name__, server=server, title="Stream Online Viewer", update_title=None,
               external_stylesheets=[VENDOR_URL], serve_locally=True,
               assets_folder=str(Path(__file__).parent / "assets"))
    css_dir = _bootstrap_css_dir()

    @server.get(VENDOR_URL)
    def bootstrap_css():
        return flask.send_from_directory(css_dir, "bootstrap.min.css", max_age=3600)

    def layout():  # per page load: the address may name the camera to open (?camera=NAME)
        wanted = flask.request.args.get("camera") if flask.has_request_context() else None
        cameras = registry.camera_names()
        return page(cameras, wanted if wanted else registry.default, config.period_s)

    app.layout = layout
    diagnostics = Diagnostics()
    frames = FrameService(config.period_s, on_render=diagnostics.rendered)
    for panel in (header, health_panel, image_panel, readings_panel, history_panel, tools_panel):
        panel.register(app, registry)
    server.register_blueprint(api.blueprint(registry, frames))
    server.register_blueprint(tools_api.blueprint(registry))
    if config.diagnostics:
        server.register_blueprint(diagnostics.blueprint())
    protections.register(server, config.auth, registry.caught_up_events)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unresolvable(address: str) -> str | None:
    """Why the host of tcp://host:port cannot be resolved, or None if it can.

    ZeroMQ's connect() accepts any name and retries in the background forever, so a typo in the
    camera's host name would look like a silent camera; we check once, before connecting.
    """
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("*", "localhost"):
        return None
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    from stream.compression import limit_openmp_threads

    limit_openmp_threads()  # before bitshuffle loads (stream/compression.py)
    import zmq

    from web.serve import RateLimit, Server, check_port_free, wait_for_signal

    logging.getLogger("waitress.queue").addFilter(RateLimit(60.0))
    prog = "app.py"
    try:
        check_port_free(config.host, config.port)
    except OSError as exc:
        print(f"{prog}: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not _is_loopback(config.host) and not config.auth:
        log.warning("serving on %s without --auth: anyone who can reach this machine can watch the streams",
                    config.host)
    for stream in config.streams:
        reason = _unresolvable(stream.address)
        if reason is not None:
            print(f"{prog}: cannot resolve the stream host of {stream.address}: {reason}", file=sys.stderr)
            return 1
    registry = build_registry(config)
    try:
        registry.start()
    except zmq.ZMQError as exc:
        registry.stop(timeout=0.5)
        print(f"{prog}: cannot connect to the stream: {exc}", file=sys.stderr)
        return 1
    app = create_app(config, registry)
    try:
        server = Server(app.server, config.host, config.port, config.threads)
    except OSError as exc:
        registry.stop(timeout=0.5)
        print(f"{prog}: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    server.start()
    log.info("Stream Online Viewer on http://%s:%d/ showing %s", config.host, server.port,
             ", ".join(registry.camera_names()) or "no camera yet")
    signum = wait_for_signal()
    started = time.monotonic()
    log.info("signal %d: shutting down", signum)
    server.close()
    registry.stop(timeout=0.5)
    log.info("stopped in %.2f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stopped. Spare the interpreter's final garbage collection over dash, plotly and
    # pandas (most of a second on a busy machine), so that SIGTERM ends the process promptly.
    gc.freeze()
    sys.exit(code)
