"""The server's one stream connection: ring buffer + receiver (+ the in-process simulated camera).

`LiveSource` is what the dashboard reads. Tests can hand the app anything with the same attributes
(`buffer`, `health()`, `label`, `simulated`, `address`).
"""

from __future__ import annotations

import logging
from typing import Protocol

from .receiver import Health, Receiver
from .ring_buffer import ChannelNames, RingBuffer
from .simulator import Simulator, SimulatorConfig

log = logging.getLogger(__name__)


class StreamSource(Protocol):
    buffer: RingBuffer
    label: str  # what the header shows: the stream address or "simulated camera"
    simulated: bool
    address: str

    def health(self) -> Health: ...


class LiveSource:
    """Owns the ring buffer, the receiver thread and, when simulated, the camera simulator."""

    def __init__(self, address: str | None, mode: str = "pull", capacity: int = 360_000,
                 names: ChannelNames = ChannelNames(), simulator: SimulatorConfig | None = None) -> None:
        self.buffer = RingBuffer(capacity, names)
        self.simulated = address is None
        self._simulator: Simulator | None = None
        if self.simulated:
            # In-process camera: inproc hands the frames to the receiver without copies or a TCP stack.
            config = simulator or SimulatorConfig(port=0, delay_s=0.01, host="127.0.0.1", mode="push",
                                                  transport="inproc")
            self._simulator = Simulator(config)
            mode = "pull" if config.mode == "push" else "sub"
        self.mode = mode
        self._address = address
        self.receiver: Receiver | None = None

    @property
    def address(self) -> str:
        if self.receiver is not None:
            return self.receiver.address
        return self._address or "(simulated camera, not started)"

    @property
    def label(self) -> str:
        return "simulated camera" if self.simulated else self.address

    def start(self) -> "LiveSource":
        """Bind the simulator (if any), then connect the receiver. Raises zmq.ZMQError on bad addresses."""
        address = self._address
        if self._simulator is not None:
            self._simulator.bind()
            address = self._simulator.address
        assert address is not None
        self.receiver = Receiver(address, self.buffer, mode=self.mode)
        self.receiver.start()
        if self._simulator is not None:
            self._simulator.start()
        log.info("receiving %s from %s (%s)", "simulated camera" if self.simulated else "stream", address, self.mode)
        return self

    def stop(self, timeout: float = 1.0) -> None:
        parts = [part for part in (self._simulator, self.receiver) if part is not None]
        for part in parts:  # signal both first, so their poll timeouts overlap
            part.stop(timeout=0)
        for part in parts:
            part.stop(timeout)

    def health(self) -> Health:
        if self.receiver is None:
            raise RuntimeError("source not started")
        return self.receiver.health()
