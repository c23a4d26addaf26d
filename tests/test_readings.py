"""The readings panel (components/readings_panel.py, callbacks/readings_panel.py) and how numbers read
(components/formatting.py): the newest pulse's values as text, with units, from a fed camera."""

from __future__ import annotations

import math

import numpy as np
import pytest

from callbacks.readings_panel import SaturationCounts, geometry, processing_parameters
from components.formatting import age, format_value, iso_utc, pulse_id, safe_filename, utc_for_filename, with_unit
from components.readings_panel import NOT_IN_STREAM, READING_IDS, readings_text
from components import ids
from stream.rois import Roi
from web.render import saturation_level
from tests.web_fixtures import FedCamera, camera_values, designed_image


def texts(camera: FedCamera, saturated: int | None = None) -> dict[str, str]:
    frame = camera.frames.latest()
    return dict(zip(READING_IDS, readings_text(camera.buffer.newest(), camera.layout, camera.axes,
                                               frame.shape if frame else None, saturated,
                                               tuple(r.name for r in camera.rois.rois))))


# ------------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(("value", "text"), [(5.2, "5.2"), (1234.5678, "1235"), (0.012345, "0.01235"),
                                             (123456.0, "1.235e+05"), (0.001, "1.000e-03"), (0, "0"), (-2.5, "-2.5"),
                                             (float("nan"), "—"), (float("inf"), "—"), (None, "—"), ("x", "—")])
def test_format_value(value, text: str) -> None:
    assert format_value(value) == text


def test_swissfel_pulse_ids_read_with_every_digit() -> None:
    assert pulse_id(15_000_000_123) == "15000000123"
    assert pulse_id(np.int64(2**53 + 1)) == str(2**53 + 1)
    assert pulse_id(None) == "—" and pulse_id(-1) == "—" and pulse_id("junk") == "—"


def test_times_are_iso_8601_utc() -> None:
    assert iso_utc(1_800_000_000.0) == "2027-01-15T08:00:00.000000Z"
    assert iso_utc(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    assert iso_utc(float("nan")) == "" and iso_utc(1e30) == ""
    assert utc_for_filename(1_800_000_000.0) == "20270115T080000Z"


@pytest.mark.parametrize(("seconds", "text"), [(0.42, "0.4 s"), (12.3, "12 s"), (185, "3 min 5 s"),
                                               (7800, "2 h 10 min"), (None, "never"), (float("nan"), "never")])
def test_age_reads_for_people(seconds, text: str) -> None:
    assert age(seconds) == text


def test_with_unit_and_safe_filename() -> None:
    assert with_unit(5.25, "GeV", ".4f") == "5.2500 GeV" and with_unit(float("nan"), "GeV") == "—"
    assert safe_filename("SLG-LCAM-C102:FPICTURE/../x y.csv") == "SLG-LCAM-C102_FPICTURE_.._x_y.csv"


# ------------------------------------------------------------------------------------------ readings


def test_readings_of_the_newest_pulse() -> None:
    camera = FedCamera()
    camera.feed(camera_values(designed_image(48, 64), energy=5.123456, rate=99.5), pulse_id=15_000_000_001,
                timestamp=1_800_000_000.5)
    shown = texts(camera, saturated=1234)
    assert shown[ids.BEAM_ENERGY] == "5.1235 GeV"
    assert shown[ids.REPETITION_RATE] == "99.50 Hz"
    assert shown[ids.PULSE_ID] == "15000000001"
    assert shown[ids.TIMESTAMP] == "2027-01-15T08:00:00.500000Z"
    assert shown[ids.IMAGE_SIZE] == "64 × 48 px"
    assert shown[ids.SATURATED] == "1,234 px"
    assert shown[ids.ROI_VALUES] == "none"
    assert shown[ids.STREAM_STATISTICS] == NOT_IN_STREAM


def test_no_pulse_yet_reads_dashes() -> None:
    assert set(texts(FedCamera()).values()) == {"—"}


def test_a_stream_without_energy_or_rate_says_so() -> None:
    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8)})
    shown = texts(camera)
    assert shown[ids.BEAM_ENERGY] == NOT_IN_STREAM and shown[ids.REPETITION_RATE] == NOT_IN_STREAM
    assert shown[ids.SATURATED] == "—"


def test_nan_energy_reads_as_a_dash() -> None:
    camera = FedCamera()
    camera.feed(camera_values(designed_image(8, 8), energy=float("nan")))
    assert texts(camera)[ids.BEAM_ENERGY] == "—" and camera.nonfinite_values == 1


def test_region_values_are_read_from_the_history_row() -> None:
    camera = FedCamera()
    camera.feed(camera_values(designed_image(8, 8)))
    camera.rois.replace((Roi("spot", 1, 3, 2, 4),))
    camera.feed(camera_values(designed_image(8, 8)))
    # pixels (col 1..2, row 2..3): 2001 + 2002 + 3001 + 3002
    assert texts(camera)[ids.ROI_VALUES] == "spot: Σ 10006, max 3002"


def test_calibrated_positions_read_in_micrometres_with_pixels_beside() -> None:
    camera = FedCamera()
    x_axis = np.arange(64, dtype=np.float32) * -2.0 + 100  # descending: 100, 98, ...
    y_axis = np.arange(48, dtype=np.float32) * 2.0
    camera.feed({"image": designed_image(48, 64), "x_axis": x_axis, "y_axis": y_axis})
    row = {name: column[-1] for name, column in camera.buffer.newest().columns.items()}
    shown = texts(camera)
    assert shown[ids.IMAGE_SIZE] == "64 × 48 px (axes in µm)"
    if math.isfinite(row["beam_centroid_x"]):  # the statistics are an interim placeholder; only the units matter here
        assert shown[ids.CENTROID].endswith(" px)") and " µm (" in shown[ids.CENTROID]


def test_the_streams_own_statistics_are_labelled_as_the_streams() -> None:
    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8), "x_center_of_mass": np.float64(1.5),
                 "y_center_of_mass": np.float64(2.5), "x_fit_mean": np.float64(3.0), "y_fit_mean": np.float64(4.0)})
    assert texts(camera)[ids.STREAM_STATISTICS] == "centre of mass 1.5, 2.5 · fit mean 3, 4 px"


# ------------------------------------------------------------------------------------------ saturation


def test_saturation_level_is_the_dtype_maximum_or_the_chosen_level() -> None:
    assert saturation_level(np.dtype(np.uint16), None) == 65535.0
    assert saturation_level(np.dtype(np.uint8), None) == 255.0
    assert saturation_level(np.dtype(np.uint16), 3000.0) == 3000.0
    assert saturation_level(np.dtype(np.uint16), math.nan) == 65535.0  # an unusable choice falls back
    assert saturation_level(np.dtype(np.float64), None) is None  # a float camera has no maximum


def test_saturated_pixels_are_counted_once_per_frame_and_level() -> None:
    camera = FedCamera()
    image = designed_image(8, 8, dtype=np.uint16)
    image[0, :3] = 65535
    camera.feed({"image": image})
    counts = SaturationCounts()
    frame = camera.frames.latest()
    assert counts.count(frame, 65535.0) == 3
    assert counts.count(frame, 7000.0) == 3 + 8  # rows 7 (7000 ... 7007) and the three hot pixels
    assert counts.count(frame, 65535.0) == 3


# ------------------------------------------------------------------------------------------ geometry, parameters


def test_geometry_changes_only_with_shape_axes_or_regions() -> None:
    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8)})
    first = geometry(camera)
    assert first == {"camera": "cam", "shape": [8, 8], "x": [0.0, 1.0, "px"], "y": [0.0, 1.0, "px"], "rois": 0}
    camera.feed({"image": designed_image(8, 8)})
    assert geometry(camera) == first
    camera.rois.replace((Roi("a", 0, 1, 0, 1),))
    assert geometry(camera)["rois"] == 1
    camera.feed({"image": designed_image(4, 8)})
    assert geometry(camera)["shape"] == [4, 8]


def test_processing_parameters_as_text() -> None:
    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8)})
    assert processing_parameters(camera, camera.frames.latest()) == "(the stream sends no processing parameters)"
    camera.feed({"image": designed_image(8, 8), "processing_parameters": '{"camera_name": "<b>sim</b>"}'})
    assert processing_parameters(camera, camera.frames.latest()) == '{"camera_name": "<b>sim</b>"}'


def test_huge_processing_parameters_are_cut_to_what_a_request_can_carry_back() -> None:
    """The page echoes the text as the readings callback's State 4 times a second; a 1 MiB string
    (the largest the decoder accepts) made every later readings request fail with 413."""
    from callbacks.readings_panel import MAX_PARAMETERS_CHARS

    camera = FedCamera()
    camera.feed({"image": designed_image(8, 8), "processing_parameters": "x" * (1024 * 1024)})
    text = processing_parameters(camera, camera.frames.latest())
    assert text.startswith("x" * MAX_PARAMETERS_CHARS) and text.endswith(f"({1024 * 1024 - MAX_PARAMETERS_CHARS:,} more characters)")
    assert len(text.encode()) < 100 * 1024
