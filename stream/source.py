"""What the web side may use of a camera: the `StreamSource` protocol the callbacks are typed against.

`stream.camera.Camera` implements it; tests can hand the app anything with the same attributes.
"""

from __future__ import annotations

import threading
from typing import Protocol

from .background import Background
from .frames import FrameStore
from .layout import Axis, StreamLayout
from .protocol import BsreadError
from .health import Health
from .ring_buffer import History, RingBuffer
from .rois import RoiSet


class StreamSource(Protocol):
    name: str
    buffer: RingBuffer  # scalar history (one row per pulse)
    frames: FrameStore  # recent frames
    rois: RoiSet  # shared regions of interest
    background: Background  # shared background
    state_note: str  # "connecting" or why it does not run; "" while it runs

    @property
    def label(self) -> str: ...  # what the header shows: the stream address or "simulated camera"

    @property
    def simulated(self) -> bool: ...

    @property
    def address(self) -> str: ...

    @property
    def layout(self) -> StreamLayout | None: ...  # channel roles, once a message arrived

    @property
    def axes(self) -> tuple[Axis, Axis]: ...  # image axes (x, y) in their units

    @property
    def caught_up(self) -> threading.Event: ...  # cleared while the receiver falls behind

    @property
    def watched(self) -> bool: ...

    @property
    def nonfinite_values(self) -> int: ...  # scalar readings that were NaN/Inf

    @property
    def statistics_skipped(self) -> int: ...  # pulses not measured while the receiver was behind

    def newest_measured(self) -> History: ...  # the newest history row with measured beam statistics

    def health(self) -> Health | None: ...  # None before the receiver started

    def touch(self) -> None: ...  # somebody looks at it now

    def count_invalid(self, exc: BsreadError) -> None: ...  # a bad value found after decoding
