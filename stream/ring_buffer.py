"""Bounded history of one bsread stream: one writer (the receiver thread), many readers (Dash callbacks).

Scalars are kept column-wise in preallocated numpy arrays; only the latest image is kept, never a
backlog. Readers get immutable snapshots (read-only copies) and can ask for "rows newer than
sequence number N", so each browser is sent only what it has not seen yet.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .protocol import BsreadError, ChannelValue, Message

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 360_000  # 1 hour at 100 Hz
MAX_SCALAR_CHANNELS = 256  # beyond this, new channels are ignored (memory stays bounded)
# Prefixed so they cannot collide with camera-pipeline channels such as `intensity` or `x_rms`.
STATS_COLUMNS = ("beam_intensity", "beam_centroid_x", "beam_centroid_y", "beam_rms_x", "beam_rms_y")  # counts, px
STATS_SAMPLES = 256  # strided subsample edge when statistics must come from the image itself
RESERVED = ("seq", "pulse_id", "timestamp") + STATS_COLUMNS


@dataclass(frozen=True)
class ChannelNames:
    """Which stream channels play which role (real camera pipelines use other names)."""

    image: str = "image"
    energy: str = "beam_energy"  # GeV
    rate: str = "repetition_rate"  # Hz
    profile_x: str = "image_profile_x"
    profile_y: str = "image_profile_y"


@dataclass(frozen=True)
class Frame:
    """The latest image and where it came from. `image()` decodes lazily (cached)."""

    seq: int
    pulse_id: int
    timestamp: float  # pulse time, seconds since epoch
    received: float  # wall-clock time of arrival, seconds since epoch
    channel: ChannelValue = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.channel.spec.shape

    def image(self) -> np.ndarray:
        """The decoded image as a read-only 2-D array. Raises BsreadError on corrupt payloads."""
        value = self.channel.value
        if not isinstance(value, np.ndarray) or value.ndim != 2:
            raise BsreadError("not-an-image", f"channel {self.channel.spec.name!r} is not 2-D")
        return value


@dataclass(frozen=True)
class History:
    """An immutable slice of the history: rows with seq in [start, end)."""

    start: int
    end: int
    columns: Mapping[str, np.ndarray]  # read-only arrays, all of length end - start
    scalar_channels: tuple[str, ...]  # stream channels, in discovery order

    def __len__(self) -> int:
        return self.end - self.start

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]


_POSITIONS: dict[int, np.ndarray] = {}  # np.arange(n) per profile length, reused across messages


def _positions(n: int) -> np.ndarray:
    pos = _POSITIONS.get(n)
    if pos is None:
        if len(_POSITIONS) >= 32:
            _POSITIONS.clear()
        pos = np.arange(n, dtype=np.float64)
        pos.flags.writeable = False
        _POSITIONS[n] = pos
    return pos


def _median(a: np.ndarray, scratch: bool = False) -> float:
    """np.median of a finite, non-empty 1-D array (same value), without its per-call overhead.

    `scratch`: `a` is a temporary the caller no longer needs; it is partitioned in place.
    """
    n = a.size
    k = n >> 1
    part = a if scratch else a.copy()
    if n & 1:
        part.partition(k)
        return float(part[k])
    part.partition((k - 1, k))
    return (float(part[k - 1]) + float(part[k])) / 2.0


def _profile_moments(profile: np.ndarray, step: float) -> tuple[float, float, float]:
    """Background-subtracted (sum, centroid, rms) of one profile.

    Background is the median, noise the MAD; a first pass over samples above 3 sigma finds the peak,
    a second pass measures it within +-4 rms of that first estimate, so wide noisy pedestals (a
    camera's dark level summed over hundreds of rows) do not bias the result.
    Runs once per profile per message, so it keeps the number of numpy calls small.
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.size == 0:
        return math.nan, math.nan, math.nan
    if not math.isfinite(float(p.sum())):  # NaN/Inf present (or a sum that overflows): the rare path
        finite = np.isfinite(p)
        if not finite.any():
            return math.nan, math.nan, math.nan
        if not finite.all():
            p = np.where(finite, p, _median(p[finite]))
    background = _median(p)
    signal = p - background
    sigma = 1.4826 * _median(np.abs(signal), scratch=True)
    peak = np.where(signal > 3.0 * sigma, signal, 0.0)
    total = float(peak.sum())
    if total <= 0.0:
        return float(signal.sum()), math.nan, math.nan
    pos = _positions(p.size)
    centroid = float(np.dot(pos, peak) / total)
    rms = math.sqrt(max(float(np.dot((pos - centroid) ** 2, peak) / total), 0.0))
    if not (math.isfinite(centroid) and math.isfinite(rms)):  # values so large that the moments overflow
        return float(signal.sum()), math.nan, math.nan
    half = max(4.0 * rms, 3.0)
    lo, hi = int(max(0, math.floor(centroid - half))), int(min(p.size, math.ceil(centroid + half) + 1))
    window = np.maximum(signal[lo:hi], 0.0)
    wtotal = float(window.sum())
    if wtotal > 0.0:
        wpos = pos[lo:hi]
        centroid = float(np.dot(wpos, window) / wtotal)
        rms = math.sqrt(max(float(np.dot((wpos - centroid) ** 2, window) / wtotal), 0.0))
    return float(signal.sum()), centroid * step, rms * step


def beam_statistics(profile_x: np.ndarray, profile_y: np.ndarray, scale: float = 1.0, step_x: float = 1.0,
                    step_y: float = 1.0) -> tuple[float, ...]:
    """Intensity, centroid x/y and rms size x/y (pixels) from two 1-D profiles, O(width + height).

    `step_*` is the pixel pitch of a strided profile, `scale` the factor restoring total intensity.
    """
    sum_x, cx, rx = _profile_moments(profile_x, step_x)
    _, cy, ry = _profile_moments(profile_y, step_y)
    return sum_x * scale, cx, cy, rx, ry


def _strides(shape: tuple[int, ...]) -> tuple[int, int]:
    """Row and column step of the statistics subsample of an image of this shape."""
    return max(1, shape[0] // STATS_SAMPLES), max(1, shape[1] // STATS_SAMPLES)


def _subsample_statistics(rows: np.ndarray, sx: int, sy: int) -> tuple[float, ...]:
    """Statistics from every `sy`-th row of an image (`rows`), sampled every `sx`-th column here."""
    sub = rows[:, ::sx].astype(np.float64, copy=False)
    if not np.isfinite(sub).all():
        sub = np.where(np.isfinite(sub), sub, 0.0)
    return beam_statistics(sub.sum(axis=0), sub.sum(axis=1), scale=float(sx * sy), step_x=sx, step_y=sy)


def image_statistics(image: np.ndarray) -> tuple[float, ...]:
    """Beam statistics from a strided subsample of the image (never O(pixels) on big frames)."""
    if image.ndim != 2 or image.size == 0:
        return (math.nan,) * len(STATS_COLUMNS)
    sy, sx = _strides(image.shape)
    return _subsample_statistics(image[::sy], sx, sy)


def channel_statistics(channel: ChannelValue) -> tuple[float, ...]:
    """`image_statistics` of a 2-D channel, decoding only the rows the subsample needs.

    For a bitshuffle_lz4 image that nobody has looked at yet this decompresses a fraction of it
    (see ChannelValue.rows); the result is the same as image_statistics(channel.value).
    """
    shape = channel.spec.shape
    if len(shape) != 2 or 0 in shape:
        return (math.nan,) * len(STATS_COLUMNS)
    sy, sx = _strides(shape)
    rows = channel.rows(sy)
    if rows is None:
        return (math.nan,) * len(STATS_COLUMNS)
    return _subsample_statistics(rows, sx, sy)


class RingBuffer:
    """Columnar scalar history plus the latest frame. Appends are O(1) amortised."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, names: ChannelNames = ChannelNames(),
                 on_bad_value: Callable[[BsreadError], None] | None = None) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = int(capacity)
        self.names = names
        self._on_bad_value = on_bad_value
        self._lock = threading.Lock()
        self._count = 0  # rows ever appended = next sequence number
        self._columns: dict[str, np.ndarray] = {
            "seq": np.zeros(self.capacity, dtype=np.int64),
            "pulse_id": np.zeros(self.capacity, dtype=np.int64),
            "timestamp": np.full(self.capacity, np.nan),
        }
        for name in STATS_COLUMNS:
            self._columns[name] = np.full(self.capacity, np.nan)
        self._scalar_channels: list[str] = []
        self._ignored_channels: set[str] = set()
        self._frame: Frame | None = None
        self.nonfinite_values = 0  # readings that were NaN/Inf (kept, shown as gaps)

    # ------------------------------------------------------------------ writer side (one thread)

    def append(self, message: Message, received: float | None = None) -> None:
        """Record one message: its scalars, beam statistics and (by reference) its image."""
        names = self.names
        row: dict[str, float] = {}
        image_channel: ChannelValue | None = None
        for name, channel in message.channels.items():
            spec = channel.spec
            if name == names.image:
                # A 0xN image has nothing to show (and would reach the renderer as a division by zero).
                if len(spec.shape) == 2 and 0 not in spec.shape and not channel.is_empty:
                    image_channel = channel
                continue
            if not spec.is_scalar or channel.is_empty:
                continue
            try:
                value = float(channel.value)
            except BsreadError as exc:
                self._report(exc)
                continue
            except (TypeError, ValueError, OverflowError):
                continue
            if not math.isfinite(value):
                self.nonfinite_values += 1
                value = math.nan
            row[name] = value
        stats, image_ok = self._statistics(message, image_channel)
        with self._lock:
            seq = self._count
            index = seq % self.capacity
            cols = self._columns
            cols["seq"][index] = seq
            cols["pulse_id"][index] = message.pulse_id if -(2**63) <= message.pulse_id < 2**63 else -1
            cols["timestamp"][index] = message.global_timestamp
            for name, value in zip(STATS_COLUMNS, stats):
                cols[name][index] = value
            for name in self._scalar_channels:
                cols[name][index] = row.pop(name, math.nan)
            for name, value in row.items():  # channels seen for the first time
                if self._add_channel(name):
                    cols[name][index] = value
            if image_channel is not None and image_ok:
                self._frame = Frame(seq, message.pulse_id, message.global_timestamp,
                                    time.time() if received is None else received, image_channel)
            self._count = seq + 1

    def _add_channel(self, name: str) -> bool:
        if name in RESERVED or name in self._ignored_channels:
            return False
        if len(self._scalar_channels) >= MAX_SCALAR_CHANNELS:
            self._ignored_channels.add(name)
            log.warning("more than %d scalar channels; ignoring %r", MAX_SCALAR_CHANNELS, name[:80])
            return False
        # Earlier rows did not have this channel: NaN.
        self._columns[name] = np.full(self.capacity, np.nan)
        self._scalar_channels.append(name)
        return True

    def _statistics(self, message: Message, image_channel: ChannelValue | None) -> tuple[tuple[float, ...], bool]:
        """(beam statistics, False if the image turned out corrupt). A corrupt image is counted here,
        once, and does not become the latest frame (the renderer would count it a second time)."""
        names = self.names
        px = message.channels.get(names.profile_x)
        py = message.channels.get(names.profile_y)
        try:
            if px is not None and py is not None and not px.is_empty and not py.is_empty:
                vx, vy = px.value, py.value
                if isinstance(vx, np.ndarray) and isinstance(vy, np.ndarray) and vx.ndim == vy.ndim == 1:
                    return beam_statistics(vx, vy), True
        except BsreadError as exc:
            self._report(exc)
        nothing = (math.nan,) * len(STATS_COLUMNS)
        if image_channel is None:
            return nothing, True
        try:
            return channel_statistics(image_channel), True
        except BsreadError as exc:
            self._report(exc)
            return nothing, False

    def _report(self, exc: BsreadError) -> None:
        if self._on_bad_value is not None:
            self._on_bad_value(exc)

    # ------------------------------------------------------------------ reader side (any thread)

    @property
    def count(self) -> int:
        """Sequence number of the next row (= rows ever appended)."""
        return self._count

    @property
    def scalar_channels(self) -> tuple[str, ...]:
        return tuple(self._scalar_channels)

    def latest_frame(self) -> Frame | None:
        return self._frame

    def read(self, since: int = 0, max_rows: int | None = None, newer_than: float | None = None) -> History:
        """Rows with sequence number >= `since` still in the buffer (oldest first).

        `max_rows` keeps only the newest rows; `newer_than` (epoch seconds) drops older pulses.
        """
        with self._lock:
            end = self._count
            start = max(int(since), end - self.capacity, 0)
            if max_rows is not None:
                start = max(start, end - int(max_rows))
            start = min(start, end)  # `since` from the future (e.g. kept across a server restart): no rows
            names = ("seq", "pulse_id", "timestamp") + STATS_COLUMNS + tuple(self._scalar_channels)
            columns = {name: self._slice(self._columns[name], start, end) for name in names}
            channels = tuple(self._scalar_channels)
        if newer_than is not None and end > start:
            recent = columns["timestamp"] >= newer_than
            first = int(np.argmax(recent)) if recent.any() else end - start
            columns = {name: col[first:] for name, col in columns.items()}
            start += first
        for col in columns.values():
            col.flags.writeable = False
        return History(start, end, columns, channels)

    def _slice(self, column: np.ndarray, start: int, end: int) -> np.ndarray:
        if end <= start:
            return column[:0].copy()
        a, b = start % self.capacity, end % self.capacity
        if a < b:
            return column[a:b].copy()
        return np.concatenate((column[a:], column[:b]))

