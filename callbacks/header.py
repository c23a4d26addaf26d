"""Header: state badge, rate, stream address and health line once a second; the camera list; the
camera in the address (?camera=NAME, so links can be shared); one clear message when a camera
cannot be shown. The unfolded health details come with the same request."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, no_update

from components import ids
from components.health_panel import health_line, health_rows, state_badge
from components.status import status_document
from stream.cameras import CameraRegistry, CameraUnavailable


def camera_from_search(search: str | None) -> str | None:
    values = parse_qs((search or "").lstrip("?")).get("camera")
    return values[0] if values else None


def camera_options(registry: CameraRegistry, chosen: str | None) -> list[dict[str, str]]:
    options = [{"label": f"{entry['name']} · {entry['state']}", "value": entry["name"]}
               for entry in registry.listing()]
    if chosen and not any(option["value"] == chosen for option in options):
        options.append({"label": f"{chosen} · unknown", "value": chosen})
    return options


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(
        Output(ids.LOCATION, "search"),
        Output(ids.CAMERA_SELECT, "value"),
        Input(ids.LOCATION, "search"),
        Input(ids.CAMERA_SELECT, "value"),
    )
    def sync_camera(search, chosen):
        # One callback for both directions (Dash allows a circular update only within one).
        if ctx.triggered_id == ids.LOCATION:
            wanted = camera_from_search(search)
            return no_update, wanted if wanted and wanted != chosen else no_update
        if not chosen or camera_from_search(search) == chosen:
            return no_update, no_update
        return "?" + urlencode({"camera": chosen}), no_update

    @app.callback(
        Output(ids.STREAM_STATE, "children"),
        Output(ids.STREAM_STATE, "color"),
        Output(ids.STREAM_RATE, "children"),
        Output(ids.STREAM_LABEL, "children"),
        Output(ids.SIMULATED_BADGE, "style"),
        Output(ids.HEALTH_LINE, "children"),
        Output(ids.CAMERA_SELECT, "options"),
        Output(ids.CAMERA_MESSAGE, "children"),
        Output(ids.HEALTH_PANEL, "children"),
        Input(ids.HEALTH_INTERVAL, "n_intervals"),
        Input(ids.CAMERA_SELECT, "value"),
        State(ids.CAMERA_SELECT, "options"),
        State(ids.HEALTH_DETAILS, "is_open"),
    )
    def refresh_header(_n, chosen, shown_options, details_open):
        options = camera_options(registry, chosen)
        options = options if options != shown_options else no_update
        try:
            camera = registry.watch(chosen)
        except CameraUnavailable as exc:
            return "unavailable", "danger", "— Hz", "", {"display": "none"}, "", options, str(exc), []
        status = status_document(camera, registry.camserver_error)
        text, color = state_badge(status["state"])
        message = f"Camera {camera.name}: {status['error']}" if status["state"] == "error" else ""
        if registry.camserver_error and not message:
            message = f"cam_server: {registry.camserver_error}"
        simulated = {"display": "inline-block" if status["simulated"] else "none"}
        return (text, color, f"{status['rate_hz']:.1f} Hz", status["stream"], simulated, health_line(status), options,
                message, health_rows(status) if details_open else no_update)
