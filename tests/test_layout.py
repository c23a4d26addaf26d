"""Channel roles: detection for the simulated camera and cam_server pipeline streams, flags overriding
detection, axis calibration from first/last value (pixels for 0 ... N-1, descending allowed), and the
axis cache that recomputes only when an axis channel changes."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

import stream.layout as layout_module
from stream.encoder import Encoder
from stream.layout import (CALIBRATED_UNIT, STREAM_STATISTICS, Axis, AxisCache, ChannelNames, axis_from, detect,
                           pixel_axis)
from stream.protocol import Decoder
from stream.simulator import BeamModel
from tests.camserver_standin import default_cameras, pipeline_channels
from tests.helpers import make_message
from tests.hand_built import hand_message, stamp_bytes

SIMULATION = default_cameras()["simulation"]  # calibrated, descending micrometre axes


def pipeline_message(parameters: dict | None = None, camera=SIMULATION, **encode):
    image = camera.frame(np.random.default_rng(1))
    x_axis, y_axis = camera.axes()
    channels = pipeline_channels(image, x_axis, y_axis, parameters or {"camera_name": camera.name}, 1.0)
    return make_message(1, [(name, value) for name, value, _ in channels], **encode)


# ------------------------------------------------------------------------------------------ detect


def test_simulated_camera_layout() -> None:
    layout = detect(make_message(1, BeamModel(32, 24, seed=1).next()), ChannelNames())
    assert (layout.image, layout.energy, layout.rate) == ("image", "beam_energy", "repetition_rate")
    assert (layout.profile_x, layout.profile_y) == ("image_profile_x", "image_profile_y")
    assert layout.axis_x is layout.axis_y is None
    assert layout.fit_function_x is layout.fit_function_y is layout.parameters is None
    assert layout.stream_statistics == () and not layout.is_pipeline


def test_cam_server_pipeline_layout() -> None:
    layout = detect(pipeline_message(), ChannelNames())
    assert layout.image == "image" and layout.energy is None and layout.rate is None
    assert (layout.profile_x, layout.profile_y) == ("x_profile", "y_profile")
    assert (layout.axis_x, layout.axis_y) == ("x_axis", "y_axis")
    assert (layout.fit_function_x, layout.fit_function_y) == ("x_fit_gauss_function", "y_fit_gauss_function")
    assert layout.parameters == "processing_parameters" and layout.is_pipeline
    assert layout.stream_statistics == STREAM_STATISTICS  # all seven, x and y, in our order
    assert [label for label, _, _ in layout.stream_statistics] == [
        "centre of mass", "rms", "fwhm", "fit mean", "fit σ", "fit amplitude", "fit offset"]


def test_cam_server_processing_error_layout() -> None:
    layout = detect(pipeline_message({"processing_error": "Invalid background image file: x"}), ChannelNames())
    assert layout.parameters == "processing_parameters" and layout.is_pipeline
    assert layout.profile_x is layout.profile_y is None and layout.stream_statistics == ()
    assert (layout.axis_x, layout.axis_y) == ("x_axis", "y_axis")


def test_profile_pairs() -> None:
    both = detect(make_message(1, {"image_profile_x": np.ones(3), "image_profile_y": np.ones(2),
                                   "x_profile": np.ones(3), "y_profile": np.ones(2)}), ChannelNames())
    assert (both.profile_x, both.profile_y) == ("x_profile", "y_profile")  # cam_server's names first
    half = detect(make_message(1, {"x_profile": np.ones(3), "image_profile_y": np.ones(2)}), ChannelNames())
    assert half.profile_x is half.profile_y is None  # a pair or nothing


def test_some_stream_statistics() -> None:
    layout = detect(make_message(1, {"x_rms": 1.0, "y_fwhm": 2.0, "image": np.zeros((2, 2))}), ChannelNames())
    assert layout.stream_statistics == (("rms", "x_rms", None), ("fwhm", None, "y_fwhm"))
    assert layout.is_pipeline


def test_flags_override_detection() -> None:
    message = make_message(1, {"cam": np.zeros((2, 3)), "px": np.ones(3), "py": np.ones(2), "ax": np.arange(3.0),
                               "ay": np.arange(2.0), "E": 5.0, "x_profile": np.ones(3), "y_profile": np.ones(2),
                               "x_axis": np.arange(3.0), "y_axis": np.arange(2.0)})
    names = ChannelNames(image="cam", energy="E", rate="R", profile_x="px", profile_y="py", axis_x="ax", axis_y="ay")
    layout = detect(message, names)
    assert (layout.image, layout.energy, layout.rate) == ("cam", "E", None)  # R is not in the stream
    assert (layout.profile_x, layout.profile_y, layout.axis_x, layout.axis_y) == ("px", "py", "ax", "ay")
    absent = detect(message, ChannelNames(profile_x="nope", profile_y="px", axis_x="nope"))
    assert (absent.profile_x, absent.profile_y, absent.axis_x) == (None, "px", None)  # no fallback to detection
    assert absent.axis_y == "y_axis"


def test_empty_message_layout() -> None:
    layout = detect(make_message(1, {}), ChannelNames())
    assert layout.image == "image" and layout.energy is None and layout.profile_x is None
    assert layout.stream_statistics == () and not layout.is_pipeline


# --------------------------------------------------------------------------------------- axis_from


def test_cam_server_descending_calibration() -> None:
    x_axis, y_axis = SIMULATION.axes()
    for values in (x_axis, y_axis):
        axis = axis_from(values, values.size)
        assert axis.calibrated and axis.unit == CALIBRATED_UNIT == "µm"
        assert axis.origin == float(values[0]) and axis.step < 0
        assert axis.step == pytest.approx((float(values[-1]) - float(values[0])) / (values.size - 1))
        np.testing.assert_allclose([axis.at(i) for i in range(values.size)], values, rtol=0, atol=0.01)
    axis = axis_from(x_axis, x_axis.size)
    assert axis.at(79) == pytest.approx(0.0, abs=0.01)  # the origin pixel: 160 * 637 // 1280
    assert axis.index(axis.at(12.25)) == pytest.approx(12.25)


def test_ascending_calibration_and_pixel_axes() -> None:
    ascending = axis_from(np.linspace(-5.0, 5.0, 11), 11)
    assert ascending == Axis(-5.0, 1.0, "µm") and ascending.calibrated
    for values in (np.arange(640, dtype=np.float32), np.arange(480, dtype=np.int64), np.arange(2.0)):
        axis = axis_from(values, values.size)
        assert axis == pixel_axis() and not axis.calibrated and axis.unit == "px"
    assert axis_from(np.arange(1.0, 11.0), 10).calibrated  # 1 ... N is not cam_server's pixel axis


@pytest.mark.parametrize("values, length", [
    (None, 5),
    (np.arange(5.0), 6),  # does not fit the image
    (np.arange(6.0).reshape(2, 3), 6),
    (np.array([3.0]), 1),
    (np.zeros(0), 0),
    (np.full(4, 2.0), 4),  # first == last
    (np.array([np.nan, 1.0, 2.0]), 3),
    (np.array([0.0, 1.0, np.inf]), 3),
    (np.array([-np.inf, 0.0, np.inf]), 3),
])
def test_unusable_axes_are_pixels(values, length: int) -> None:
    assert axis_from(values, length) == pixel_axis()


def test_pixel_axis_arithmetic() -> None:
    axis = pixel_axis()
    assert (axis.at(3.5), axis.index(3.5), axis.origin, axis.step) == (3.5, 3.5, 0.0, 1.0)
    assert math.isnan(Axis(1.0, -2.0, "µm").at(math.nan))


# ----------------------------------------------------------------------------------------- AxisCache


def test_axis_cache_recomputes_only_when_the_channel_bytes_change(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = layout_module.axis_from

    def counting(values, length):
        calls.append(length)
        return original(values, length)

    monkeypatch.setattr(layout_module, "axis_from", counting)
    cache = AxisCache()
    x_axis, y_axis = SIMULATION.axes()
    decoder, encoder = Decoder(), Encoder()
    for pulse in range(5):
        message = decoder.decode(encoder.encode(pulse, 1.0, {"x_axis": x_axis, "y_axis": y_axis}))
        ax = cache.axis(message.channels["x_axis"], x_axis.size)
        ay = cache.axis(message.channels["y_axis"], y_axis.size)
    assert calls == [x_axis.size, y_axis.size]  # once per channel, not per message
    assert ax.calibrated and ay.calibrated and ax.step != ay.step
    moved = decoder.decode(encoder.encode(9, 1.0, {"x_axis": x_axis[::-1].copy(), "y_axis": y_axis}))
    assert cache.axis(moved.channels["x_axis"], x_axis.size).step == pytest.approx(-ax.step)
    assert cache.axis(moved.channels["y_axis"], y_axis.size) == ay
    assert len(calls) == 3


def test_axis_cache_follows_the_image_size() -> None:
    """The same axis bytes describe an image of their length only; another size gets pixels."""
    cache = AxisCache()
    values = np.linspace(100.0, -100.0, 8)
    channel = make_message(1, {"x_axis": values}).channels["x_axis"]
    assert cache.axis(channel, 8).calibrated
    assert cache.axis(channel, 10) == pixel_axis()
    assert cache.axis(channel, 8).calibrated


def test_axis_cache_unusable_channels_are_pixels() -> None:
    cache = AxisCache()
    assert cache.axis(None, 4) == pixel_axis()
    empty = make_message(1, {"x_axis": None}).channels["x_axis"]
    assert cache.axis(empty, 4) == pixel_axis()
    text = make_message(1, {"x_axis": "0 1 2 3"}).channels["x_axis"]
    assert cache.axis(text, 4) == pixel_axis()
    corrupt = Decoder().decode(hand_message([{"name": "x_axis", "shape": [4], "compression": "lz4"}],
                                            [struct.pack("<I", 32) + b"\xff" * 8, stamp_bytes()]))
    assert cache.axis(corrupt.channels["x_axis"], 4) == pixel_axis()  # no exception
