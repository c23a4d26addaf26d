"""The HTTP API of web/api.py, exactly as documented: /api/frame, /api/pixel, /api/hold, /api/status,
/api/cameras, /api/readings.csv, /api/diagnostics.

The app is the real one (`app.create_app`) over fed cameras, called through Flask's test client:
every answer is checked against a frame whose answer is known (pixel value = col + 1000 * row).
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stream.camera import Limits
from tests.helpers import wait_until
from tests.web_fixtures import T0, FedCamera, camera_values, designed_image, fed_app
from web.frame_service import decode

IMAGE = designed_image(48, 64)  # uint32, 0 ... 47063
ROWS = {"zmin": 0, "zmax": 254_000}  # colour range that maps pixel (row, col) to level `row`


@pytest.fixture
def cameras() -> tuple[FedCamera, FedCamera]:
    return FedCamera("cam-a", limits=Limits(history=10_000, frames=5)), FedCamera("cam-b")


@pytest.fixture
def app(cameras) -> Any:
    return fed_app(*cameras, argv=["-d", "0.01", "--diagnostics"])


@pytest.fixture
def http(app) -> Any:
    return app.server.test_client()


def frame(http, **query: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    reply = http.get("/api/frame", query_string=query)
    assert reply.status_code == 200, (reply.status_code, reply.data[:300])
    assert reply.mimetype == "application/octet-stream" and reply.headers["Cache-Control"] == "no-store"
    return decode(reply.data)


def shown_levels(meta: dict[str, Any], parts: dict[str, np.ndarray]) -> np.ndarray:
    return parts["levels"].reshape(meta["rows"], meta["cols"])


def refused(reply: Any, status: int = 400) -> str:
    assert reply.status_code == status, (reply.status_code, reply.data[:300])
    assert reply.mimetype == "application/json"
    body = reply.get_json()
    assert set(body) == {"error"} and body["error"] and "Traceback" not in body["error"]
    return body["error"]


def renders(http) -> int:
    return http.get("/api/diagnostics").get_json()["renders"]


# ------------------------------------------------------------------------------------------ /api/frame


def test_frame_levels_and_meta_of_a_known_frame(cameras, http) -> None:
    camera = cameras[0]
    camera.feed(camera_values(IMAGE), pulse_id=15_000_000_007, timestamp=T0 + 0.5)
    meta, parts = frame(http, camera="cam-a", w=64, h=48, **ROWS)
    assert np.array_equal(shown_levels(meta, parts), np.repeat(np.arange(48)[:, None], 64, axis=1))
    assert meta["camera"] == "cam-a" and meta["pulse_id"] == 15_000_000_007 and meta["timestamp"] == T0 + 0.5
    assert meta["shape"] == [48, 64] and meta["dtype"] == "uint32" and meta["bin"] == 1
    assert meta["range"] == [0.0, 254_000.0] and meta["auto"] is False and meta["peak"] == 47063.0
    assert [name for name, *_ in meta["parts"]] == ["levels", "histogram", "x_profile", "y_profile"]
    assert np.array_equal(parts["x_profile"], IMAGE.sum(axis=0).astype(np.float32))  # the stream's own profile
    assert np.array_equal(parts["y_profile"], IMAGE.sum(axis=1).astype(np.float32))


def test_a_browser_gets_the_same_body_gzipped_once_per_render(cameras, http) -> None:
    import gzip

    cameras[0].feed(camera_values(IMAGE))
    plain = http.get("/api/frame", query_string={"camera": "cam-a"})
    packed = http.get("/api/frame", query_string={"camera": "cam-a"}, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding" and len(packed.data) < len(plain.data)
    assert gzip.decompress(packed.data) == plain.data
    again = http.get("/api/frame", query_string={"camera": "cam-a"}, headers={"Accept-Encoding": "gzip"})
    assert again.data == packed.data and renders(http) == 1


def test_default_camera_is_the_first(cameras, http) -> None:
    cameras[0].feed(camera_values(IMAGE))
    meta, _ = frame(http)
    assert meta["camera"] == "cam-a"


def test_bins_follow_w_and_h(cameras, http) -> None:
    cameras[0].feed(camera_values(IMAGE))
    meta, parts = frame(http, w=32, h=40, **ROWS)
    assert meta["bin"] == 2 and (meta["rows"], meta["cols"]) == (24, 32)
    assert np.array_equal(shown_levels(meta, parts)[:, 0], 2 * np.arange(24))
    assert parts["x_profile"].size == 32  # curves binned like the picture


def test_the_visible_region_in_pixel_units(cameras, http) -> None:
    cameras[0].feed(camera_values(IMAGE))
    meta, parts = frame(http, xr="10,29", yr="5.2,9.7", w=400, h=400, **ROWS)
    # the pixels whose centres lie in the range: columns 10..29, rows 5..9 (plus the half pixel either side)
    assert meta["region"] == [10, 30, 5, 11]
    assert np.array_equal(shown_levels(meta, parts)[:, 0], np.arange(5, 11))


def test_the_visible_region_in_micrometres_on_a_descending_axis(cameras, http) -> None:
    camera = cameras[0]
    x_axis = (80 - 2.5 * np.arange(64)).astype(np.float32)  # pixel column i at 80 - 2.5 i µm
    y_axis = (-48 + 2.0 * np.arange(48)).astype(np.float32)
    camera.feed({"image": IMAGE, "x_axis": x_axis, "y_axis": y_axis})
    meta, parts = frame(http, xr="55,62.5", yr="-40,-36", w=400, h=400, **ROWS)
    assert meta["x"] == {"origin": 80.0, "step": -2.5, "unit": "µm"}
    assert meta["region"] == [7, 11, 4, 7]  # columns at 62.5 ... 55 µm, rows at -40 ... -36 µm
    levels = shown_levels(meta, parts)
    assert levels.shape == (3, 4) and list(levels[:, 0]) == [4, 5, 6]


def test_averaging_the_last_frames(cameras, http) -> None:
    camera = cameras[0]
    for k in range(5):
        camera.feed(camera_values(IMAGE + 100 * k))
    camera.touch()  # watched: the recent frames are kept
    for k in range(5, 8):
        camera.feed(camera_values(IMAGE + 100 * k))
    meta, _ = frame(http, avg=3, w=64, h=48)
    assert meta["processing"] == {"average": 3, "background": False, "note": ""}
    assert meta["peak"] == 47063 + 100 * 6  # the mean of frames 5, 6 and 7
    meta, _ = frame(http, avg=100)
    # kept: the newest frame from before anybody watched, and the three since
    assert meta["processing"]["average"] == 4 and meta["processing"]["note"] == "mean of the 4 frames kept, 100 asked"


def test_saturated_pixels_are_marked_and_counted(cameras, http) -> None:
    cameras[0].feed(camera_values(designed_image(48, 64, dtype=np.uint16)))
    meta, parts = frame(http, sat=47000, w=64, h=48, **ROWS)
    assert meta["saturated"] == 64  # row 47 is 47000 ... 47063
    assert (shown_levels(meta, parts)[47] == 255).all() and (shown_levels(meta, parts)[:47] < 255).all()


def test_unchanged_frame_is_204_with_the_stream_state(cameras, http) -> None:
    camera = cameras[0]
    camera.feed(camera_values(IMAGE))
    meta, _ = frame(http)
    again = http.get("/api/frame", query_string={"after": meta["seq"]})
    assert again.status_code == 204 and again.data == b""
    stream = json.loads(again.headers["X-SOV-Stream"])
    assert stream["state"] == "live" and stream["age_s"] >= 0 and stream["stall_limit_s"] >= 2.0
    camera.feed(camera_values(IMAGE + 1))
    newer = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        http.get("/api/frame", query_string={"after": meta["seq"]})), 10)  # one display period (-d 0.01)
    assert decode(newer.data)[0]["seq"] == meta["seq"] + 1


def test_no_frame_yet_is_204(http) -> None:
    reply = http.get("/api/frame?camera=cam-b")
    assert reply.status_code == 204 and json.loads(reply.headers["X-SOV-Stream"])["state"] == "waiting"


def test_a_paused_page_gets_its_pinned_frames_after_the_live_list_moved_on(cameras, http) -> None:
    camera = cameras[0]  # keeps 5 frames
    camera.touch()
    for k in range(5):
        camera.feed(camera_values(IMAGE + k))
    hold = http.post("/api/hold?camera=cam-a&client=page-1")
    assert hold.status_code == 200
    pinned = hold.get_json()["frames"]
    assert [f["pulse_id"] for f in pinned] == [1, 2, 3, 4, 5]
    assert set(pinned[0]) == {"seq", "pulse_id", "timestamp"} and pinned[0]["timestamp"] == T0 + 0.01
    for k in range(10):
        camera.feed(camera_values(IMAGE))
    meta, _ = frame(http, seq=pinned[0]["seq"], client="page-1", w=64, h=48)
    assert meta["seq"] == pinned[0]["seq"] and meta["pulse_id"] == 1 and meta["peak"] == 47063
    assert "no longer kept" in refused(http.get("/api/frame", query_string={"seq": pinned[0]["seq"]}), 404)
    assert "no longer kept" in refused(http.get("/api/frame", query_string={"seq": pinned[0]["seq"],
                                                                           "client": "page-2"}), 404)
    assert http.delete("/api/hold?camera=cam-a&client=page-1").get_json() == {"frames": []}
    assert refused(http.get("/api/frame", query_string={"seq": pinned[0]["seq"], "client": "page-1"}), 404)


def test_hold_up_to_a_frame_and_hold_needs_a_client(cameras, http) -> None:
    camera = cameras[0]
    camera.touch()
    for _ in range(4):
        camera.feed(camera_values(IMAGE))
    frames = http.post("/api/hold?client=p&seq=1").get_json()["frames"]
    assert [f["seq"] for f in frames] == [0, 1]
    assert "client" in refused(http.post("/api/hold"))
    assert "client" in refused(http.post("/api/hold?client=bad%20id!"))


BAD_FRAME_QUERIES = [
    ({"cmap": "Nope"}, "cmap"), ({"scale": "cubic"}, "scale"), ({"zmin": 1}, "zmin"), ({"zmax": 1}, "zmin"),
    ({"zmin": 5, "zmax": 5}, "less than"), ({"zmin": 5, "zmax": 1}, "less than"),
    ({"scale": "log", "zmin": 0, "zmax": 10}, "log"), ({"zmin": "abc", "zmax": 1}, "zmin"),
    ({"zmin": "nan", "zmax": 1}, "zmin"), ({"zmin": "-inf", "zmax": 1}, "zmin"),
    ({"xr": "a,b"}, "xr"), ({"xr": "1"}, "xr"), ({"xr": "1,2,3"}, "xr"), ({"yr": "nan,1"}, "yr"),
    ({"w": "abc"}, "w"), ({"w": 0}, "w"), ({"h": 5000}, "h"), ({"avg": 0}, "avg"), ({"avg": 101}, "avg"),
    ({"avg": "1.5e9"}, "avg"), ({"seq": "x"}, "seq"), ({"seq": -1}, "seq"), ({"after": "x"}, "after"),
    ({"client": "x" * 65}, "client"), ({"client": "<script>"}, "client"), ({"sat": "many"}, "sat"),
]


@pytest.mark.parametrize(("query", "word"), BAD_FRAME_QUERIES, ids=lambda v: str(v))
def test_bad_frame_parameters_are_refused_with_a_reason(cameras, http, query, word) -> None:
    cameras[0].feed(camera_values(IMAGE))
    assert word in refused(http.get("/api/frame", query_string=query))


@pytest.mark.parametrize("path", ["/api/frame", "/api/pixel?col=0&row=0", "/api/status", "/api/readings.csv",
                                  "/api/rois", "/api/background", "/api/snapshot.h5"])
def test_an_unknown_camera_is_404_json(http, path: str) -> None:
    sep = "&" if "?" in path else "?"
    assert "no-such-camera" in refused(http.get(f"{path}{sep}camera=no-such-camera"), 404)


def test_no_frame_is_rendered_without_requests_and_one_serves_many(cameras, http) -> None:
    camera = cameras[0]
    for _ in range(30):
        camera.feed(camera_values(IMAGE))
    assert renders(http) == 0
    bodies = {http.get("/api/frame?camera=cam-a&w=64&h=48").data for _ in range(10)}
    assert len(bodies) == 1 and renders(http) == 1


# ------------------------------------------------------------------------------------------ /api/pixel


def test_pixel_values_are_exact_camera_counts(cameras, http) -> None:
    camera = cameras[0]
    camera.feed(camera_values(IMAGE), pulse_id=15_000_000_001)
    for col, row in ((0, 0), (63, 0), (5, 47), (63, 47), (17, 23)):
        body = http.get("/api/pixel", query_string={"camera": "cam-a", "col": col, "row": row}).get_json()
        assert body["value"] == body["raw"] == col + 1000 * row
        assert (body["col"], body["row"], body["x"], body["y"], body["unit_x"]) == (col, row, col, row, "px")
        assert body["pulse_id"] == 15_000_000_001 and body["camera"] == "cam-a"


def test_pixel_of_a_kept_frame_in_axis_units_with_processing(cameras, http) -> None:
    camera = cameras[0]
    camera.touch()
    x_axis = (80 - 2.5 * np.arange(64)).astype(np.float32)
    y_axis = (-48 + 2.0 * np.arange(48)).astype(np.float32)
    for k in range(4):
        camera.feed({"image": IMAGE + 100 * k, "x_axis": x_axis, "y_axis": y_axis})
    first = camera.frames.recent()[0].seq
    old = http.get("/api/pixel", query_string={"seq": first, "col": 10, "row": 3}).get_json()
    assert old["value"] == 3010 and old["seq"] == first and old["pulse_id"] == 1
    assert (old["x"], old["y"], old["unit_x"], old["unit_y"]) == (55.0, -42.0, "µm", "µm")
    mean = http.get("/api/pixel", query_string={"col": 10, "row": 3, "avg": 4}).get_json()
    assert mean["value"] == 3010 + 150 and mean["raw"] == 3310 and mean["averaged"] == 4


@pytest.mark.parametrize(("query", "word"), [({}, "col and row"), ({"col": 1}, "col and row"),
                                             ({"col": 64, "row": 0}, "col"), ({"col": 0, "row": 48}, "row"),
                                             ({"col": -1, "row": 0}, "col"), ({"col": "x", "row": 0}, "col"),
                                             ({"col": 0, "row": 0, "avg": 0}, "avg")])
def test_bad_pixel_parameters_are_refused(cameras, http, query, word) -> None:
    cameras[0].feed(camera_values(IMAGE))
    assert word in refused(http.get("/api/pixel", query_string=query))


def test_pixel_without_a_frame_is_404(http) -> None:
    assert "no frame" in refused(http.get("/api/pixel?camera=cam-b&col=0&row=0"), 404)


# ------------------------------------------------------------------------------------------ status, cameras


def test_status_per_camera(cameras, http) -> None:
    cameras[0].feed(camera_values(IMAGE), pulse_id=41)
    a = http.get("/api/status?camera=cam-a").get_json()
    b = http.get("/api/status?camera=cam-b").get_json()
    default = http.get("/api/status").get_json()
    assert (a["camera"], a["state"], a["received"], a["last_pulse_id"]) == ("cam-a", "live", 1, 41)
    assert (b["camera"], b["state"], b["received"], b["last_pulse_id"]) == ("cam-b", "waiting", 0, None)
    assert default["camera"] == "cam-a"
    for key in ("state", "stream", "simulated", "received", "rate_hz", "invalid", "invalid_by_reason",
                "missed_pulses", "duplicated_pulses", "reverted_pulses", "last_pulse_id", "last_message_age_s",
                "channels"):
        assert key in a, key


def test_cameras_lists_every_camera_with_whether_it_is_watched(cameras, http) -> None:
    body = http.get("/api/cameras").get_json()
    assert body["default"] == "cam-a" and body["camserver_error"] == ""
    assert [c["name"] for c in body["cameras"]] == ["cam-a", "cam-b"]
    for entry in body["cameras"]:
        assert {"name", "watched", "state"} <= set(entry) and isinstance(entry["watched"], bool)
    cameras[0].feed(camera_values(IMAGE))
    http.get("/api/status?camera=cam-a")
    listed = {c["name"]: c for c in http.get("/api/cameras").get_json()["cameras"]}
    assert listed["cam-a"]["watched"] is True and listed["cam-a"]["state"] == "live"
    assert listed["cam-b"]["state"] == "waiting"


# ------------------------------------------------------------------------------------------ /api/readings.csv


def csv_of(http, **query: Any) -> tuple[pd.DataFrame, Any]:
    reply = http.get("/api/readings.csv", query_string=query)
    assert reply.status_code == 200, reply.data[:300]
    return pd.read_csv(io.BytesIO(reply.data)), reply


def test_readings_csv_of_a_camera_and_a_window(cameras, http) -> None:
    camera = cameras[1]
    for k in range(300):  # 3 s at 100 Hz
        camera.feed(camera_values(IMAGE, energy=5 + k / 1000), pulse_id=15_000_000_000 + k, timestamp=T0 + k / 100)
    everything, reply = csv_of(http, camera="cam-b")
    assert reply.mimetype == "text/csv"
    disposition = reply.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="readings-cam-b-') and disposition.endswith('.csv"')
    assert list(everything["pulse_id"]) == list(range(15_000_000_000, 15_000_000_300))
    assert list(everything["beam_energy"]) == [5 + k / 1000 for k in range(300)]
    window, _ = csv_of(http, camera="cam-b", seconds=1)
    # the last second of pulse time: pulse times 1.99 ... 2.99 s after the first
    assert list(window["pulse_id"]) == list(range(15_000_000_199, 15_000_000_300))
    assert csv_of(http)[0].empty  # the default camera has nothing yet


@pytest.mark.parametrize("seconds", ["abc", "-1", "0", "nan", "inf", "1e400", "../../etc/passwd"])
def test_readings_csv_refuses_bad_seconds(http, seconds: str) -> None:
    assert "seconds" in refused(http.get("/api/readings.csv", query_string={"seconds": seconds}))


# ------------------------------------------------------------------------------------------ /api/diagnostics


def test_diagnostics_only_when_asked_for(cameras) -> None:
    off = fed_app(*cameras).server.test_client()
    assert refused(off.get("/api/diagnostics"), 404) == "no such endpoint"
    assert refused(off.get("/api/no-such-thing"), 404) == "no such endpoint"  # not the page, with 200
    on = fed_app(*cameras, argv=["--diagnostics"]).server.test_client()
    body = on.get("/api/diagnostics").get_json()
    assert body == {"renders": 0, "render_seconds": 0.0}


def test_a_page_never_receives_a_backlog(cameras, http) -> None:
    """However many frames arrived since the page's last one, it gets the newest, once."""
    camera = cameras[0]
    camera.feed(camera_values(IMAGE))
    meta, _ = frame(http)
    for k in range(50):
        camera.feed(camera_values(IMAGE + k))
    newest = camera.frames.latest().seq
    reply = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        http.get("/api/frame", query_string={"after": meta["seq"]})), 10)
    assert decode(reply.data)[0]["seq"] == newest
    assert http.get("/api/frame", query_string={"after": newest}).status_code == 204


def test_a_camera_error_in_any_language_reaches_the_page(http, cameras) -> None:
    """The stream state travels in a header (Latin-1 on the wire): cam_server's text is escaped, not a 500."""
    camera = cameras[0]
    camera._receiver = None  # not started: its state is its note
    camera.state_note = "cam_server refused camera 'Kamera-Ü': Kamera nicht verfügbar…"
    reply = http.get("/api/frame", query_string={"camera": "cam-a"})
    assert reply.status_code == 204
    stream = json.loads(reply.headers["X-SOV-Stream"])
    assert stream == {"state": "error", "error": camera.state_note}


def test_a_corrupt_kept_frame_answers_json_not_a_traceback(cameras, http, monkeypatch) -> None:
    import stream.ingest

    monkeypatch.setattr(stream.ingest, "IMAGE_FIRST_PIXELS", 0)  # statistics from the profiles: kept undecoded
    camera = cameras[0]
    parts = camera.encoder.encode(1, T0, camera_values(IMAGE), compression={"image": "bitshuffle_lz4"})
    value = bytearray(parts[2])
    struct.pack_into(">I", value, 12, 5)  # the framing no longer adds up
    parts[2] = bytes(value)
    camera.feed_parts(parts)
    assert camera.frames.latest() is not None
    reply = http.get("/api/pixel", query_string={"camera": "cam-a", "col": 1, "row": 1})
    assert reply.status_code == 422 and "corrupt" in refused(reply, 422)


def test_a_long_pause_keeps_its_frames_by_touching_them(cameras, http, monkeypatch) -> None:
    import stream.frames as frames_module
    from tests.web_fixtures import ManualClock

    clock = ManualClock().install(monkeypatch, frames_module)
    camera = cameras[0]
    camera.feed(camera_values(IMAGE))
    held = http.post("/api/hold", query_string={"camera": "cam-a", "client": "p1"}).get_json()["frames"]
    for _ in range(3):  # 3 x 9 min: past the 10 min a pin lives unused, kept alive by touching it
        clock.now += 540
        touched = http.post("/api/hold", query_string={"camera": "cam-a", "client": "p1", "touch": 1}).get_json()
        assert touched["frames"] == held
        http.post("/api/hold", query_string={"camera": "cam-a", "client": "other"})  # pins expire on pinning
    assert http.post("/api/hold", query_string={"camera": "cam-a", "client": "p1", "touch": 1}).get_json()["frames"] == held
