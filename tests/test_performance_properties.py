"""The properties that keep the live display cheap, checked without timing anything.

bench/display.py measures the speed; these tests guard the reasons for it: bounded payloads (the
image is binned to the browser's view and sent as base64 typed arrays, history goes out in small
increments), rendering only on demand and once per frame for any number of browsers, no plotly
figure objects on the hot path, and a simulated camera that does not copy whole frames around.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Iterator

import numpy as np
import pytest

import app as app_module
from callbacks.frame_cache import FrameCache
from components import ids
from components.image_panel import ImageView, view_from_settings
from components.readings_panel import READING_IDS
from stream.encoder import Encoder
from stream.receiver import Receiver
from stream.ring_buffer import RingBuffer
from stream.simulator import SPOT_SIGMAS, BeamModel
from tests.helpers import make_message, wait_until

SETTINGS = {"colormap": "Viridis", "scale": "linear", "range_mode": "auto", "zmin": None, "zmax": None}
HISTORY_TICK_LIMIT = 5 * 1024  # bytes per history increment (issue goal)
T0 = 1_800_000_000.0


class Source:
    """A stream source without threads: a ring buffer fed by the test, health from an idle receiver."""

    simulated = False
    label = address = "tcp://127.0.0.1:1"

    def __init__(self, capacity: int = 20_000) -> None:
        self.buffer = RingBuffer(capacity)
        self._receiver = Receiver(self.address, self.buffer)  # never started: health only

    def health(self):
        return self._receiver.health()


def camera_message(pulse_id: int, image: np.ndarray, energy: float = 5.2, extra: dict | None = None):
    return make_message(pulse_id, {"image": image, "image_profile_x": image.sum(axis=0),
                                   "image_profile_y": image.sum(axis=1), "beam_energy": np.float64(energy),
                                   "repetition_rate": np.float64(100.0), **(extra or {})},
                        timestamp=T0 + pulse_id * 0.01)


def beam(height: int, width: int, seed: int = 0, dtype: str = "float64") -> np.ndarray:
    return BeamModel(width, height, dtype, seed=seed).next()["image"]


class Client:
    """Posts callback requests to the app through Flask's test client, with dash-renderer's bodies."""

    def __init__(self, dash_app: Any) -> None:
        self.http = dash_app.server.test_client()
        deps = json.loads(self.http.get("/_dash-dependencies").data)
        self.deps = {d["inputs"][0]["id"]: d for d in deps if not d.get("clientside_function")}

    def post(self, first_input: str, values: dict[str, Any]) -> tuple[dict, int]:
        dep = self.deps[first_input]
        output = dep["output"]
        items = output[2:-2].split("...") if output.startswith("..") else [output]
        outputs = [dict(zip(("id", "property"), item.rsplit(".", 1))) for item in items]
        body = {
            "output": output,
            "outputs": outputs if output.startswith("..") else outputs[0],
            "inputs": [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in dep["inputs"]],
            "state": [{**s, "value": values.get(f"{s['id']}.{s['property']}")} for s in dep["state"]],
            "changedPropIds": [f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"],
        }
        reply = self.http.post("/_dash-update-component", json=body)
        assert reply.status_code == 200, reply.data[:500]
        return json.loads(reply.data)["response"], len(reply.data)

    def image(self, n: int, width: int = 880, height: int = 560, last: dict | None = None,
              texts: bool | None = None, settings: dict | None = None) -> tuple[dict, int]:
        request = {"n": n, "w": width, "h": height}
        if texts is not None:
            request["texts"] = texts
        return self.post(ids.IMAGE_REQUEST, {f"{ids.IMAGE_REQUEST}.data": request,
                                             f"{ids.IMAGE_RESPONSE}.data": last,
                                             f"{ids.IMAGE_VIEW}.data": {},
                                             f"{ids.IMAGE_SETTINGS}.data": settings or SETTINGS})

    def history(self, n: int, last: dict | None, window: str = "1 min", channel: str | None = None
                ) -> tuple[dict, int]:
        return self.post(ids.HISTORY_REQUEST, {f"{ids.HISTORY_REQUEST}.data": {"n": n},
                                               f"{ids.HISTORY_WINDOW}.value": window,
                                               f"{ids.HISTORY_XAXIS}.value": "time",
                                               f"{ids.CHANNEL_SELECT}.value": channel,
                                               f"{ids.HISTORY_RESPONSE}.data": last})


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def dash_app(source: Source) -> Any:
    return app_module.create_app(app_module.parse_args(["-d", "0.05"]), source)


@pytest.fixture
def client(dash_app: Any) -> Client:
    return Client(dash_app)


def patch_values(figure: dict) -> dict[tuple, Any]:
    """A dash Patch as {location: assigned value}."""
    assert figure.get("__dash_patch_update"), "the image figure must go out as a Patch"
    return {tuple(op["location"]): op["params"]["value"] for op in figure["operations"] if op["operation"] == "Assign"}


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
@pytest.mark.parametrize(("screen_w", "screen_h"), [(880, 560), (400, 300), (1900, 1400)])
def test_image_response_is_bounded_by_the_views_bins(source: Source, client: Client, height: int, width: int,
                                                      dtype: str, screen_w: int, screen_h: int) -> None:
    source.buffer.append(camera_message(1, beam(height, width, dtype=dtype)))
    response, size = client.image(1, screen_w, screen_h)
    view = view_from_settings(SETTINGS, {"width": screen_w, "height": screen_h})
    bins = view.bins_x * view.bins_y
    # uint8 levels in base64 (4/3) plus two float32 profiles, plus a few KiB of JSON around them
    assert size <= bins * 4 / 3 + (view.bins_x + view.bins_y) * 4 * 4 / 3 + 6 * 1024
    z = patch_values(response[ids.IMAGE_GRAPH]["figure"])[("data", 0, "z")]
    rows, cols = (int(n) for n in z["shape"].split(","))
    assert rows <= min(height, view.bins_y) and cols <= min(width, view.bins_x)
    if height * width >= 100_000:
        assert size < height * width * np.dtype(dtype).itemsize / 4  # far below the frame itself


def test_image_patch_carries_typed_arrays_never_lists(source: Source, client: Client) -> None:
    source.buffer.append(camera_message(1, beam(480, 640)))
    response, _ = client.image(1)
    assigned = patch_values(response[ids.IMAGE_GRAPH]["figure"])
    for location in (("data", 0, "z"), ("data", 1, "y"), ("data", 2, "x")):
        spec = assigned[location]
        assert set(spec) >= {"dtype", "bdata"}, location
        base64.b64decode(spec["bdata"], validate=True)
    assert assigned[("data", 0, "z")]["dtype"] == "u1"  # 8-bit levels, not the camera's float64
    assert longest_list(response) <= 8  # colour-bar ticks at most; never pixel or profile data as lists


def test_unchanged_frame_sends_no_figure_and_texts_only_when_asked(source: Source, client: Client,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import callbacks.frame_cache as frame_cache_module

    clock = ManualClock()  # the cache renders at most once per period: the test decides when one passed
    monkeypatch.setattr(frame_cache_module, "time", types.SimpleNamespace(monotonic=clock, perf_counter=clock))
    source.buffer.append(camera_message(1, beam(480, 640)))
    first, _ = client.image(1)
    assert all(reading in first for reading in READING_IDS)  # a client that does not say gets the texts
    last = first[ids.IMAGE_RESPONSE]["data"]
    again, size = client.image(2, last=last, texts=False)
    assert ids.IMAGE_GRAPH not in again  # same frame, same view: nothing to redraw
    assert not any(reading in again for reading in READING_IDS) and ids.IMAGE_INFO not in again
    assert size < 1024
    source.buffer.append(camera_message(2, beam(480, 640, seed=1)))
    clock.now += 0.05  # one display period (-d 0.05)
    newer, _ = client.image(3, last=again[ids.IMAGE_RESPONSE]["data"], texts=False)
    assigned = patch_values(newer[ids.IMAGE_GRAPH]["figure"])
    assert ("data", 0, "z") in assigned
    assert ("data", 0, "colorscale") not in assigned  # unchanged settings are not re-sent
    asked, _ = client.image(4, last=newer[ids.IMAGE_RESPONSE]["data"], texts=True)
    assert asked[ids.PULSE_ID]["children"] == "2"


def _without_age(response: dict) -> dict:
    """The info line says how long ago the frame arrived; that differs between two requests."""
    info = response.get(ids.IMAGE_INFO)
    if info:
        response = {**response, ids.IMAGE_INFO: {"children": info["children"].split(" · received")[0]}}
    return response


def test_image_fast_path_answers_exactly_as_dash_does(source: Source, client: Client, dash_app: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The image callback's requests are answered without Dash's dispatch (callbacks/image.py); the
    answers must be the ones Dash gives, in every state a browser meets."""
    import types

    import callbacks.frame_cache as frame_cache_module

    clock = ManualClock()
    monkeypatch.setattr(frame_cache_module, "time", types.SimpleNamespace(monotonic=clock, perf_counter=clock))
    config = dash_app.server.config

    def both(**kwargs: Any) -> dict:
        config["SOV_IMAGE_FAST_PATH"] = False
        slow, _ = client.image(**kwargs)
        config["SOV_IMAGE_FAST_PATH"] = True
        fast, _ = client.image(**kwargs)
        assert _without_age(fast) == _without_age(slow)
        return fast

    empty = both(n=1)  # no frame yet
    assert ids.IMAGE_GRAPH not in empty and empty[ids.IMAGE_INFO]["children"].startswith("waiting")
    source.buffer.append(camera_message(1, beam(480, 640)))
    first = both(n=2)
    assert first[ids.IMAGE_GRAPH]["figure"]["__dash_patch_update"]
    last = first[ids.IMAGE_RESPONSE]["data"]
    both(n=3, last=last, texts=False)  # same frame: no figure
    source.buffer.append(camera_message(2, beam(480, 640, seed=1)))
    clock.now += 0.05
    newer = both(n=4, last=last, texts=True)
    assert newer[ids.IMAGE_RESPONSE]["data"]["pulse_id"] == 2
    both(n=5, last=last, settings={**SETTINGS, "colormap": "Jet", "scale": "log"}, width=300, height=200)
    both(n=6, last={"seq": "junk", "view": 7}, settings={"colormap": "<script>"})  # browser input is input


def test_image_fast_path_bypasses_dash_and_leaves_other_requests_to_it(source: Source, client: Client,
                                                                       dash_app: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    source.buffer.append(camera_message(1, beam(480, 640)))

    def no_dispatch(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("Dash's dispatch was used")

    monkeypatch.setattr(dash_app, "_initialize_context", no_dispatch)
    image, _ = client.image(1)
    assert image[ids.IMAGE_RESPONSE]["data"]["pulse_id"] == 1
    with pytest.raises(AssertionError):  # history is Dash's, and a broken image request too
        client.history(1, None)
    body = json.dumps({"output": client.deps[ids.IMAGE_REQUEST]["output"], "inputs": [], "state": []})
    assert client.http.post("/_dash-update-component", data=body, content_type="application/json").status_code == 500


def test_history_increment_per_tick_is_small(source: Source, client: Client) -> None:
    """One second of a 100 Hz stream, with every chart in use, stays under 5 KiB per tick."""
    buffer = source.buffer
    pulse = 0
    image = beam(48, 64)
    extra = {"camera_gain": np.float64(2.5)}

    def stream(seconds: float) -> None:
        nonlocal pulse
        for _ in range(int(seconds * 100)):
            pulse += 1
            buffer.append(camera_message(pulse, image, energy=5.0 + (pulse % 7) * 0.01, extra=extra))

    stream(3.0)
    full, full_size = client.history(1, None, channel="camera_gain")
    last = full[ids.HISTORY_RESPONSE]["data"]
    sizes = []
    for n in range(2, 5):
        stream(1.0)
        tick, size = client.history(n, last, channel="camera_gain")
        last = tick[ids.HISTORY_RESPONSE]["data"]
        extended = [graph for graph in (ids.ENERGY_HISTORY, ids.RATE_HISTORY, ids.BEAM_HISTORY, ids.CHANNEL_HISTORY)
                    if "extendData" in tick.get(graph, {})]
        assert len(extended) == 4 and not any("figure" in tick.get(g, {}) for g in extended)
        sizes.append(size)
    assert max(sizes) <= HISTORY_TICK_LIMIT, sizes
    assert max(sizes) < full_size


# ----------------------------------------------------------------------------------------- rendering


def test_nothing_is_rendered_while_nobody_asks() -> None:
    from stream.source import LiveSource

    source = LiveSource(None, capacity=1000).start()
    try:
        dash_app = app_module.create_app(app_module.parse_args(["--history", "1000"]), source)
        wait_until(lambda: source.buffer.count >= 30, timeout=30, message="simulated frames arriving")
        assert source.buffer.latest_frame() is not None
        assert dash_app.frame_cache.renders == 0
        assert source.address.startswith("inproc://")  # the in-process camera needs no TCP stack
    finally:
        source.stop()


def test_many_concurrent_requests_for_one_frame_render_it_once(source: Source, dash_app: Any) -> None:
    source.buffer.append(camera_message(1, beam(2048, 2048, dtype="uint16")))
    clients = [Client(dash_app) for _ in range(12)]
    start = threading.Barrier(len(clients))
    errors: list[BaseException] = []

    def ask(c: Client) -> None:
        try:
            start.wait(10)
            c.image(1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert dash_app.frame_cache.renders == 1


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_render_rate_is_bounded_per_view_and_a_browser_on_the_cached_frame_is_not_starved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import callbacks.frame_cache as frame_cache_module

    clock = ManualClock()
    monkeypatch.setattr(frame_cache_module, "time", types.SimpleNamespace(monotonic=clock,
                                                                          perf_counter=clock))
    buffer = RingBuffer(100)
    cache = FrameCache(buffer, min_interval_s=0.1)
    view = ImageView(bins_x=64, bins_y=48)
    image = beam(48, 64)
    buffer.append(camera_message(1, image))
    first = cache.get(view)
    assert cache.renders == 1
    for pulse in range(2, 40):  # 100 Hz frames, browsers asking every millisecond for 0.38 s
        buffer.append(camera_message(pulse, image))
        for _ in range(10):
            clock.now += 0.001
            cache.get(view, seen_seq=None)
    assert cache.renders <= 0.38 / 0.1 + 1  # at most one render per period for browsers behind
    # A browser that already shows the cached frame may trigger a new one after half a period
    # (it asks once per period; arriving a hair early must not cost it a whole frame).
    entry = cache.get(view)
    renders = cache.renders
    buffer.append(camera_message(41, image))
    clock.now = entry.rendered + 0.06
    newer = cache.get(view, seen_seq=entry.seq)
    assert newer.seq > entry.seq
    assert cache.renders == renders + 1
    buffer.append(camera_message(42, image))
    clock.now += 0.01
    assert cache.get(view, seen_seq=None).seq == newer.seq  # the others keep the rate limit
    assert first.seq == 0


def test_no_plotly_figure_objects_on_the_hot_path(source: Source, client: Client,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.basedatatypes

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a plotly figure object was built while serving a browser")

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "__init__", forbidden)
    source.buffer.append(camera_message(1, beam(480, 640)))
    response, _ = client.image(1)
    last = response[ids.IMAGE_RESPONSE]["data"]
    source.buffer.append(camera_message(2, beam(480, 640, seed=2)))
    client.image(2, last=last)
    full, _ = client.history(1, None)
    client.history(2, full[ids.HISTORY_RESPONSE]["data"])


# ----------------------------------------------------------------------------------------- simulator


def test_simulated_frames_are_noise_plus_a_local_spot() -> None:
    """The camera copies one precomputed noise field per pulse and draws the spot in a small patch."""
    model = BeamModel(640, 480, "float64", seed=7)
    noise_fields = [n for n in model._noise]
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
    image = beam(48, 64)
    parts = Encoder().encode(1, T0, {"image": image, "beam_energy": np.float64(5.0)}, copy=False)
    frame = parts[2]
    assert isinstance(frame, memoryview)
    assert np.shares_memory(np.frombuffer(frame, dtype=np.float64), image)
    copied = Encoder().encode(1, T0, {"image": image, "beam_energy": np.float64(5.0)})[2]
    assert bytes(frame) == copied and isinstance(copied, bytes)


def test_statistics_table_is_built_once_per_refresh_and_not_resent(source: Source, client: Client,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import callbacks.history as history_module

    built = []
    original = history_module.stats_table
    monkeypatch.setattr(history_module, "stats_table", lambda *a, **k: built.append(1) or original(*a, **k))
    image = beam(48, 64)
    for pulse in range(1, 201):
        source.buffer.append(camera_message(pulse, image))
    browsers = [client.history(1, None)[0] for _ in range(5)]  # five browsers connect within one refresh
    assert all(ids.HISTORY_STATS in reply for reply in browsers)
    assert len(built) == 1
    last = browsers[0][ids.HISTORY_RESPONSE]["data"]
    source.buffer.append(camera_message(201, image))
    tick, _ = client.history(2, last)
    assert ids.HISTORY_STATS not in tick  # same statistics as this browser already shows
