"""How much of the receiver thread the beam statistics may take while it cannot keep up.

At a camera's rate every message is measured: the costliest stream (2048² bitshuffle_lz4 without
profiles, 3–5 ms per message) needs under half a core at 100 Hz. The receiver is *behind* when,
over the last messages, it had less time to spare per message than a measurement costs: an
overloaded machine, a sender replaying at full speed. Measuring each message then would make the
statistics the bottleneck: a PUSH sender is slowed down, a PUB sender's messages are dropped at the
high-water mark. So while behind, the statistics may take at
most `share` of the thread's time, drawn from a bucket `burst_s` deep (a short burst is still
measured in full; the bucket refills at `share` of the time that passes). A pulse beyond that is
not measured: its history row keeps its scalars and ROI values with NaN beam statistics, it is
counted ("beam statistics skipped" in the health panel), the readings show the newest measured
pulse, and its frame is measured when somebody looks at it (stream/ingest.py).
"""

from __future__ import annotations

import math
import time
from typing import Callable

SHARE = 0.03  # of the receiver thread's time while it is behind
BURST_S = 0.2  # of statistics a burst may take before the share applies
# Weights of the newest value in the running estimates: the cost of a measurement follows over about
# twenty messages, the slack over about fifty (being behind is a lasting state, not a moment).
COST_WEIGHT = 0.05
SLACK_WEIGHT = 0.02


class StatisticsBudget:
    """A token bucket of statistics time, spent only while the receiver is behind.

    The slack of a message is how long the receiver waited for it plus what measuring the previous
    one took (the wait it would have had without that measurement), or 0 if it was already queued:
    what the thread has to spare per message besides the statistics. "Behind" means the running
    estimate of the slack is less than the running estimate of what a measurement costs. The few
    messages that queue up behind a slow moment (a viewer decoding a big frame, a garbage
    collection) do not make the receiver behind; a sender that keeps it busy does.
    """

    def __init__(self, share: float = SHARE, burst_s: float = BURST_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if not 0.0 < share <= 1.0 or burst_s < 0.0:
            raise ValueError(f"share must be in (0, 1] and burst_s >= 0, not {share}, {burst_s}")
        self.share = share
        self.burst_s = burst_s
        self.clock = clock
        self.cost_s = 0.0  # what one measurement costs, running estimate (0 until the first)
        self.slack_s = math.inf  # what the thread has to spare per message, running estimate
        self._tokens = burst_s  # seconds of statistics that may be spent now
        self._last = clock()
        self._previous_cost = 0.0  # of the previous message's measurement, 0 if it was not measured
        self._behind = False

    def allows(self, waited_s: float) -> bool:
        """May this pulse be measured? `waited_s`: how long the receiver waited for it, from the end
        of the previous one (0 if it was queued; inf if not known). Always, while it keeps up."""
        now = self.clock()
        self._tokens = min(self.burst_s, self._tokens + (now - self._last) * self.share)
        self._last = now
        # A queued message arrived while the previous one was handled, when is not known: no slack.
        slack = waited_s + self._previous_cost if waited_s > 0.0 else 0.0
        self._previous_cost = 0.0
        if math.isfinite(self.slack_s) and math.isfinite(slack):
            self.slack_s += SLACK_WEIGHT * (slack - self.slack_s)
        elif slack > 0.0:  # the estimate starts at a message waited for, not at a backlog met on connecting
            self.slack_s = slack
        self._behind = self.slack_s < self.cost_s
        return not self._behind or self._tokens > 0.0

    def spend(self, seconds: float) -> None:
        """The pulse just allowed took `seconds` to measure; only time spent while behind counts
        against the bucket."""
        self.cost_s = seconds if self.cost_s == 0.0 else self.cost_s + COST_WEIGHT * (seconds - self.cost_s)
        self._previous_cost = seconds
        if self._behind:
            self._tokens -= seconds
