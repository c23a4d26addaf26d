"""Readings: the newest pulse's values 4 times a second; the image geometry when it changes."""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import Any

import numpy as np
from dash import Dash, Input, Output, State, no_update

from components import ids
from components.formatting import finite
from components.readings_panel import READING_IDS, readings_text
from stream.cameras import CameraRegistry, CameraUnavailable
from stream.frames import Frame
from stream.protocol import BsreadError
from stream.source import StreamSource
from web.render import saturation_level


# The text is sent only when it changes (the tick compares a digest, not the text itself), and is
# cut to a size a browser shows without stalling: a stream's 1 MiB of parameters gives 64 KiB.
MAX_PARAMETERS_CHARS = 64 * 1024


class SaturationCounts:
    """Saturated pixels of a frame, counted once per (frame, level) for every browser."""

    def __init__(self, size: int = 16) -> None:
        self._lock = threading.Lock()
        self._counts: collections.OrderedDict[tuple, int] = collections.OrderedDict()
        self._size = size

    def count(self, frame: Frame, level: float) -> int | None:
        key = (frame.serial, level)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        try:
            count = int(np.count_nonzero(frame.image() >= level))
        except BsreadError:
            return None
        with self._lock:
            self._counts[key] = count
            while len(self._counts) > self._size:
                self._counts.popitem(last=False)
        return count


def geometry(camera: StreamSource) -> dict[str, Any]:
    """What the image figure is built from; it is rebuilt only when this changes."""
    frame = camera.frames.latest()
    axis_x, axis_y = camera.axes
    return {"camera": camera.name, "shape": list(frame.shape) if frame is not None else None,
            "x": [axis_x.origin, axis_x.step, axis_x.unit], "y": [axis_y.origin, axis_y.step, axis_y.unit],
            "rois": camera.rois.version}


def register(app: Dash, registry: CameraRegistry) -> None:
    counts = SaturationCounts()

    @app.callback(
        *[Output(reading, "children") for reading in READING_IDS],
        Output(ids.IMAGE_GEOMETRY, "data"),
        Output(ids.PARAMETERS, "children"),
        Output(ids.PARAMETERS_DIGEST, "data"),
        Input(ids.READINGS_INTERVAL, "n_intervals"),
        Input(ids.CAMERA_SELECT, "value"),
        State(ids.IMAGE_GEOMETRY, "data"),
        State(ids.SATURATION, "value"),
        State(ids.SATURATION_LEVEL, "value"),
        State(ids.PARAMETERS_DIGEST, "data"),
    )
    def refresh_readings(_n, camera_name, shown_geometry, saturation_on, level, shown_digest):
        try:
            camera = registry.watch(camera_name)
        except CameraUnavailable:
            return (*("—",) * len(READING_IDS), no_update, no_update, no_update)
        frame = camera.frames.latest()
        saturated = None
        if frame is not None:
            chosen = saturation_level(frame.dtype, finite(level)) if saturation_on else None
            saturated = counts.count(frame, chosen) if chosen is not None else None
        texts = readings_text(camera.newest_measured(), camera.layout, camera.axes,
                              frame.shape if frame is not None else None, saturated,
                              tuple(roi.name for roi in camera.rois.rois))
        current = geometry(camera)
        parameters = processing_parameters(camera, frame)
        digest = hashlib.blake2b(parameters.encode(), digest_size=8).hexdigest()
        changed = digest != shown_digest
        return (*texts, current if current != shown_geometry else no_update,
                parameters if changed else no_update, digest if changed else no_update)


def processing_parameters(camera: StreamSource, frame: Frame | None) -> str:
    """cam_server's processing_parameters of the newest frame, as text (never markup)."""
    layout = camera.layout
    if frame is None or layout is None or layout.parameters is None:
        return "(the stream sends no processing parameters)"
    channel = frame.message.channels.get(layout.parameters)
    try:
        text = str(channel.value) if channel is not None and not channel.is_empty else ""
    except BsreadError:
        return "(unreadable)"
    if len(text) > MAX_PARAMETERS_CHARS:
        text = f"{text[:MAX_PARAMETERS_CHARS]}… ({len(text) - MAX_PARAMETERS_CHARS:,} more characters)"
    return text
