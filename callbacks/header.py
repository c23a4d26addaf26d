"""Header: the camera list, the camera in the address (?camera=NAME, so links can be shared), and
one clear message when a camera cannot be shown."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, no_update

from components import ids
from stream.cameras import CameraRegistry, CameraUnavailable, camera_state


def camera_from_search(search: str | None) -> str | None:
    values = parse_qs((search or "").lstrip("?")).get("camera")
    return values[0] if values else None


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
        Output(ids.CAMERA_SELECT, "options"),
        Output(ids.CAMERA_MESSAGE, "children"),
        Input(ids.HEALTH_INTERVAL, "n_intervals"),
        Input(ids.CAMERA_SELECT, "value"),
        State(ids.CAMERA_SELECT, "options"),
    )
    def refresh_cameras(_n, chosen, shown):
        options = [{"label": f"{entry['name']} · {entry['state']}", "value": entry["name"]}
                   for entry in registry.listing()]
        if chosen and not any(option["value"] == chosen for option in options):
            options.append({"label": f"{chosen} · unknown", "value": chosen})
        message = ""
        try:
            camera = registry.watch(chosen)
            if camera_state(camera) == "error":
                message = f"Camera {camera.name}: {camera.state_note}"
        except CameraUnavailable as exc:
            message = str(exc)
        if registry.camserver_error and not message:
            message = f"cam_server: {registry.camserver_error}"
        return options if options != shown else no_update, message
