"""The properties that keep the live display cheap, checked without timing anything.

bench/display.py measures the speed; these tests guard the reasons for it: a frame answer bounded by
the view's bins and sent as typed binary (never JSON lists), 204 for an unchanged frame, one render
for any number of browsers and none without them, a render rate bounded per view (manual clock),
small history increments, no plotly figure objects on the hot path, and a simulated camera that
does not copy whole frames around. Renders are counted by /api/diagnostics.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import web.frame_service as frame_service_module
from components import ids
from stream.encoder import Encoder
from stream.simulator import SPOT_SIGMAS, BeamModel
from tests.dash_client import DashClient
from tests.helpers import all_at_once, wait_until
from tests.web_fixtures import ManualClock, T0, FedCamera, camera_values, designed_image, fed_app
from web.frame_service import decode
from web.render import HISTOGRAM_BINS

HISTORY_TICK_LIMIT = 5 * 1024  # bytes per history increment (issue goal)
HEADER_LIMIT = 6 * 1024  # the JSON header of a frame answer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock().install(monkeypatch, frame_service_module)


def beam(height: int, width: int, dtype: str = "float64", seed: int = 0) -> np.ndarray:
    return BeamModel(width, height, dtype, seed=seed).next()["image"]


def renders(http: Any) -> int:
    return http.get("/api/diagnostics").get_json()["renders"]


def longest_list(value: Any) -> int:
    """Length of the longest list of numbers anywhere in a JSON value."""
    if isinstance(value, list):
        numbers = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return max([numbers, *(longest_list(v) for v in value)])
    if isinstance(value, dict):
        return max([0, *(longest_list(v) for v in value.values())])
    return 0


# ----------------------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(("height", "width", "dtype"), [(480, 640, "float64"), (2048, 2048, "uint16"),
                                                        (64, 80, "float64")])
@pytest.mark.parametrize(("bins_x", "bins_y"), [(440, 280), (200, 150), (950, 700)])
def test_frame_answer_is_bounded_by_the_views_bins(height: int, width: int, dtype: str, bins_x: int,
                                                   bins_y: int) -> None:
    camera = FedCamera()
    camera.feed(camera_values(beam(height, width, dtype)))
    reply = fed_app(camera).server.test_client().get(f"/api/frame?w={bins_x}&h={bins_y}")
    meta, parts = decode(reply.data)
    assert meta["rows"] <= min(height, bins_y) and meta["cols"] <= min(width, bins_x)
    # one byte per bin, the histogram, two float32 profiles (no fit on this stream), the header, padding
    limit = bins_x * bins_y + HISTOGRAM_BINS * 4 + (bins_x + bins_y) * 4 + HEADER_LIMIT + 8 * len(parts)
    assert len(reply.data) <= limit
    if height * width >= 100_000:
        assert len(reply.data) < height * width * np.dtype(dtype).itemsize / 4  # far below the frame itself


def test_frame_answer_is_typed_binary_never_json_lists() -> None:
    camera = FedCamera()
    camera.feed(camera_values(beam(480, 640)))
    body = fed_app(camera).server.test_client().get("/api/frame?w=320&h=240").data
    meta, parts = decode(body)
    assert parts["levels"].dtype == np.uint8  # 8-bit levels, not the camera's float64
    assert parts["x_profile"].dtype == np.float32 and parts["histogram"].dtype == np.float32
    header = {k: v for k, v in meta.items() if k != "colorscale"}
    assert longest_list(header) <= 12  # ticks at most; never pixel, profile or histogram data as lists
    assert len(json.dumps(meta)) <= HEADER_LIMIT


def test_unchanged_frame_is_204_without_a_body() -> None:
    camera = FedCamera()
    camera.feed(camera_values(beam(480, 640)))
    client = DashClient.flask(fed_app(camera))
    client.load()
    assert client.frame().status == 200
    again = client.frame()
    assert again.status == 204 and again.size == 0 and client.stream_header(again)["state"] == "live"


def test_readings_tick_is_small_and_sends_only_what_changed() -> None:
    camera = FedCamera()
    camera.feed(camera_values(beam(64, 80)))
    client = DashClient.flask(fed_app(camera))
    client.load()
    camera.feed(camera_values(beam(64, 80, seed=1)))
    reply = client.post(client.body(client.callback(f"{ids.PULSE_ID}.children"), f"{ids.READINGS_INTERVAL}.n_intervals"))
    assert reply.status == 200 and reply.size < 2048
    assert ids.IMAGE_GEOMETRY not in reply.body and ids.PARAMETERS not in reply.body  # unchanged: not re-sent


def test_large_processing_parameters_are_sent_once_and_never_sent_back() -> None:
    camera = FedCamera()
    parameters = json.dumps({"roi": list(range(9_000))})  # ~50 KiB of cam_server parameters
    camera.feed({**camera_values(beam(64, 80)), "processing_parameters": parameters})
    client = DashClient.flask(fed_app(camera))
    client.load()
    assert client.props[f"{ids.PARAMETERS}.children"] == parameters
    readings = client.callback(f"{ids.PULSE_ID}.children")
    camera.feed({**camera_values(beam(64, 80, seed=1)), "processing_parameters": parameters})
    request = json.dumps(client.body(readings, f"{ids.READINGS_INTERVAL}.n_intervals")).encode()
    reply = client.post(request)
    assert len(request) < 4096  # the tick carries a digest of the text, not the text
    assert reply.status == 200 and ids.PARAMETERS not in reply.body
    camera.feed({**camera_values(beam(64, 80, seed=2)), "processing_parameters": parameters + " "})
    reply = client.post(client.body(readings, f"{ids.READINGS_INTERVAL}.n_intervals"))
    assert reply.body[ids.PARAMETERS]["children"] == parameters + " "  # changed: sent again


# ----------------------------------------------------------------------------------------- rendering


def test_nothing_is_rendered_while_nobody_asks() -> None:
    from tests.live_app import running_app

    with running_app(["--history", "1000", "--diagnostics"]) as live:
        camera = live.registry.get(None)
        wait_until(lambda: camera.buffer.count >= 30, timeout=30, message="simulated frames arriving")
        http = DashClient.http(live.url)
        assert camera.frames.latest() is not None
        assert json.loads(http.get("/api/diagnostics").raw)["renders"] == 0
        assert camera.address.startswith("inproc://")  # the in-process camera needs no TCP stack
        http.close()


def test_many_concurrent_requests_for_one_frame_render_it_once() -> None:
    camera = FedCamera()
    camera.feed(camera_values(beam(2048, 2048, "uint16")))
    app = fed_app(camera, argv=["--diagnostics"])
    bodies = all_at_once(lambda: app.server.test_client().get("/api/frame?w=440&h=280").data, 12)
    assert len(set(bodies)) == 1
    assert renders(app.server.test_client()) == 1


def test_render_rate_is_bounded_per_view(clock: ManualClock) -> None:
    """Browsers asking as fast as they can for 100 Hz frames: at most ~2 renders per display period
    per view (a browser already showing the newest render may trigger the next after half a period)."""
    camera = FedCamera()
    camera.feed(camera_values(beam(48, 64)))
    app = fed_app(camera, argv=["-d", "0.1", "--diagnostics"])
    pages = [DashClient.flask(app) for _ in range(5)]
    for page in pages:
        page.load()
    for _ in range(100):  # one second of 100 Hz frames, each page asking every 2 ms
        camera.feed(camera_values(beam(48, 64)))
        for page in pages:
            clock.now += 0.002
            assert page.frame().status in (200, 204)
    count = renders(app.server.test_client())
    assert 10 <= count <= 2 * 1.0 / 0.1 + 1, count  # the pages keep up with the display rate, no faster
    other_view = DashClient.flask(app)
    other_view.load()
    other_view.set(ids.COLORMAP, "value", "Jet", fire=False)
    assert other_view.frame().status == 200  # another view renders its own, at once


def test_history_increment_per_tick_is_small() -> None:
    """One second of a 100 Hz stream, with every chart in use, stays under 5 KiB per tick."""
    camera = FedCamera()
    image = beam(48, 64)
    pulse = 0

    def stream(seconds: float) -> None:
        nonlocal pulse
        for _ in range(int(seconds * 100)):
            pulse += 1
            camera.feed(camera_values(image, energy=5.0 + (pulse % 7) * 0.01, camera_gain=np.float64(2.5)),
                        pulse_id=pulse, timestamp=T0 + pulse * 0.01)

    stream(3.0)
    client = DashClient.flask(fed_app(camera))
    client.load()
    client.set(ids.CHANNEL_SELECT, "value", "camera_gain")
    graphs = (ids.ENERGY_HISTORY, ids.RATE_HISTORY, ids.BEAM_HISTORY, ids.CHANNEL_HISTORY)
    history = client.callback(f"{ids.ENERGY_HISTORY}.figure")
    sizes = []
    for _ in range(3):
        stream(1.0)
        reply = client.post(client.body(history, f"{ids.HISTORY_REQUEST}.n_intervals"))
        client.apply(reply.body)
        extended = [graph for graph in graphs if "extendData" in reply.body.get(graph, {})]
        assert len(extended) == 4 and not any("figure" in reply.body.get(g, {}) for g in graphs)
        sizes.append(reply.size)
    assert max(sizes) <= HISTORY_TICK_LIMIT, sizes


def test_statistics_table_is_built_once_per_refresh_for_every_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    import callbacks.history_panel as history_module

    built = []
    original = history_module.stats_table
    monkeypatch.setattr(history_module, "stats_table", lambda *a, **k: built.append(1) or original(*a, **k))
    monkeypatch.setattr(history_module, "STATS_TTL_S", 3600.0)  # one refresh however slow the machine is
    camera = FedCamera()
    for _ in range(200):
        camera.feed(camera_values(beam(48, 64)))
    app = fed_app(camera)
    for _ in range(5):  # five browsers open the statistics within one refresh
        client = DashClient.flask(app)
        client.load()
        reply = client.set(ids.DETAILS, "is_open", True)
        assert reply[ids.HISTORY_STATS]["children"]
    assert len(built) == 1


def test_no_plotly_figure_objects_on_the_hot_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.basedatatypes

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a plotly figure object was built while serving a browser")

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "__init__", forbidden)
    camera = FedCamera()
    camera.feed(camera_values(beam(480, 640)))
    client = DashClient.flask(fed_app(camera))
    client.load()  # every callback of a page load: image figure, readings, history, health, tools
    for seed in (1, 2):
        camera.feed(camera_values(beam(480, 640, seed=seed)))
        assert client.frame().status in (200, 204)
        client.readings()
        client.history()
        client.health()


# ----------------------------------------------------------------------------------------- simulator


def test_simulated_frames_are_noise_plus_a_local_spot() -> None:
    """The camera copies one precomputed noise field per pulse and draws the spot in a small patch."""
    model = BeamModel(640, 480, "float64", seed=7)
    noise_fields = list(model._noise)
    for _ in range(5):
        values = model.next()
        image = values["image"]
        noise = next(n for n in noise_fields if np.array_equal(n[:8, :8], image[:8, :8]))
        changed = np.argwhere(image != noise)
        assert changed.size
        (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
        spot = 2 * SPOT_SIGMAS * 11.0 + 3  # +-5 sigma of the widest spot (sigma <= 11 px) plus jitter
        assert x1 - x0 <= spot and y1 - y0 <= spot
        np.testing.assert_allclose(values["image_profile_x"], image.sum(axis=0), rtol=1e-9)
        np.testing.assert_allclose(values["image_profile_y"], image.sum(axis=1), rtol=1e-9)


def test_uint16_frames_and_profiles_agree() -> None:
    values = BeamModel(256, 128, "uint16", seed=3).next()
    image = values["image"]
    assert image.dtype == np.uint16 and image.max() > 1000  # the spot on a 100-count pedestal
    np.testing.assert_allclose(values["image_profile_x"], image.sum(axis=0), rtol=5e-3)


def test_encoder_can_send_arrays_without_copying_them() -> None:
    image = designed_image(48, 64, dtype=np.float64)
    parts = Encoder().encode(1, T0, {"image": image, "beam_energy": np.float64(5.0)}, copy=False)
    frame = parts[2]
    assert isinstance(frame, memoryview)
    assert np.shares_memory(np.frombuffer(frame, dtype=np.float64), image)
    copied = Encoder().encode(1, T0, {"image": image, "beam_energy": np.float64(5.0)})[2]
    assert bytes(frame) == copied and isinstance(copied, bytes)


def test_received_frames_are_kept_by_reference_not_copied() -> None:
    camera = FedCamera()
    camera.feed(camera_values(designed_image(480, 640)))
    frame = camera.frames.latest()
    assert frame.image() is frame.image()  # decoded once, a view of the received bytes
    assert not frame.image().flags.writeable and not frame.image().flags.owndata
