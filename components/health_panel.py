"""Stream health: the compact line of the header and the full table that folds out under it."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from . import ids
from .formatting import age, pulse_id

STATE_COLORS = {"live": "success", "stalled": "danger", "waiting": "warning", "stopped": "secondary",
                "connecting": "info", "error": "danger"}


def state_badge(state: str) -> tuple[str, str]:
    """(text, bootstrap colour) for the state badge."""
    return state, STATE_COLORS.get(state, "secondary")


def health_line(status: dict[str, Any]) -> str:
    """One line: what an operator needs at a glance (every value is text, never HTML)."""
    parts = [f"{status['received']:,} msgs", f"{status['invalid']} invalid",
             f"{status['missed_pulses']} missed", f"last {age(status['last_message_age_s'])} ago"]
    if status.get("error"):
        parts.insert(0, status["error"])
    return " · ".join(parts)


def health_rows(status: dict[str, Any]) -> list:
    """Full table. Everything from the stream (reasons, errors) is passed as text, never as HTML."""
    rows = [
        ("camera", status["camera"]),
        ("stream", status["stream"]),
        ("received", f"{status['received']:,} messages ({status['bytes_received'] / 1e6:,.1f} MB)"),
        ("rate", f"{status['rate_hz']:.1f} Hz, {status['data_rate_mbps']:.1f} Mbit/s"),
        ("last message", age(status["last_message_age_s"]) + (" ago" if status["last_message_age_s"] is not None
                                                              else "")),
        ("last pulse id", pulse_id(status["last_pulse_id"]) if status["last_pulse_id"] is not None else "—"),
        ("pulse ids missed / duplicated / reverted",
         f"{status['missed_pulses']} / {status['duplicated_pulses']} / {status['reverted_pulses']}"
         f" (step {status['pulse_id_step']})"),
        ("invalid messages", str(status["invalid"])),
    ]
    for reason, count in sorted(status["invalid_by_reason"].items()):
        rows.append((f"  {reason}", str(count)))
    if status["nonfinite_values"]:
        rows.append(("NaN/Inf readings", str(status["nonfinite_values"])))
    if status["statistics_skipped"]:
        rows.append(("beam statistics skipped (receiver behind)", f"{status['statistics_skipped']:,} pulses"))
    if status["receiver_restarts"]:
        rows.append(("receiver restarts", f"{status['receiver_restarts']} ({status['last_error']})"))
    rows.append(("frames kept", f"{status['frames_kept']} ({status['frame_bytes'] / 2**20:,.0f} MiB)"))
    if status.get("error"):
        rows.append(("error", status["error"]))
    if status.get("camserver_error"):
        rows.append(("cam_server", status["camserver_error"]))
    return [html.Tr([html.Th(name, className="fw-normal"), html.Td(value)]) for name, value in rows]


def health_details() -> dbc.Collapse:
    return dbc.Collapse(
        html.Table(html.Tbody(id=ids.HEALTH_PANEL), className="table table-sm table-dark mb-0 small"),
        id=ids.HEALTH_DETAILS, is_open=False, className="health-details")
