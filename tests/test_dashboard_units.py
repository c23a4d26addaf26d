"""Pure dashboard builders: image payload, colour range, history buckets, window statistics, CSV export,
status document and health panel. No server, no browser, no ZeroMQ.

Expected values are computed here from the inputs with plain numpy/Python (never by calling the
function under test a second time)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dash import html
from hypothesis import given, settings
from hypothesis import strategies as st

from components.export import readings_csv
from components.health_panel import health_rows, status_document
from components.history_panel import (MAX_POINTS, NOMINAL_RATE_HZ, WINDOWS, bucket_rows, bucketize, extend_data,
                                      window_statistics)
from components.image_panel import (LEVELS, MAX_BINS, ImageView, nice_range, render_image, typed_array,
                                    view_from_settings)
from stream.receiver import Health
from stream.ring_buffer import STATS_COLUMNS, History, RingBuffer
from tests.helpers import make_message

# --------------------------------------------------------------------------------------------- helpers


def decode_typed(spec: dict[str, str]) -> np.ndarray:
    """plotly.js typed-array spec -> numpy array (the browser's view of the payload)."""
    dtype = {"u1": np.uint8, "u2": np.uint16, "f4": np.float32, "f8": np.float64, "i4": np.int32}[spec["dtype"]]
    flat = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    if "shape" in spec:
        shape = tuple(int(n) for n in spec["shape"].split(","))
        return flat.reshape(shape)
    return flat


def expected_levels(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map [lo, hi] -> 0..255, clipped, truncated (as an 8-bit display level)."""
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (LEVELS / (hi - lo))
    return np.clip(scaled, 0, LEVELS).astype(np.uint8)


def beam_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    spot = 1000.0 * np.exp(-0.5 * (((x - width * 0.4) / (width / 10 + 1)) ** 2 + ((y - height * 0.6) / (height / 12 + 1)) ** 2))
    return spot + rng.uniform(0, 5, size=(height, width))


def make_history(pulse_ids: list[int], columns: dict[str, list[float]], seq_start: int = 0,
                 timestamps: list[float] | None = None) -> History:
    n = len(pulse_ids)
    cols: dict[str, np.ndarray] = {
        "seq": np.arange(seq_start, seq_start + n, dtype=np.int64),
        "pulse_id": np.asarray(pulse_ids, dtype=np.int64),
        "timestamp": np.asarray(timestamps if timestamps is not None else [1_800_000_000.0 + i * 0.01 for i in range(n)]),
    }
    for name, values in columns.items():
        cols[name] = np.asarray(values, dtype=np.float64)
    return History(seq_start, seq_start + n, cols, tuple(columns))


def assert_json_safe(value: Any) -> None:
    json.dumps(value, allow_nan=False)


# --------------------------------------------------------------------------------------------- render_image


def test_payload_is_a_base64_uint8_typed_array_matching_the_shown_shape() -> None:
    image = beam_image(480, 640)
    payload = render_image(image, view_from_settings(None, None))
    z = payload["z"]
    assert z["dtype"] == "u1"
    raw = base64.b64decode(z["bdata"], validate=True)
    rows, cols = payload["shown"]
    assert len(raw) == rows * cols == payload["bytes"]
    assert tuple(int(n) for n in z["shape"].split(",")) == (rows, cols)
    assert payload["shape"] == [480, 640]
    for key in ("profile_x", "profile_y"):
        assert payload[key]["dtype"] == "f4"
    assert len(decode_typed(payload["profile_x"])) == cols
    assert len(decode_typed(payload["profile_y"])) == rows
    # Everything except the (server-side only) peak must go through strict JSON.
    assert_json_safe({k: v for k, v in payload.items() if k != "peak"})


def test_full_frame_is_downsampled_to_the_view_with_square_bins() -> None:
    image = beam_image(480, 640)
    view = view_from_settings(None, {"width": 500, "height": 400})
    payload = render_image(image, view)
    rows, cols = payload["shown"]
    assert rows <= view.bins_y and cols <= view.bins_x
    f = payload["bin"]
    assert f > 1 and payload["dx"] == payload["dy"] == f
    assert (rows, cols) == (480 // f, 640 // f)
    # The first bin's centre, in image pixels.
    assert payload["x0"] == pytest.approx((f - 1) / 2) and payload["y0"] == pytest.approx((f - 1) / 2)
    # Block mean of the first and a middle bin, mapped through the colour-bar range given by the ticks.
    lo, hi = float(payload["ticktext"][0]), float(payload["ticktext"][-1])
    z = decode_typed(payload["z"])
    for r, c in ((0, 0), (rows // 2, cols // 3)):
        block = image[r * f:(r + 1) * f, c * f:(c + 1) * f].mean()
        assert abs(int(z[r, c]) - int(expected_levels(block, lo, hi))) <= 1


def test_peak_and_profiles_follow_the_image() -> None:
    image = np.zeros((60, 80))
    image[30, 20] = 7.0  # one hot pixel
    payload = render_image(image, ImageView(bins_x=80, bins_y=60))
    assert payload["bin"] == 1
    assert payload["peak"] == 7.0
    px, py = decode_typed(payload["profile_x"]), decode_typed(payload["profile_y"])
    assert int(np.argmax(px)) == 20 and int(np.argmax(py)) == 30
    assert px.sum() == pytest.approx(7.0) and py.sum() == pytest.approx(7.0)


@pytest.mark.parametrize("height,width", [(480, 640), (2048, 2048), (10, 10000), (10000, 10), (3, 5000), (1, 1),
                                          (1, 2000), (7, 3)])
@pytest.mark.parametrize("screen", [(640, 520), (100, 60), (5000, 5000)])
def test_shown_shape_is_bounded_by_the_views_bins(height: int, width: int, screen: tuple[int, int]) -> None:
    image = np.arange(height * width, dtype=np.float64).reshape(height, width)
    view = view_from_settings(None, {"width": screen[0], "height": screen[1]})
    assert 8 <= view.bins_x <= MAX_BINS and 8 <= view.bins_y <= MAX_BINS
    payload = render_image(image, view)
    rows, cols = payload["shown"]
    assert 1 <= rows <= min(height, view.bins_y), payload["shown"]
    assert 1 <= cols <= min(width, view.bins_x), payload["shown"]
    assert len(base64.b64decode(payload["z"]["bdata"])) == rows * cols
    # The rendered grid still spans (nearly) the whole image: no more than one bin is cut per axis.
    assert rows * payload["dy"] > height - payload["dy"] and cols * payload["dx"] > width - payload["dx"]


def test_one_pixel_image() -> None:
    payload = render_image(np.array([[42.0]]), view_from_settings(None, None))
    assert payload["shape"] == [1, 1] and payload["shown"] == [1, 1] and payload["bin"] == 1
    assert decode_typed(payload["z"]).shape == (1, 1)
    assert payload["peak"] == 42.0


def test_zoom_region_is_sent_at_native_resolution() -> None:
    image = beam_image(480, 640, seed=3)
    # What plotly reports after a box zoom: fractional pixel coordinates (pixel centres at integers).
    view = view_from_settings({"range_mode": "manual", "zmin": 0, "zmax": 1000},
                              {"x": [99.5, 149.5], "y": [239.5, 199.5]})
    assert view.x_range == (100, 150) and view.y_range == (200, 240)
    payload = render_image(image, view)
    assert payload["bin"] == 1 and payload["shown"] == [40, 50]
    assert payload["x0"] == 100 and payload["y0"] == 200
    z = decode_typed(payload["z"])
    expected = expected_levels(image[200:240, 100:150], 0, 1000)
    assert np.abs(z.astype(int) - expected.astype(int)).max() <= 1


def test_zoom_outside_the_image_falls_back_to_a_valid_region() -> None:
    image = beam_image(48, 64)
    for x, y in (([-500, -400], None), ([1e12, 2e12], [5, 10]), ([10, 10.2], [3, 3.1])):
        payload = render_image(image, view_from_settings(None, {"x": x, "y": y}))
        rows, cols = payload["shown"]
        assert rows >= 1 and cols >= 1
        assert 0 <= payload["x0"] < 64 and 0 <= payload["y0"] < 48


def test_manual_range_clips_to_the_ends_of_the_colour_scale() -> None:
    image = np.array([[-50.0, 0.0, 25.0, 50.0, 75.0, 100.0, 1e9]])
    view = view_from_settings({"range_mode": "manual", "zmin": 0, "zmax": 100}, {"width": 5000, "height": 5000})
    payload = render_image(image, view)
    z = decode_typed(payload["z"])[0]
    assert z[0] == 0 and z[1] == 0 and z[-2] == 255 and z[-1] == 255
    assert abs(int(z[3]) - 127) <= 1
    assert list(z) == sorted(z)
    assert payload["ticktext"][0] == "0" and payload["ticktext"][-1] == "100"


@pytest.mark.parametrize("zmin,zmax", [(10, 5), (3, 3), ("a", 4), (None, 4), (float("nan"), 1), (0, float("inf"))])
def test_invalid_manual_range_is_ignored(zmin: Any, zmax: Any) -> None:
    view = view_from_settings({"range_mode": "manual", "zmin": zmin, "zmax": zmax}, None)
    assert view.zmin is None or view.zmax is None or view.zmin < view.zmax
    payload = render_image(beam_image(20, 30), view)
    assert decode_typed(payload["z"]).max() > 0


def test_log_scale_maps_decades_to_equal_steps() -> None:
    image = np.array([[1.0, 10.0, 100.0, 1000.0]])
    view = view_from_settings({"scale": "log", "range_mode": "manual", "zmin": 1, "zmax": 1000},
                              {"width": 5000, "height": 5000})
    payload = render_image(image, view)
    z = decode_typed(payload["z"])[0].astype(int)
    steps = np.diff(z)
    assert z[0] == 0 and z[-1] == 255
    assert steps.min() >= 84 and steps.max() <= 86  # 255 / 3 per decade
    # Colour-bar labels are in physical units, not in log10 units.
    assert float(payload["ticktext"][0]) == pytest.approx(1.0)
    assert float(payload["ticktext"][-1]) == pytest.approx(1000.0)


def test_log_scale_tolerates_zero_and_negative_pixels() -> None:
    image = np.array([[0.0, -5.0, 1.0, 100.0]])
    payload = render_image(image, view_from_settings({"scale": "log"}, {"width": 5000, "height": 5000}))
    z = decode_typed(payload["z"])[0]
    assert z[3] > z[2]
    assert z[0] <= z[2] and z[1] <= z[2]  # non-positive pixels shown at the floor
    assert all(math.isfinite(float(t)) for t in payload["ticktext"])


def test_nan_and_inf_pixels_do_not_poison_the_frame() -> None:
    image = beam_image(40, 60)
    peak = float(image.max())
    image[0:10, 0:10] = np.nan
    image[20, 5] = np.inf
    image[21, 5] = -np.inf
    payload = render_image(image, ImageView(bins_x=60, bins_y=40, zmin=0.0, zmax=peak))
    z = decode_typed(payload["z"])
    assert z.shape == (40, 60)
    assert (z[0:10, 0:10] == 0).all()
    finite_part = np.isfinite(image)
    expected = expected_levels(np.where(finite_part, image, 0), 0.0, peak)
    assert np.abs(z.astype(int) - expected.astype(int))[finite_part].max() <= 1
    assert z.max() == 255
    assert payload["peak"] == pytest.approx(peak)
    auto = render_image(image, ImageView(bins_x=60, bins_y=40))
    assert decode_typed(auto["z"]).max() > 200  # the automatic range ignores NaN/Inf too
    assert np.isfinite(decode_typed(payload["profile_x"])).all()
    assert np.isfinite(decode_typed(payload["profile_y"])).all()
    assert all(t != "—" for t in payload["ticktext"])


def test_all_nan_frame_renders_blank() -> None:
    payload = render_image(np.full((8, 8), np.nan), ImageView())
    assert (decode_typed(payload["z"]) == 0).all()
    assert math.isnan(payload["peak"])
    assert_json_safe(payload["ticktext"])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_integer_and_float_cameras_render_the_same_picture(dtype: type) -> None:
    base = np.round(beam_image(30, 40) / 10.0)  # 0..100, exactly representable in every dtype
    reference = decode_typed(render_image(base, ImageView(bins_x=40, bins_y=30))["z"])
    payload = render_image(base.astype(dtype), ImageView(bins_x=40, bins_y=30))
    assert (decode_typed(payload["z"]) == reference).all()


def test_view_from_settings_rejects_junk() -> None:
    view = view_from_settings({"colormap": "<script>", "scale": "cubic", "range_mode": "manual", "zmin": "x"},
                              {"x": "abc", "y": [1], "width": -5, "height": float("nan")})
    assert view.colormap == "Viridis" and view.scale == "linear"
    assert view.zmin is None and view.x_range is None and view.y_range is None
    assert view.bins_x >= 8 and view.bins_y >= 8
    huge = view_from_settings(None, {"width": 1e9, "height": 1e9, "x": [-1e300, 1e300]})
    assert huge.bins_x <= MAX_BINS and huge.bins_y <= MAX_BINS
    assert render_image(beam_image(20, 20), huge)["shown"] == [20, 20]


def test_equal_settings_give_equal_views() -> None:
    """Views are cache keys: two browsers with the same settings must share one rendered payload."""
    a = view_from_settings({"colormap": "Jet", "scale": "log"}, {"width": 640, "height": 520, "x": [1.2, 50.3]})
    b = view_from_settings({"colormap": "Jet", "scale": "log"}, {"width": 640.0, "height": 520, "x": [1.4, 50.1]})
    assert a == b and hash(a) == hash(b)


def test_typed_array_round_trip() -> None:
    for array in (np.arange(12, dtype=np.uint8).reshape(3, 4), np.linspace(0, 1, 7).astype(np.float32)):
        spec = typed_array(array)
        assert (decode_typed(spec) == array).all()


def test_automatic_colour_range_is_held_while_frames_fit_in_it() -> None:
    """The colour bar (and the page's layout with it) must not change with every frame's noise; a
    frame outside the held range, or using too little of it, sets a new one."""
    view = ImageView(bins_x=64, bins_y=48)
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 100, (48, 64))
    first = render_image(base, view)
    assert first["range"] is not None
    lo, hi = first["range"]
    assert lo <= 0.0 + 1e-9 and hi >= base.max()
    for scale in (0.97, 0.9, 0.8):  # the beam a little weaker: same colour bar
        held = render_image(base * scale, view, hold=first["range"])
        assert held["range"] == first["range"] and held["ticktext"] == first["ticktext"]
    brighter = render_image(base * 1.5, view, hold=first["range"])
    assert brighter["range"][1] >= (base * 1.5).max() > hi  # never clipped
    faint = render_image(base * 0.3, view, hold=first["range"])
    assert faint["range"][1] < 0.6 * hi  # less than HOLD_FRACTION of the range: rescaled
    manual = ImageView(bins_x=64, bins_y=48, zmin=10.0, zmax=20.0)
    assert render_image(base, manual, hold=first["range"])["range"] is None  # nothing automatic to hold


# --------------------------------------------------------------------------------------------- nice_range


# Subnormals are left out: floor(-5e-324 / 2) * 2 is -0.0, a "miss" of 5e-324 no colour bar can show.
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@given(finite, finite)
@settings(max_examples=300, deadline=None)
def test_nice_range_contains_the_data_and_is_round(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    if hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)):
        return  # degenerate spans are covered below
    nlo, nhi = nice_range(lo, hi)
    assert nlo <= lo and nhi >= hi
    span = hi - lo
    # Widened by less than one "nice" step on each side, and a step is between span/20 and span/8.
    slack = 1e-9 * max(abs(lo), abs(hi), 1)
    assert lo - nlo <= span / 8 + slack and nhi - hi <= span / 8 + slack
    step = 10.0 ** math.floor(math.log10(span / 20.0))
    for candidate in (step, 2 * step, 5 * step, 10 * step):
        if all(abs(v / candidate - round(v / candidate)) < 1e-6 for v in (nlo, nhi)):
            break
    else:
        raise AssertionError(f"{(nlo, nhi)} are not multiples of a 1/2/5 step near {span / 20}")


def test_nice_range_is_stable_under_noise() -> None:
    """The purpose: a noisy frame must not change the colour bar every time."""
    rng = np.random.default_rng(1)
    ranges = {nice_range(0.0 + rng.uniform(0, 2), 1000.0 + rng.uniform(-2, 0)) for _ in range(50)}
    assert len(ranges) == 1
    (lo, hi), = ranges
    assert lo <= 0.0 and hi >= 1000.0


@pytest.mark.parametrize("lo,hi", [(5.0, 5.0), (3.0, 1.0), (float("nan"), 1.0), (0.0, float("inf"))])
def test_nice_range_leaves_degenerate_ranges_alone(lo: float, hi: float) -> None:
    out = nice_range(lo, hi)
    assert out[0] is lo or out[0] == lo or (math.isnan(out[0]) and math.isnan(lo))
    assert out[1] == hi or (math.isnan(out[1]) and math.isnan(hi))


# --------------------------------------------------------------------------------------------- bucket_rows


@pytest.mark.parametrize("window", list(WINDOWS) + ["bogus"])
@pytest.mark.parametrize("rate", [1.0, 10.0, 100.0, 1000.0, 0.0, float("nan"), -5.0, float("inf")])
@pytest.mark.parametrize("capacity,buffered", [(360_000, 360_000), (360_000, 10), (1000, 1000), (2, 1)])
def test_bucket_rows_keeps_a_window_under_max_points(window: str, rate: float, capacity: int, buffered: int) -> None:
    k = bucket_rows(window, rate, buffered, capacity)
    assert k >= 1
    seconds = WINDOWS.get(window, WINDOWS["1 min"])
    usable_rate = rate if math.isfinite(rate) and rate > 0 else NOMINAL_RATE_HZ
    rows = min(buffered if seconds is None else seconds * usable_rate, capacity)
    assert math.ceil(rows / k) <= MAX_POINTS
    if k > 1:  # and as fine as possible
        assert math.ceil(rows / (k - 1)) > MAX_POINTS


def test_bucket_rows_unknown_rate_means_nominal_rate() -> None:
    for window in WINDOWS:
        nominal = bucket_rows(window, NOMINAL_RATE_HZ, 5000, 360_000)
        assert bucket_rows(window, float("nan"), 5000, 360_000) == nominal
        assert bucket_rows(window, 0.0, 5000, 360_000) == nominal


# --------------------------------------------------------------------------------------------- bucketize


def python_buckets(history: History, k: int, column: str) -> tuple[list[int], list[int], list[float | None]]:
    """Reference: (seq of first row, pulse id of last row, mean of finite values) per complete bucket."""
    seq = list(history.column("seq"))
    pids = list(history.column("pulse_id"))
    values = list(history.column(column))
    firsts, lasts, means = [], [], []
    for i, s in enumerate(seq):
        if s % k == 0 and i + k <= len(seq):
            chunk = [v for v in values[i:i + k] if math.isfinite(v)]
            firsts.append(s)
            lasts.append(pids[i + k - 1])
            means.append(sum(chunk) / len(chunk) if chunk else None)
    return firsts, lasts, means


@pytest.mark.parametrize("seq_start,n,k", [(0, 100, 10), (7, 100, 10), (3, 4, 5), (0, 1, 1), (13, 57, 4), (0, 9, 10)])
def test_bucketize_returns_complete_aligned_buckets_only(seq_start: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seq_start + n)
    energy = list(rng.uniform(5, 6, n))
    history = make_history([1000 + 2 * i for i in range(n)], {"beam_energy": energy}, seq_start=seq_start)
    cursor, data = bucketize(history, k, ["beam_energy"], "pulse_id")
    firsts, lasts, means = python_buckets(history, k, "beam_energy")
    assert data["x"] == lasts
    assert data["beam_energy"] == pytest.approx(means)
    # The cursor is where the next call must start: the end of the last complete bucket (aligned).
    assert cursor % k == 0
    assert cursor == (firsts[-1] + k if firsts else max(((seq_start + k - 1) // k) * k, seq_start))
    assert cursor <= history.end


def test_bucketize_time_axis_uses_the_last_pulse_time_in_milliseconds() -> None:
    stamps = [1_800_000_000.0 + 0.01 * i for i in range(20)]
    history = make_history(list(range(20)), {"e": [1.0] * 20}, timestamps=stamps)
    _, data = bucketize(history, 5, ["e"], "time")
    assert data["x"] == pytest.approx([stamps[i] * 1000 for i in (4, 9, 14, 19)], abs=0.1)


def test_bucketize_nan_means_a_gap_and_partial_nan_is_ignored() -> None:
    values = [1.0, 3.0, float("nan"), float("nan"), float("nan"), float("nan"), 2.0, float("nan")]
    history = make_history(list(range(8)), {"e": values})
    _, data = bucketize(history, 2, ["e", "not-a-column"], "pulse_id")
    assert data["e"] == [2.0, None, None, 2.0]
    assert data["not-a-column"] == [None] * 4
    json.dumps(data, allow_nan=False)  # gaps are null, never NaN


def test_bucketize_empty_history() -> None:
    history = make_history([], {"e": []}, seq_start=40)
    cursor, data = bucketize(history, 10, ["e"], "time")
    assert data == {"x": [], "e": []}
    assert cursor == 40


def test_bucketize_incremental_reads_neither_repeat_nor_skip_buckets() -> None:
    """The history protocol: full figure once, then bucketize(read(since=cursor)) per tick."""
    buffer = RingBuffer(10_000)
    k = 7
    seen_x: list[int] = []
    seen_y: list[float] = []
    cursor = 0
    pulse = 500
    rng = np.random.default_rng(5)
    for burst in (3, 11, 0, 1, 25, 6, 40):
        for _ in range(burst):
            buffer.append(make_message(pulse, {"beam_energy": float(rng.uniform(5, 6))}))
            pulse += 1
        cursor, data = bucketize(buffer.read(since=cursor), k, ["beam_energy"], "pulse_id")
        seen_x += data["x"]
        seen_y += data["beam_energy"]
    _, lasts, means = python_buckets(buffer.read(), k, "beam_energy")
    assert seen_x == lasts
    assert seen_y == pytest.approx(means)


def test_extend_data_shapes() -> None:
    data = {"x": [1, 2], "a": [0.5, 0.6], "b": [None, 1.0]}
    value, traces, max_points = extend_data(("a", "b"), data, 123)
    assert value == {"x": [[1, 2], [1, 2]], "y": [[0.5, 0.6], [None, 1.0]]}
    assert traces == [0, 1] and max_points == 123
    assert extend_data(("a",), {"x": [], "a": []}, 10) is None
    assert extend_data((), data, 10) is None


# --------------------------------------------------------------------------------------------- statistics


def test_window_statistics_ignore_nan_and_match_numpy() -> None:
    values = [5.0, float("nan"), 5.5, 6.0, float("inf"), 4.5]
    history = make_history(list(range(6)), {"e": values, "empty": [float("nan")] * 6})
    stats = window_statistics(history, ["e", "empty", "missing"])
    finite_values = np.array([5.0, 5.5, 6.0, 4.5])
    assert stats["e"]["n"] == 4
    assert stats["e"]["mean"] == pytest.approx(finite_values.mean())
    assert stats["e"]["std"] == pytest.approx(finite_values.std())
    assert (stats["e"]["min"], stats["e"]["max"]) == (4.5, 6.0)
    for name in ("empty", "missing"):
        assert stats[name]["n"] == 0 and all(math.isnan(stats[name][key]) for key in ("mean", "std", "min", "max"))


# --------------------------------------------------------------------------------------------- CSV export


WEIRD_NAMES = ("SARCL02-DBPM110:X1", "name with spaces", "comma,name", 'quote"name', "Δ-energy µJ", "=1+1")


def filled_buffer(n: int = 30, capacity: int = 1000, first_pulse: int = 10_000) -> tuple[RingBuffer, list[dict]]:
    buffer = RingBuffer(capacity)
    rng = np.random.default_rng(11)
    sent = []
    for i in range(n):
        channels: dict[str, Any] = {
            "beam_energy": np.float64(rng.uniform(5, 6)),
            "repetition_rate": np.float64(100.0),
            "image": rng.uniform(0, 10, size=(12, 16)),
            "image_profile_x": rng.uniform(0, 1, 16),  # arrays are not CSV columns
            "counter": np.int32(i * 3 - 40),
        }
        for j, name in enumerate(WEIRD_NAMES):
            channels[name] = np.float64(i + j / 10)
        if i == 4:
            channels["beam_energy"] = np.float64(np.nan)
        stamp = 1_800_000_000.123456 + 0.01 * i
        buffer.append(make_message(first_pulse + i, channels, timestamp=stamp))
        sent.append({"pulse_id": first_pulse + i, "timestamp": stamp, **channels})
    return buffer, sent


def read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def test_csv_columns_order_and_exact_channel_names() -> None:
    buffer, _ = filled_buffer()
    frame = read_csv(readings_csv(buffer.read()))
    scalars = ["beam_energy", "repetition_rate", "counter", *WEIRD_NAMES]
    expected = ["pulse_id", "timestamp", "timestamp_epoch"] + [("'" + n if n.startswith("=") else n) for n in scalars]
    assert list(frame.columns) == expected + list(STATS_COLUMNS)
    assert "image" not in frame.columns and "image_profile_x" not in frame.columns


def test_csv_values_round_trip_through_pandas() -> None:
    buffer, sent = filled_buffer()
    history = buffer.read()
    frame = read_csv(readings_csv(history))
    assert len(frame) == len(sent)
    assert frame["pulse_id"].dtype.kind == "i"
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in sent]
    assert np.allclose(frame["timestamp_epoch"], [row["timestamp"] for row in sent], rtol=0, atol=1e-6)
    for name in ("beam_energy", "repetition_rate", "counter", "SARCL02-DBPM110:X1", "comma,name", "Δ-energy µJ"):
        expected = np.array([float(row[name]) for row in sent])
        assert np.array_equal(frame[name].to_numpy(dtype=float), expected, equal_nan=True), name
    assert math.isnan(frame["beam_energy"][4])  # NaN is an empty cell, not a string
    for name in STATS_COLUMNS:
        assert np.array_equal(frame[name].to_numpy(dtype=float), history.column(name), equal_nan=True), name


def test_csv_timestamps_are_iso8601_utc() -> None:
    buffer, sent = filled_buffer(5)
    frame = read_csv(readings_csv(buffer.read()))
    for text, row in zip(frame["timestamp"], sent):
        assert text.endswith("Z")
        parsed = dt.datetime.fromisoformat(text)
        assert parsed.utcoffset() == dt.timedelta(0)
        assert abs(parsed.timestamp() - row["timestamp"]) < 2e-6
    parsed_by_pandas = pd.to_datetime(frame["timestamp"], utc=True)
    assert str(parsed_by_pandas.dt.tz) == "UTC"


def test_csv_of_a_wrapped_buffer_and_of_nothing() -> None:
    buffer, sent = filled_buffer(n=25, capacity=10)
    frame = read_csv(readings_csv(buffer.read()))
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in sent[-10:]]
    empty = readings_csv(RingBuffer(10).read())
    assert empty.strip().split(",")[:3] == ["pulse_id", "timestamp", "timestamp_epoch"]
    assert len(read_csv(empty)) == 0


def test_csv_uses_crlf_and_one_line_per_row() -> None:
    buffer, sent = filled_buffer(4)
    text = readings_csv(buffer.read())
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert len(text.split("\r\n")) == len(sent) + 2  # header, rows, trailing empty string


# --------------------------------------------------------------------------------------------- status


def make_health(**overrides: Any) -> Health:
    values: dict[str, Any] = dict(
        state="live", address="tcp://127.0.0.1:9999", received=12345, bytes_received=9_876_543, rate_hz=99.87654,
        data_rate_mbps=12.3456, invalid=3, invalid_by_reason={"bad-hash": 2, "bad-json": 1}, missed_pulses=4,
        duplicated_pulses=1, reverted_pulses=2, pulse_id_jumps=0, pulse_step=1, last_pulse_id=987654321,
        last_message_time=1_800_000_000.0, last_message_age_s=0.0123456, stall_limit_s=2.0, receiver_restarts=0,
        last_error="", channels=("beam_energy", "repetition_rate"))
    values.update(overrides)
    return Health(**values)


CONTRACT_KEYS = ("state", "stream", "simulated", "received", "rate_hz", "invalid", "invalid_by_reason", "missed_pulses",
                 "duplicated_pulses", "reverted_pulses", "last_pulse_id", "last_message_age_s", "channels")


def test_status_document_has_the_contract_fields() -> None:
    health = make_health()
    doc = status_document(health, "tcp://camera:9999", False, nonfinite_values=7)
    assert set(CONTRACT_KEYS) <= set(doc)
    assert doc["state"] == "live" and doc["stream"] == "tcp://camera:9999" and doc["simulated"] is False
    assert doc["received"] == 12345 and doc["invalid"] == 3 and doc["invalid_by_reason"] == {"bad-hash": 2, "bad-json": 1}
    assert (doc["missed_pulses"], doc["duplicated_pulses"], doc["reverted_pulses"]) == (4, 1, 2)
    assert doc["last_pulse_id"] == 987654321
    assert doc["rate_hz"] == pytest.approx(99.877, abs=1e-3)
    assert doc["last_message_age_s"] == pytest.approx(0.012, abs=1e-3)
    assert doc["channels"] == ["beam_energy", "repetition_rate"]
    assert doc["nonfinite_values"] == 7
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_status_document_before_the_first_message() -> None:
    doc = status_document(make_health(state="waiting", received=0, last_pulse_id=None, last_message_age_s=None,
                                      rate_hz=0.0, channels=()), "simulated camera", True)
    assert doc["state"] == "waiting" and doc["simulated"] is True
    assert doc["last_pulse_id"] is None and doc["last_message_age_s"] is None and doc["channels"] == []
    json.dumps(doc, allow_nan=False)


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, (list, tuple)):
        return [leaf for child in node for leaf in _leaves(child)]
    if hasattr(node, "children"):
        return _leaves(node.children) if node.children is not None else []
    return [node]


def _components(node: Any) -> list[Any]:
    if isinstance(node, (list, tuple)):
        return [c for child in node for c in _components(child)]
    if hasattr(node, "children"):
        return [node] + _components(node.children)
    return []


def test_health_rows_render_stream_text_as_text() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    health = make_health(invalid_by_reason={hostile: 5, "bad-hash": 1}, invalid=6, receiver_restarts=2,
                         last_error="<script>alert('x')</script>")
    rows = health_rows(status_document(health, "tcp://x:1", False, nonfinite_values=3))
    components = _components(rows)
    assert components and all(type(c) in (html.Tr, html.Th, html.Td) for c in components)
    leaves = _leaves(rows)
    assert all(isinstance(leaf, str) for leaf in leaves)
    text = " | ".join(leaves)
    assert hostile in text  # shown verbatim (React escapes text), not dropped
    assert "<script>alert('x')</script>" in text
    assert "12,345" in text and "987654321" in text and "4 / 1 / 2" in text
    assert any("NaN/Inf" in leaf for leaf in leaves)


def test_health_rows_without_messages() -> None:
    rows = health_rows(status_document(make_health(state="waiting", received=0, bytes_received=0, last_pulse_id=None,
                                                   last_message_age_s=None, invalid=0, invalid_by_reason={}),
                                       "simulated camera", True))
    text = " | ".join(_leaves(rows))
    assert "never" in text and "—" in text


# --------------------------------------------------------------------------------------------- history_update


def fill(buffer: RingBuffer, count: int, rate_hz: float = 50.0) -> None:
    from stream.encoder import Encoder
    from stream.protocol import Decoder

    encoder, decoder = Encoder(), Decoder()  # one of each: the data header is parsed once
    start = buffer.count
    for i in range(start, start + count):
        parts = encoder.encode(i + 1, 1_800_000_000.0 + i / rate_hz,
                               {"beam_energy": 5.0 + (i % 7) / 100, "repetition_rate": rate_hz})
        buffer.append(decoder.decode(parts))


def test_history_chart_keeps_room_for_the_whole_window_when_connected_early() -> None:
    """A browser that connects 2 s after start must still end up showing the whole minute."""
    from dash import no_update

    from callbacks.history import history_update
    from stream.ring_buffer import ChannelNames

    buffer = RingBuffer(100_000)
    fill(buffer, 100)
    rate = 50.0
    _, _, response = history_update(buffer, rate, ChannelNames(), "1 min", "pulse_id", None, None, True, 1)
    k = response["k"]
    window_buckets = math.ceil(60 * rate / k)
    fill(buffer, 60 * 50)  # one more minute
    figures, extends, response = history_update(buffer, rate, ChannelNames(), "1 min", "pulse_id", None, response,
                                                False, 2)
    assert figures[0] is no_update
    _, _, max_points = extends[0]
    assert max_points >= window_buckets, "the chart would be trimmed to the rows buffered at connect time"
    assert max_points <= MAX_POINTS + 1


def test_history_all_window_rebuckets_as_the_history_grows() -> None:
    from dash import no_update

    from callbacks.history import history_update
    from stream.ring_buffer import ChannelNames

    buffer = RingBuffer(100_000)
    fill(buffer, 100)
    _, _, first = history_update(buffer, 50.0, ChannelNames(), "all", "pulse_id", None, None, True, 1)
    points_sent = 0
    last = first
    for _ in range(8):
        fill(buffer, 400)
        figures, extends, last = history_update(buffer, 50.0, ChannelNames(), "all", "pulse_id", None, last, False, 2)
        if figures[0] is not no_update:
            points_sent = len(figures[0]["data"][0]["x"])
        elif extends[0] is not no_update:
            points_sent += len(extends[0][0]["x"][0])
        # Whatever the browser holds stays near MAX_POINTS: buckets get coarser as "all" grows.
        assert points_sent <= 2 * MAX_POINTS
    assert last["k"] > first["k"]
    assert math.ceil(buffer.count / last["k"]) <= 2 * MAX_POINTS


def test_csv_channel_named_like_a_lead_column_does_not_replace_it() -> None:
    """A stream may carry a channel called timestamp_epoch; the pulse time must stay what it is."""
    buffer = RingBuffer(10)
    for i in range(3):
        buffer.append(make_message(100 + i, {"timestamp_epoch": np.float64(-1.0 - i), "beam_energy": np.float64(5.0)},
                                   timestamp=1_800_000_000.0 + i))
    text = readings_csv(buffer.read())
    header = text.split("\r\n")[0].split(",")
    assert len(header) == len(set(header)), f"duplicate CSV columns: {header}"
    frame = read_csv(text)
    assert list(frame.columns[:3]) == ["pulse_id", "timestamp", "timestamp_epoch"]
    assert list(frame["timestamp_epoch"]) == [1_800_000_000.0 + i for i in range(3)]
    carrying = [c for c in frame.columns[3:] if list(frame[c]) == [-1.0, -2.0, -3.0]]
    assert len(carrying) == 1 and "timestamp_epoch" in carrying[0]  # the channel's values are kept too
