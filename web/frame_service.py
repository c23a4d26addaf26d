"""Render once, serve many: each camera's newest frame rendered at most once per distinct view.

Rendering happens lazily, on the first request that sees a new frame for its view, and no more
often than the display period; every other browser asking for that frame and view gets the same
bytes. With no browser asking, nothing is rendered. A paused browser asks for one frame by its
sequence number (`seq`), from the live frames or the ones pinned for it.

The answer's body (`encode`) is one JSON header and the binary parts it lists (docs/api.md):
    uint32 little-endian n | n bytes of JSON | zero padding to 8 | parts, each padded to 8
"""

from __future__ import annotations

import collections
import gzip
import logging
import math
import struct
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import orjson

from stream.frames import Frame
from stream.protocol import BsreadError
from stream.source import StreamSource

from .processing import Processed, Processor
from .render import View, render

log = logging.getLogger(__name__)

MAX_VIEWS = 32  # rendered (view, frame) entries kept per camera (LRU)
DTYPES = {np.dtype(np.uint8): "u1", np.dtype(np.float32): "f4", np.dtype(np.float64): "f8"}


@dataclass
class RenderedFrame:
    seq: int
    pulse_id: int
    rendered: float  # monotonic time of rendering
    scaled_range: tuple[float, float] | None  # automatic colour range, for the next frame to hold
    body: bytes
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes:
        """The body gzip-compressed (level 1), made once for every browser that accepts it: about half
        the bytes for ~1 ms once per render; the browser inflates it off its main thread
        (bench/frame_format.py)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=1, mtime=0)
        return self._gzipped


def encode(meta: dict[str, Any], parts: tuple[tuple[str, np.ndarray], ...]) -> bytes:
    """The documented frame format: JSON header (with the list of parts) and the parts themselves."""
    chunks, listed, offset = [], [], 0
    for name, array in parts:
        data = np.ascontiguousarray(array).tobytes()
        listed.append([name, DTYPES[array.dtype], int(array.size), offset])
        chunks.append(data + b"\0" * (-len(data) % 8))
        offset += len(chunks[-1])
    header = orjson.dumps({**meta, "parts": listed}, option=orjson.OPT_SERIALIZE_NUMPY)
    prefix = struct.pack("<I", len(header)) + header
    return prefix + b"\0" * (-len(prefix) % 8) + b"".join(chunks)


def decode(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of `encode` (scripts and tests use it)."""
    (n,) = struct.unpack_from("<I", body, 0)
    meta = orjson.loads(body[4:4 + n])
    start = 4 + n + (-(4 + n) % 8)
    parts = {}
    for name, dtype, size, offset in meta["parts"]:
        parts[name] = np.frombuffer(body, dtype=np.dtype(dtype), count=size, offset=start + offset)
    return meta, parts


class _CameraCache:
    """Rendered frames of one camera connection (a reconnected camera starts empty: its numbering too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: collections.OrderedDict[tuple, RenderedFrame] = collections.OrderedDict()
        self.view_locks: dict[tuple, threading.Lock] = {}
        self.processor = Processor()
        self.failed_seq = -1

    def lookup(self, key: tuple) -> tuple[RenderedFrame | None, threading.Lock]:
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            if len(self.view_locks) > 4 * MAX_VIEWS:  # views that never got rendered must not pile up
                self.view_locks = {k: v for k, v in self.view_locks.items() if k in self.entries}
            return entry, self.view_locks.setdefault(key, threading.Lock())

    def store(self, key: tuple, entry: RenderedFrame) -> None:
        with self.lock:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > MAX_VIEWS:
                old, _ = self.entries.popitem(last=False)
                self.view_locks.pop(old, None)


class FrameService:
    def __init__(self, min_interval_s: float, on_render: Callable[[float], None] | None = None) -> None:
        self.min_interval_s = min_interval_s
        self._on_render = on_render  # diagnostics: seconds spent per render
        self._lock = threading.Lock()
        # Keyed by the camera's frame store: one cache per connection, gone with it.
        self._cameras: weakref.WeakKeyDictionary[Any, _CameraCache] = weakref.WeakKeyDictionary()

    def _cache(self, camera: StreamSource) -> _CameraCache:
        with self._lock:
            cache = self._cameras.get(camera.frames)
            if cache is None:
                cache = self._cameras[camera.frames] = _CameraCache()
            return cache

    def processor(self, camera: StreamSource) -> Processor:
        return self._cache(camera).processor

    def frame(self, camera: StreamSource, view: View, seq: int | None = None, client: str | None = None,
              seen: int | None = None) -> RenderedFrame | None:
        """The newest frame (or kept frame `seq`) rendered for `view`; None if there is none (yet, or any more).

        `seen` is the frame the asking browser shows. A browser asking once per period finds the
        cache a little younger than a period about half the time (jitter); if it already has the
        cached frame it may trigger a render after half a period, else it would draw at half rate.
        """
        cache = self._cache(camera)
        frame = camera.frames.get(seq, client) if seq is not None else camera.frames.latest()
        if frame is None:
            return None
        key = (view, seq)
        entry, lock = cache.lookup(key)
        if entry is not None and self._current(entry, frame, seen, seq):
            return entry
        with lock:  # one render per view at a time; the others wait and reuse its result
            entry, _ = cache.lookup(key)
            if seq is None:
                frame = camera.frames.latest() or frame
            if entry is not None and self._current(entry, frame, seen, seq):
                return entry
            if frame.seq == cache.failed_seq:
                return entry
            try:
                rendered = self._render(camera, cache, frame, view, entry, client if seq is not None else None)
            except BsreadError as exc:  # corrupt compressed image: counted, previous frame kept
                cache.failed_seq = frame.seq
                camera.count_invalid(exc)
                return entry
            cache.store(key, rendered)
            return rendered

    def _current(self, entry: RenderedFrame, frame: Frame, seen: int | None, seq: int | None) -> bool:
        if seq is not None:
            return entry.seq == frame.seq
        if entry.seq >= frame.seq:
            return True
        age = time.monotonic() - entry.rendered
        return age < (self.min_interval_s / 2 if seen == entry.seq else self.min_interval_s)

    def _render(self, camera: StreamSource, cache: _CameraCache, frame: Frame, view: View,
                previous: RenderedFrame | None, client: str | None) -> RenderedFrame:
        """Render `frame`; `client` is given for a kept frame: its pinned frames are its past."""
        started = time.perf_counter()
        available = (camera.frames.pinned(client) if client else ()) or camera.frames.recent()
        background = camera.background.current if view.background else None
        processed = cache.processor.process(frame, available, view.average, background)
        raw = frame.image()
        saturated = raw >= view.saturation if view.saturation is not None else None
        curves_x, curves_y = profile_curves(camera, frame, processed)
        hold = previous.scaled_range if previous is not None else None
        result = render(processed.image, view, hold, saturated, curves_x, curves_y)
        meta = {**frame_meta(camera, frame, processed), **result.meta}
        scaled = tuple(result.meta["scaled_range"]) if result.meta["auto"] else None
        body = encode(meta, result.parts)
        if self._on_render is not None:
            self._on_render(time.perf_counter() - started)
        return RenderedFrame(frame.seq, frame.pulse_id, time.monotonic(), scaled, body)


def frame_meta(camera: StreamSource, frame: Frame, processed: Processed) -> dict[str, Any]:
    """What a frame is: where it came from, its axes, its processing, the beam found in it."""
    axis_x, axis_y = camera.axes
    computed = frame.computed

    def number(name: str) -> float | None:
        value = computed.get(name, math.nan)
        return float(value) if math.isfinite(value) else None

    height, width = frame.shape
    return {
        "camera": camera.name, "seq": frame.seq, "pulse_id": frame.pulse_id, "timestamp": frame.timestamp,
        "received": frame.received, "shape": [height, width], "dtype": frame.dtype.name,
        "x": {"origin": axis_x.origin, "step": axis_x.step, "unit": axis_x.unit},
        "y": {"origin": axis_y.origin, "step": axis_y.step, "unit": axis_y.unit},
        "processing": {"average": processed.averaged, "background": processed.background, "note": processed.note},
        "processing_error": frame.processing_error,
        "beam": {"x": number("beam_centroid_x"), "y": number("beam_centroid_y"),
                 "sigma_x": number("beam_rms_x"), "sigma_y": number("beam_rms_y")},
    }


def profile_curves(camera: StreamSource, frame: Frame, processed: Processed
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The profile panels' curves at full resolution (per pixel column / row).

    profile: the stream's profile channel for a raw frame, else the image summed over rows/columns;
    fit: our Gaussian fit of this pulse; stream_fit: the stream's own fit function (cam_server); no
    fits for an averaged or background-subtracted frame.
    """
    layout = camera.layout
    channels = frame.message.channels
    image = processed.image
    height, width = image.shape
    curves: list[dict[str, np.ndarray]] = [{}, {}]
    for k, (axis, length) in enumerate((("x", width), ("y", height))):
        profile = None
        name = getattr(layout, f"profile_{axis}", None) if layout else None
        if name and processed.averaged == 1 and not processed.background and name in channels:
            value = _value(channels[name])
            if isinstance(value, np.ndarray) and value.shape == (length,):
                profile = value
        if profile is None:
            with np.errstate(all="ignore"):
                profile = np.nansum(image, axis=k, dtype=np.float64) if image.dtype.kind == "f" else \
                    image.sum(axis=k, dtype=np.float64)
        curves[k]["profile"] = profile
        if processed.averaged > 1 or processed.background:
            continue  # the fits describe the raw pulse: over a mean or a subtracted profile they would float
        fit = gaussian(frame.computed, axis, length)
        if fit is not None:
            curves[k]["fit"] = fit
        fname = getattr(layout, f"fit_function_{axis}", None) if layout else None
        if fname and fname in channels and not channels[fname].is_empty:
            value = _value(channels[fname])
            if isinstance(value, np.ndarray) and value.shape == (length,):
                curves[k]["stream_fit"] = value
    return curves[0], curves[1]


def _value(channel: Any) -> Any:
    """A curve channel's value, None if it is corrupt (the picture is drawn without it)."""
    try:
        return channel.value
    except BsreadError:
        return None


def gaussian(computed: dict[str, float] | Any, axis: str, length: int) -> np.ndarray | None:
    """offset + amplitude * exp(-(i - mean)^2 / 2 sigma^2) at every pixel i, from this pulse's fit."""
    params = [computed.get(f"beam_fit_{p}_{axis}", math.nan) for p in ("amplitude", "mean", "sigma", "offset")]
    if not all(math.isfinite(p) for p in params) or params[2] <= 0:
        return None
    amplitude, mean, sigma, offset = params
    i = np.arange(length, dtype=np.float64)
    return offset + amplitude * np.exp(-0.5 * ((i - mean) / sigma) ** 2)
