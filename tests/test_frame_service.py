"""web/frame_service.py: the documented frame format, and render-once-serve-many with its rate bound.

Frames are real (FedCamera); time is a manual clock where the rate bound is checked, so nothing
here depends on how fast this machine is.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import web.frame_service as frame_service_module
from stream.encoder import Encoder
from tests.helpers import all_at_once
from tests.web_fixtures import ManualClock, FedCamera, camera_values, designed_image
from web.frame_service import FrameService, decode, encode, frame_meta, gaussian, profile_curves
from web.processing import Processor
from web.render import View

VIEW = View(bins_x=64, bins_y=48)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock().install(monkeypatch, frame_service_module)


def counting_service(period_s: float = 0.1) -> tuple[FrameService, list[float]]:
    renders: list[float] = []
    return FrameService(period_s, on_render=renders.append), renders


def fed_camera(count: int = 1, shape: tuple[int, int] = (48, 64)) -> FedCamera:
    camera = FedCamera()
    for _ in range(count):
        camera.feed(camera_values(designed_image(*shape)))
    return camera


# ------------------------------------------------------------------------------------------ the format


def test_encode_lays_out_header_and_parts_as_documented() -> None:
    levels = np.arange(5, dtype=np.uint8)
    curve = np.array([1.5, -2.0, 3.25], np.float32)
    body = encode({"seq": 7, "name": "x"}, (("levels", levels), ("curve", curve), ("wide", np.array([1.0]))))
    (n,) = struct.unpack_from("<I", body, 0)
    header = body[4:4 + n].decode()
    start = 4 + n + (-(4 + n) % 8)
    assert start % 8 == 0 and set(body[4 + n:start]) <= {0}
    assert '"parts":[["levels","u1",5,0],["curve","f4",3,8],["wide","f8",1,24]]' in header
    assert body[start:start + 5] == levels.tobytes() and body[start + 5:start + 8] == b"\0\0\0"  # padded to 8
    assert body[start + 8:start + 20] == curve.tobytes()
    assert body[start + 24:start + 32] == np.float64(1.0).tobytes() and len(body) == start + 32


def test_decode_inverts_encode() -> None:
    parts = (("levels", np.arange(300, dtype=np.uint8) % 255), ("x", np.linspace(0, 1, 17, dtype=np.float32)),
             ("h", np.zeros(0, np.float32)))
    meta, decoded = decode(encode({"pulse_id": 15_000_000_123, "nested": {"a": [1, 2]}}, parts))
    assert meta["pulse_id"] == 15_000_000_123 and meta["nested"] == {"a": [1, 2]}
    for name, array in parts:
        assert decoded[name].dtype == array.dtype and np.array_equal(decoded[name], array)


# ------------------------------------------------------------------------------------------ render once


def test_one_render_serves_every_request_for_that_frame_and_view(clock: ManualClock) -> None:
    camera = fed_camera()
    service, renders = counting_service()
    first = service.frame(camera, VIEW)
    for _ in range(20):
        assert service.frame(camera, VIEW) is first
    assert len(renders) == 1
    other = service.frame(camera, View(bins_x=64, bins_y=48, colormap="Jet"))
    assert other is not first and len(renders) == 2  # another view renders its own


def test_nothing_is_rendered_without_requests(clock: ManualClock) -> None:
    camera = FedCamera()
    service, renders = counting_service()
    assert service.frame(camera, VIEW) is None  # no frame yet
    for _ in range(50):
        camera.feed(camera_values(designed_image()))
        clock.now += 0.01
    assert renders == []


def test_many_concurrent_requests_for_one_frame_render_it_once() -> None:
    camera = fed_camera(shape=(1024, 1024))
    service, renders = counting_service()
    bodies = all_at_once(lambda: service.frame(camera, VIEW).body, 12)
    assert len(renders) == 1 and len(set(bodies)) == 1


def test_render_rate_is_bounded_per_view_and_a_browser_on_the_cached_frame_is_not_starved(
        clock: ManualClock) -> None:
    camera = fed_camera()
    service, renders = counting_service(0.1)
    service.frame(camera, VIEW)
    for _ in range(38):  # frames at 100 Hz, browsers asking every millisecond, for 0.38 s
        camera.feed(camera_values(designed_image()))
        for _ in range(10):
            clock.now += 0.001
            service.frame(camera, VIEW)
    assert len(renders) <= 0.38 / 0.1 + 1  # at most one render per period for browsers behind
    # A browser that already shows the cached frame may trigger a new one after half a period
    # (it asks once per period; arriving a hair early must not cost it a whole frame).
    entry = service.frame(camera, VIEW)
    count = len(renders)
    camera.feed(camera_values(designed_image()))
    clock.now = entry.rendered + 0.06
    newer = service.frame(camera, VIEW, seen=entry.seq)
    assert newer.seq > entry.seq and len(renders) == count + 1
    camera.feed(camera_values(designed_image()))
    clock.now += 0.01
    assert service.frame(camera, VIEW).seq == newer.seq  # the others keep the rate limit
    assert service.frame(camera, VIEW, seen=newer.seq).seq == newer.seq  # and so does that browser, for now


def test_an_unchanged_frame_is_the_same_entry(clock: ManualClock) -> None:
    camera = fed_camera()
    service, renders = counting_service(0.1)
    entry = service.frame(camera, VIEW)
    clock.now += 10  # however long nothing new arrives
    assert service.frame(camera, VIEW, seen=entry.seq) is entry and len(renders) == 1


def test_a_kept_frame_is_rendered_by_its_seq_and_pinned_frames_outlive_the_live_list(clock: ManualClock) -> None:
    camera = fed_camera(5)
    camera.frames.keep_recent(True)
    for _ in range(5):
        camera.feed(camera_values(designed_image()))
    service, _ = counting_service()
    kept = camera.frames.recent()
    pinned = camera.frames.pin("page1")
    entry = service.frame(camera, VIEW, seq=kept[1].seq, client="page1")
    assert entry.seq == kept[1].seq and entry.pulse_id == kept[1].pulse_id
    for _ in range(camera.frames.max_frames + 5):  # the live list moves on
        camera.feed(camera_values(designed_image()))
    assert camera.frames.get(pinned[0].seq) is None
    assert service.frame(camera, VIEW, seq=pinned[0].seq) is None  # not for another page
    old = service.frame(camera, View(bins_x=32, bins_y=24), seq=pinned[0].seq, client="page1")
    assert old is not None and old.seq == pinned[0].seq


def test_corrupt_image_is_counted_once_and_the_previous_frame_stays(clock: ManualClock,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import stream.ingest

    monkeypatch.setattr(stream.ingest, "IMAGE_FIRST_PIXELS", 0)  # a "big" frame: statistics from the profiles
    camera = FedCamera()
    image = np.random.default_rng(1).integers(0, 4000, (96, 128)).astype(np.uint16)
    # With profiles the image is not decoded on arrival (statistics use the profiles): only when rendered.
    camera.feed(camera_values(image))
    service, renders = counting_service(0.1)
    good = service.frame(camera, VIEW)
    parts = Encoder().encode(2, 1.8e9, camera_values(image), compression={"image": "bitshuffle_lz4"})
    value = bytearray(parts[2])
    struct.pack_into(">I", value, 12, 5)  # first block's length: the framing no longer adds up
    parts[2] = bytes(value)
    camera.feed_parts(parts)
    assert camera.frames.latest().pulse_id == 2 and camera.health().invalid == 0
    clock.now += 1
    assert service.frame(camera, VIEW) is good
    clock.now += 1
    assert service.frame(camera, VIEW) is good
    assert camera.health().invalid_by_reason == {"bad-compression": 1}
    assert len(renders) == 1


def test_old_views_are_forgotten(clock: ManualClock) -> None:
    camera = fed_camera()
    service, renders = counting_service()
    first = service.frame(camera, View(bins_x=8, bins_y=8))
    for bins in range(9, 9 + frame_service_module.MAX_VIEWS):
        service.frame(camera, View(bins_x=bins, bins_y=8))
    assert service.frame(camera, View(bins_x=8, bins_y=8)) is not first  # rendered again


# ------------------------------------------------------------------------------------------ metadata


def test_frame_meta_says_what_the_frame_is() -> None:
    camera = FedCamera("cam-a")
    image = designed_image(48, 64, dtype=np.uint16)
    camera.feed(camera_values(image), pulse_id=15_000_000_001, timestamp=1_800_000_000.5)
    frame = camera.frames.latest()
    processed = Processor().process(frame, camera.frames.recent(), 1, None)
    meta = frame_meta(camera, frame, processed)
    assert meta["camera"] == "cam-a" and meta["pulse_id"] == 15_000_000_001 and meta["timestamp"] == 1_800_000_000.5
    assert meta["shape"] == [48, 64] and meta["dtype"] == "uint16" and meta["seq"] == frame.seq
    assert meta["x"] == {"origin": 0.0, "step": 1.0, "unit": "px"} and meta["y"]["unit"] == "px"
    assert meta["processing"] == {"average": 1, "background": False, "note": ""}
    assert meta["processing_error"] == "" and set(meta["beam"]) == {"x", "y", "sigma_x", "sigma_y"}


def test_calibrated_axes_reach_the_meta() -> None:
    camera = FedCamera()
    image = designed_image(48, 64)
    x_axis = (np.arange(64, dtype=np.float32) - 32) * -2.5  # descending µm, cam_server style
    y_axis = (np.arange(48, dtype=np.float32) - 24) * 2.0
    camera.feed({"image": image, "x_axis": x_axis, "y_axis": y_axis})
    frame = camera.frames.latest()
    meta = frame_meta(camera, frame, Processor().process(frame, (), 1, None))
    assert meta["x"] == {"origin": 80.0, "step": -2.5, "unit": "µm"}
    assert meta["y"] == {"origin": -48.0, "step": 2.0, "unit": "µm"}


def test_profile_curves_use_the_streams_profile_for_a_raw_frame_else_the_image() -> None:
    camera = FedCamera()
    image = designed_image(24, 32, dtype=np.float64)
    stream_x = np.arange(32, dtype=np.float64) * 3  # deliberately not the image's sum
    camera.feed({**camera_values(image), "image_profile_x": stream_x})
    first = camera.frames.latest()
    curves_x, curves_y = profile_curves(camera, first, Processor().process(first, (), 1, None))
    assert np.array_equal(curves_x["profile"], stream_x)
    assert np.array_equal(curves_y["profile"], image.sum(axis=1))
    camera.feed({**camera_values(image + 10), "image_profile_x": stream_x})
    second = camera.frames.latest()
    averaged = Processor().process(second, (first, second), 2, None)
    curves_x, curves_y = profile_curves(camera, second, averaged)  # what is shown, not the stream's
    assert np.array_equal(curves_x["profile"], (image + 5).sum(axis=0))  # per column
    assert np.array_equal(curves_y["profile"], (image + 5).sum(axis=1))  # per row


def test_profile_curves_of_a_stream_without_profiles_follow_the_image() -> None:
    camera = FedCamera()
    image = designed_image(24, 32)
    camera.feed({"image": image})
    frame = camera.frames.latest()
    curves_x, curves_y = profile_curves(camera, frame, Processor().process(frame, (), 1, None))
    assert np.array_equal(curves_x["profile"], image.sum(axis=0, dtype=np.float64))  # length 32
    assert np.array_equal(curves_y["profile"], image.sum(axis=1, dtype=np.float64))  # length 24


def test_a_frame_whose_pulse_was_not_measured_shows_its_beam_all_the_same() -> None:
    """A pulse skipped by the statistics budget (receiver behind) has NaN in the history; the picture
    of its frame gets the beam (crosshair) and the fit curve, measured when the frame is drawn."""
    class Behind:  # refuses every pulse; tests/test_budget.py has the real rules
        def allows(self, waited_s: float) -> bool:
            return False

        def spend(self, seconds: float) -> None:
            pass

    camera = FedCamera()
    camera.ingest.budget = Behind()
    yy, xx = np.mgrid[0:48, 0:64]
    image = (100.0 + 4000.0 * np.exp(-0.5 * (((xx - 40.2) / 3.0) ** 2 + ((yy - 21.7) / 2.5) ** 2))).astype(np.uint16)
    camera.feed(camera_values(image))
    assert np.isnan(camera.buffer.newest().column("beam_centroid_x")[0]) and camera.statistics_skipped == 1
    frame = camera.frames.latest()
    processed = Processor().process(frame, camera.frames.recent(), 1, None)
    beam = frame_meta(camera, frame, processed)["beam"]
    assert beam["x"] == pytest.approx(40.2, abs=0.5) and beam["y"] == pytest.approx(21.7, abs=0.5)
    assert beam["sigma_x"] == pytest.approx(3.0, rel=0.05) and beam["sigma_y"] == pytest.approx(2.5, rel=0.05)
    curves_x, _curves_y = profile_curves(camera, frame, processed)
    assert int(np.argmax(curves_x["fit"])) == 40


def test_gaussian_curve_from_this_pulses_fit() -> None:
    computed = {"beam_fit_amplitude_x": 100.0, "beam_fit_mean_x": 10.0, "beam_fit_sigma_x": 2.0,
                "beam_fit_offset_x": 5.0}
    curve = gaussian(computed, "x", 21)
    assert curve[10] == 105.0 and curve[12] == pytest.approx(5 + 100 * np.exp(-0.5))
    assert gaussian({**computed, "beam_fit_sigma_x": 0.0}, "x", 21) is None
    assert gaussian({**computed, "beam_fit_mean_x": float("nan")}, "x", 21) is None
    assert gaussian(computed, "y", 21) is None
