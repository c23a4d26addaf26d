"""The status document of a camera (`/api/status`, the health line and panel): pure, from its health."""

from __future__ import annotations

from typing import Any

from stream.cameras import camera_state
from stream.source import StreamSource


def status_document(camera: StreamSource, camserver_error: str = "") -> dict[str, Any]:
    """Health counters (PSI `bs stats` vocabulary) plus what the stream is and what it carries."""
    health = camera.health()
    layout = camera.layout
    axis_x, axis_y = camera.axes
    doc: dict[str, Any] = {
        "camera": camera.name,
        "state": camera_state(camera),  # type: ignore[arg-type]
        "stream": camera.label,
        "address": camera.address,
        "simulated": camera.simulated,
        "error": camera.state_note if camera.state_note != "connecting" else "",
        "camserver_error": camserver_error,
        "received": 0, "bytes_received": 0, "rate_hz": 0.0, "data_rate_mbps": 0.0, "invalid": 0,
        "invalid_by_reason": {}, "missed_pulses": 0, "duplicated_pulses": 0, "reverted_pulses": 0,
        "pulse_id_jumps": 0, "pulse_id_step": 1, "last_pulse_id": None, "last_message_age_s": None,
        "stall_limit_s": None, "receiver_restarts": 0, "last_error": "",
        "nonfinite_values": camera.nonfinite_values,
        "statistics_skipped": camera.statistics_skipped,
        "channels": list(camera.buffer.channels),
        "computed": list(camera.buffer.computed),
        "pipeline": bool(layout and layout.is_pipeline),
        "axes": {"x": axis_x.unit, "y": axis_y.unit},
        "frames_kept": len(camera.frames.recent()),
        "frame_bytes": camera.frames.nbytes,
    }
    if health is not None:
        age = health.last_message_age_s
        doc.update({
            "received": health.received, "bytes_received": health.bytes_received,
            "rate_hz": round(health.rate_hz, 3), "data_rate_mbps": round(health.data_rate_mbps, 3),
            "invalid": health.invalid, "invalid_by_reason": dict(health.invalid_by_reason),
            "missed_pulses": health.missed_pulses, "duplicated_pulses": health.duplicated_pulses,
            "reverted_pulses": health.reverted_pulses, "pulse_id_jumps": health.pulse_id_jumps,
            "pulse_id_step": health.pulse_step, "last_pulse_id": health.last_pulse_id,
            "last_message_age_s": None if age is None else round(age, 3),
            "stall_limit_s": round(health.stall_limit_s, 3), "receiver_restarts": health.receiver_restarts,
            "last_error": health.last_error,
        })
    return doc
