"""One camera: its stream connection, history, recent frames, regions of interest and background.

`Camera` is what the web side reads (typed as `stream.source.StreamSource`). Its receiver thread
does the per-message work (`stream.ingest`) and is the only writer; everything else reads snapshots.
A camera whose address comes from cam_server is resolved when it is started.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq

from .background import Background
from .frames import DEFAULT_FRAME_MEMORY, DEFAULT_FRAMES, FrameStore
from .ingest import Ingest, make_frame
from .layout import Axis, ChannelNames, StreamLayout
from .protocol import BsreadError, Message
from .health import Health
from .receiver import Receiver
from .ring_buffer import DEFAULT_CAPACITY, History, RingBuffer
from .rois import RoiSet
from .simulator import Simulator, SimulatorConfig
from .statistics import STATS_COLUMNS

log = logging.getLogger(__name__)

WATCH_S = 5.0  # a camera asked for within this many seconds counts as watched


@dataclass(frozen=True)
class CameraSpec:
    """How to reach a camera."""

    name: str
    address: str | None = None  # tcp://host:port; None: simulated, or resolved through `resolve`
    mode: str = "pull"  # "pull" | "sub"
    simulator: SimulatorConfig | None = None  # the built-in simulated camera
    resolve: Callable[[], str] | None = None  # cam_server: the stream address, raises with a clear message
    pinned: bool = True  # stays connected with nobody watching (cameras given on the command line)
    source: str = ""  # where it comes from, for people ("cam_server saved pipeline simulation_sp")


@dataclass(frozen=True)
class Limits:
    history: int = DEFAULT_CAPACITY  # rows
    frames: int = DEFAULT_FRAMES
    frame_memory: int = DEFAULT_FRAME_MEMORY  # bytes
    data_dir: Path | None = None


class Camera:
    def __init__(self, spec: CameraSpec, names: ChannelNames = ChannelNames(), limits: Limits = Limits(),
                 context: zmq.Context | None = None, rois: RoiSet | None = None,
                 background: Background | None = None, history: RingBuffer | None = None,
                 frames: FrameStore | None = None) -> None:
        """`rois` and `background` outlive a connection (the registry keeps them per camera name);
        `history` and `frames` too when a connection continues another (its instance moved)."""
        self.spec = spec
        self.name = spec.name
        self.names = names
        self.buffer = history if history is not None else RingBuffer(limits.history, computed=STATS_COLUMNS)
        self.frames = frames if frames is not None else FrameStore(limits.frames, limits.frame_memory)
        self.rois = rois if rois is not None else RoiSet()
        self.background = background if background is not None else Background(spec.name, limits.data_dir)
        self.ingest = Ingest(names, self.rois, self.background, self.count_invalid)
        # A deleted region's columns leave the history (or renaming regions would fill it up).
        self.rois.on_removed(self.buffer.drop)
        self._context = context
        self._receiver: Receiver | None = None
        self._simulator = Simulator(spec.simulator, context) if spec.simulator is not None else None
        self._address = spec.address
        self._lock = threading.Lock()
        self._stopped = False  # stop() is final (see start)
        self._touched = time.monotonic()
        self._measured_seq = -1  # history row of the newest measured pulse
        self.state_note = ""  # "connecting" / an error an operator should read; "" once started
        self.started_at: float | None = None
        self._logged_errors: set[str] = set()

    # ------------------------------------------------------------------ what it is

    @property
    def simulated(self) -> bool:
        return self._simulator is not None

    @property
    def address(self) -> str:
        if self._receiver is not None:
            return self._receiver.address
        return self._address or ""

    @property
    def label(self) -> str:
        return "simulated camera" if self.simulated else (self.address or self.spec.source or self.name)

    @property
    def layout(self) -> StreamLayout | None:
        return self.ingest.layout

    @property
    def axes(self) -> tuple[Axis, Axis]:
        return self.ingest.axes

    @property
    def nonfinite_values(self) -> int:
        """Scalar readings that were NaN/Inf (kept as gaps)."""
        return self.ingest.nonfinite_values

    @property
    def statistics_skipped(self) -> int:
        """Pulses whose beam statistics were skipped while the receiver was behind (stream/budget.py)."""
        return self.ingest.statistics_skipped

    @property
    def running(self) -> bool:
        return self._receiver is not None and self._receiver.running

    @property
    def caught_up(self) -> threading.Event:
        """Cleared while its receiver falls behind (the web server then holds new work back)."""
        receiver = self._receiver
        return receiver.caught_up if receiver is not None else _ALWAYS

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Camera":
        """Resolve (cam_server), bind the simulator, connect. Raises zmq.ZMQError / the resolver's error,
        and RuntimeError after stop(): a start still on its way then must not leave a receiver running."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"camera {self.name!r} was stopped")
            if self._receiver is not None:
                return self
            address = self._address
            if self.spec.resolve is not None:
                address = self._address = self.spec.resolve()
            if self._simulator is not None:
                self._simulator.bind()
                address = self._simulator.address
            if address is None:
                raise ValueError(f"camera {self.name!r} has no stream address")
            mode = self.spec.mode if self._simulator is None else (
                "pull" if self._simulator.config.mode == "push" else "sub")
            receiver = Receiver(address, self._on_message, mode=mode, context=self._context)
            receiver.start()
            self._receiver = receiver
            if self._simulator is not None:
                self._simulator.start()
            self.started_at = time.time()
            self.state_note = ""
        log.info("camera %s: receiving %s (%s)", self.name, address, mode)
        return self

    def stop(self, timeout: float = 1.0) -> None:
        with self._lock:
            self._stopped = True
            parts = [part for part in (self._simulator, self._receiver) if part is not None]
            for part in parts:  # signal both first, so their poll timeouts overlap
                part.stop(timeout=0)
            for part in parts:
                part.stop(timeout)

    # ------------------------------------------------------------------ receiver thread

    def _on_message(self, message: Message, received: float) -> None:
        receiver = self._receiver
        try:
            pulse = self.ingest.pulse(message, receiver.waited_s if receiver is not None else math.inf)
        except Exception as exc:  # a bug of ours on odd input: this message is lost, not the connection
            self._internal_error(exc)
            return
        seq = self.buffer.append(message.pulse_id, message.global_timestamp, pulse.channels, pulse.computed)
        if pulse.measured:
            self._measured_seq = seq
        frame = make_frame(seq, message, pulse, received, self.ingest)
        if frame is not None:
            self.frames.push(frame)

    def newest_measured(self) -> History:
        """The newest history row whose beam statistics were measured (the newest row, unless the
        receiver is behind and skips some, stream/budget.py); the newest row if that one is gone."""
        seq = self._measured_seq
        row = self.buffer.read(since=seq, until=seq + 1) if seq >= 0 else None
        return row if row is not None and len(row) else self.buffer.newest()

    def _internal_error(self, exc: Exception) -> None:
        kind = exc.__class__.__name__
        if kind not in self._logged_errors:
            self._logged_errors.add(kind)
            log.exception("camera %s: processing a message failed; further %s are only counted", self.name, kind)
        self.count_invalid(BsreadError("internal-error", f"{kind}: {exc}"[:200]))

    def count_invalid(self, exc: BsreadError) -> None:
        """Count a bad value found after decoding (a corrupt image, a scalar that does not parse)."""
        receiver = self._receiver
        if receiver is not None:
            receiver.count_invalid(exc)

    # ------------------------------------------------------------------ watching

    def touch(self) -> None:
        """Somebody looks at this camera now (a frame, readings or history request)."""
        self._touched = time.monotonic()
        self.frames.keep_recent(True)

    def idle_s(self) -> float:
        return time.monotonic() - self._touched

    @property
    def watched(self) -> bool:
        return self.idle_s() < WATCH_S

    def health(self) -> Health | None:
        """The receiver's health, or None before it started."""
        receiver = self._receiver
        return receiver.health() if receiver is not None else None


_ALWAYS = threading.Event()
_ALWAYS.set()
