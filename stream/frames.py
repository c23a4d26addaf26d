"""The camera's recent frames: the last N messages with an image, bounded in count and in bytes.

A frame keeps its whole bsread message by reference (zero-copy ZeroMQ frames, decoded lazily), so
the image, its profiles, axes and the pulse's other channels stay together for rendering, hover
values and snapshots. While nobody watches the camera only the newest frame is kept.

A paused browser *pins* the frames it may step through (`pin`): they stay available to it, within a
budget of their own, after newer frames have pushed them out of the live list.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .protocol import BsreadError, ChannelValue, Message
from .serial import next_serial

DEFAULT_FRAMES = 100
DEFAULT_FRAME_MEMORY = 512 * 1024 * 1024  # bytes, for the live frames; pins get as much again at most
MAX_PINS = 16  # paused browsers per camera; the least recently used pin goes first
PIN_TTL_S = 600.0  # a pin nobody used for this long is dropped


@dataclass(frozen=True)
class Frame:
    """One pulse with an image, and what was computed from it when it arrived."""

    seq: int  # the pulse's row in the camera's history
    pulse_id: int
    timestamp: float  # pulse time, epoch seconds
    received: float  # arrival, epoch seconds
    message: Message = field(repr=False)
    image_channel: str
    computed: Mapping[str, float] = field(default_factory=dict, repr=False)  # beam_*, roi_* of this pulse
    channels: Mapping[str, float] = field(default_factory=dict, repr=False)  # scalar channels of this pulse
    processing_error: str = ""  # cam_server's processing_error: the image is zeroed, no beam
    serial: int = field(default_factory=next_serial, repr=False, compare=False)  # what caches key it by

    @property
    def channel(self) -> ChannelValue:
        return self.message.channels[self.image_channel]

    @property
    def shape(self) -> tuple[int, int]:
        height, width = self.channel.spec.shape
        return height, width

    @property
    def dtype(self) -> np.dtype:
        return self.channel.spec.dtype

    @property
    def nbytes(self) -> int:
        """Memory it holds: the message as received, plus the decoded image if it is compressed."""
        spec = self.channel.spec
        return self.message.nbytes + (spec.nbytes if spec.compression != "none" else 0)

    def image(self) -> np.ndarray:
        """The decoded image (read-only 2-D). Raises BsreadError on a corrupt payload."""
        value = self.channel.value
        if not isinstance(value, np.ndarray) or value.ndim != 2:
            raise BsreadError("not-an-image", f"channel {self.image_channel[:80]!r} is not 2-D")
        return value


@dataclass
class _Pin:
    frames: tuple[Frame, ...]
    used: float  # monotonic


class FrameStore:
    """Last frames of one camera (one writer, many readers)."""

    def __init__(self, max_frames: int = DEFAULT_FRAMES, max_bytes: int = DEFAULT_FRAME_MEMORY) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.max_frames = int(max_frames)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._frames: collections.deque[Frame] = collections.deque()
        self._bytes = 0
        self._keep = False  # keep max_frames (somebody watches) or only the newest
        self._pins: collections.OrderedDict[str, _Pin] = collections.OrderedDict()

    # ------------------------------------------------------------------ writer side

    def push(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self._bytes += frame.nbytes
            self._trim()

    def keep_recent(self, keep: bool) -> None:
        """Keep the last frames (a browser watches) or only the newest one (nobody does)."""
        with self._lock:
            self._keep = keep
            self._trim()

    def _trim(self) -> None:
        limit = self.max_frames if self._keep else 1
        frames = self._frames
        # The newest frame always stays, whatever its size.
        while len(frames) > 1 and (len(frames) > limit or self._bytes > self.max_bytes):
            self._bytes -= frames.popleft().nbytes

    # ------------------------------------------------------------------ readers

    def latest(self) -> Frame | None:
        frames = self._frames
        return frames[-1] if frames else None

    def recent(self) -> tuple[Frame, ...]:
        with self._lock:
            return tuple(self._frames)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, seq: int, client: str | None = None) -> Frame | None:
        """The frame of pulse row `seq`, from the live frames or `client`'s pin."""
        with self._lock:
            pin = self._pins.get(client) if client is not None else None
            candidates = (pin.frames if pin else ()) + tuple(self._frames)
        for frame in candidates:
            if frame.seq == seq:
                return frame
        return None

    # ------------------------------------------------------------------ pins (paused browsers)

    def pin(self, client: str, upto_seq: int | None = None) -> tuple[Frame, ...]:
        """Keep the current frames (up to `upto_seq`) for `client`; returns them, oldest first."""
        now = time.monotonic()
        with self._lock:
            frames = tuple(f for f in self._frames if upto_seq is None or f.seq <= upto_seq)
            self._pins[client] = _Pin(frames, now)
            self._pins.move_to_end(client)
            self._expire(now)
            return frames

    def pinned(self, client: str) -> tuple[Frame, ...]:
        with self._lock:
            pin = self._pins.get(client)
            if pin is None:
                return ()
            pin.used = time.monotonic()
            self._pins.move_to_end(client)
            return pin.frames

    def unpin(self, client: str) -> None:
        with self._lock:
            self._pins.pop(client, None)

    def _expire(self, now: float) -> None:
        for client in [c for c, pin in self._pins.items() if now - pin.used > PIN_TTL_S]:
            del self._pins[client]
        while len(self._pins) > MAX_PINS or (len(self._pins) > 1 and self._pinned_bytes() > self.max_bytes):
            self._pins.popitem(last=False)

    def _pinned_bytes(self) -> int:
        """Bytes the pins hold, each frame counted once. Counted whole from the moment of pinning
        (when the frames are still live, too): a pinned set never changes, so the bound is checked
        here once instead of with every new frame."""
        seen = {id(frame): frame.nbytes for pin in self._pins.values() for frame in pin.frames}
        return sum(seen.values())
