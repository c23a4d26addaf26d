"""components/status.py and components/health_panel.py: the status document of a camera (/api/status)
and the health line and table built from it, from fed cameras with known counts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from dash import html

from components.health_panel import health_line, health_rows, state_badge
from components.status import status_document
from stream.encoder import Encoder
from tests.web_fixtures import FedCamera, camera_values, designed_image

CONTRACT_KEYS = ("state", "stream", "simulated", "received", "rate_hz", "invalid", "invalid_by_reason", "missed_pulses",
                 "duplicated_pulses", "reverted_pulses", "last_pulse_id", "last_message_age_s", "channels")
NEW_KEYS = ("camera", "address", "error", "camserver_error", "computed", "pipeline", "axes", "frames_kept",
            "frame_bytes", "nonfinite_values", "statistics_skipped", "receiver_restarts", "last_error", "stall_limit_s")
HOSTILE = "<img src=x onerror=alert(1)>"


def fed_with_counts() -> FedCamera:
    camera = FedCamera(address="tcp://camera:9999")
    image = designed_image(8, 8)
    for pulse in (10, 11, 12, 15, 15):  # 2 missed (13, 14), 1 duplicated
        camera.feed(camera_values(image), pulse_id=pulse)
    camera.feed(camera_values(image, energy=float("nan")), pulse_id=14)  # 1 reverted
    camera.feed_parts([b"not json", b"{}"])
    camera.feed_parts([b"x"])
    return camera


def test_status_has_the_contract_fields_with_the_received_counts() -> None:
    doc = status_document(fed_with_counts())
    assert set(CONTRACT_KEYS) | set(NEW_KEYS) <= set(doc)
    assert doc["camera"] == "cam" and doc["stream"] == "tcp://camera:9999" and doc["simulated"] is False
    assert doc["state"] == "live" and doc["received"] == 6 and doc["last_pulse_id"] == 14
    assert (doc["missed_pulses"], doc["duplicated_pulses"], doc["reverted_pulses"]) == (2, 1, 1)
    assert doc["invalid"] == 2 and doc["invalid_by_reason"] == {"bad-main-header": 1, "part-count": 1}
    assert doc["channels"] == ["beam_energy", "repetition_rate"] and "beam_rms_x" in doc["computed"]
    assert doc["nonfinite_values"] == 1 and doc["axes"] == {"x": "px", "y": "px"} and doc["pipeline"] is False
    assert doc["frames_kept"] == 1 and doc["frame_bytes"] > 8 * 8 * 4
    assert 0 <= doc["last_message_age_s"] < 60 and doc["rate_hz"] > 0
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_status_before_the_first_message() -> None:
    doc = status_document(FedCamera())
    assert doc["state"] == "waiting" and doc["received"] == 0 and doc["channels"] == []
    assert doc["last_pulse_id"] is None and doc["last_message_age_s"] is None and doc["rate_hz"] == 0
    json.dumps(doc, allow_nan=False)


def test_status_of_a_camera_that_is_not_running() -> None:
    class NotStarted(FedCamera):
        def health(self) -> Any:
            return None

    connecting = NotStarted()
    connecting.state_note = "connecting"
    assert status_document(connecting)["state"] == "connecting" and status_document(connecting)["error"] == ""
    failed = NotStarted()
    failed.state_note = "cam_server: camera 'x' is not online"
    doc = status_document(failed, camserver_error="cam_server unreachable")
    assert doc["state"] == "error" and doc["error"] == "cam_server: camera 'x' is not online"
    assert doc["camserver_error"] == "cam_server unreachable" and doc["received"] == 0


def test_a_pipeline_stream_is_reported_as_one_with_its_axis_units() -> None:
    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8), "x_axis": np.arange(8, dtype=np.float32) * -2.0,
                 "y_axis": np.arange(8, dtype=np.float32) * 3.0, "processing_parameters": "{}"})
    doc = status_document(camera)
    assert doc["pipeline"] is True and doc["axes"] == {"x": "µm", "y": "µm"}


def test_state_badge_colours() -> None:
    assert state_badge("live") == ("live", "success")
    assert state_badge("stalled") == ("stalled", "danger")
    assert state_badge("waiting") == ("waiting", "warning")
    assert state_badge("connecting") == ("connecting", "info")
    assert state_badge("???") == ("???", "secondary")


def test_health_line_at_a_glance() -> None:
    line = health_line(status_document(fed_with_counts()))
    assert line.startswith("6 msgs · 2 invalid · 2 missed · last ") and line.endswith(" ago")
    assert health_line({**status_document(FedCamera()), "error": "no route"}).startswith("no route · 0 msgs")


def _components(node: Any) -> list[Any]:
    if isinstance(node, (list, tuple)):
        return [c for child in node for c in _components(child)]
    if hasattr(node, "children"):
        return [node] + _components(node.children)
    return []


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, (list, tuple)):
        return [leaf for child in node for leaf in _leaves(child)]
    if hasattr(node, "children"):
        return _leaves(node.children) if node.children is not None else []
    return [node]


def test_health_rows_show_stream_text_as_text_only() -> None:
    camera = fed_with_counts()
    camera.count_invalid(_bad(HOSTILE))
    doc = status_document(camera, camserver_error="<script>alert('x')</script>")
    rows = health_rows(doc)
    assert all(type(c) in (html.Tr, html.Th, html.Td) for c in _components(rows))
    leaves = _leaves(rows)
    assert all(isinstance(leaf, str) for leaf in leaves)
    text = " | ".join(leaves)
    assert f"  {HOSTILE} | 1" in text  # the reason shown verbatim (React escapes text), not dropped
    assert "<script>alert('x')</script>" in text
    assert "6 messages" in text and "2 / 1 / 1 (step 1)" in text and "NaN/Inf readings | 1" in text
    assert "last pulse id | 14" in text and "frames kept | 1" in text


def _bad(reason: str) -> Exception:
    from stream.protocol import BsreadError

    return BsreadError(reason, "a reason from the stream")


def test_health_rows_without_messages() -> None:
    text = " | ".join(_leaves(health_rows(status_document(FedCamera()))))
    assert "last message | never" in text and "last pulse id | —" in text
    assert "skipped" not in text  # every pulse measured: nothing to say


class BehindBudget:
    """Measures only the pulses whose wait is not known (fed, not received); the budget's own rules
    are tests/test_budget.py's."""

    def allows(self, waited_s: float) -> bool:
        return waited_s == float("inf")

    def spend(self, seconds: float) -> None:
        pass


def test_skipped_beam_statistics_are_counted_in_status_and_table() -> None:
    camera = FedCamera()
    camera.ingest.budget = BehindBudget()
    yy, xx = np.mgrid[0:48, 0:64]
    image = (100.0 + 4000.0 * np.exp(-0.5 * (((xx - 30.0) / 4.0) ** 2 + ((yy - 20.0) / 3.0) ** 2))).astype(np.uint16)
    camera.feed(camera_values(image), pulse_id=1)
    camera._receiver.waited_s = 0.0  # as if the next pulses were taken off a backlog
    for pulse in range(2, 5):
        camera.feed(camera_values(image), pulse_id=pulse)
    doc = status_document(camera)
    assert doc["statistics_skipped"] == 3 and doc["received"] == 4
    assert "beam statistics skipped (receiver behind) | 3 pulses" in " | ".join(_leaves(health_rows(doc)))
    assert np.isnan(camera.buffer.newest().column("beam_centroid_x")[0])
    newest_measured = camera.newest_measured()
    assert newest_measured.start == 0 and newest_measured.column("beam_centroid_x")[0] == pytest.approx(30.0, abs=0.5)


def test_pulse_ids_of_swissfel_size_are_exact_in_status_and_table() -> None:
    camera = FedCamera()
    camera.feed_parts(Encoder().encode(15_000_000_123, 1.8e9, camera_values(designed_image(4, 4))))
    doc = status_document(camera)
    assert doc["last_pulse_id"] == 15_000_000_123
    assert "last pulse id | 15000000123" in " | ".join(_leaves(health_rows(doc)))
