"""The dashboard end to end over HTTP, built and served as `main()` does (app.build_registry,
app.create_app, web.serve.Server): on the built-in simulator; on a `start_stream.py` process (PUSH/PULL
and PUB/SUB); on psi-bsread's `Sender` with values chosen here, so status, CSV, frames, pixel values
and history buckets are compared exactly; on several named streams; on the cam_server stand-in.

The page is played by tests/dash_client.py: Dash callbacks as dash-renderer posts them, frames as
assets/painter.js asks for them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
import zmq

from components import ids
from stream.encoder import Encoder
from stream.statistics import STATS_COLUMNS
from tests.dash_client import DashClient, text_of
from tests.helpers import LOCALHOST, free_port, send_multipart, wait_until
from tests.live_app import LiveApp, app_process, get, running_app
from tests.web_fixtures import T0, camera_values, designed_image

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = ("state", "stream", "simulated", "received", "rate_hz", "invalid", "invalid_by_reason", "missed_pulses",
                 "duplicated_pulses", "reverted_pulses", "last_pulse_id", "last_message_age_s", "channels")
LEAD_COLUMNS = ["pulse_id", "timestamp", "timestamp_epoch"]
LIVE_TIMEOUT_S = 60.0  # generous: a loaded 2-core machine


def status(url: str, camera: str | None = None) -> dict[str, Any]:
    code, body = get(url + "/api/status" + (f"?camera={camera}" if camera else ""))
    assert code == 200, body[:300]
    return json.loads(body)


def wait_status(url: str, predicate: Any, camera: str | None = None, message: str = "") -> dict[str, Any]:
    return wait_until(lambda: (lambda s: s if predicate(s) else None)(status(url, camera)), timeout=LIVE_TIMEOUT_S,
                      interval=0.05, message=message or "status condition")


def readings(url: str, query: str = "") -> pd.DataFrame:
    code, body = get(url + "/api/readings.csv" + query, timeout=30)
    assert code == 200, body[:200]
    return pd.read_csv(io.BytesIO(body))


# ------------------------------------------------------------------------------------------ simulated camera


@pytest.fixture(scope="module")
def sim_app() -> Iterator[LiveApp]:
    with running_app(["--history", "100000", "--diagnostics"]) as live:
        wait_status(live.url, lambda s: s["state"] == "live", message="simulator never went live")
        yield live


def test_status_goes_live_and_counts_grow(sim_app) -> None:
    first = status(sim_app.url)
    assert set(CONTRACT_KEYS) <= set(first)
    assert first["simulated"] is True and first["stream"] == "simulated camera" and first["camera"] == "simulated"
    later = wait_status(sim_app.url, lambda s: s["received"] >= first["received"] + 20)
    assert later["state"] == "live" and later["rate_hz"] > 0
    assert 0 <= later["last_message_age_s"] < 5
    assert later["invalid"] == 0 and later["invalid_by_reason"] == {}
    assert later["missed_pulses"] == later["duplicated_pulses"] == later["reverted_pulses"] == 0
    assert later["last_pulse_id"] == later["received"]  # pulses 1, 2, 3, ... and none missed
    assert {"beam_energy", "repetition_rate"} <= set(later["channels"]) and "image" not in later["channels"]


def test_cameras_lists_the_simulated_camera(sim_app) -> None:
    body = json.loads(get(sim_app.url + "/api/cameras")[1])
    assert body["default"] == "simulated"
    (camera,) = body["cameras"]
    assert camera["name"] == "simulated" and camera["state"] == "live" and camera["watched"] is True


def test_readings_csv_of_the_simulator(sim_app) -> None:
    before = status(sim_app.url)
    frame = readings(sim_app.url)
    after = status(sim_app.url)
    assert list(frame.columns) == LEAD_COLUMNS + after["channels"] + after["computed"]
    assert list(frame.columns[3 + len(after["channels"]):][:len(STATS_COLUMNS)]) == list(STATS_COLUMNS)
    assert before["received"] <= len(frame) <= after["received"]
    assert (np.diff(frame["pulse_id"]) == 1).all() and (np.diff(frame["timestamp_epoch"]) > 0).all()
    parsed = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    assert np.allclose(seconds, frame["timestamp_epoch"], atol=1e-6, rtol=0)
    assert abs(frame["timestamp_epoch"].iloc[-1] - time.time()) < 60  # the simulator stamps wall-clock time
    assert frame["beam_energy"].between(5.0, 5.5).all() and (frame["repetition_rate"] == 100.0).all()


def test_readings_csv_window_is_the_last_seconds_of_pulse_time(sim_app) -> None:
    wait_status(sim_app.url, lambda s: s["received"] > 300)
    code, body = get(sim_app.url + "/api/readings.csv?seconds=1", timeout=30)
    frame = pd.read_csv(io.BytesIO(body))
    stamps = frame["timestamp_epoch"]
    assert len(frame) >= 50 and stamps.iloc[-1] - stamps.iloc[0] <= 1.0
    everything = readings(sim_app.url)
    older = everything[everything["timestamp_epoch"] < stamps.iloc[-1] - 1.0]
    assert len(older) > 0 and older["pulse_id"].max() < frame["pulse_id"].min()


def test_the_frame_loop_like_the_painter(sim_app) -> None:
    page = DashClient.http(sim_app.url)
    page.load()
    first = page.frame(880, 560)
    assert first.status == 200
    meta, parts = first.body
    assert meta["camera"] == "simulated" and meta["shape"] == [480, 640] and meta["dtype"] == "float64"
    assert meta["cols"] <= 440 and meta["rows"] <= 280 and parts["levels"].size == meta["rows"] * meta["cols"]
    assert parts["levels"].max() > parts["levels"].min()  # a beam spot, not a flat frame
    assert parts["x_profile"].size == meta["cols"] and parts["y_profile"].size == meta["rows"]
    stream = page.stream_header(first)
    assert stream["state"] == "live" and stream["rate_hz"] > 50
    newer = wait_until(lambda: (lambda r: r if r.status == 200 else None)(page.frame(880, 560)), LIVE_TIMEOUT_S)
    assert newer.body[0]["seq"] > meta["seq"] and newer.body[0]["pulse_id"] > meta["pulse_id"]
    page.close()


def test_one_render_is_shared_by_every_page_with_the_same_view(sim_app) -> None:
    pages = [DashClient.http(sim_app.url) for _ in range(4)]
    for page in pages:
        page.load()
        page.set(ids.COLORMAP, "value", "Cividis", fire=False)  # a view no other test uses
        page.set(ids.SCALE, "value", "log", fire=False)

    def diagnostics() -> int:
        return json.loads(get(sim_app.url + "/api/diagnostics")[1])["renders"]

    before = diagnostics()
    seqs = set()
    for _ in range(3):
        for page in pages:
            reply = page.frame(500, 400)
            if reply.status == 200:
                seqs.add(reply.body[0]["seq"])
    assert diagnostics() - before <= len(seqs) + 1  # each frame rendered once for the four pages
    for page in pages:
        page.close()


def test_readings_and_health_callbacks(sim_app) -> None:
    page = DashClient.http(sim_app.url)
    loaded = page.load()
    assert loaded[ids.STREAM_STATE] == {"children": "live", "color": "success"}
    assert loaded[ids.SIMULATED_BADGE]["style"] == {"display": "inline-block"}
    assert loaded[ids.STREAM_LABEL]["children"] == "simulated camera"
    update = page.readings()
    assert update[ids.BEAM_ENERGY]["children"].endswith(" GeV")
    assert update[ids.REPETITION_RATE]["children"] == "100.00 Hz"
    assert update[ids.IMAGE_SIZE]["children"] == "640 × 480 px"
    assert int(update[ids.PULSE_ID]["children"]) >= 1
    health = page.health()
    assert health[ids.STREAM_STATE] == {"children": "live", "color": "success"}
    assert health[ids.STREAM_RATE]["children"].endswith(" Hz")
    assert ids.HEALTH_PANEL not in health  # the folded details are not built
    page.click(ids.HEALTH_TOGGLE)
    assert "invalid messages|0" in text_of(page.health()[ids.HEALTH_PANEL]["children"])
    figure = page.value(ids.IMAGE_GRAPH, "figure")
    assert figure["layout"]["meta"]["shape"] == [480, 640]  # built when the geometry arrived
    assert page.readings().get(ids.IMAGE_GEOMETRY) is None  # unchanged geometry: the figure stays
    from web.render import colorscale

    recoloured = page.set(ids.COLORMAP, "value", "Jet")
    assert recoloured[ids.IMAGE_GRAPH]["figure"]["data"][0]["colorscale"] == colorscale("Jet")
    page.set(ids.RANGE_MODE, "value", "manual", fire=False)
    page.set(ids.RANGE_MIN, "value", 5, fire=False)
    refused = page.set(ids.RANGE_MAX, "value", 1)
    assert refused[ids.RANGE_MESSAGE]["children"] == "min must be less than max"
    assert page.set(ids.RANGE_MAX, "value", 50)[ids.RANGE_MESSAGE]["children"] == ""
    assert page.click(ids.HEALTH_TOGGLE)[ids.HEALTH_DETAILS]["is_open"] is False  # unfolded above: folds
    assert page.click(ids.TOOLS_BUTTON)[ids.TOOLS]["is_open"] is True
    page.close()


def test_history_full_figures_then_increments(sim_app) -> None:
    wait_status(sim_app.url, lambda s: s["received"] > 300)
    page = DashClient.http(sim_app.url)
    loaded = page.load()
    figure = loaded[ids.ENERGY_HISTORY]["figure"]
    assert figure["layout"]["xaxis"]["title"]["text"] == "time (UTC)"
    band, mean = figure["data"]
    assert mean["name"] == "energy" and band["fill"] == "toself"
    shown = [y for y in mean["y"] if y is not None]
    assert shown and all(5.0 <= y <= 5.5 for y in shown)
    quads = [band["y"][i:i + 5] for i in range(0, len(band["y"]), 5)]
    assert len(quads) == len(mean["y"])
    assert all(q[2] <= m <= q[0] for q, m in zip(quads, mean["y"]) if m is not None)
    response = page.value(ids.HISTORY_RESPONSE, "data")
    wait_status(sim_app.url, lambda s: s["last_message_age_s"] is not None and
                s["received"] > 300 + 3 * 100 * response["w"])
    time.sleep(3 * response["w"])  # pulse time must pass for more buckets to complete (the simulator is real time)
    tick = page.history()
    assert all("figure" not in value for key, value in tick.items() if key != ids.HISTORY_RESPONSE)
    extend = tick[ids.ENERGY_HISTORY]["extendData"]
    data, traces, max_points = extend
    assert traces == [0, 1] and max_points["y"][1] >= len(mean["x"]) and max_points["y"][0] == 5 * max_points["y"][1]
    assert data["x"][1][0] == pytest.approx(mean["x"][-1] + 1000 * response["w"], abs=0.2)  # the next bucket
    pulses = page.set(ids.HISTORY_XAXIS, "value", "pulse_id")
    axis = pulses[ids.ENERGY_HISTORY]["figure"]["layout"]["xaxis"]
    assert axis["tickformat"] == "d" and axis["title"]["text"] == "pulse id"
    page.close()


def test_a_fourth_chart_of_a_chosen_channel(sim_app) -> None:
    page = DashClient.http(sim_app.url)
    page.load()
    reply = page.set(ids.CHANNEL_SELECT, "value", "image_size_x")
    figure = reply[ids.CHANNEL_HISTORY]["figure"]
    assert figure["data"][1]["name"] == "image_size_x"
    assert {y for y in figure["data"][1]["y"] if y is not None} == {640.0}
    options = page.value(ids.CHANNEL_SELECT, "options")
    assert {"label": "beam_energy", "value": "beam_energy"} in options
    assert {"label": "beam_rms_x (computed)", "value": "beam_rms_x"} in options
    page.close()


def test_export_button_links_to_the_windows_csv(sim_app) -> None:
    page = DashClient.http(sim_app.url)
    loaded = page.load()
    assert loaded[ids.EXPORT_BUTTON]["href"] == "api/readings.csv?camera=simulated&seconds=60"
    assert page.set(ids.HISTORY_WINDOW, "value", "1 h")[ids.EXPORT_BUTTON]["href"].endswith("seconds=3600")
    assert page.set(ids.HISTORY_WINDOW, "value", "all")[ids.EXPORT_BUTTON]["href"] == "api/readings.csv?camera=simulated"
    code, content = get(sim_app.url + "/api/readings.csv?camera=simulated&seconds=60")
    assert code == 200
    frame = pd.read_csv(io.BytesIO(content))
    assert list(frame.columns[:3]) == LEAD_COLUMNS and len(frame) > 10
    assert (np.diff(frame["pulse_id"]) == 1).all()
    assert frame["timestamp_epoch"].iloc[-1] - frame["timestamp_epoch"].iloc[0] <= 60
    page.close()


def test_page_and_assets_are_served(sim_app) -> None:
    code, body = get(sim_app.url + "/")
    assert code == 200 and b"Stream Online Viewer" in body
    for asset in ("painter.js", "sov.js", "overlay.js", "hover.js", "tools.js", "viewer.css"):
        code, _ = get(sim_app.url + "/assets/" + asset)
        assert code == 200, asset


# ------------------------------------------------------------------------------------------ start_stream.py


@contextlib.contextmanager
def start_stream(port: int, *args: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, str(ROOT / "start_stream.py"), "-o", str(port), "--bind-host",
                                LOCALHOST, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.mark.slow
@pytest.mark.parametrize(("sender_mode", "app_mode"), [("push", "pull"), ("pub", "sub")])
def test_app_on_a_start_stream_process(sender_mode: str, app_mode: str) -> None:
    port = free_port()
    with start_stream(port, "-d", "0.01", "-n", "-1", "--size", "160x120", "--mode", sender_mode) as sender:
        with app_process(["-o", str(port), "--mode", app_mode, "--history", "20000"]) as (url, _):
            first = wait_status(url, lambda s: s["state"] == "live")
            assert sender.poll() is None
            assert first["simulated"] is False and first["stream"] == f"tcp://127.0.0.1:{port}"
            assert first["camera"] == "stream"
            assert {"beam_energy", "repetition_rate", "image_size_x", "image_size_y"} <= set(first["channels"])
            assert "image" not in first["channels"] and "image_profile_x" not in first["channels"]
            frame = readings(url)
            later = status(url)
            steps = np.diff(frame["pulse_id"])
            assert (steps >= 1).all() and later["invalid"] == 0
            if sender_mode == "push":  # PUSH waits for its peer: nothing lost, the first pulse (1) arrives too
                assert (steps == 1).all() and later["missed_pulses"] == 0
                assert frame["pulse_id"].iloc[0] == 1
            else:  # PUB drops for a subscriber that falls behind (a starved machine): every gap is counted
                assert int((steps - 1).sum()) <= later["missed_pulses"]
            assert (frame["image_size_x"] == 160).all() and (frame["image_size_y"] == 120).all()
            page = DashClient.http(url)
            page.load()
            reply = page.frame()
            assert reply.status == 200 and reply.body[0]["shape"] == [120, 160]
            page.close()


# ------------------------------------------------------------------------------------------ psi-bsread Sender


class BsreadCamera:
    """psi-bsread's Sender with designed frames (pixel value col + 1000 * row + 10 * index) and chosen values."""

    def __init__(self, port: int) -> None:
        import bsread

        self.sender = bsread.Sender(port=port, address=f"tcp://{LOCALHOST}", mode=bsread.PUSH, block=True,
                                    send_timeout=20_000, start_pulse_id=0)
        self.sender.open()
        self.sent: list[dict[str, Any]] = []

    def send(self, count: int, first_pulse_id: int | None = None) -> None:
        for _ in range(count):
            index = len(self.sent)
            pulse_id = first_pulse_id if first_pulse_id is not None and index == 0 else (
                self.sent[-1]["pulse_id"] + 1 if self.sent else 15_000_000_000)
            image = (designed_image(48, 64) + 10 * (index % 5)).astype(np.uint16)
            values = {"beam_energy": 5.0 + 0.01 * index, "repetition_rate": 100.0, "image": image}
            stamp = T0 + 0.0625 * index  # 16 Hz of pulse time, exact in binary
            self.sender.send(data=values, pulse_id=pulse_id, timestamp=stamp)
            self.sent.append({"pulse_id": pulse_id, "timestamp": stamp, **values})

    def close(self) -> None:
        self.sender.close()


@pytest.fixture(scope="module")
def bsread_app() -> Iterator[tuple[LiveApp, BsreadCamera]]:
    pytest.importorskip("bsread")
    port = free_port()
    with running_app(["-o", str(port), "--history", "1000", "-d", "0.05"]) as live:
        camera = BsreadCamera(port)
        try:
            assert status(live.url)["state"] == "waiting"
            camera.send(80, first_pulse_id=15_000_000_000)
            wait_status(live.url, lambda s: s["received"] >= 80)
            yield live, camera
        finally:
            camera.close()


def test_bsread_sender_status_and_channels(bsread_app) -> None:
    live, camera = bsread_app
    doc = status(live.url)
    assert doc["state"] == "live" and doc["simulated"] is False and doc["received"] == len(camera.sent)
    assert doc["last_pulse_id"] == camera.sent[-1]["pulse_id"]
    assert doc["channels"] == ["beam_energy", "repetition_rate"]  # the image is not a scalar channel
    assert doc["missed_pulses"] == 0 and doc["invalid"] == 0


def test_bsread_sender_readings_are_exact(bsread_app) -> None:
    live, camera = bsread_app
    frame = readings(live.url)
    assert list(frame.columns[:5]) == LEAD_COLUMNS + ["beam_energy", "repetition_rate"]
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in camera.sent]
    assert list(frame["beam_energy"]) == [row["beam_energy"] for row in camera.sent]
    assert list(frame["timestamp_epoch"]) == [row["timestamp"] for row in camera.sent]
    assert frame["timestamp"].iloc[0] == "2027-01-15T08:00:00.000000Z"
    assert frame["timestamp"].iloc[1] == "2027-01-15T08:00:00.062500Z"


def test_bsread_sender_frame_and_pixels_are_exact(bsread_app) -> None:
    live, camera = bsread_app
    page = DashClient.http(live.url)
    page.load()
    last = camera.sent[-1]
    reply = page.frame(128, 96, zmin=0, zmax=254_000)
    meta, parts = reply.body
    assert meta["pulse_id"] == last["pulse_id"] and meta["dtype"] == "uint16" and meta["shape"] == [48, 64]
    assert meta["bin"] == 1  # small frame: native resolution
    levels = parts["levels"].reshape(48, 64)
    assert np.array_equal(levels, np.repeat(np.arange(48)[:, None], 64, axis=1))  # level = row
    assert np.array_equal(parts["x_profile"], last["image"].sum(axis=0).astype(np.float32))
    for col, row in ((0, 0), (63, 47), (20, 30)):
        pixel = page.pixel(col, row, seq=meta["seq"]).body
        assert pixel["value"] == int(last["image"][row, col]) and pixel["pulse_id"] == last["pulse_id"]
    texts = page.readings()
    assert texts[ids.PULSE_ID]["children"] == str(last["pulse_id"])  # all 11 digits
    assert texts[ids.BEAM_ENERGY]["children"] == f"{last['beam_energy']:.4f} GeV"
    assert texts[ids.IMAGE_SIZE]["children"] == "64 × 48 px"  # width × height: bsread's shape order undone
    page.close()


def test_bsread_sender_history_buckets_are_the_csv_rows(bsread_app) -> None:
    live, camera = bsread_app
    page = DashClient.http(live.url)
    page.load()
    band, mean = page.value(ids.ENERGY_HISTORY, "figure")["data"]
    band_max, band_min = band["y"][0::5], band["y"][2::5]  # each bucket: max, max, min, min, gap
    width = page.value(ids.HISTORY_RESPONSE, "data")["w"]
    frame = readings(live.url, "?seconds=60")
    groups = frame.groupby(np.floor(frame["timestamp_epoch"] / width))["beam_energy"]
    complete = [key for key in groups.groups if key < math.floor(frame["timestamp_epoch"].iloc[-1] / width)]
    expected = {(k + 0.5) * width * 1000: (groups.get_group(k).min(), groups.get_group(k).mean(),
                                           groups.get_group(k).max()) for k in complete}
    shown = {x: (lo, m, hi) for x, lo, m, hi in zip(mean["x"], band_min, mean["y"], band_max) if m is not None}
    assert len(expected) >= 20 and sorted(shown) == pytest.approx(sorted(expected), abs=0.05)  # the same buckets
    for (x, got), want in zip(sorted(shown.items()), [expected[k] for k in sorted(expected)]):
        assert got == pytest.approx(want, rel=1e-12), x  # min, mean, max of the same rows
    page.close()


def test_bsread_sender_going_quiet_marks_the_stream_stalled_then_live(bsread_app) -> None:
    """Runs after the other bsread tests: the sender stops sending, the page must say so."""
    live, camera = bsread_app
    page = DashClient.http(live.url)
    page.load()
    assert page.frame().status == 200
    doc = wait_status(live.url, lambda s: s["state"] == "stalled", message="never stalled")
    assert doc["last_message_age_s"] > doc["stall_limit_s"] and doc["received"] == len(camera.sent)
    quiet = page.frame()
    assert quiet.status == 204 and page.stream_header(quiet)["state"] == "stalled"
    assert page.stream_header(quiet)["age_s"] > page.stream_header(quiet)["stall_limit_s"]
    health = page.health()
    assert health[ids.STREAM_STATE] == {"children": "stalled", "color": "danger"}
    assert page.readings()[ids.PULSE_ID]["children"] == str(camera.sent[-1]["pulse_id"])  # the last values stay
    camera.send(5)
    wait_status(live.url, lambda s: s["state"] == "live" and s["received"] == len(camera.sent))
    back = wait_until(lambda: (lambda r: r if r.status == 200 else None)(page.frame()), LIVE_TIMEOUT_S)
    assert back.body[0]["pulse_id"] == camera.sent[-1]["pulse_id"] and page.stream_header(back)["state"] == "live"
    page.close()


def test_before_the_first_message_everything_answers() -> None:
    """Pointed at a stream that never sends: status, CSV, frames, readings and history all answer."""
    with running_app(["-o", str(free_port())]) as live:
        doc = status(live.url)
        assert doc["state"] == "waiting" and doc["received"] == 0
        assert doc["last_pulse_id"] is None and doc["last_message_age_s"] is None and doc["channels"] == []
        frame = readings(live.url)
        assert len(frame) == 0 and list(frame.columns) == LEAD_COLUMNS + list(STATS_COLUMNS)
        page = DashClient.http(live.url)
        loaded = page.load()
        assert loaded[ids.PULSE_ID]["children"] == "—" and loaded[ids.STREAM_STATE]["children"] == "waiting"
        reply = page.frame()
        assert reply.status == 204 and page.stream_header(reply)["state"] == "waiting"
        assert json.loads(get(live.url + "/api/pixel?col=0&row=0")[1]) == {"error": "no frame yet"}
        assert loaded[ids.ENERGY_HISTORY]["figure"]["data"][1]["x"] == []
        tick = page.history()
        assert all("extendData" not in value and "figure" not in value for value in tick.values())
        page.close()


# ------------------------------------------------------------------------------------------ several streams


class Pushers:
    """One PUSH per named stream, bound on 127.0.0.1, sending designed frames with our Encoder."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.context = zmq.Context()
        self.sockets, self.addresses, self.encoders = {}, {}, {}
        for name in names:
            sock = self.context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            port = sock.bind_to_random_port(f"tcp://{LOCALHOST}")
            self.sockets[name], self.addresses[name], self.encoders[name] = sock, f"tcp://{LOCALHOST}:{port}", Encoder()

    def send(self, name: str, pulse_id: int, image: np.ndarray, **extra: Any) -> None:
        parts = self.encoders[name].encode(pulse_id, T0 + pulse_id * 0.01, camera_values(image, **extra))
        send_multipart(self.sockets[name], parts)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close(0)
        self.context.term()


def test_several_named_streams_each_with_its_own_history_and_frames() -> None:
    pushers = Pushers(("SLG-LCAM-C102", "cam2"))
    try:
        argv = [arg for name, address in pushers.addresses.items() for arg in ("--stream", f"{name}={address}")]
        with running_app(argv) as live:
            for pulse in range(1, 21):
                pushers.send("SLG-LCAM-C102", pulse, designed_image(48, 64), energy=5.5)
            for pulse in range(101, 106):
                pushers.send("cam2", pulse, designed_image(20, 30, dtype=np.uint16), energy=6.5)
            a = wait_status(live.url, lambda s: s["received"] == 20, camera="SLG-LCAM-C102")
            b = wait_status(live.url, lambda s: s["received"] == 5, camera="cam2")
            assert (a["last_pulse_id"], b["last_pulse_id"]) == (20, 105)
            assert a["stream"] == pushers.addresses["SLG-LCAM-C102"] and b["stream"] == pushers.addresses["cam2"]
            assert status(live.url)["camera"] == "SLG-LCAM-C102"  # the first is the default
            listed = json.loads(get(live.url + "/api/cameras")[1])
            assert [c["name"] for c in listed["cameras"]] == ["SLG-LCAM-C102", "cam2"]
            assert list(readings(live.url, "?camera=cam2")["pulse_id"]) == list(range(101, 106))
            assert set(readings(live.url, "?camera=SLG-LCAM-C102")["beam_energy"]) == {5.5}

            page = DashClient.http(live.url)
            page.load(search="?camera=cam2")  # a shared link opens that camera
            assert page.camera() == "cam2"
            assert page.readings()[ids.PULSE_ID]["children"] == "105"
            assert page.frame().body[0]["shape"] == [20, 30]
            switched = page.set(ids.CAMERA_SELECT, "value", "SLG-LCAM-C102")  # the dropdown keeps the URL in step
            assert switched[ids.LOCATION]["search"] == "?camera=SLG-LCAM-C102"
            assert switched[ids.PULSE_ID]["children"] == "20" and switched[ids.IMAGE_SIZE]["children"] == "64 × 48 px"
            assert page.frame().body[0]["camera"] == "SLG-LCAM-C102"
            unknown = page.set(ids.CAMERA_SELECT, "value", "no-such-camera")
            assert "no-such-camera" in unknown[ids.CAMERA_MESSAGE]["children"]
            page.close()
    finally:
        pushers.close()


# ------------------------------------------------------------------------------------------ cam_server stand-in


@pytest.mark.slow
def test_cameras_of_a_camserver_are_offered_watched_and_released() -> None:
    from tests.camserver_standin import CamServerStandIn

    with CamServerStandIn(rate_hz=20, no_client_timeout_s=2.0) as standin:
        with running_app(["--camserver", standin.url, "--grace", "1"]) as live:
            listed = json.loads(get(live.url + "/api/cameras")[1])
            names = [c["name"] for c in listed["cameras"]]
            assert {"simulation", "simulation2", "broken", "dead"} <= set(names) and listed["camserver_error"] == ""
            assert all(c["state"] == "disconnected" for c in listed["cameras"])  # nobody watches yet
            doc = wait_status(live.url, lambda s: s["state"] == "live", camera="simulation")
            assert doc["pipeline"] is True and doc["axes"] == {"x": "µm", "y": "µm"}
            page = DashClient.http(live.url)
            page.load(search="?camera=simulation")
            meta = wait_until(lambda: (lambda r: r.body[0] if r.status == 200 else None)(page.frame()), 30)
            assert meta["x"]["unit"] == "µm" and meta["x"]["step"] < 0  # calibrated, descending as cam_server sends
            layout = page.value(ids.IMAGE_GRAPH, "figure")["layout"]
            assert layout["xaxis"]["title"]["text"] == "x (µm)"
            dead = wait_status(live.url, lambda s: s["state"] == "error", camera="dead")
            assert dead["error"] and "Traceback" not in dead["error"]
            listed = {c["name"]: c for c in json.loads(get(live.url + "/api/cameras")[1])["cameras"]}
            assert listed["simulation"]["watched"] is True and listed["simulation"]["state"] == "live"
            page.close()
            # Nobody watches "simulation" any more: released after the grace period (+ WATCH_S of "watched").
            wait_until(lambda: json.loads(get(live.url + "/api/cameras")[1])["cameras"][
                names.index("simulation")]["state"] == "disconnected", 30, interval=0.2,
                message="camera not released after the grace period")
