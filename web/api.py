"""The app's HTTP API (docs/api.md): frames for the page and for scripts, status, cameras, CSV.

Every endpoint takes `camera=NAME` (default: the first camera). Frames come out in the format of
`web.frame_service.encode`; the page asks for the next one only after the answer arrived, so a slow
browser lowers its own frame rate and never queues requests. Bad input is refused with 400 and a
sentence saying why.
"""

from __future__ import annotations

import json
import math
from typing import Any

import flask
import orjson

from components.formatting import safe_filename, utc_for_filename
from components.readings_csv import readings_csv_chunks
from components.status import status_document
from stream.cameras import CameraRegistry, CameraUnavailable, camera_state
from stream.protocol import BsreadError
from stream.source import StreamSource

from .frame_service import FrameService
from .render import COLORMAPS, View, saturation_level

MAX_SECONDS = 10 * 365 * 86400.0
MAX_CLIENT_ID = 64


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(document: Any, status: int = 200) -> flask.Response:
    return flask.Response(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                          status=status, mimetype="application/json")


def camera_for(registry: CameraRegistry, args: Any) -> StreamSource:
    try:
        return registry.watch(args.get("camera") or None)
    except CameraUnavailable as exc:
        raise ApiError(404, str(exc)) from None


# ---------------------------------------------------------------------------------- query parsing


def number(args: Any, name: str, default: float | None = None, lo: float = -math.inf, hi: float = math.inf
           ) -> float | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ApiError(400, f"{name} must be a number between {lo:g} and {hi:g}")
    return value


def integer(args: Any, name: str, default: int | None = None, lo: int = 0, hi: int = 2**62) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return value


def client_id(args: Any) -> str | None:
    client = args.get("client")
    if client is None:
        return None
    if not (0 < len(client) <= MAX_CLIENT_ID and client.replace("-", "").replace("_", "").isalnum()):
        raise ApiError(400, "client must be 1-64 letters, digits, - or _")
    return client


def axis_range(args: Any, name: str, axis: Any, length: int) -> tuple[int, int] | None:
    """`lo,hi` in axis units -> the pixels [i0, i1) it shows, whole or in part (as far as the image goes)."""
    raw = args.get(name)
    if not raw:
        return None
    try:
        lo, hi = (float(v) for v in raw.split(","))
    except ValueError:
        raise ApiError(400, f"{name} must be two numbers: lo,hi") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ApiError(400, f"{name} must be finite")
    a, b = sorted((axis.index(lo), axis.index(hi)))
    i0, i1 = int(math.floor(a + 0.5)), int(math.ceil(b + 0.5))
    return max(-(2**31), min(i0, length)), max(-(2**31), min(i1, length))


def view_from(args: Any, camera: StreamSource) -> View:
    """The view a frame request asks for, validated (it is user input)."""
    colormap = args.get("cmap", "Viridis")
    if colormap not in COLORMAPS:
        raise ApiError(400, f"cmap must be one of {', '.join(COLORMAPS)}")
    scale = args.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise ApiError(400, "scale must be linear or log")
    zmin, zmax = number(args, "zmin"), number(args, "zmax")
    if (zmin is None) != (zmax is None):
        raise ApiError(400, "give both zmin and zmax, or neither")
    if zmin is not None and zmax is not None:
        if zmin >= zmax:
            raise ApiError(400, "zmin must be less than zmax")
        if scale == "log" and zmin <= 0:
            raise ApiError(400, "a log scale needs zmin > 0")
    region = None
    latest = camera.frames.latest()
    if latest is not None and (args.get("xr") or args.get("yr")):
        height, width = latest.shape
        axis_x, axis_y = camera.axes
        cols = axis_range(args, "xr", axis_x, width) or (0, width)
        rows = axis_range(args, "yr", axis_y, height) or (0, height)
        region = (*cols, *rows)
    return View(colormap=colormap, scale=scale, zmin=zmin, zmax=zmax, region=region,
                bins_x=int(number(args, "w", 320, 8, 4096)), bins_y=int(number(args, "h", 260, 8, 4096)),
                average=int(number(args, "avg", 1, 1, 100)), background=args.get("bg") == "1",
                saturation=saturation_of(args, latest))


def saturation_of(args: Any, frame: Any) -> float | None:
    """`sat=LEVEL`, or `sat=max`: the image type's maximum (web.render.saturation_level)."""
    if args.get("sat") != "max":
        return number(args, "sat")
    return saturation_level(frame.dtype, None) if frame is not None else None


# ---------------------------------------------------------------------------------------- routes


class Api:
    """The endpoints, each a method reading the request's arguments (routes in `blueprint`)."""

    def __init__(self, registry: CameraRegistry, frames: FrameService) -> None:
        self.registry = registry
        self.frames = frames

    def frame(self) -> flask.Response:
        args = flask.request.args
        camera = camera_for(self.registry, args)
        view = view_from(args, camera)
        client = client_id(args)
        seq = integer(args, "seq")
        after = integer(args, "after", lo=-1)
        stream = json.dumps(stream_state(camera), ensure_ascii=True)  # headers are Latin-1: cam_server's text is not
        seen = after if after is not None and after >= 0 else None
        rendered = self.frames.frame(camera, view, seq=seq, client=client, seen=seen)
        if rendered is None:
            if seq is not None:
                raise ApiError(404, f"frame {seq} is no longer kept")
            return flask.Response(status=204, headers={"X-SOV-Stream": stream})
        if seq is None and after is not None and rendered.seq == after:
            return flask.Response(status=204, headers={"X-SOV-Stream": stream})
        headers = {"X-SOV-Stream": stream, "Cache-Control": "no-store", "Vary": "Accept-Encoding"}
        if "gzip" in flask.request.accept_encodings:
            headers["Content-Encoding"] = "gzip"
            return flask.Response(rendered.gzipped(), mimetype="application/octet-stream", headers=headers)
        return flask.Response(rendered.body, mimetype="application/octet-stream", headers=headers)

    def pixel(self) -> flask.Response:
        args = flask.request.args
        camera = camera_for(self.registry, args)
        seq, client = integer(args, "seq"), client_id(args)
        found = camera.frames.get(seq, client) if seq is not None else camera.frames.latest()
        if found is None:
            raise ApiError(404, "that frame is no longer kept" if seq is not None else "no frame yet")
        height, width = found.shape
        col, row = integer(args, "col", hi=width - 1), integer(args, "row", hi=height - 1)
        if col is None or row is None:
            raise ApiError(400, "give col and row (pixel indices)")
        available = camera.frames.pinned(client) if client and seq is not None else ()
        background = camera.background.current if args.get("bg") == "1" else None
        processed = self.frames.processor(camera).process(found, available or camera.frames.recent(),
                                                          int(number(args, "avg", 1, 1, 100)), background)
        axis_x, axis_y = camera.axes
        return json_response({
            "camera": camera.name, "seq": found.seq, "pulse_id": found.pulse_id, "col": col, "row": row,
            "x": axis_x.at(col), "y": axis_y.at(row), "unit_x": axis_x.unit, "unit_y": axis_y.unit,
            "value": float(processed.image[row, col]), "raw": float(found.image()[row, col]),
            "averaged": processed.averaged, "background": processed.background})

    def hold(self) -> flask.Response:
        args = flask.request.args
        camera = camera_for(self.registry, args)
        client = client_id(args)
        if client is None:
            raise ApiError(400, "give client (the page's id)")
        if flask.request.method == "DELETE":
            camera.frames.unpin(client)
            return json_response({"frames": []})
        if args.get("touch") == "1":  # a long pause: the same frames, still wanted
            pinned = camera.frames.pinned(client)
        else:
            pinned = camera.frames.pin(client, upto_seq=integer(args, "seq"))
        return json_response({"frames": [{"seq": f.seq, "pulse_id": f.pulse_id, "timestamp": f.timestamp}
                                         for f in pinned]})

    def status(self) -> flask.Response:
        camera = camera_for(self.registry, flask.request.args)
        return json_response(status_document(camera, self.registry.camserver_error))

    def cameras(self) -> flask.Response:
        registry = self.registry
        return json_response({"cameras": registry.listing(), "default": registry.default,
                              "camserver_error": registry.camserver_error})

    def readings(self) -> flask.Response:
        args = flask.request.args
        camera = camera_for(self.registry, args)
        seconds = number(args, "seconds", None, 1e-9, MAX_SECONDS)
        body = readings_csv_chunks(camera.buffer.window(seconds))
        name = safe_filename(f"readings-{camera.name}-{utc_for_filename()}.csv")
        return flask.Response(flask.stream_with_context(body), mimetype="text/csv",
                              headers={"Content-Disposition": f'attachment; filename="{name}"'})


def blueprint(registry: CameraRegistry, frames: FrameService) -> flask.Blueprint:
    api = flask.Blueprint("api", __name__)
    handlers = Api(registry, frames)
    api.register_error_handler(ApiError, lambda exc: json_response({"error": str(exc)}, exc.status))
    api.register_error_handler(BsreadError, lambda exc: json_response({"error": f"the frame is corrupt ({exc.reason})"}, 422))
    api.add_url_rule("/api/frame", view_func=handlers.frame)
    api.add_url_rule("/api/pixel", view_func=handlers.pixel)
    api.add_url_rule("/api/hold", view_func=handlers.hold, methods=["POST", "DELETE"])
    api.add_url_rule("/api/status", view_func=handlers.status)
    api.add_url_rule("/api/cameras", view_func=handlers.cameras)
    api.add_url_rule("/api/readings.csv", view_func=handlers.readings)
    # Not Dash's page, which answers every other path with 200: a typo must look like one to a script.
    api.add_url_rule("/api/<path:unknown>", view_func=lambda unknown: json_response({"error": "no such endpoint"}, 404),
                     methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    return api


def stream_state(camera: StreamSource) -> dict[str, Any]:
    """What a frame answer says of the stream right now (the page's STALE mark and its age)."""
    health = camera.health()
    if health is None:
        state = camera_state(camera)  # type: ignore[arg-type]
        return {"state": state, "error": camera.state_note if state == "error" else ""}
    age = health.last_message_age_s
    return {"state": health.state, "age_s": None if age is None else round(age, 3),
            "stall_limit_s": round(health.stall_limit_s, 3), "rate_hz": round(health.rate_hz, 2)}

