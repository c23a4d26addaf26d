"""Bounded scalar history of one camera: one writer (its receiver thread), many readers (the web threads).

Rows go in as plain mappings (stream channels plus the columns computed per pulse: beam statistics,
calibrated positions, regions of interest); every column is kept in a preallocated numpy array.
Readers get immutable snapshots (read-only copies) and can ask for "rows newer than sequence number
N", so each browser is sent only what it has not seen yet. Images are not kept here (`stream.frames`).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from .serial import next_serial

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 360_000  # 1 hour at 100 Hz
MAX_COLUMNS = 256  # stream channels plus computed columns; beyond this new ones are ignored (memory bound)
MAX_IGNORED = 10_000  # names remembered as ignored
BOOKKEEPING = ("seq", "pulse_id", "timestamp")


@dataclass(frozen=True)
class History:
    """An immutable slice of the history: rows with seq in [start, end)."""

    start: int
    end: int
    columns: Mapping[str, np.ndarray]  # read-only arrays, all of length end - start
    channels: tuple[str, ...]  # stream channels, in discovery order
    computed: tuple[str, ...]  # columns computed per pulse (beam_*, roi_*), in registration order

    def __len__(self) -> int:
        return self.end - self.start

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def names(self) -> tuple[str, ...]:
        """Every value column: stream channels, then computed ones."""
        return self.channels + self.computed


class RingBuffer:
    """Columnar history of the newest `capacity` pulses. Appends are O(columns)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, computed: Iterable[str] = ()) -> None:
        self.serial = next_serial()  # browsers' history cursors name it
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = int(capacity)
        self._lock = threading.Lock()
        self._count = 0  # rows ever appended = next sequence number
        self._columns: dict[str, np.ndarray] = {
            "seq": np.zeros(self.capacity, dtype=np.int64),
            "pulse_id": np.zeros(self.capacity, dtype=np.int64),
            "timestamp": np.full(self.capacity, np.nan),
        }
        self._channels: list[str] = []
        self._channel_names: set[str] = set()  # of self._channels, for a cheap lookup per append
        self._computed: list[str] = []
        self._ignored: set[str] = set()
        self._refused = 0
        for name in computed:
            self._add(name, self._computed)

    # ------------------------------------------------------------------ writer side (one thread)

    def append(self, pulse_id: int, timestamp: float, channels: Mapping[str, float],
               computed: Mapping[str, float] = {}) -> int:
        """Record one pulse; returns its sequence number. Missing columns get NaN for this row.

        `computed` names win over stream channels of the same name (a stream channel called
        `beam_rms_x` must not overwrite ours); such channels are ignored.
        """
        with self._lock:
            seq = self._count
            index = seq % self.capacity
            cols = self._columns
            cols["seq"][index] = seq
            cols["pulse_id"][index] = pulse_id if -(2**63) <= pulse_id < 2**63 else -1
            cols["timestamp"][index] = timestamp
            for group, values in ((self._computed, computed), (self._channels, channels)):
                for name in group:
                    cols[name][index] = values.get(name, math.nan)
            for name, value in computed.items():
                if name not in cols:
                    if self._add(name, self._computed):
                        cols[name][index] = value
                elif name in self._channel_names:  # a stream channel of that name came first: ours now
                    self._channels.remove(name)
                    self._channel_names.discard(name)
                    self._computed.append(name)
                    cols[name][:] = math.nan  # the stream's earlier values are not ours
                    cols[name][index] = value
            for name, value in channels.items():
                if name not in cols and name not in computed and self._add(name, self._channels):
                    cols[name][index] = value
            self._count = seq + 1
        return seq

    def _add(self, name: str, group: list[str]) -> bool:
        if name in BOOKKEEPING or name in self._ignored:
            return False
        if len(self._channels) + len(self._computed) >= MAX_COLUMNS:
            if len(self._ignored) < MAX_IGNORED:  # a stream inventing names must not grow this either
                self._ignored.add(name)
            self._refused += 1
            if self._refused == 1 or self._refused % 10_000 == 0:
                log.warning("more than %d columns; ignoring %r (%d refused so far)", MAX_COLUMNS, name[:80],
                            self._refused)
            return False
        self._columns[name] = np.full(self.capacity, np.nan)  # earlier rows did not have it
        group.append(name)
        if group is self._channels:
            self._channel_names.add(name)
        return True

    def drop(self, names: Iterable[str]) -> None:
        """Forget computed columns (a deleted region of interest's): their memory is freed."""
        with self._lock:
            for name in names:
                if name in self._computed:
                    self._computed.remove(name)
                    del self._columns[name]

    # ------------------------------------------------------------------ reader side (any thread)

    @property
    def count(self) -> int:
        """Sequence number of the next row (= rows ever appended)."""
        return self._count

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._channels)

    @property
    def computed(self) -> tuple[str, ...]:
        return tuple(self._computed)

    def window(self, seconds: float | None, only: Iterable[str] | None = None) -> History:
        """Rows whose pulse time is within `seconds` of the newest pulse's (every row for None).

        The history charts and the CSV export of a window use this, so they hold the same rows.
        """
        if seconds is None:
            return self.read(only=only)
        newest = self.newest_time()
        if not math.isfinite(newest):
            return self.read(since=self._count, only=only)
        return self.read(since=self.seq_at_time(newest - seconds), only=only)

    def newest_time(self) -> float:
        """Pulse time of the newest row (NaN when empty)."""
        with self._lock:
            end = self._count
            return float(self._columns["timestamp"][(end - 1) % self.capacity]) if end else math.nan

    def oldest_time(self) -> float:
        """Pulse time of the oldest kept row (NaN when empty)."""
        with self._lock:
            end = self._count
            return float(self._columns["timestamp"][max(0, end - self.capacity) % self.capacity]) if end else math.nan

    def seq_at_time(self, epoch_s: float) -> int:
        """Sequence number of the first kept row whose pulse time is at or after `epoch_s`.

        A binary search (pulse times only grow, except across a sender restart, where it may land on
        either side): windows and increments never copy the whole history to find their start.
        """
        with self._lock:
            lo, hi = max(0, self._count - self.capacity), self._count
            stamps, capacity = self._columns["timestamp"], self.capacity
            while lo < hi:
                mid = (lo + hi) // 2
                if stamps[mid % capacity] < epoch_s:
                    lo = mid + 1
                else:
                    hi = mid
            return lo

    def newest(self) -> History:
        """The last row (or nothing)."""
        return self.read(since=self._count - 1)

    def read(self, since: int = 0, max_rows: int | None = None, newer_than: float | None = None,
             only: Iterable[str] | None = None, until: int | None = None) -> History:
        """Rows with sequence number >= `since` (and < `until`) still in the buffer (oldest first).

        `max_rows` keeps only the newest rows; `newer_than` (epoch seconds) keeps the pulses whose
        time is at or after it; `only` copies just these value columns (an hour of every column is
        hundreds of MB; a chart needs two).
        """
        with self._lock:
            end = self._count if until is None else max(0, min(self._count, int(until)))
            start = max(int(since), self._count - self.capacity, 0)
            if max_rows is not None:
                start = max(start, end - int(max_rows))
            start = min(start, end)  # `since` from the future (e.g. kept across a server restart): no rows
            channels, computed = tuple(self._channels), tuple(self._computed)
            names = BOOKKEEPING + computed + channels
            if only is not None:
                wanted = set(only)
                names = tuple(name for name in names if name in BOOKKEEPING or name in wanted)
            columns = {name: self._slice(self._columns[name], start, end) for name in names}
        if newer_than is not None and end > start:
            recent = columns["timestamp"] >= newer_than
            first = int(np.argmax(recent)) if recent.any() else end - start
            columns = {name: col[first:] for name, col in columns.items()}
            start += first
        for col in columns.values():
            col.flags.writeable = False
        return History(start, end, columns, channels, computed)

    def _slice(self, column: np.ndarray, start: int, end: int) -> np.ndarray:
        if end <= start:
            return column[:0].copy()
        a, b = start % self.capacity, end % self.capacity
        if a < b:
            return column[a:b].copy()
        return np.concatenate((column[a:], column[:b]))
