"""Stream health panel and the JSON status document (`/api/status`)."""

from __future__ import annotations

import math
from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from stream.receiver import Health

from . import ids

STATE_COLORS = {"live": "success", "stalled": "danger", "waiting": "warning", "stopped": "secondary"}


def status_document(health: Health, label: str, simulated: bool, nonfinite_values: int = 0) -> dict[str, Any]:
    """The `/api/status` JSON: health counters plus what the stream is."""
    age = health.last_message_age_s
    return {
        "state": health.state,
        "stream": label,
        "address": health.address,
        "simulated": simulated,
        "received": health.received,
        "bytes_received": health.bytes_received,
        "rate_hz": round(health.rate_hz, 3),
        "data_rate_mbps": round(health.data_rate_mbps, 3),
        "invalid": health.invalid,
        "invalid_by_reason": dict(health.invalid_by_reason),
        "missed_pulses": health.missed_pulses,
        "duplicated_pulses": health.duplicated_pulses,
        "reverted_pulses": health.reverted_pulses,
        "pulse_id_jumps": health.pulse_id_jumps,
        "pulse_id_step": health.pulse_step,
        "last_pulse_id": health.last_pulse_id,
        "last_message_age_s": None if age is None else round(age, 3),
        "stall_limit_s": round(health.stall_limit_s, 3),
        "receiver_restarts": health.receiver_restarts,
        "last_error": health.last_error,
        "nonfinite_values": nonfinite_values,
        "channels": list(health.channels),
    }


def _age(age: float | None) -> str:
    if age is None:
        return "never"
    return f"{age:.1f} s ago" if math.isfinite(age) else "—"


def health_rows(status: dict[str, Any]) -> list:
    """Panel content. Everything from the stream (reasons, errors) is passed as text, never as HTML."""
    rows = [
        ("received", f"{status['received']:,} messages ({status['bytes_received'] / 1e6:,.1f} MB)"),
        ("rate", f"{status['rate_hz']:.1f} Hz, {status['data_rate_mbps']:.1f} Mbit/s"),
        ("last message", _age(status["last_message_age_s"])),
        ("last pulse id", "—" if status["last_pulse_id"] is None else str(status["last_pulse_id"])),
        ("pulse ids missed / duplicated / reverted",
         f"{status['missed_pulses']} / {status['duplicated_pulses']} / {status['reverted_pulses']}"
         f" (step {status['pulse_id_step']})"),
        ("invalid messages", str(status["invalid"])),
    ]
    for reason, count in sorted(status["invalid_by_reason"].items()):
        rows.append((f"  {reason}", str(count)))
    if status["nonfinite_values"]:
        rows.append(("NaN/Inf readings", str(status["nonfinite_values"])))
    if status["receiver_restarts"]:
        rows.append(("receiver restarts", f"{status['receiver_restarts']} ({status['last_error']})"))
    return [html.Tr([html.Th(name, className="fw-normal"), html.Td(value)]) for name, value in rows]


def health_panel() -> dbc.Card:
    return dbc.Card([
        dbc.CardHeader("Stream health"),
        dbc.CardBody(html.Table(html.Tbody(id=ids.HEALTH_PANEL), className="table table-sm table-dark mb-0 small")),
    ])


def state_badge(state: str) -> tuple[str, str]:
    """(text, bootstrap colour) for the state badge."""
    return state, STATE_COLORS.get(state, "secondary")
