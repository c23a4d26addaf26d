"""Operator tools: background grab/clear, regions of interest drawn on the image (shared by every
viewer of the camera), and the buttons handled by the painter (snapshots)."""

from __future__ import annotations

from typing import Any

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update

from components import ids
from components.formatting import iso_utc
from components.image_figure import box_from_shape
from stream.cameras import CameraRegistry, CameraUnavailable
from stream.rois import MAX_ROIS, NAME, RoiError, parse_rois
from stream.source import StreamSource

ROI_DELETE = "roi-delete"  # pattern-matching id type of the per-region delete buttons


def background_text(state: dict[str, Any]) -> str:
    if state["state"] == "grabbing":
        return f"grabbing {state['grab']['done']} / {state['grab']['frames']} frames…"
    if state["state"] == "ready":
        bg = state["background"]
        return f"{bg['frames']} frames, {bg['width']} × {bg['height']} px, {iso_utc(bg['taken_at'])[:19]} UTC"
    return state["error"] or "none"


def next_name(existing: list[str], wanted: str | None) -> str:
    if wanted and NAME.fullmatch(wanted) and wanted not in existing:
        return wanted
    index = 1
    while f"roi{index}" in existing:
        index += 1
    return f"roi{index}"


def add_drawn(camera: StreamSource, shape: dict, wanted: str | None) -> str:
    """Add a rectangle drawn on the image as a region; returns '' or why it was refused."""
    frame = camera.frames.latest()
    if frame is None:
        return "no image yet"
    x0, x1, y0, y1 = box_from_shape(shape, camera.axes, frame.shape)

    def with_it(rois: tuple) -> tuple:
        current = [roi.as_dict() for roi in rois]
        name = next_name([r["name"] for r in current], wanted)
        return parse_rois({"rois": [*current, {"name": name, "x0": x0, "x1": x1, "y0": y0, "y1": y1}]}, frame.shape)

    try:
        camera.rois.update(with_it)  # atomically: another browser may be drawing at the same time
    except RoiError as exc:
        return str(exc)
    return ""


def register(app: Dash, registry: CameraRegistry) -> None:
    @app.callback(Output(ids.TOOLS, "is_open"), Output(ids.TOOLS_INTERVAL, "disabled"),
                  Input(ids.TOOLS_BUTTON, "n_clicks"), State(ids.TOOLS, "is_open"), prevent_initial_call=True)
    def toggle_tools(_clicks, is_open):
        return not is_open, is_open  # the tools' own refresh runs only while they are shown

    @app.callback(Output(ids.BACKGROUND_STATE, "children"), Input(ids.BACKGROUND_GRAB, "n_clicks"),
                  Input(ids.BACKGROUND_CLEAR, "n_clicks"), Input(ids.TOOLS_INTERVAL, "n_intervals"),
                  State(ids.BACKGROUND_FRAMES, "value"), State(ids.CAMERA_SELECT, "value"))
    def background(_grab, _clear, _n, frames, camera_name):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable as exc:
            return str(exc)
        if ctx.triggered_id == ids.BACKGROUND_GRAB:
            try:
                camera.background.grab(int(frames or 0))
            except (TypeError, ValueError) as exc:
                return str(exc)
        elif ctx.triggered_id == ids.BACKGROUND_CLEAR:
            camera.background.clear()
        return background_text(camera.background.state())

    @app.callback(Output(ids.ROI_MESSAGE, "children"), Output(ids.ROI_LIST, "children"),
                  Output(ids.ROI_VERSION, "data"),
                  Input(ids.IMAGE_GRAPH, "relayoutData"), Input(ids.ROI_CLEAR, "n_clicks"),
                  Input({"type": ROI_DELETE, "name": ALL}, "n_clicks"), Input(ids.TOOLS_INTERVAL, "n_intervals"),
                  State(ids.ROI_NAME, "value"), State(ids.CAMERA_SELECT, "value"), State(ids.ROI_VERSION, "data"))
    def regions(relayout, _clear, _deletes, _n, wanted, camera_name, shown):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable as exc:
            return str(exc), no_update, no_update
        message = no_update
        trigger = ctx.triggered_id
        if trigger == ids.IMAGE_GRAPH and isinstance(relayout, dict) and isinstance(relayout.get("shapes"), list):
            drawn = [s for s in relayout["shapes"] if isinstance(s, dict) and s.get("type") == "rect"
                     and not s.get("name")]  # ours carry their region's name; the new one has none
            if drawn:
                if len(camera.rois.rois) >= MAX_ROIS:
                    message = f"at most {MAX_ROIS} regions"
                else:
                    message = add_drawn(camera, drawn[-1], wanted)
        elif trigger == ids.ROI_CLEAR:
            camera.rois.replace(())
            message = ""
        elif isinstance(trigger, dict) and trigger.get("type") == ROI_DELETE and ctx.triggered[0]["value"]:
            camera.rois.update(lambda rois: tuple(r for r in rois if r.name != trigger["name"]))
            message = ""
        version = [camera.name, camera.rois.version]
        if version == shown:  # re-drawing the list would re-create its buttons (and trigger this again)
            return message, no_update, no_update
        listing = [html.Div([html.Span(f"{r.name}: x {r.x0}–{r.x1}, y {r.y0}–{r.y1} px "),
                             html.Button("×", id={"type": ROI_DELETE, "name": r.name}, className="roi-delete",
                                         n_clicks=0, title=f"delete {r.name}")])
                   for r in camera.rois.rois]
        return message, listing, version

    app.clientside_callback(ClientsideFunction("sov", "snapshot"), Output(ids.HISTORY_LOOP_SINK, "data"),
                            Input(ids.SNAPSHOT_PNG, "n_clicks"), Input(ids.SNAPSHOT_H5, "n_clicks"),
                            prevent_initial_call=True)
