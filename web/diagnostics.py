"""`/api/diagnostics` (served only with --diagnostics): what the server did, for tests and benchmarks.

Renders are counted here instead of through counters inside the production classes: the frame
service reports each render's duration through its `on_render` hook.
"""

from __future__ import annotations

import threading

import flask


class Diagnostics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.renders = 0
        self.render_seconds = 0.0

    def rendered(self, seconds: float) -> None:
        with self._lock:
            self.renders += 1
            self.render_seconds += seconds

    def blueprint(self) -> flask.Blueprint:
        diagnostics = flask.Blueprint("diagnostics", __name__)

        @diagnostics.get("/api/diagnostics")
        def report():
            with self._lock:
                return flask.jsonify({"renders": self.renders, "render_seconds": round(self.render_seconds, 6)})

        return diagnostics
