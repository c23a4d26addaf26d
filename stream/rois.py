"""Regions of interest of one camera: named pixel boxes whose sum, mean and max go into every pulse's row.

A box is half-open, [x0, x1) × [y0, y1) in pixels of the image as received (column, row). The set is
shared by every viewer of the camera, like a pipeline parameter, and replaced as a whole.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .protocol import ChannelValue

MAX_ROIS = 8
NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
KEYS = ("name", "x0", "x1", "y0", "y1")
STATISTICS = ("sum", "mean", "max")


class RoiError(ValueError):
    """A refused ROI set; the text says why, for the operator."""


@dataclass(frozen=True)
class Roi:
    name: str
    x0: int
    x1: int
    y0: int
    y1: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "x0": self.x0, "x1": self.x1, "y0": self.y0, "y1": self.y1}

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"roi_{self.name}_{kind}" for kind in STATISTICS)


def parse_rois(body: Any, shape: tuple[int, int] | None) -> tuple[Roi, ...]:
    """Validate `{"rois": [{"name", "x0", "x1", "y0", "y1"}, ...]}` against an image of `shape` (H, W)."""
    if not isinstance(body, dict) or set(body) != {"rois"} or not isinstance(body["rois"], list):
        raise RoiError('expected a JSON object {"rois": [...]}')
    entries = body["rois"]
    if len(entries) > MAX_ROIS:
        raise RoiError(f"at most {MAX_ROIS} regions of interest, got {len(entries)}")
    if entries and shape is None:
        raise RoiError("the camera has sent no image yet, so the boxes cannot be checked")
    rois = tuple(_parse_one(entry, index, shape) for index, entry in enumerate(entries))
    names = [roi.name for roi in rois]
    if len(set(names)) != len(names):
        raise RoiError("region names must be unique")
    return rois


def _parse_one(entry: Any, index: int, shape: tuple[int, int] | None) -> Roi:
    where = f"region {index + 1}"
    if not isinstance(entry, dict) or set(entry) != set(KEYS):
        raise RoiError(f"{where}: expected exactly the keys {', '.join(KEYS)}")
    name = entry["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise RoiError(f"{where}: name must be 1-32 characters of A-Z a-z 0-9 _ -")
    box = [entry[key] for key in KEYS[1:]]
    if not all(type(v) is int for v in box):  # bool is an int subclass; 1.0 is not an integer box
        raise RoiError(f"{where} ({name}): x0, x1, y0, y1 must be integers")
    x0, x1, y0, y1 = box
    assert shape is not None
    height, width = shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise RoiError(f"{where} ({name}): the box must lie inside the {width} × {height} image "
                       "with x0 < x1 and y0 < y1")
    return Roi(name, x0, x1, y0, y1)


class RoiSet:
    """The camera's current regions (replaced atomically; `version` counts replacements)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rois: tuple[Roi, ...] = ()
        self.version = 0
        self._listeners: list[weakref.WeakMethod] = []

    @property
    def rois(self) -> tuple[Roi, ...]:
        return self._rois

    def replace(self, rois: tuple[Roi, ...]) -> None:
        self.update(lambda _current: rois)

    def update(self, change: Callable[[tuple[Roi, ...]], tuple[Roi, ...]]) -> tuple[Roi, ...]:
        """Replace the regions by `change(current)` atomically (two browsers drawing at once keep
        both); `change` may raise RoiError. Returns the new regions."""
        with self._lock:
            new = tuple(change(self._rois))
            gone = {c for roi in self._rois for c in roi.columns} - {c for roi in new for c in roi.columns}
            self._rois = new
            self.version += 1
            self._listeners = [ref for ref in self._listeners if ref() is not None]
            listeners = [ref() for ref in self._listeners]
        for listener in listeners:
            if listener is not None and gone:
                listener(gone)
        return new

    def on_removed(self, listener: Any) -> None:
        """`listener(columns)` (a bound method, held weakly: the regions outlive a camera connection)
        after an update that left these history columns without a region."""
        with self._lock:
            self._listeners.append(weakref.WeakMethod(listener))


def roi_values(rois: tuple[Roi, ...], image: ChannelValue) -> dict[str, float]:
    """sum, mean and max of the raw pixels in each box, decoding only the rows the boxes cover.

    A box outside the image (its size changed since the box was set) gives NaN.
    """
    if not rois:
        return {}
    height, width = image.spec.shape
    inside = [r for r in rois if r.x1 <= width and r.y1 <= height]
    values = {column: math.nan for roi in rois for column in roi.columns}
    if not inside:
        return values
    rows = np.unique(np.concatenate([np.arange(r.y0, r.y1) for r in inside]))
    block = image.take_rows(rows)
    if block is None:
        return values
    for roi in inside:
        first = int(np.searchsorted(rows, roi.y0))
        pixels = block[first:first + roi.y1 - roi.y0, roi.x0:roi.x1]
        name_sum, name_mean, name_max = roi.columns
        values[name_sum], values[name_mean], values[name_max] = box_statistics(pixels)
    return values


def box_statistics(pixels: np.ndarray) -> tuple[float, float, float]:
    """(sum, mean, max) of a box's raw pixels; NaN pixels of a float camera are left out (all NaN: NaN)."""
    if pixels.dtype.kind != "f":
        return float(pixels.sum(dtype=np.float64)), float(pixels.mean(dtype=np.float64)), float(pixels.max())
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return math.nan, math.nan, math.nan
    return float(finite.sum(dtype=np.float64)), float(finite.mean(dtype=np.float64)), float(finite.max())
