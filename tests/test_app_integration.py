"""The dashboard end to end over HTTP: on the built-in simulator, on a `start_stream.py` process
(`-o PORT`, PUSH/PULL and PUB/SUB), and on psi-bsread's `Sender` with values chosen here, so the
status, the CSV, the image payload and the history increments can be checked exactly.

Callbacks are called through `POST /_dash-update-component` with the body dash-renderer sends, built
from the app's own `/_dash-dependencies`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from components import ids
from stream.ring_buffer import STATS_COLUMNS
from tests.helpers import LOCALHOST, free_port, wait_until
from tests.live_app import app_process, get, running_app

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = ("state", "stream", "simulated", "received", "rate_hz", "invalid", "invalid_by_reason", "missed_pulses",
                 "duplicated_pulses", "reverted_pulses", "last_pulse_id", "last_message_age_s", "channels")
LEAD_COLUMNS = ["pulse_id", "timestamp", "timestamp_epoch"]
LIVE_TIMEOUT_S = 60.0  # generous: a loaded 2-core machine


# ------------------------------------------------------------------------------------------------ helpers


def status(url: str) -> dict[str, Any]:
    code, body = get(url + "/api/status")
    assert code == 200
    return json.loads(body)


def wait_live(url: str) -> dict[str, Any]:
    return wait_until(lambda: (lambda s: s if s["state"] == "live" else None)(status(url)), timeout=LIVE_TIMEOUT_S,
                      interval=0.1, message="stream never went live")


def readings(url: str, query: str = "") -> pd.DataFrame:
    code, body = get(url + "/api/readings.csv" + query, timeout=30)
    assert code == 200, body[:200]
    return pd.read_csv(io.BytesIO(body))


class DashClient:
    """Calls server-side callbacks the way dash-renderer does."""

    def __init__(self, url: str) -> None:
        self.url = url
        code, body = get(url + "/_dash-dependencies")
        assert code == 200
        self.deps = [d for d in json.loads(body) if not d.get("clientside_function")]

    def _callback(self, input_id: str) -> dict[str, Any]:
        matches = [d for d in self.deps if any(i["id"] == input_id for i in d["inputs"])]
        assert len(matches) == 1, f"{len(matches)} server callbacks take {input_id}"
        return matches[0]

    def call(self, trigger: str, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """`trigger` is "id.property"; `values` maps "id.property" of inputs and states to values.
        Returns {id: {property: value}} for the outputs that were updated ({} for 204)."""
        dep = self._callback(trigger.rsplit(".", 1)[0])
        out = dep["output"]
        items = out[2:-2].split("...") if out.startswith("..") else [out]
        outputs = [dict(zip(("id", "property"), item.rsplit(".", 1))) for item in items]

        def spec(entry: dict[str, str]) -> dict[str, Any]:
            key = f"{entry['id']}.{entry['property']}"
            return {"id": entry["id"], "property": entry["property"], "value": values.get(key)}

        body = {"output": out, "outputs": outputs if out.startswith("..") else outputs[0],
                "inputs": [spec(i) for i in dep["inputs"]], "changedPropIds": [trigger],
                "state": [spec(s) for s in dep["state"]]}
        request = urllib.request.Request(self.url + "/_dash-update-component", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status == 204:
                return {}
            assert response.status == 200
            return json.loads(response.read())["response"]


def decode_typed(spec: dict[str, str]) -> np.ndarray:
    dtype = {"u1": np.uint8, "f4": np.float32, "f8": np.float64}[spec["dtype"]]
    flat = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    return flat.reshape([int(n) for n in spec["shape"].split(",")]) if "shape" in spec else flat


def patch_assignments(patch: dict[str, Any]) -> dict[tuple, Any]:
    """A serialised dash.Patch -> {location tuple: assigned value}."""
    assert patch.get("__dash_patch_update") == "__dash_patch_update", patch
    return {tuple(op["location"]): op["params"]["value"] for op in patch["operations"] if op["operation"] == "Assign"}


def image_request(client: DashClient, n: int, last: dict | None = None, settings: dict | None = None,
                  view: dict | None = None, size: tuple[int, int] = (700, 560)) -> dict[str, dict[str, Any]]:
    return client.call(f"{ids.IMAGE_REQUEST}.data", {
        f"{ids.IMAGE_REQUEST}.data": {"n": n, "w": size[0], "h": size[1]},
        f"{ids.IMAGE_RESPONSE}.data": last,
        f"{ids.IMAGE_VIEW}.data": view or {},
        f"{ids.IMAGE_SETTINGS}.data": settings or {"colormap": "Viridis", "scale": "linear", "range_mode": "auto"},
    })


def history_request(client: DashClient, n: int, last: dict | None, trigger: str = ids.HISTORY_REQUEST,
                    window: str = "1 min", xaxis: str = "pulse_id", channel: str | None = None) -> dict:
    prop = "data" if trigger == ids.HISTORY_REQUEST else "value"
    return client.call(f"{trigger}.{prop}", {
        f"{ids.HISTORY_REQUEST}.data": {"n": n},
        f"{ids.HISTORY_WINDOW}.value": window,
        f"{ids.HISTORY_XAXIS}.value": xaxis,
        f"{ids.CHANNEL_SELECT}.value": channel,
        f"{ids.HISTORY_RESPONSE}.data": last,
    })


def bucket_means(frame: pd.DataFrame, last_pulse_ids: list[int], k: int, column: str) -> list[float]:
    """Mean of `column` over the k pulses ending at each given pulse id (pulse ids are consecutive here)."""
    by_pulse = frame.set_index("pulse_id")[column]
    return [float(by_pulse.loc[pid - k + 1:pid].mean()) for pid in last_pulse_ids]


# ------------------------------------------------------------------------------------------ simulated camera


@pytest.fixture(scope="module")
def sim_app() -> Iterator[tuple[str, Any, Any]]:
    with running_app(["--history", "100000"]) as served:
        wait_live(served[0])
        yield served


def test_status_goes_live_and_counts_grow(sim_app) -> None:
    url, _, source = sim_app
    first = wait_live(url)
    assert set(CONTRACT_KEYS) <= set(first)
    assert first["simulated"] is True and first["stream"] == "simulated camera"
    later = wait_until(lambda: (lambda s: s if s["received"] >= first["received"] + 20 else None)(status(url)),
                       timeout=LIVE_TIMEOUT_S, message="received did not grow")
    assert later["state"] == "live" and later["rate_hz"] > 0
    assert later["last_message_age_s"] is not None and 0 <= later["last_message_age_s"] < 5
    assert later["invalid"] == 0 and later["invalid_by_reason"] == {}
    assert later["missed_pulses"] == later["duplicated_pulses"] == later["reverted_pulses"] == 0
    # The simulator numbers pulses 1, 2, 3, ... and nothing was missed: one snapshot, so exactly equal.
    assert later["last_pulse_id"] == later["received"]
    assert {"beam_energy", "repetition_rate"} <= set(later["channels"])
    assert "image" not in later["channels"]
    assert later["channels"] == list(source.buffer.scalar_channels)


def test_readings_csv_of_the_simulator(sim_app) -> None:
    url, _, _ = sim_app
    before = status(url)
    frame = readings(url)
    after = status(url)
    channels = after["channels"]
    assert list(frame.columns) == LEAD_COLUMNS + channels + list(STATS_COLUMNS)
    assert before["received"] <= len(frame) <= after["received"]
    pulse_ids = frame["pulse_id"].to_numpy()
    assert (np.diff(pulse_ids) == 1).all()
    assert before["last_pulse_id"] <= pulse_ids[-1] <= after["last_pulse_id"]
    assert (np.diff(frame["timestamp_epoch"]) > 0).all()
    parsed = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    assert np.allclose(seconds, frame["timestamp_epoch"], atol=1e-5, rtol=0)
    assert abs(frame["timestamp_epoch"].iloc[-1] - time.time()) < 60  # the simulator stamps wall-clock time
    assert frame["beam_energy"].between(5.0, 5.5).all()  # the simulator's range (GeV)
    assert (frame["repetition_rate"] == 100.0).all()
    assert frame["beam_centroid_x"].notna().mean() > 0.9


def test_readings_csv_seconds_window_and_headers(sim_app) -> None:
    url, _, _ = sim_app
    wait_until(lambda: status(url)["received"] > 300, timeout=LIVE_TIMEOUT_S)
    request = urllib.request.urlopen(url + "/api/readings.csv?seconds=1", timeout=30)
    assert request.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in request.headers["Content-Disposition"] and ".csv" in request.headers["Content-Disposition"]
    frame = pd.read_csv(io.BytesIO(request.read()))
    stamps = frame["timestamp_epoch"]
    assert len(frame) >= 2
    assert stamps.iloc[-1] - stamps.iloc[0] <= 1.0
    everything = readings(url)
    assert len(everything) > len(frame)
    older = everything[everything["timestamp_epoch"] < stamps.iloc[-1] - 1.0]
    assert len(older) > 0 and older["pulse_id"].max() < frame["pulse_id"].min()


@pytest.mark.parametrize("seconds", ["abc", "-1", "0", "nan", "inf", "1e400", ""])
def test_readings_csv_rejects_bad_seconds(sim_app, seconds: str) -> None:
    url, _, _ = sim_app
    code, body = get(url + "/api/readings.csv?seconds=" + seconds)
    assert code == 400
    assert b"seconds" in body and b"Traceback" not in body


def test_image_callback_like_the_renderer(sim_app) -> None:
    url, dash_app, _ = sim_app
    client = DashClient(url)
    reply = image_request(client, 1)
    response = reply[ids.IMAGE_RESPONSE]["data"]
    assert response["n"] == 1 and response["seq"] is not None and response["pulse_id"] >= 1
    assigned = patch_assignments(reply[ids.IMAGE_GRAPH]["figure"])
    z = decode_typed(assigned[("data", 0, "z")])
    assert z.dtype == np.uint8 and 0 < z.size
    # 700 x 560 px graph: the image area is 80 % x 78 % of it, one level per 2 x 2 screen pixels.
    assert z.shape[1] <= 700 * 0.8 / 2 and z.shape[0] <= 560 * 0.78 / 2
    assert z.max() > z.min()  # a beam spot, not a flat frame
    assert len(decode_typed(assigned[("data", 1, "y")])) == z.shape[1]  # x profile
    assert len(decode_typed(assigned[("data", 2, "x")])) == z.shape[0]  # y profile
    assert int(reply[ids.PULSE_ID]["children"]) >= response["pulse_id"]
    assert reply[ids.BEAM_ENERGY]["children"].endswith("GeV")
    assert reply[ids.REPETITION_RATE]["children"] == "100.00 Hz"
    assert "640 × 480" in reply[ids.IMAGE_SIZE]["children"]

    # The next request of the loop: once a newer frame exists, only the image data goes out again.
    renders = dash_app.frame_cache.renders
    wait_until(lambda: status(url)["last_pulse_id"] > response["pulse_id"] + 2, timeout=LIVE_TIMEOUT_S)
    time.sleep(0.15)  # let the display period (-d 0.1) pass so the cache may render the new frame
    second = image_request(client, 2, last=response)
    newer = second[ids.IMAGE_RESPONSE]["data"]
    assert newer["n"] == 2 and newer["pulse_id"] > response["pulse_id"]
    assigned = patch_assignments(second[ids.IMAGE_GRAPH]["figure"])
    assert ("data", 0, "z") in assigned
    assert ("data", 0, "colorscale") not in assigned  # unchanged settings are not re-sent
    assert dash_app.frame_cache.renders > renders


def test_image_callback_shares_one_render_between_browsers(sim_app) -> None:
    url, dash_app, _ = sim_app
    client = DashClient(url)
    settings = {"colormap": "Cividis", "scale": "log", "range_mode": "auto"}  # a view no other test uses
    first = image_request(client, 1, settings=settings)
    renders = dash_app.frame_cache.renders
    replies = [image_request(client, 1, settings=settings) for _ in range(3)]
    seqs = {r[ids.IMAGE_RESPONSE]["data"]["seq"] for r in [first, *replies]}
    # Within one display period every browser gets the cached frame; at most a new frame per period.
    assert dash_app.frame_cache.renders - renders <= len(seqs)
    assert patch_assignments(first[ids.IMAGE_GRAPH]["figure"])[("data", 0, "colorscale")] == "Cividis"


def test_history_full_figure_then_increments(sim_app) -> None:
    url, _, _ = sim_app
    client = DashClient(url)
    wait_until(lambda: status(url)["received"] > 200, timeout=LIVE_TIMEOUT_S)
    full = history_request(client, 1, None, trigger=ids.HISTORY_WINDOW)
    response = full[ids.HISTORY_RESPONSE]["data"]
    k = response["k"]
    figure = full[ids.ENERGY_HISTORY]["figure"]
    trace = figure["data"][0]
    assert trace["name"] == "beam_energy" and figure["layout"]["xaxis"]["title"]["text"] == "pulse id"
    assert len(trace["x"]) >= 2
    assert ids.ENERGY_HISTORY not in {key for key, value in full.items() if "extendData" in value}
    # Buckets are k consecutive pulses aligned to the sequence number (pulse id - 1 here).
    assert all(pid % k == 0 for pid in trace["x"])
    assert (np.diff(trace["x"]) == k).all()
    frame = readings(url)
    assert trace["y"] == pytest.approx(bucket_means(frame, trace["x"], k, "beam_energy"), rel=1e-9)
    assert full[ids.RATE_HISTORY]["figure"]["data"][0]["name"] == "repetition_rate"
    assert len(full[ids.BEAM_HISTORY]["figure"]["data"]) == 4

    # The loop's next request: only the new complete buckets, continuing exactly where the figure ended.
    wait_until(lambda: status(url)["last_pulse_id"] >= trace["x"][-1] + 3 * k, timeout=LIVE_TIMEOUT_S)
    tick = history_request(client, 2, response)
    assert all("figure" not in value for value in tick.values())
    extend = tick[ids.ENERGY_HISTORY]["extendData"]
    data, traces, max_points = extend
    assert traces == [0] and max_points >= len(trace["x"])
    new_x, new_y = data["x"][0], data["y"][0]
    assert new_x[0] == trace["x"][-1] + k and (np.diff(new_x) == k).all()
    frame = readings(url)
    assert new_y == pytest.approx(bucket_means(frame, new_x, k, "beam_energy"), rel=1e-9)
    assert tick[ids.HISTORY_RESPONSE]["data"]["cursor"] == response["cursor"] + k * len(new_x)
    assert tick[ids.HISTORY_RESPONSE]["data"]["n"] == 2

    # Nothing new yet -> nothing sent for the charts.
    again = history_request(client, 3, tick[ids.HISTORY_RESPONSE]["data"])
    for graph in (ids.ENERGY_HISTORY, ids.RATE_HISTORY, ids.BEAM_HISTORY):
        if graph in again:
            assert again[graph]["extendData"][0]["x"][0][0] > new_x[-1]


def test_history_time_axis_and_third_channel(sim_app) -> None:
    url, _, _ = sim_app
    client = DashClient(url)
    reply = history_request(client, 1, None, trigger=ids.CHANNEL_SELECT, xaxis="time", channel="image_size_x")
    channel_figure = reply[ids.CHANNEL_HISTORY]["figure"]
    assert channel_figure["data"][0]["name"] == "image_size_x"
    assert set(channel_figure["data"][0]["y"]) == {640.0}
    assert channel_figure["layout"]["xaxis"]["type"] == "date"
    x_ms = reply[ids.ENERGY_HISTORY]["figure"]["data"][0]["x"]
    assert abs(x_ms[-1] / 1000 - time.time()) < 60
    # A channel the stream does not have is ignored, not an error.
    bogus = history_request(client, 1, None, trigger=ids.CHANNEL_SELECT, channel="<no such channel>")
    assert bogus[ids.CHANNEL_HISTORY]["figure"]["data"] == []


def test_export_button_callback_sends_the_csv(sim_app) -> None:
    url, _, _ = sim_app
    client = DashClient(url)
    reply = client.call(f"{ids.EXPORT_BUTTON}.n_clicks", {f"{ids.EXPORT_BUTTON}.n_clicks": 1,
                                                        f"{ids.HISTORY_WINDOW}.value": "1 min"})
    download = reply[ids.EXPORT_DOWNLOAD]["data"]
    assert download["filename"].startswith("readings-") and download["filename"].endswith(".csv")
    content = base64.b64decode(download["content"]) if download.get("base64") else download["content"].encode()
    frame = pd.read_csv(io.BytesIO(content))
    assert list(frame.columns[:3]) == LEAD_COLUMNS
    assert len(frame) > 10 and (np.diff(frame["pulse_id"]) == 1).all()
    assert frame["timestamp_epoch"].iloc[-1] - frame["timestamp_epoch"].iloc[0] <= 60


def test_health_callback(sim_app) -> None:
    url, _, _ = sim_app
    client = DashClient(url)
    reply = client.call(f"{ids.HEALTH_INTERVAL}.n_intervals", {f"{ids.HEALTH_INTERVAL}.n_intervals": 1,
                                                              f"{ids.CHANNEL_SELECT}.options": []})
    assert reply[ids.STREAM_STATE]["children"] == "live"
    assert reply[ids.STREAM_STATE]["color"] == "success"
    assert reply[ids.STREAM_RATE]["children"].endswith("Hz")
    options = reply[ids.CHANNEL_SELECT]["options"]
    assert {"label": "beam_energy", "value": "beam_energy"} in options
    assert reply[ids.HEALTH_PANEL]["children"]


def test_page_and_assets_are_served(sim_app) -> None:
    url, _, _ = sim_app
    code, body = get(url + "/")
    assert code == 200 and b"Stream Online Viewer" in body
    code, body = get(url + "/assets/viewer.js")
    assert code == 200 and b"set_props" in body


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
@pytest.mark.parametrize("sender_mode,app_mode", [("push", "pull"), ("pub", "sub")])
def test_app_on_a_start_stream_process(sender_mode: str, app_mode: str) -> None:
    port = free_port()
    with start_stream(port, "-d", "0.01", "-n", "-1", "--size", "160x120", "--mode", sender_mode) as sender:
        with app_process(["-o", str(port), "--mode", app_mode, "--history", "20000"]) as (url, _):
            first = wait_live(url)
            assert sender.poll() is None
            assert first["simulated"] is False
            assert first["stream"] == f"tcp://127.0.0.1:{port}"
            assert {"beam_energy", "repetition_rate", "image_size_x", "image_size_y"} <= set(first["channels"])
            assert "image" not in first["channels"] and "image_profile_x" not in first["channels"]
            frame = readings(url)
            later = status(url)
            assert first["last_pulse_id"] <= frame["pulse_id"].iloc[-1] <= later["last_pulse_id"]
            assert (np.diff(frame["pulse_id"]) == 1).all()
            assert later["missed_pulses"] == 0 and later["invalid"] == 0
            if sender_mode == "push":  # PUSH waits for its peer: the first pulse (1) arrives too
                assert frame["pulse_id"].iloc[0] == 1
                assert later["last_pulse_id"] == later["received"]
            assert (frame["image_size_x"] == 160).all() and (frame["image_size_y"] == 120).all()
            code, _ = get(url + "/")
            assert code == 200


# ------------------------------------------------------------------------------------------ psi-bsread Sender


class BsreadCamera:
    """psi-bsread's Sender with values chosen by the test (kept, to compare against)."""

    def __init__(self, port: int) -> None:
        import bsread

        self.sender = bsread.Sender(port=port, address=f"tcp://{LOCALHOST}", mode=bsread.PUSH, block=True,
                                    send_timeout=20_000, start_pulse_id=0)
        self.sender.open()
        self.sent: list[dict[str, Any]] = []
        self.rng = np.random.default_rng(42)

    def send(self, count: int, first_pulse_id: int | None = None) -> None:
        for _ in range(count):
            index = len(self.sent)
            pulse_id = (first_pulse_id if first_pulse_id is not None and index == 0 else
                        self.sent[-1]["pulse_id"] + 1 if self.sent else 5_000_000)
            y, x = np.mgrid[0:48, 0:64]
            image = (200 * np.exp(-((x - 20 - index % 10) ** 2 + (y - 30) ** 2) / 40.0) + 10 * self.rng.random((48, 64))
                     ).astype(np.uint16)
            values = {"beam_energy": 5.0 + 0.01 * index + self.rng.random() * 1e-3, "repetition_rate": 100.0,
                      "image": image}
            stamp = 1_800_000_000.0 + 0.01 * index
            self.sender.send(data=values, pulse_id=pulse_id, timestamp=stamp)
            self.sent.append({"pulse_id": pulse_id, "timestamp": stamp, **values})

    def close(self) -> None:
        self.sender.close()


@pytest.fixture(scope="module")
def bsread_app() -> Iterator[tuple[str, Any, BsreadCamera]]:
    pytest.importorskip("bsread")
    port = free_port()
    with running_app(["-o", str(port), "--history", "1000"]) as (url, dash_app, _):
        camera = BsreadCamera(port)
        try:
            yield url, dash_app, camera
        finally:
            camera.close()


def test_bsread_sender_status_and_channels(bsread_app) -> None:
    url, _, camera = bsread_app
    assert status(url)["state"] == "waiting"
    camera.send(40, first_pulse_id=7_000_000)
    doc = wait_until(lambda: (lambda s: s if s["received"] >= 40 else None)(status(url)), timeout=LIVE_TIMEOUT_S)
    assert doc["state"] == "live" and doc["simulated"] is False
    assert doc["received"] == 40
    assert doc["last_pulse_id"] == camera.sent[-1]["pulse_id"] == 7_000_039
    assert doc["channels"] == ["beam_energy", "repetition_rate"]  # the image is not a scalar channel
    assert doc["missed_pulses"] == 0 and doc["invalid"] == 0


def test_bsread_sender_readings_are_exact(bsread_app) -> None:
    url, _, camera = bsread_app
    if len(camera.sent) < 40:
        camera.send(40, first_pulse_id=7_000_000)
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    frame = readings(url)
    assert list(frame.columns) == LEAD_COLUMNS + ["beam_energy", "repetition_rate"] + list(STATS_COLUMNS)
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in camera.sent]
    assert np.array_equal(frame["beam_energy"].to_numpy(), [row["beam_energy"] for row in camera.sent])
    assert np.allclose(frame["timestamp_epoch"], [row["timestamp"] for row in camera.sent], atol=1e-6, rtol=0)
    assert frame["timestamp"].iloc[0] == "2027-01-15T08:00:00.000000Z"  # 1_800_000_000 s after the epoch
    # Beam statistics come from the image itself (this sender has no profiles): the spot is at y = 30.
    assert frame["beam_centroid_y"].between(28, 32).all()


def test_bsread_sender_image_payload_is_exact(bsread_app) -> None:
    url, _, camera = bsread_app
    if len(camera.sent) < 40:
        camera.send(40, first_pulse_id=7_000_000)
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    client = DashClient(url)
    settings = {"colormap": "Greys", "scale": "linear", "range_mode": "manual", "zmin": 0, "zmax": 400}
    reply = image_request(client, 1, settings=settings)
    last = camera.sent[-1]
    assert reply[ids.IMAGE_RESPONSE]["data"]["pulse_id"] == last["pulse_id"]
    assert reply[ids.PULSE_ID]["children"] == str(last["pulse_id"])
    assert reply[ids.BEAM_ENERGY]["children"] == f"{last['beam_energy']:.4f} GeV"
    assert reply[ids.IMAGE_SIZE]["children"] == "64 × 48 px"  # width × height: bsread's shape order undone
    assigned = patch_assignments(reply[ids.IMAGE_GRAPH]["figure"])
    z = decode_typed(assigned[("data", 0, "z")])
    assert z.shape == (48, 64)  # small frame: native resolution
    expected = np.clip(last["image"].astype(np.float64) * 255 / 400, 0, 255).astype(np.uint8)
    assert np.abs(z.astype(int) - expected.astype(int)).max() <= 1
    profile_x = decode_typed(assigned[("data", 1, "y")])
    assert np.allclose(profile_x, last["image"].sum(axis=0), rtol=1e-5)


def test_bsread_sender_history_increments(bsread_app) -> None:
    url, _, camera = bsread_app
    if len(camera.sent) < 40:
        camera.send(40, first_pulse_id=7_000_000)
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    client = DashClient(url)
    full = history_request(client, 1, None, trigger=ids.HISTORY_XAXIS)
    response = full[ids.HISTORY_RESPONSE]["data"]
    k = response["k"]
    trace = full[ids.ENERGY_HISTORY]["figure"]["data"][0]

    def expected(rows: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
        """Complete buckets of k messages, aligned to the message sequence number (0, 1, 2, ...)."""
        xs, ys = [], []
        for start in range(0, len(rows) - k + 1, k):
            chunk = rows[start:start + k]
            xs.append(chunk[-1]["pulse_id"])
            ys.append(sum(row["beam_energy"] for row in chunk) / k)
        return xs, ys

    xs, ys = expected(camera.sent)
    assert trace["x"] == xs and trace["y"] == pytest.approx(ys, rel=1e-12)
    assert response["cursor"] == len(xs) * k

    camera.send(3 * k + 1)
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    tick = history_request(client, 2, response)
    assert all("figure" not in value for value in tick.values())
    data = tick[ids.ENERGY_HISTORY]["extendData"][0]
    new_xs, new_ys = expected(camera.sent)
    assert data["x"][0] == new_xs[len(xs):] and len(data["x"][0]) >= 3
    assert data["y"][0] == pytest.approx(new_ys[len(xs):], rel=1e-12)
    rate = tick[ids.RATE_HISTORY]["extendData"][0]
    assert rate["y"][0] == [100.0] * len(data["x"][0])


def test_bsread_sender_going_quiet_marks_the_stream_stalled(bsread_app) -> None:
    """Runs after the other bsread tests: the sender stops sending, the page must say so."""
    url, _, camera = bsread_app
    if len(camera.sent) < 40:
        camera.send(40, first_pulse_id=7_000_000)
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    client = DashClient(url)
    fresh = image_request(client, 1)[ids.IMAGE_RESPONSE]["data"]
    doc = wait_until(lambda: (lambda s: s if s["state"] == "stalled" else None)(status(url)), timeout=LIVE_TIMEOUT_S,
                     interval=0.1, message="never stalled")
    assert doc["last_message_age_s"] > doc["stall_limit_s"]
    assert doc["received"] == len(camera.sent)
    reply = image_request(client, 2, last=fresh)
    assert reply[ids.IMAGE_RESPONSE]["data"]["stale"] is True
    assigned = patch_assignments(reply[ids.IMAGE_GRAPH]["figure"])
    (annotation,) = assigned[("layout", "annotations")]
    assert annotation["text"].startswith("STALE")
    assert reply[ids.PULSE_ID]["children"] == str(camera.sent[-1]["pulse_id"])  # the last values stay visible
    health = client.call(f"{ids.HEALTH_INTERVAL}.n_intervals", {f"{ids.HEALTH_INTERVAL}.n_intervals": 5,
                                                               f"{ids.CHANNEL_SELECT}.options": []})
    assert health[ids.STREAM_STATE]["children"] == "stalled"
    assert health[ids.STREAM_STATE]["color"] == "danger"

    # And it recovers by itself when the sender comes back.
    camera.send(5)
    wait_until(lambda: status(url)["state"] == "live", timeout=LIVE_TIMEOUT_S, message="did not recover")
    wait_until(lambda: status(url)["received"] >= len(camera.sent), timeout=LIVE_TIMEOUT_S)
    stale = reply[ids.IMAGE_RESPONSE]["data"]
    recovered = wait_until(lambda: (lambda r: r if r[ids.IMAGE_RESPONSE]["data"]["pulse_id"] == camera.sent[-1]["pulse_id"]
                                    else None)(image_request(client, 3, last=stale)), timeout=LIVE_TIMEOUT_S,
                           interval=0.1)
    assert recovered[ids.IMAGE_RESPONSE]["data"]["stale"] is False
    assert patch_assignments(recovered[ids.IMAGE_GRAPH]["figure"])[("layout", "annotations")] == []


def test_before_the_first_message_everything_answers() -> None:
    """Pointed at a stream that never sends: status, CSV, image and history all answer sensibly."""
    with running_app(["-o", str(free_port())]) as (url, _, _):
        doc = status(url)
        assert doc["state"] == "waiting" and doc["received"] == 0
        assert doc["last_pulse_id"] is None and doc["last_message_age_s"] is None and doc["channels"] == []
        frame = readings(url)
        assert len(frame) == 0 and list(frame.columns) == LEAD_COLUMNS + list(STATS_COLUMNS)
        client = DashClient(url)
        reply = image_request(client, 1)
        assert ids.IMAGE_GRAPH not in reply  # nothing to draw yet: the placeholder stays
        assert "waiting" in reply[ids.IMAGE_INFO]["children"]
        assert reply[ids.PULSE_ID]["children"] == "—"
        history = history_request(client, 1, None, trigger=ids.HISTORY_WINDOW)
        assert history[ids.ENERGY_HISTORY]["figure"]["data"][0]["x"] == []
        tick = history_request(client, 2, history[ids.HISTORY_RESPONSE]["data"])
        assert all("extendData" not in value and "figure" not in value for value in tick.values())
