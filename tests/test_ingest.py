"""Per-message work: a message becomes scalar channels, computed columns (statistics, calibrated copies,
regions of interest) and a usable image; cam_server's processing_error gives no beam; bad values are
reported, never raised.

Statistics accuracy is tested in tests/test_statistics.py; here the statistics functions are often
replaced by sentinels, to see which one is used, with what, and that their columns flow through.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest

import stream.ingest as ingest_module
import stream.statistics as statistics
from stream.background import Background
from stream.encoder import Encoder
from stream.ingest import CALIBRATED, Ingest, Pulse, calibrated_name, make_frame
from stream.layout import ChannelNames
from stream.protocol import BsreadError, Decoder, Message
from stream.rois import Roi, RoiSet, roi_values
from stream.simulator import BeamModel
from stream.statistics import STATS_COLUMNS, AxisFit, BeamStats
from tests.camserver_standin import default_cameras, pipeline_channels
from tests.hand_built import hand_message, lz4_frame, stamp_bytes
from tests.helpers import make_message

CAMERAS = default_cameras()
SENTINEL = BeamStats(1000.0, 10.0, 20.0, 3.0, 4.0, AxisFit(5.0, 10.5, 3.5, 0.5, 8.25, True),
                     AxisFit(6.0, 20.5, 4.5, 0.25, 10.5, True))


class Harness:
    """An Ingest with its own regions, background and a list of what it reported."""

    def __init__(self, names: ChannelNames = ChannelNames()) -> None:
        self.reported: list[BsreadError] = []
        self.rois = RoiSet()
        self.background = Background("cam")
        self.ingest = Ingest(names, self.rois, self.background, self.reported.append)

    def pulse(self, message: Message) -> Pulse:
        return self.ingest.pulse(message)

    @property
    def reasons(self) -> list[str]:
        return [error.reason for error in self.reported]


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def sentinels(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Both statistics entry points return SENTINEL and record their arguments."""
    calls: dict[str, list[Any]] = {"profiles": [], "rows": []}

    def from_profiles(px: np.ndarray, py: np.ndarray) -> BeamStats:
        calls["profiles"].append((np.array(px), np.array(py)))
        return SENTINEL

    def from_rows(shape: tuple[int, int], read_rows: Any) -> BeamStats:
        calls["rows"].append((shape, read_rows(np.arange(shape[0]))))
        return SENTINEL

    monkeypatch.setattr(statistics, "from_profiles", from_profiles)
    monkeypatch.setattr(statistics, "from_rows", from_rows)
    return calls


def pipeline_message(camera: str = "simulation", parameters: dict | str | None = None, pulse_id: int = 1,
                     compression: str = "none", encoder: Encoder | None = None, seed: int = 1) -> Message:
    cam = CAMERAS[camera]
    image = cam.frame(np.random.default_rng(seed))
    x_axis, y_axis = cam.axes()
    if parameters is None:
        parameters = {"camera_name": camera}
    channels = pipeline_channels(image, x_axis, y_axis, parameters, 1_700_000_000.0)
    parts = (encoder or Encoder()).encode(pulse_id, 1_700_000_000.0, [(n, v) for n, v, _ in channels],
                                          compression=compression)
    return Decoder().decode(parts)


# ---------------------------------------------------------------------------------------- scalars


def test_simulated_camera_pulse(harness: Harness) -> None:
    values = BeamModel(64, 48, seed=2).next()
    message = make_message(5, values)
    pulse = harness.pulse(message)
    assert pulse.channels == {"image_size_x": 64.0, "image_size_y": 48.0,
                              "beam_energy": float(values["beam_energy"]), "repetition_rate": 100.0}
    assert all(type(v) is float for v in pulse.channels.values())
    assert set(pulse.computed) == set(STATS_COLUMNS)  # pixel axes: no calibrated copies, no ROIs
    expected = statistics.from_image(values["image"]).row()  # the image is at hand: measured from it
    np.testing.assert_array_equal([pulse.computed[name] for name in STATS_COLUMNS], list(expected.values()))
    assert pulse.image is message.channels["image"] and pulse.processing_error == ""
    assert harness.reported == [] and harness.ingest.nonfinite_values == 0
    assert harness.ingest.layout.profile_x == "image_profile_x"


def test_scalar_kinds(harness: Harness) -> None:
    message = make_message(1, {"i": np.int64(-7), "u": np.uint64(2**63 + 1), "b": np.bool_(True), "f": np.float32(0.5),
                               "text": "hello", "array": np.ones(3), "empty": None, "one": np.array([3.0])})
    pulse = harness.pulse(message)
    # shape [1] is a scalar in bsread
    assert pulse.channels == {"i": -7.0, "u": float(2**63 + 1), "b": 1.0, "f": 0.5, "one": 3.0}
    assert pulse.image is None and harness.reported == []
    assert list(pulse.computed) == list(STATS_COLUMNS) and all(math.isnan(v) for v in pulse.computed.values())


def test_non_finite_scalars_are_kept_as_nan_and_counted(harness: Harness) -> None:
    for i, value in enumerate([1.0, math.inf, -math.inf, math.nan, 2.0]):
        pulse = harness.pulse(make_message(i, {"e": value}))
        assert (pulse.channels["e"] == value) if math.isfinite(value) else math.isnan(pulse.channels["e"])
    assert harness.ingest.nonfinite_values == 3
    assert harness.reported == []


def test_a_corrupt_scalar_is_reported_and_skipped(harness: Harness) -> None:
    channels = [{"name": "good"}, {"name": "bad", "compression": "lz4"}]
    parts = hand_message(channels, [struct.pack("<d", 1.0), stamp_bytes(), struct.pack("<I", 8) + b"\xff" * 5,
                                    stamp_bytes()])
    pulse = harness.pulse(Decoder().decode(parts))
    assert pulse.channels == {"good": 1.0} and harness.reasons == ["bad-compression"]
    ok = hand_message(channels, [struct.pack("<d", 2.0), stamp_bytes(), lz4_frame(struct.pack("<d", 3.0)),
                                 stamp_bytes()])
    assert harness.pulse(Decoder().decode(ok)).channels == {"good": 2.0, "bad": 3.0}


# ------------------------------------------------------------------------------------- statistics


def test_the_image_when_cheap_the_profiles_for_big_compressed_frames(harness: Harness, sentinels: dict[str, list[Any]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    values = BeamModel(64, 48, seed=3).next()
    harness.pulse(make_message(1, values))  # uncompressed: the image
    harness.pulse(make_message(2, values, compression="bitshuffle_lz4"))  # compressed but small: the image
    assert sentinels["profiles"] == [] and len(sentinels["rows"]) == 2
    monkeypatch.setattr(ingest_module, "IMAGE_FIRST_PIXELS", 64 * 48 - 1)  # now it is "big"
    pulse = harness.pulse(make_message(3, values, compression="bitshuffle_lz4"))
    assert len(sentinels["profiles"]) == 1 and len(sentinels["rows"]) == 2
    px, py = sentinels["profiles"][0]
    np.testing.assert_array_equal(px, values["image_profile_x"])
    np.testing.assert_array_equal(py, values["image_profile_y"])
    assert pulse.computed == SENTINEL.row()


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
def test_statistics_from_image_rows_without_profiles(harness: Harness, sentinels: dict[str, list[Any]],
                                                     compression: str) -> None:
    image = np.random.default_rng(4).integers(0, 4000, (48, 64)).astype(np.uint16)
    pulse = harness.pulse(make_message(1, {"image": image, "image_profile_x": np.ones(64)}, compression=compression))
    assert sentinels["profiles"] == [] and len(sentinels["rows"]) == 1  # half a pair is no profiles
    shape, rows = sentinels["rows"][0]
    assert shape == (48, 64)
    np.testing.assert_array_equal(rows, image)
    assert pulse.computed == SENTINEL.row() and pulse.image is not None


def test_statistics_columns_flow_through_unchanged(harness: Harness) -> None:
    """With the real statistics: whatever they compute is what the row gets, for both paths."""
    values = BeamModel(64, 48, seed=5).next()
    pulse = harness.pulse(make_message(1, values))
    expected = statistics.from_image(values["image"]).row()
    assert list(pulse.computed) == list(STATS_COLUMNS)
    np.testing.assert_array_equal(list(pulse.computed.values()), list(expected.values()))
    image_only = Harness().pulse(make_message(1, {"image": values["image"]}, compression="bitshuffle_lz4"))
    expected = statistics.from_image(values["image"]).row()
    np.testing.assert_array_equal(list(image_only.computed.values()), list(expected.values()))


def test_the_layout_follows_a_format_change(harness: Harness, sentinels: dict[str, list[Any]]) -> None:
    encoder, decoder = Encoder(), Decoder()
    image = np.ones((8, 10))
    harness.pulse(decoder.decode(encoder.encode(1, 1.0, {"image": image})))
    assert harness.ingest.layout.profile_x is None and len(sentinels["rows"]) == 1
    with_profiles = {"image": image, "x_profile": image.sum(axis=0), "y_profile": image.sum(axis=1)}
    harness.pulse(decoder.decode(encoder.encode(2, 1.0, with_profiles)))
    assert harness.ingest.layout.profile_x == "x_profile" and harness.ingest.layout.profile_y == "y_profile"


# ------------------------------------------------------------------------------- calibrated copies


def test_calibrated_copies_with_cam_server_axes(harness: Harness, sentinels: dict[str, list[Any]]) -> None:
    pulse = harness.pulse(pipeline_message("simulation"))
    axis_x, axis_y = harness.ingest.axes
    assert axis_x.calibrated and axis_y.calibrated and axis_x.step < 0 and axis_y.step < 0
    x_axis, y_axis = CAMERAS["simulation"].axes()
    assert axis_x.origin == float(x_axis[0]) and axis_y.origin == float(y_axis[0])
    row = SENTINEL.row()
    expected = {}
    for column, kind in CALIBRATED:
        axis = axis_x if column.endswith("_x") else axis_y
        expected[f"{column}_um"] = axis.origin + row[column] * axis.step if kind == "position" else \
            abs(axis.step) * row[column]
    assert {name: pulse.computed[name] for name in expected} == pytest.approx(expected, rel=1e-12)
    assert set(pulse.computed) == set(STATS_COLUMNS) | set(expected)
    assert calibrated_name("beam_rms_x", "µm") == "beam_rms_x_um"
    # Sizes are positive even though the axes descend; positions follow the descending axis.
    assert pulse.computed["beam_rms_x_um"] > 0 and pulse.computed["beam_centroid_x_um"] < float(x_axis[0])


def test_pixel_axes_give_no_calibrated_copies(harness: Harness) -> None:
    pulse = harness.pulse(pipeline_message("simulation2"))
    assert set(pulse.computed) == set(STATS_COLUMNS)
    assert not any(axis.calibrated for axis in harness.ingest.axes)


def test_only_the_calibrated_axis_gets_copies(harness: Harness, sentinels: dict[str, list[Any]]) -> None:
    image = np.ones((6, 8))
    pulse = harness.pulse(make_message(1, {"image": image, "x_axis": np.linspace(70.0, 0.0, 8).astype(np.float32),
                                           "y_axis": np.arange(6, dtype=np.float32)}))
    copies = {name for name in pulse.computed if name.endswith("_um")}
    assert copies == {f"{column}_um" for column, _ in CALIBRATED if column.endswith("_x")}
    assert pulse.computed["beam_centroid_x_um"] == pytest.approx(70.0 - 10.0 * 10.0)
    assert pulse.computed["beam_fit_sigma_x_um"] == pytest.approx(3.5 * 10.0)


# ------------------------------------------------------------------------------ regions, background


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
def test_region_values_join_the_row(harness: Harness, compression: str) -> None:
    rois = (Roi("spot", 70, 110, 30, 70), Roi("dark", 0, 10, 0, 10))
    harness.rois.replace(rois)
    message = pipeline_message("simulation", compression=compression)
    pulse = harness.pulse(message)
    truth = roi_values(rois, pipeline_message("simulation").channels["image"])
    assert {name: pulse.computed[name] for name in truth} == truth
    assert pulse.computed["roi_spot_max"] > pulse.computed["roi_dark_max"]
    harness.rois.replace(())
    assert not any(name.startswith("roi_") for name in harness.pulse(message).computed)


def test_a_background_grab_takes_the_next_images(harness: Harness) -> None:
    harness.background.grab(2)
    images = []
    for pulse_id in range(1, 4):
        message = pipeline_message("simulation2", pulse_id=pulse_id, compression="bitshuffle_lz4", seed=pulse_id)
        images.append(message.value("image"))
        harness.pulse(message)
    current = harness.background.current
    assert current is not None and current.frames == 2
    np.testing.assert_array_equal(current.image, ((images[0].astype(np.float64) + images[1]) / 2).astype(np.float32))


# ------------------------------------------------------------------------------- processing_error


def test_processing_error_gives_no_beam_and_no_region_or_background_use(harness: Harness,
                                                                        sentinels: dict[str, list[Any]]) -> None:
    harness.rois.replace((Roi("a", 0, 4, 0, 4),))
    harness.background.grab(1)
    text = "Invalid background image file: broken_background"
    message = pipeline_message("simulation", {"camera_name": "broken", "image_background_ok": False,
                                              "processing_error": text})
    assert set(message.channels) == {"x_axis", "y_axis", "image", "width", "height", "processing_parameters"}
    pulse = harness.pulse(message)
    assert pulse.processing_error == text
    assert sentinels == {"profiles": [], "rows": []}
    assert all(math.isnan(pulse.computed[name]) for name in STATS_COLUMNS)
    assert not any(name.startswith("roi_") for name in pulse.computed)
    assert harness.background.grabbing and harness.background.current is None
    assert pulse.image is message.channels["image"]  # the zeroed frame is still shown, with the error
    assert pulse.channels == {"width": 160.0, "height": 120.0}
    # The next pulse without the error is a normal one again.
    recovered = harness.pulse(pipeline_message("simulation"))
    assert recovered.processing_error == "" and recovered.computed["beam_intensity"] == SENTINEL.intensity
    assert harness.background.current is not None and "roi_a_sum" in recovered.computed


def test_processing_parameters_are_parsed_only_when_they_change(harness: Harness,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    class CountingJson:
        @staticmethod
        def loads(text: str) -> Any:
            parsed.append(text)
            return json.loads(text)

    monkeypatch.setattr(ingest_module, "json", CountingJson)
    encoder = Encoder()
    error = {"processing_error": "boom"}
    for pulse_id in range(1, 6):
        assert harness.pulse(pipeline_message("simulation2", error, pulse_id, encoder=encoder)).processing_error == "boom"
    assert len(parsed) == 1
    assert harness.pulse(pipeline_message("simulation2", {"x": 1}, 6, encoder=encoder)).processing_error == ""
    assert harness.pulse(pipeline_message("simulation2", {"x": 1}, 7, encoder=encoder)).processing_error == ""
    assert len(parsed) == 2


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"just a string"', '{"processing_error": ""}',
                                  '{"processing_error": null}', '{"processing_error": false}', "[" * 100_000,
                                  '{"a":' * 50_000, '{"processing_error": "\x00"}'])
def test_odd_processing_parameters_are_no_error(harness: Harness, text: str) -> None:
    image = np.ones((8, 8), np.uint16)
    pulse = harness.pulse(make_message(1, {"image": image, "processing_parameters": text}))
    assert pulse.processing_error == "" and pulse.image is not None


def test_processing_parameters_of_invalid_utf8_are_no_error(harness: Harness) -> None:
    channels = [{"name": "processing_parameters", "type": "string"}]
    parts = hand_message(channels, [b'{"processing_error": "\xff\xfe"', stamp_bytes()])
    assert harness.pulse(Decoder().decode(parts)).processing_error == ""
    parts = hand_message(channels, [b'{"processing_error": "\xff"}', stamp_bytes()], pulse_id=2)
    assert harness.pulse(Decoder().decode(parts)).processing_error == "\ufffd"


def test_a_long_processing_error_is_capped(harness: Harness) -> None:
    pulse = harness.pulse(pipeline_message("simulation2", {"processing_error": "x" * 5000}))
    assert pulse.processing_error == "x" * 500
    structured = harness.pulse(pipeline_message("simulation2", {"processing_error": {"code": 3}}, 2))
    assert structured.processing_error == "{'code': 3}"


def test_processing_parameters_that_are_not_a_string_are_ignored(harness: Harness) -> None:
    pulse = harness.pulse(make_message(1, {"image": np.ones((4, 4)), "processing_parameters": np.ones(3)}))
    assert pulse.processing_error == "" and pulse.image is not None


# ------------------------------------------------------------------------------------- bad images


@pytest.mark.parametrize("value", [np.zeros((0, 8)), np.zeros((8, 0)), np.ones(8), np.ones((2, 3, 4)), "image",
                                   None, np.float64(3.0)])
def test_unusable_image_channels_give_no_image(harness: Harness, sentinels: dict[str, list[Any]], value: Any) -> None:
    pulse = harness.pulse(make_message(1, {"image": value}))
    assert pulse.image is None and sentinels["rows"] == []
    assert all(math.isnan(v) for v in pulse.computed.values()) and harness.reported == []


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_a_corrupt_image_is_reported_once_and_not_shown(harness: Harness, compression: str) -> None:
    harness.rois.replace((Roi("a", 0, 4, 0, 4),))
    harness.background.grab(1)
    parts = Encoder().encode(1, 1.0, {"image": np.zeros((32, 32), np.uint16)}, compression=compression)
    value = bytearray(parts[2])
    value[12:] = b"\xff" * (len(value) - 12)
    parts[2] = bytes(value)
    pulse = harness.pulse(Decoder().decode(parts))
    assert pulse.image is None and len(harness.reported) == 1
    assert harness.reported[0].reason in ("bad-compression", "size-mismatch")
    assert all(math.isnan(pulse.computed[name]) for name in STATS_COLUMNS)
    assert not any(name.startswith("roi_") for name in pulse.computed)
    assert harness.background.current is None


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_a_corrupt_image_beside_good_profiles_is_caught_by_the_regions(harness: Harness, compression: str) -> None:
    harness.rois.replace((Roi("a", 0, 4, 0, 4),))
    image = np.zeros((32, 32), np.uint16)
    parts = Encoder().encode(1, 1.0, {"image": image, "x_profile": image.sum(axis=0), "y_profile": image.sum(axis=1)},
                             compression={"image": compression})
    value = bytearray(parts[2])
    value[12:] = b"\xff" * (len(value) - 12)
    parts[2] = bytes(value)
    pulse = harness.pulse(Decoder().decode(parts))
    assert pulse.image is None and len(harness.reported) == 1
    assert set(pulse.computed) == set(STATS_COLUMNS)  # statistics from the profiles, no region values


def test_corrupt_profiles_are_reported_and_the_image_is_used(harness: Harness, sentinels: dict[str, list[Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "IMAGE_FIRST_PIXELS", 0)  # a "big" compressed frame: profiles first
    image = np.ones((8, 8))
    parts = Encoder().encode(1, 1.0, {"image": image, "x_profile": image.sum(axis=0), "y_profile": image.sum(axis=1)},
                             compression={"x_profile": "lz4", "image": "lz4"})
    value = bytearray(parts[4])
    value[4:] = b"\xff" * (len(value) - 4)
    parts[4] = bytes(value)
    pulse = harness.pulse(Decoder().decode(parts))
    assert len(harness.reported) == 1 and sentinels["profiles"] == [] and len(sentinels["rows"]) == 1
    assert pulse.image is not None and pulse.computed == SENTINEL.row()


ODD_PROFILES = [np.zeros(0), np.zeros(1), np.ones(2), np.array([True, False, True]), np.full(9, 2**63, np.uint64),
                np.array([np.nan, np.inf, -np.inf, 1.0]), np.full(20, 1e308), np.arange(-5, 5, dtype=np.int8),
                np.full(16, np.nan)]


@pytest.mark.parametrize("profile", ODD_PROFILES, ids=range(len(ODD_PROFILES)))
def test_odd_profiles_never_raise(harness: Harness, profile: np.ndarray) -> None:
    pulse = harness.pulse(make_message(1, {"x_profile": profile, "y_profile": profile[::-1].copy(),
                                           "image": np.ones((3, 3))}))
    assert set(STATS_COLUMNS) <= set(pulse.computed)
    assert all(isinstance(v, float) for v in pulse.computed.values())


ODD_IMAGES = [np.ones((1, 50)), np.ones((50, 1)), np.ones((2, 2), bool), np.full((8, 8), -128, np.int8),
              np.full((9, 9), np.nan), np.full((9, 9), np.inf), np.full((9, 9), 1.7e308),
              np.full((9, 9), 2**64 - 1, np.uint64), np.zeros((12, 12), np.float32)]


@pytest.mark.parametrize("compression", ["none", "bitshuffle_lz4"])
@pytest.mark.parametrize("image", ODD_IMAGES, ids=range(len(ODD_IMAGES)))
def test_odd_images_never_raise(harness: Harness, image: np.ndarray, compression: str) -> None:
    harness.rois.replace((Roi("a", 0, 1, 0, 1),))
    harness.background.grab(1)
    pulse = harness.pulse(make_message(1, {"image": image}, compression=compression))
    assert pulse.image is not None and harness.reported == []
    assert set(STATS_COLUMNS) <= set(pulse.computed)
    corner = float(image[0, 0].astype(np.float64))
    if math.isfinite(corner):
        assert pulse.computed["roi_a_sum"] == corner
    else:  # a region sums its finite pixels: none (NaN or ±inf only) is no value, never inf or NaN arithmetic
        assert math.isnan(pulse.computed["roi_a_sum"])
    assert harness.background.current is not None


def test_names_choose_the_image_channel() -> None:
    harness = Harness(ChannelNames(image="camera"))
    message = make_message(1, {"image": np.ones((4, 4)), "camera": np.zeros((2, 3))})
    pulse = harness.pulse(message)
    assert pulse.image is message.channels["camera"] and harness.ingest.layout.image == "camera"


# ------------------------------------------------------------------------------------------ frames


def test_make_frame_keeps_what_the_pulse_gave(harness: Harness) -> None:
    message = pipeline_message("simulation")
    pulse = harness.pulse(message)
    frame = make_frame(41, message, pulse, 1_700_000_001.5, harness.ingest)
    assert (frame.seq, frame.pulse_id, frame.timestamp, frame.received) == (41, 1, 1_700_000_000.0, 1_700_000_001.5)
    assert frame.message is message and frame.computed is pulse.computed and frame.channels is pulse.channels
    assert frame.processing_error == "" and frame.shape == (120, 160)
    no_image = harness.pulse(make_message(2, {"beam_energy": 5.0}))
    assert make_frame(42, message, no_image, 0.0, harness.ingest) is None


# --------------------------------------------------------------- statistics budget (receiver behind)


class SpentBudget:
    """A budget that refuses every pulse taken while the receiver is behind."""

    def allows(self, waited_s: float) -> bool:
        return waited_s > 0.0

    def spend(self, seconds: float) -> None:
        pass


def test_a_pulse_beyond_the_budget_keeps_all_but_its_beam_statistics(harness: Harness) -> None:
    harness.rois.replace((Roi("spot", 70, 110, 30, 70),))
    harness.ingest.budget = SpentBudget()
    message = pipeline_message("simulation")
    measured = harness.pulse(message)
    skipped = harness.ingest.pulse(message, waited_s=0.0)
    assert measured.measured and not skipped.measured and harness.ingest.statistics_skipped == 1
    assert skipped.channels == measured.channels and skipped.image is measured.image
    assert set(skipped.computed) == set(measured.computed)
    beam = [name for name in skipped.computed if name.startswith("beam_")]
    assert len(beam) == len(STATS_COLUMNS) + len(CALIBRATED) and all(math.isnan(skipped.computed[n]) for n in beam)
    assert skipped.computed["roi_spot_sum"] == measured.computed["roi_spot_sum"] > 0
    assert math.isfinite(measured.computed["beam_centroid_x_um"])
    # still every pulse measured as long as the receiver keeps up
    assert harness.ingest.pulse(message, waited_s=1.0).measured and harness.ingest.statistics_skipped == 1


def test_the_frame_of_a_skipped_pulse_is_measured_when_looked_at(harness: Harness) -> None:
    """Known truth: the simulated camera's spot centre and size (tests/camserver_standin.py)."""
    harness.ingest.budget = SpentBudget()
    message = pipeline_message("simulation")
    measured = harness.pulse(message)
    skipped = harness.ingest.pulse(message, waited_s=0.0)
    frame = make_frame(7, message, skipped, 0.0, harness.ingest)
    assert frame.computed is not skipped.computed and math.isnan(skipped.computed["beam_centroid_x"])
    assert dict(frame.computed) == pytest.approx(dict(measured.computed), nan_ok=True)
    spot = CAMERAS["simulation"].spot()
    assert frame.computed["beam_centroid_x"] == pytest.approx(spot.x_px, abs=0.5)
    assert frame.computed["beam_rms_y"] == pytest.approx(spot.sigma_y_px, rel=0.05)
    assert frame.computed["beam_centroid_y_um"] == pytest.approx(spot.y, abs=0.5 * spot.sigma_y / spot.sigma_y_px)
    assert len(frame.computed) == len(measured.computed) and "beam_fit_sigma_x_um" in frame.computed
