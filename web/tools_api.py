"""The operator tools' HTTP API (docs/api.md): regions of interest, background, HDF5 snapshots.

Regions and the background are shared by every viewer of a camera; the writes (PUT, POST, DELETE)
are refused from other sites (web.protections) and need the same authentication as the page.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import flask
import numpy as np
import orjson

from components.formatting import iso_utc, safe_filename, utc_for_filename
from stream.background import DEFAULT_GRAB_FRAMES, MAX_GRAB_FRAMES
from stream.cameras import CameraRegistry
from stream.frames import Frame
from stream.protocol import BsreadError
from stream.rois import RoiError, parse_rois
from stream.source import StreamSource

from .api import ApiError, camera_for, client_id, integer, json_response, number

MAX_BODY = 64 * 1024


def blueprint(registry: CameraRegistry) -> flask.Blueprint:
    tools = flask.Blueprint("tools", __name__)

    @tools.errorhandler(ApiError)
    def refused(exc: ApiError):
        return json_response({"error": str(exc)}, exc.status)

    @tools.errorhandler(BsreadError)
    def corrupt(exc: BsreadError):
        return json_response({"error": f"the frame is corrupt ({exc.reason})"}, 422)

    @tools.route("/api/rois", methods=["GET", "PUT"])
    def rois():
        camera = camera_for(registry, flask.request.args)
        if flask.request.method == "PUT":
            raw = flask.request.get_data(cache=False)
            if len(raw) > MAX_BODY:
                raise ApiError(413, f"at most {MAX_BODY} bytes")
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise ApiError(400, "the body must be JSON (and not nested that deep)") from None
            latest = camera.frames.latest()
            try:
                parsed = parse_rois(body, latest.shape if latest is not None else None)
            except RoiError as exc:
                raise ApiError(400, str(exc)) from None
            camera.rois.replace(parsed)
        # Exactly the documented document: a script can PUT back what it got.
        return json_response({"rois": [roi.as_dict() for roi in camera.rois.rois]})

    @tools.route("/api/background", methods=["GET", "POST", "DELETE"])
    def background():
        args = flask.request.args
        camera = camera_for(registry, args)
        if flask.request.method == "POST":
            frames = integer(args, "frames", DEFAULT_GRAB_FRAMES, 1, MAX_GRAB_FRAMES)
            camera.background.grab(frames)
        elif flask.request.method == "DELETE":
            camera.background.clear()
        return json_response({"camera": camera.name, **camera.background.state()})

    @tools.get("/api/snapshot.h5")
    def snapshot():
        args = flask.request.args
        camera = camera_for(registry, args)
        seq, client = integer(args, "seq"), client_id(args)
        frame = camera.frames.get(seq, client) if seq is not None else camera.frames.latest()
        if frame is None:
            raise ApiError(404, "that frame is no longer kept" if seq is not None else "no frame yet")
        processing = {"average": int(number(args, "avg", 1, 1, 100)), "background": args.get("bg") == "1"}
        body = snapshot_h5(camera, frame, processing)
        name = safe_filename(f"{camera.name}_pulse{frame.pulse_id}_{utc_for_filename(frame.timestamp)}.h5")
        return flask.Response(body, mimetype="application/x-hdf5",
                              headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return tools


def scalar_channels(frame: Frame) -> dict[str, Any]:
    """The pulse's scalar channels named and typed as in the stream (corrupt ones left out)."""
    out = {}
    for name, channel in frame.message.channels.items():
        if channel.spec.is_scalar and not channel.is_empty:
            try:
                out[name] = channel.value
            except BsreadError:
                continue
    return out


def h5_name(name: str) -> str:
    """A channel name HDF5 takes: '/' would be a path, '.' and '..' are not names, empty neither."""
    escaped = name.replace("%", "%25").replace("/", "%2F")
    return escaped if escaped not in ("", ".", "..") else escaped.replace(".", "%2E") or "%00"


def snapshot_h5(camera: StreamSource, frame: Frame, processing: dict) -> bytes:
    """One frame as received, with its pulse's scalar channels, as an HDF5 file (in memory)."""
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as h5:
        h5.create_dataset("image", data=np.asarray(frame.image()))
        h5.create_dataset("pulse_id", data=np.int64(frame.pulse_id))
        h5.create_dataset("timestamp", data=np.float64(frame.timestamp))
        group = h5.create_group("channels")
        for name, value in scalar_channels(frame).items():
            dataset = group.create_dataset(h5_name(name), data=value)
            dataset.attrs["name"] = name  # as in the stream, whatever HDF5 could not take
        background = camera.background.current
        if processing["background"] and background is not None:
            processing = {**processing, "background_frames": background.frames,
                          "background_taken": iso_utc(background.taken_at)}
        h5.attrs["camera"] = camera.name
        h5.attrs["stream"] = camera.label
        h5.attrs["processing"] = orjson.dumps(processing).decode()
        h5.attrs["time_utc"] = iso_utc(frame.timestamp)
        h5.attrs["computed"] = orjson.dumps({k: v for k, v in frame.computed.items() if math.isfinite(v)}).decode()
    return out.getvalue()
