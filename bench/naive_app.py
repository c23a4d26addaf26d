#!/usr/bin/env python
"""The naive baseline of bench/display.py, living in bench/ only: a plain Dash app on the same
built-in simulated camera that redraws a full-resolution `go.Figure(go.Heatmap)` in a dcc.Interval
callback every display period: no render cache, no binning, the whole image as JSON to plotly.js.

    python bench/naive_app.py [-d SECONDS] [--port PORT]

The camera is the app's own (app.build_registry with no stream: the simulated 100 Hz 480x640 one).
The figure carries the pulse in `layout.meta` (`bench_timestamp`, `bench_pulse_id`) so that
bench/probe.js can tell which pulse a drawn frame shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def figure(frame):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=frame.image(), colorscale="Viridis"))
    fig.update_layout(meta={"bench_timestamp": frame.timestamp, "bench_pulse_id": frame.pulse_id},
                      margin={"l": 60, "r": 20, "t": 30, "b": 40}, uirevision="keep",
                      title=f"pulse {frame.pulse_id}", yaxis={"scaleanchor": "x"})
    return fig


def create(camera, period_s: float):
    from dash import Dash, dcc, html, no_update
    from dash.dependencies import Input, Output

    app = Dash(__name__, title="naive baseline", update_title=None, serve_locally=True)
    app.layout = html.Div([
        dcc.Graph(id="image-graph", style={"height": "800px"}),
        dcc.Interval(id="tick", interval=period_s * 1000),
    ])

    @app.callback(Output("image-graph", "figure"), Input("tick", "n_intervals"))
    def redraw(_n):
        camera.touch()
        frame = camera.frames.latest()
        return figure(frame) if frame is not None else no_update

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--delay", type=float, default=0.1, help="display period, seconds")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)

    from app import build_registry, parse_args
    from web.serve import Server, wait_for_signal

    registry = build_registry(parse_args([])).start()
    camera = registry.watch(registry.default)
    server = Server(create(camera, args.delay).server, "127.0.0.1", args.port, args.threads).start()
    print(f"naive baseline on http://127.0.0.1:{server.port}/", flush=True)
    wait_for_signal()
    server.close()
    registry.stop(timeout=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
