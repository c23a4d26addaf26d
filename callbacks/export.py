"""CSV export button: the readings of the chosen history window (the rows its charts hold)."""

from __future__ import annotations

from dash import Dash, Input, Output, State, dcc, no_update

from components import ids
from components.formatting import safe_filename, utc_for_filename
from components.history_figures import WINDOWS
from components.readings_csv import readings_csv
from stream.cameras import CameraRegistry, CameraUnavailable


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(Output(ids.EXPORT_DOWNLOAD, "data"), Input(ids.EXPORT_BUTTON, "n_clicks"),
                  State(ids.HISTORY_WINDOW, "value"), State(ids.CAMERA_SELECT, "value"), prevent_initial_call=True)
    def export_csv(_clicks, window, camera_name):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable:
            return no_update
        history = camera.buffer.window(WINDOWS.get(window, WINDOWS["1 min"]))
        return dcc.send_string(readings_csv(history), safe_filename(f"readings-{camera.name}-{utc_for_filename()}.csv"),
                               type="text/csv")
