"""Stream health as PSI's `bs stats` tool reports it: message counts and rate, and missed, duplicated
and reverted pulse ids (with the stream's pulse-id step learned, so a 10 Hz camera on a 100 Hz
machine is not "missing" nine pulses in ten).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Mapping

STEP_WINDOW = 64  # pulse-id deltas used to learn the stream's step
PULSE_JUMP_STEPS = 100_000  # a forward jump larger than this is a restart, not missed pulses


@dataclass(frozen=True)
class Health:
    """Stream health as PSI's `bs stats` would report it, plus receiver state."""

    state: str  # "waiting" | "live" | "stalled" | "stopped"
    address: str
    received: int
    bytes_received: int
    rate_hz: float
    data_rate_mbps: float
    invalid: int
    invalid_by_reason: Mapping[str, int]
    missed_pulses: int
    duplicated_pulses: int
    reverted_pulses: int
    pulse_id_jumps: int
    pulse_step: int
    last_pulse_id: int | None
    last_message_time: float | None  # wall clock, epoch seconds
    last_message_age_s: float | None
    stall_limit_s: float
    receiver_restarts: int
    last_error: str = ""


class PulseCounter:
    """Counts missed, duplicated and reverted pulse ids; learns the stream's pulse-id step."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.missed = 0
        self.duplicated = 0
        self.reverted = 0
        self.jumps = 0
        self._deltas: collections.deque[int] = collections.deque(maxlen=STEP_WINDOW)
        self._step = 1
        self._counts: collections.Counter[int] = collections.Counter()

    @property
    def step(self) -> int:
        return self._step

    def observe(self, pulse_id: int) -> None:
        last = self.last
        self.last = pulse_id
        if last is None:
            return
        delta = pulse_id - last
        if delta == 0:
            self.duplicated += 1
            return
        if delta < 0:
            self.reverted += 1
            return
        self._learn(delta)
        step = self._step
        if delta > step * PULSE_JUMP_STEPS:
            self.jumps += 1
        elif delta > step:
            self.missed += max(round(delta / step) - 1, 1)

    def _learn(self, delta: int) -> None:
        if len(self._deltas) == self._deltas.maxlen:
            old = self._deltas[0]
            self._counts[old] -= 1
            if self._counts[old] <= 0:
                del self._counts[old]
        self._deltas.append(delta)
        self._counts[delta] += 1
        # The most frequent delta is the step; on a tie (e.g. the first gap) the smallest wins.
        best = max(self._counts.items(), key=lambda item: (item[1], -item[0]))
        self._step = best[0]
