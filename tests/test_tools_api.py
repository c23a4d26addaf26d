"""The operator tools' HTTP API of web/tools_api.py: /api/rois, /api/background, /api/snapshot.h5.

The app is the real one over fed cameras (Flask's test client). Frames are designed (pixel value =
col + 1000 * row), so region sums, background subtraction and snapshots are compared exactly.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from stream.camera import Limits
from tests.web_fixtures import T0, FedCamera, camera_values, designed_image, fed_app
from web.frame_service import decode

IMAGE = designed_image(48, 64)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def camera() -> FedCamera:
    camera = FedCamera("cam-a")
    camera.feed(camera_values(IMAGE))
    return camera


@pytest.fixture
def http(camera) -> Any:
    return fed_app(camera, FedCamera("cam-b"), argv=["-d", "0.01"]).server.test_client()


def put_rois(http, body: Any, camera: str = "cam-a", headers: dict | None = None) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.put(f"/api/rois?camera={camera}", data=data, headers={**JSON, **(headers or {})})


def refused(reply: Any, status: int = 400) -> str:
    assert reply.status_code == status, (reply.status_code, reply.data[:300])
    body = reply.get_json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


def roi(name: str = "spot", x0: int = 10, x1: int = 13, y0: int = 20, y1: int = 22) -> dict[str, Any]:
    return {"name": name, "x0": x0, "x1": x1, "y0": y0, "y1": y1}


# ------------------------------------------------------------------------------------------ /api/rois


def test_rois_get_and_put_exactly_as_documented(http) -> None:
    assert http.get("/api/rois?camera=cam-a").get_json() == {"rois": []}
    body = {"rois": [roi(), roi("edge_1", 63, 64, 0, 48)]}
    reply = put_rois(http, body)
    assert reply.status_code == 200 and reply.get_json() == body
    assert http.get("/api/rois?camera=cam-a").get_json() == body
    assert http.get("/api/rois?camera=cam-b").get_json() == {"rois": []}  # per camera
    assert http.get("/api/rois").get_json() == body  # the default camera is the first


def test_what_get_answers_can_be_put_back(http) -> None:
    put_rois(http, {"rois": [roi()]})
    listed = http.get("/api/rois?camera=cam-a").get_json()
    listed["rois"].append(roi("second", 0, 1, 0, 1))
    assert put_rois(http, listed).status_code == 200
    assert [r["name"] for r in http.get("/api/rois?camera=cam-a").get_json()["rois"]] == ["spot", "second"]
    assert put_rois(http, {"rois": []}).get_json() == {"rois": []}  # an empty set clears them


BAD_BODIES = [
    (b"not json", "JSON"), (b"[]", "rois"), ({"rois": {}}, "rois"), ({"rois": [], "extra": 1}, "rois"), ({}, "rois"),
    ({"rois": [roi()] * 2}, "unique"), ({"rois": [roi(f"r{i}", i, i + 1, 0, 1) for i in range(9)]}, "at most 8"),
    ({"rois": [roi("")]}, "name"), ({"rois": [roi("x" * 33)]}, "name"), ({"rois": [roi("a b")]}, "name"),
    ({"rois": [roi("<img>")]}, "name"), ({"rois": [roi(name=7)]}, "name"),
    ({"rois": [roi(x0=1.0)]}, "integers"), ({"rois": [roi(x0=True)]}, "integers"), ({"rois": [roi(y1="3")]}, "integers"),
    ({"rois": [roi(x0=13, x1=13)]}, "x0 < x1"), ({"rois": [roi(x0=14, x1=13)]}, "x0 < x1"),
    ({"rois": [roi(y0=22, y1=20)]}, "y0 < y1"), ({"rois": [roi(x0=-1)]}, "inside"), ({"rois": [roi(x1=65)]}, "inside"),
    ({"rois": [roi(y1=49)]}, "64 × 48"), ({"rois": [{**roi(), "colour": "red"}]}, "keys"),
    ({"rois": [{"name": "a", "x0": 0, "x1": 1, "y0": 0}]}, "keys"), ({"rois": ["spot"]}, "keys"),
]


@pytest.mark.parametrize(("body", "word"), BAD_BODIES, ids=lambda v: str(v)[:40])
def test_bad_regions_are_refused_with_a_reason_and_change_nothing(http, body, word) -> None:
    put_rois(http, {"rois": [roi("kept")]})
    assert word in refused(put_rois(http, body))
    assert http.get("/api/rois?camera=cam-a").get_json() == {"rois": [roi("kept")]}


def test_regions_need_an_image_to_be_checked_against(http) -> None:
    assert "no image" in refused(put_rois(http, {"rois": [roi()]}, camera="cam-b"))
    assert put_rois(http, {"rois": []}, camera="cam-b").status_code == 200


def test_a_too_large_body_is_refused(http) -> None:
    assert put_rois(http, b"{" + b" " * (1024 * 1024 + 10) + b"}").status_code == 413


def test_region_values_of_every_pulse_go_into_the_csv(http, camera) -> None:
    put_rois(http, {"rois": [roi(), roi("row0", 0, 64, 0, 1)]})
    for k in range(1, 4):
        camera.feed(camera_values(IMAGE + k))
    frame = pd.read_csv(io.BytesIO(http.get("/api/readings.csv?camera=cam-a").data))
    spot = IMAGE[20:22, 10:13].astype(np.float64)
    for k, row in zip(range(1, 4), frame.iloc[1:].itertuples()):
        assert row.roi_spot_sum == spot.sum() + 6 * k == 123_066 + 6 * k
        assert row.roi_spot_mean == spot.mean() + k and row.roi_spot_max == 21_012 + k
        assert row.roi_row0_sum == sum(range(64)) + 64 * k and row.roi_row0_max == 63 + k
    assert np.isnan(frame.iloc[0]["roi_spot_sum"])  # the pulse before the regions were set


# ------------------------------------------------------------------------------------------ /api/background


def test_background_grab_average_and_subtraction(http, camera) -> None:
    assert http.get("/api/background?camera=cam-a").get_json() == {
        "camera": "cam-a", "state": "none", "grab": None, "background": None, "error": ""}
    started = http.post("/api/background?camera=cam-a&frames=3")
    assert started.status_code == 200
    assert started.get_json()["state"] == "grabbing" and started.get_json()["grab"] == {"frames": 3, "done": 0}
    darks = [np.full((48, 64), 10 * k, np.uint32) for k in (1, 2, 6)]  # mean 30
    camera.feed(camera_values(darks[0]))
    assert http.get("/api/background").get_json()["grab"] == {"frames": 3, "done": 1}
    for dark in darks[1:]:
        camera.feed(camera_values(dark))
    state = http.get("/api/background?camera=cam-a").get_json()
    assert state["state"] == "ready" and state["grab"] is None
    described = state["background"]
    assert (described["frames"], described["width"], described["height"], described["camera"]) == (3, 64, 48, "cam-a")
    camera.feed(camera_values(IMAGE))
    pixel = http.get("/api/pixel?col=5&row=7&bg=1").get_json()
    assert (pixel["value"], pixel["raw"], pixel["background"]) == (7005 - 30, 7005, True)
    assert http.get("/api/pixel?col=0&row=0&bg=1").get_json()["value"] == -30
    meta, parts = decode(http.get("/api/frame?bg=1&w=64&h=48").data)
    assert meta["processing"]["background"] is True and meta["peak"] == 47063 - 30
    assert np.array_equal(parts["x_profile"], (IMAGE.sum(axis=0) - 30 * 48).astype(np.float32))
    assert http.get("/api/pixel?col=5&row=7").get_json()["value"] == 7005  # another browser, without bg


def test_background_clear_and_bad_frame_counts(http, camera) -> None:
    http.post("/api/background?frames=1")
    camera.feed(camera_values(IMAGE))
    assert http.get("/api/background").get_json()["state"] == "ready"
    assert http.delete("/api/background?camera=cam-a").get_json()["state"] == "none"
    for frames in ("0", "1001", "x", "-3", "2.5"):
        assert "frames" in refused(http.post(f"/api/background?frames={frames}"))
    assert http.post("/api/background").get_json()["grab"] == {"frames": 10, "done": 0}  # default 10


def test_background_is_kept_across_restarts_in_the_data_dir(tmp_path: Path) -> None:
    first = FedCamera("SLG-LCAM-C102", limits=Limits(data_dir=tmp_path))
    http = fed_app(first).server.test_client()
    http.post("/api/background?frames=2")
    for value in (4, 8):
        first.feed(camera_values(np.full((48, 64), value, np.uint32)))
    before = http.get("/api/background").get_json()["background"]
    assert (tmp_path / "SLG-LCAM-C102" / "background.npz").exists()
    again = FedCamera("SLG-LCAM-C102", limits=Limits(data_dir=tmp_path))  # the server restarted
    http = fed_app(again).server.test_client()
    assert http.get("/api/background").get_json()["background"] == before
    again.feed(camera_values(IMAGE))
    assert http.get("/api/pixel?col=1&row=1&bg=1").get_json()["value"] == 1001 - 6
    http.delete("/api/background")
    assert not (tmp_path / "SLG-LCAM-C102" / "background.npz").exists()


# ------------------------------------------------------------------------------------------ /api/snapshot.h5


def snapshot(http, query: str = "") -> tuple[h5py.File, Any]:
    reply = http.get("/api/snapshot.h5" + query)
    assert reply.status_code == 200, reply.data[:300]
    assert reply.mimetype == "application/x-hdf5"
    return h5py.File(io.BytesIO(reply.data), "r"), reply


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_snapshot_holds_the_frame_as_received_with_its_pulses_channels(dtype) -> None:
    camera = FedCamera("SLG-LCAM-C102:FPICTURE", address="tcp://sf-cam:9000")
    image = designed_image(48, 64, dtype=dtype)
    camera.feed({**camera_values(image, energy=5.125), "counter": np.int32(-7), "a/b": 2.5},
                pulse_id=15_000_000_042, timestamp=T0 + 0.25)
    http = fed_app(camera).server.test_client()
    h5, reply = snapshot(http)
    with h5:
        assert h5["image"].dtype == np.dtype(dtype) and h5["image"].shape == (48, 64)
        assert np.array_equal(h5["image"][()], image)
        assert h5["pulse_id"].dtype == np.int64 and h5["pulse_id"][()] == 15_000_000_042
        assert h5["timestamp"].dtype == np.float64 and h5["timestamp"][()] == T0 + 0.25
        channels = {h5["channels"][key].attrs["name"]: h5["channels"][key][()] for key in h5["channels"]}
        assert channels == {"beam_energy": 5.125, "repetition_rate": 100.0, "counter": -7.0, "a/b": 2.5}
        assert set(h5["channels"]) == {"beam_energy", "repetition_rate", "counter", "a%2Fb"}
        assert h5.attrs["camera"] == "SLG-LCAM-C102:FPICTURE" and h5.attrs["stream"] == "tcp://sf-cam:9000"
        assert json.loads(h5.attrs["processing"]) == {"average": 1, "background": False}
        assert h5.attrs["time_utc"] == "2027-01-15T08:00:00.250000Z"
    disposition = reply.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="SLG-LCAM-C102_FPICTURE_pulse15000000042_20270115T080000Z.h5"'


def test_snapshot_of_a_kept_frame_with_the_views_processing(http, camera) -> None:
    camera.touch()
    http.post("/api/background?frames=1")
    camera.feed(camera_values(np.zeros((48, 64), np.uint32)))
    for _ in range(3):
        camera.feed(camera_values(IMAGE))
    first = camera.frames.recent()[0]
    h5, _ = snapshot(http, f"?camera=cam-a&seq={first.seq}&avg=4&bg=1")
    with h5:
        assert h5["pulse_id"][()] == first.pulse_id
        processing = json.loads(h5.attrs["processing"])
        assert processing["average"] == 4 and processing["background"] is True
        assert processing["background_frames"] == 1 and processing["background_taken"].endswith("Z")
        assert h5["image"].dtype == IMAGE.dtype  # the frame as received, not processed


def test_snapshot_refuses_what_is_not_there(http) -> None:
    assert "no frame" in refused(http.get("/api/snapshot.h5?camera=cam-b"), 404)
    assert "no longer kept" in refused(http.get("/api/snapshot.h5?seq=999"), 404)
    assert "avg" in refused(http.get("/api/snapshot.h5?avg=0"))
    assert "client" in refused(http.get("/api/snapshot.h5?client=%3Cscript%3E"))


# ------------------------------------------------------------------------------------------ writes from other sites


WRITES = [("put", "/api/rois", json.dumps({"rois": []})), ("post", "/api/background?frames=1", None),
          ("delete", "/api/background", None), ("post", "/api/hold?client=p", None), ("delete", "/api/hold?client=p", None)]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_from_another_site_are_refused_and_scripts_accepted(http, method, path, body) -> None:
    call = getattr(http, method)
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://evil.example"}, {"Origin": "http://localhost:9999"}):
        reply = call(path, data=body, headers={**JSON, **headers})
        assert reply.status_code == 403, (headers, reply.status_code)
        assert b"own pages" in reply.data
    for headers in ({}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost"}):
        assert call(path, data=body, headers={**JSON, **headers}).status_code == 200, headers


def test_reads_from_another_sites_page_are_refused_but_its_links_open(http) -> None:
    assert http.get("/api/rois", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}).status_code == 403
    followed = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert http.get("/api/rois", headers=followed).status_code == 200


# ------------------------------------------------------------------------------------------ the tools panel (Dash)


@pytest.fixture
def page(camera) -> Any:
    from tests.dash_client import DashClient

    page = DashClient.flask(fed_app(camera, argv=["-d", "0.01"]))
    page.load()
    return page


def test_a_region_drawn_on_the_image_becomes_a_shared_region(page, camera) -> None:
    from components import ids
    from tests.dash_client import text_of

    page.set(ids.ROI_NAME, "value", "spot", fire=False)
    drawn = {"type": "rect", "x0": 9.8, "x1": 12.2, "y0": 21.7, "y1": 19.6, "line": {"color": "#2ecc71"}}
    update = page.set(ids.IMAGE_GRAPH, "relayoutData", {"shapes": [drawn]})
    assert update[ids.ROI_MESSAGE]["children"] == ""
    assert text_of(update[ids.ROI_LIST]["children"]).startswith("spot: x 10–13, y 20–22 px")
    assert json.loads(page.get("/api/rois").raw) == {"rois": [roi()]}
    camera.feed(camera_values(IMAGE))
    readings = page.readings()
    assert readings[ids.ROI_VALUES]["children"] == "spot: Σ 1.231e+05, max 21012"
    figure = page.value(ids.IMAGE_GRAPH, "figure")  # rebuilt when the regions changed
    assert [shape["name"] for shape in figure["layout"]["shapes"]] == ["spot"]
    # The figure now holds our named rectangle; a second one drawn without a name gets one.
    second = page.set(ids.IMAGE_GRAPH, "relayoutData", {"shapes": [*figure["layout"]["shapes"], {
        "type": "rect", "x0": 0, "x1": 3, "y0": 0, "y1": 3}]})
    assert "roi1: x 0–4, y 0–4 px" in text_of(second[ids.ROI_LIST]["children"])


def test_regions_are_deleted_one_by_one_or_all(page) -> None:
    from components import ids
    from tests.dash_client import text_of

    three = {"rois": [roi("a", 0, 1, 0, 1), roi("b", 1, 2, 1, 2), roi("c", 2, 3, 2, 3)]}
    assert page.json("PUT", "/api/rois", three).status == 200
    listed = page.tools()
    assert text_of(listed[ids.ROI_LIST]["children"]).count("×") == 3  # a delete button per region
    after = page.click('{"name":"b","type":"roi-delete"}')
    assert [r["name"] for r in json.loads(page.get("/api/rois").raw)["rois"]] == ["a", "c"]
    assert "b:" not in text_of(after[ids.ROI_LIST]["children"])
    page.click(ids.ROI_CLEAR)
    assert json.loads(page.get("/api/rois").raw) == {"rois": []}


def test_a_ninth_drawn_region_is_refused_with_a_message(page) -> None:
    from components import ids

    assert page.json("PUT", "/api/rois", {"rois": [roi(f"r{i}", i, i + 1, 0, 1) for i in range(8)]}).status == 200
    update = page.set(ids.IMAGE_GRAPH, "relayoutData", {"shapes": [{"type": "rect", "x0": 1, "x1": 5, "y0": 1,
                                                                     "y1": 5}]})
    assert update[ids.ROI_MESSAGE]["children"] == "at most 8 regions"
    assert len(json.loads(page.get("/api/rois").raw)["rois"]) == 8


def test_background_buttons(page, camera) -> None:
    from components import ids

    page.set(ids.BACKGROUND_FRAMES, "value", 2, fire=False)
    assert page.click(ids.BACKGROUND_GRAB)[ids.BACKGROUND_STATE]["children"] == "grabbing 0 / 2 frames…"
    camera.feed(camera_values(np.full((48, 64), 3, np.uint32)))
    assert page.tools()[ids.BACKGROUND_STATE]["children"] == "grabbing 1 / 2 frames…"
    camera.feed(camera_values(np.full((48, 64), 5, np.uint32)))
    ready = page.tools()[ids.BACKGROUND_STATE]["children"]
    assert ready.startswith("2 frames, 64 × 48 px, ") and ready.endswith(" UTC")
    camera.feed(camera_values(IMAGE))
    assert page.pixel(7, 0, bg=1).body["value"] == 7 - 4
    assert page.click(ids.BACKGROUND_CLEAR)[ids.BACKGROUND_STATE]["children"] == "none"
    page.set(ids.BACKGROUND_FRAMES, "value", 5000, fire=False)
    assert "between 1 and 1000" in page.click(ids.BACKGROUND_GRAB)[ids.BACKGROUND_STATE]["children"]


def test_a_deeply_nested_region_body_is_refused_with_a_reason(page) -> None:
    nested = ("[" * 20_000 + "]" * 20_000).encode()  # within the size limit, beyond the parser's depth
    reply = page.request("PUT", "/api/rois", nested, {"Content-Type": "application/json"})
    assert reply.status == 400 and b"JSON" in reply.raw and b"Traceback" not in reply.raw
