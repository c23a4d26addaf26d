"""Render once, serve many: the latest frame rendered at most once per distinct view.

Rendering happens lazily, on the first request that sees a new frame for its view, and no more
often than the display period; every other browser asking for that frame and view gets the same
cached payload. With no browser asking, nothing is rendered at all.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from components.image_panel import ImageView, render_image
from stream.protocol import BsreadError
from stream.ring_buffer import RingBuffer

log = logging.getLogger(__name__)

MAX_VIEWS = 32  # distinct views cached at once (LRU); each holds one rendered frame


@dataclass(frozen=True)
class RenderedFrame:
    seq: int
    pulse_id: int
    timestamp: float  # pulse time, epoch seconds
    received: float  # arrival time, epoch seconds
    rendered: float  # monotonic time of rendering
    payload: dict[str, Any]


class FrameCache:
    def __init__(self, buffer: RingBuffer, min_interval_s: float,
                 on_bad_frame: Callable[[BsreadError], None] | None = None) -> None:
        self.buffer = buffer
        self.min_interval_s = min_interval_s
        self._on_bad_frame = on_bad_frame
        self._entries: collections.OrderedDict[ImageView, RenderedFrame] = collections.OrderedDict()
        self._locks: dict[ImageView, threading.Lock] = {}
        self._lock = threading.Lock()
        self._failed_seq = -1
        self.renders = 0  # how many times a frame was actually rendered (tests and benchmarks read it)
        self.render_seconds = 0.0

    def get(self, view: ImageView, seen_seq: int | None = None) -> RenderedFrame | None:
        """The latest frame rendered for `view`, or None if no frame was ever received.

        `seen_seq` is the frame the asking browser already shows. A browser that asks once per
        period finds the cache a little younger than a period about half the time (jitter); if it
        already has the cached frame it may trigger a render after half a period, otherwise it would
        get nothing new and draw at half the rate. Renders per view stay below two per period.
        """
        frame = self.buffer.latest_frame()
        if frame is None:
            return None
        with self._lock:
            entry = self._entries.get(view)
            if entry is not None:
                self._entries.move_to_end(view)
            if len(self._locks) > 4 * MAX_VIEWS:  # views that never got rendered must not pile up
                self._locks = {key: value for key, value in self._locks.items() if key in self._entries}
            lock = self._locks.setdefault(view, threading.Lock())
        if entry is not None and (entry.seq >= frame.seq or self._too_soon(entry, seen_seq)):
            return entry
        with lock:  # one render per view at a time; the others wait and reuse its result
            with self._lock:
                entry = self._entries.get(view)
            frame = self.buffer.latest_frame()
            if entry is not None and (entry.seq >= frame.seq or self._too_soon(entry, seen_seq)):
                return entry
            if frame.seq == self._failed_seq:
                return entry
            started = time.perf_counter()
            try:
                hold = entry.payload.get("range") if entry is not None else None
                payload = render_image(frame.image(), view, hold=hold)
            except BsreadError as exc:  # corrupt compressed image: counted, previous frame kept
                self._failed_seq = frame.seq
                if self._on_bad_frame is not None:
                    self._on_bad_frame(exc)
                return entry
            self.renders += 1
            self.render_seconds += time.perf_counter() - started
            entry = RenderedFrame(frame.seq, frame.pulse_id, frame.timestamp, frame.received, time.monotonic(),
                                  payload)
            with self._lock:
                self._entries[view] = entry
                self._entries.move_to_end(view)
                while len(self._entries) > MAX_VIEWS:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return entry

    def _too_soon(self, entry: RenderedFrame, seen_seq: int | None) -> bool:
        age = time.monotonic() - entry.rendered
        limit = self.min_interval_s / 2 if seen_seq == entry.seq else self.min_interval_s
        return age < limit
