"""How numbers and times read on the page and in files: one place, so every panel agrees."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any


def finite(value: Any) -> float | None:
    """`value` as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_value(value: Any) -> str:
    """A reading with 4 significant digits; exponent form for very large or small magnitudes."""
    number = finite(value)
    if number is None:
        return "—"
    magnitude = abs(number)
    if magnitude == 0:
        return "0"
    if magnitude >= 1e5 or magnitude < 1e-2:
        return f"{number:.3e}"
    # 4 significant digits, never an exponent in this range (15000, not 1.5e+04)
    decimals = max(0, 3 - math.floor(math.log10(magnitude)))
    text = f"{number:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def with_unit(value: Any, unit: str, digits: str | None = None) -> str:
    """`value unit`, or a dash for a missing value."""
    number = finite(value)
    if number is None:
        return "—"
    text = f"{number:{digits}}" if digits else format_value(number)
    return f"{text} {unit}".strip()


def pulse_id(value: Any) -> str:
    """Pulse ids are integers up to ~1.5e10 at SwissFEL: always every digit, never '15G' or 1.5e10."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return "—"
    return str(number) if number >= 0 else "—"


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with microseconds, e.g. 2026-11-25T12:00:00.123456Z ('' if not a time)."""
    try:
        if not math.isfinite(epoch_s):
            return ""
        stamp = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError, TypeError):
        return ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_for_filename(epoch_s: float | None = None) -> str:
    """20261203T134500Z (now when no time is given)."""
    stamp = dt.datetime.now(dt.timezone.utc) if epoch_s is None else dt.datetime.fromtimestamp(
        epoch_s, tz=dt.timezone.utc)
    return stamp.strftime("%Y%m%dT%H%M%SZ")


def age(seconds: float | None) -> str:
    """How long ago, for people: '0.4 s', '12 s', '3 min 5 s', '2 h 10 min'."""
    if seconds is None or not math.isfinite(seconds):
        return "never"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def safe_filename(name: str) -> str:
    """A file name made of letters, digits and - _ . + only (camera names come from cam_server)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_.+" else "_" for c in name)[:200]
