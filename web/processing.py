"""A view's processing of raw frames: the mean of the last N frames, minus the camera's background.

Averages are kept as running sums per (camera, N): the next frame adds one image and drops the
oldest instead of summing N again. Processed images are cached (bounded in bytes) because the
renderer and hover values ask for the same one.
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
MAX_SUMS = 4  # running sums per camera (distinct N being watched)
CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # read-only 2-D: the raw image itself, or float32 / float64 after processing
    averaged: int  # frames in the mean (1: the frame itself)
    background: bool  # background subtracted
    note: str = ""  # why the processing asked for is not (fully) there, for the operator


@dataclass
class _Sum:
    total: np.ndarray  # float64 sum of the images of `frames`
    frames: tuple[Frame, ...]  # kept so that a frame leaving the window can be subtracted


class Processor:
    """Processing for one camera; safe to call from several web threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: collections.OrderedDict[int, _Sum] = collections.OrderedDict()
        self._cache: collections.OrderedDict[tuple, Processed] = collections.OrderedDict()
        self._cache_bytes = 0

    def process(self, frame: Frame, available: Sequence[Frame], average: int,
                background: BackgroundImage | None) -> Processed:
        """`frame` averaged with the frames before it in `available` (oldest first), minus `background`."""
        average = max(1, min(MAX_AVERAGE, int(average)))
        key = (frame.seq, id(frame.message), average, id(background) if background is not None else None)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        raw = frame.image()
        image, averaged, note = raw, 1, ""
        if average > 1:
            earlier = [f for f in available if f.seq < frame.seq and f.shape == frame.shape]
            frames = [*earlier[-(average - 1):], frame]
            image = self._mean(average, frames)
            averaged = len(frames)
            if averaged < average:
                note = f"mean of the {averaged} frames kept, {average} asked"
        subtracted = False
        if background is not None:
            if background.image.shape == raw.shape:
                image = np.subtract(image, background.image, dtype=np.float32)
                subtracted = True
            else:
                bh, bw = background.image.shape
                note = f"background is {bw} × {bh} px, the frame {raw.shape[1]} × {raw.shape[0]}: not subtracted"
        if image is not raw:
            image.flags.writeable = False
        result = Processed(image, averaged, subtracted, note)
        if image is not raw:
            self._remember(key, result)
        return result

    def _mean(self, average: int, frames: list[Frame]) -> np.ndarray:
        with self._lock:
            running = self._sums.pop(average, None)  # this thread owns it until it is put back
        if running is not None and running.total.shape == frames[-1].shape:
            before = {id(f) for f in running.frames}
            now = {id(f) for f in frames}
            added = [f for f in frames if id(f) not in before]
            removed = [f for f in running.frames if id(f) not in now]
            if len(added) + len(removed) < len(frames):  # cheaper than summing all again
                for f in added:
                    running.total += f.image()
                for f in removed:
                    running.total -= f.image()
                running.frames = tuple(frames)
            else:
                running = None
        else:
            running = None
        if running is None:
            total = np.zeros(frames[-1].shape, dtype=np.float64)
            for f in frames:
                total += f.image()
            running = _Sum(total, tuple(frames))
        with self._lock:
            self._sums[average] = running
            while len(self._sums) > MAX_SUMS:
                self._sums.popitem(last=False)
        return (running.total / len(frames)).astype(np.float32)

    def _remember(self, key: tuple, result: Processed) -> None:
        size = result.image.nbytes
        with self._lock:
            self._cache[key] = result
            self._cache_bytes += size
            while self._cache and self._cache_bytes > CACHE_BYTES:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.image.nbytes
