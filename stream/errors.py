"""The one error type of the stream layer: a message or value that violates the bsread protocol."""

from __future__ import annotations


class BsreadError(ValueError):
    """A message (or one channel value) that violates the bsread protocol.

    `reason` is a short, stable code used for health counters (`bad-main-header`, `part-count`, ...);
    the message text adds detail for the log.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
