"""A view's processing of raw frames: the mean of the last N frames, minus the camera's background.

Averages are kept as running sums per N (one camera's processor): the next frame adds one image and
drops the oldest instead of summing N again. Integer cameras sum exactly (int64); float cameras sum
their finite values and count them per pixel (a NaN pixel in one frame must not poison the mean for
good), and the sum is rebuilt from the frames every N updates so rounding cannot drift. Processed
images are cached (bounded in bytes) because the renderer and hover values ask for the same one.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stream.background import BackgroundImage
from stream.frames import Frame

MAX_AVERAGE = 100
MAX_SUMS = 4  # running sums kept (distinct N being watched)
CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # read-only 2-D: the raw image itself, or float32 after processing
    averaged: int  # frames in the mean (1: the frame itself)
    background: bool  # background subtracted
    note: str = ""  # why the processing asked for is not (fully) there, for the operator


@dataclass
class _Sum:
    total: np.ndarray  # int64 (integer cameras) or float64 sum of the finite values
    finite: np.ndarray | None  # float cameras: how many frames had a finite value at each pixel
    frames: tuple[Frame, ...]  # kept so that a frame leaving the window can be subtracted
    updates: int = 0


class Processor:
    """Processing for one camera connection; safe to call from several web threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: collections.OrderedDict[int, _Sum] = collections.OrderedDict()
        self._cache: collections.OrderedDict[tuple, Processed] = collections.OrderedDict()
        self._cache_bytes = 0

    def process(self, frame: Frame, available: Sequence[Frame], average: int,
                background: BackgroundImage | None) -> Processed:
        """`frame` averaged with the frames before it in `available` (oldest first), minus `background`."""
        average = max(1, min(MAX_AVERAGE, int(average)))
        earlier = [f for f in available if f.seq < frame.seq and f.shape == frame.shape][-(average - 1):] \
            if average > 1 else []
        frames = [*earlier, frame]
        # Serials, not id(): an id is reused once its frame is gone, and the cache would answer a new window
        # with an old mean (seen once as a wrong average in a long test stream).
        key = (tuple(f.serial for f in frames), background.serial if background is not None else None)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        raw = frame.image()
        image, note = (self._mean(average, frames) if len(frames) > 1 else raw), ""
        if len(frames) < average:
            note = f"mean of the {len(frames)} frames kept, {average} asked"
        subtracted = False
        if background is not None:
            if background.image.shape == raw.shape:
                image = np.subtract(image, background.image, dtype=np.float32)
                subtracted = True
            else:
                bh, bw = background.image.shape
                note = f"background is {bw} × {bh} px, the frame {raw.shape[1]} × {raw.shape[0]}: not subtracted"
        if image is raw:
            return Processed(raw, 1, False, note)
        image.flags.writeable = False
        result = Processed(image, len(frames), subtracted, note)
        self._remember(key, result)
        return result

    def _mean(self, average: int, frames: list[Frame]) -> np.ndarray:
        with self._lock:
            running = self._sums.pop(average, None)  # this thread owns it until it is put back
        if running is None or not self._advance(running, frames):
            running = self._rebuild(frames)
        with self._lock:
            self._sums[average] = running
            while len(self._sums) > MAX_SUMS:
                self._sums.popitem(last=False)
        if running.finite is None:
            return (running.total / len(frames)).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (running.total / running.finite).astype(np.float32)  # NaN where no frame had a value

    @staticmethod
    def _rebuild(frames: list[Frame]) -> _Sum:
        integer = frames[-1].dtype.kind in "uib"
        total = np.zeros(frames[-1].shape, dtype=np.int64 if integer else np.float64)
        finite = None if integer else np.zeros(frames[-1].shape, dtype=np.int32)
        running = _Sum(total, finite, ())
        for f in frames:
            _add(running, f.image(), +1)
        running.frames = tuple(frames)
        return running

    @staticmethod
    def _advance(running: _Sum, frames: list[Frame]) -> bool:
        """Move the window (True), or False when summing again is cheaper or due."""
        if running.total.shape != frames[-1].shape or (running.finite is None) != (frames[-1].dtype.kind in "uib"):
            return False
        before, now = {f.serial for f in running.frames}, {f.serial for f in frames}
        added = [f for f in frames if f.serial not in before]
        removed = [f for f in running.frames if f.serial not in now]
        if len(added) + len(removed) >= len(frames) or running.updates >= len(frames):
            return False
        if running.finite is not None and any(_large(f.image()) for f in added + removed):
            return False  # adding and removing 1e20 would cancel the small values beside it
        for f in added:
            _add(running, f.image(), +1)
        for f in removed:
            _add(running, f.image(), -1)
        running.frames = tuple(frames)
        running.updates += 1
        return True

    def _remember(self, key: tuple, result: Processed) -> None:
        size = result.image.nbytes
        with self._lock:
            self._cache[key] = result
            self._cache_bytes += size
            while self._cache and self._cache_bytes > CACHE_BYTES:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.image.nbytes


LARGE = 1e9  # a float pixel beyond this makes the running sum lose the small ones: sum again


def _large(image: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        return bool(np.nanmax(np.abs(image), initial=0.0) > LARGE)


def _add(running: _Sum, image: np.ndarray, sign: int) -> None:
    if running.finite is None:
        if sign > 0:
            running.total += image
        else:
            running.total -= image
        return
    ok = np.isfinite(image)
    values = np.where(ok, image, 0.0)
    if sign > 0:
        running.total += values
        running.finite += ok
    else:
        running.total -= values
        running.finite -= ok
