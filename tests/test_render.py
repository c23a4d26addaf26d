"""web/render.py: one frame for one view -> levels, colour range, ticks, histogram, binned profile curves.

Images are designed so the expected levels follow from the input by hand: pixel value
col + 1000 * row with the colour range [0, 254000] maps every pixel to level = row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.render import (COLORMAPS, HISTOGRAM_BINS, MAX_BINS, SATURATED, TOP_LEVEL, View, bin_factor, colorscale,
                        colour_ticks, nice_range, region_of, render)
from tests.web_fixtures import designed_image

RANGE_ROWS = View(zmin=0.0, zmax=254_000.0, bins_x=4096, bins_y=4096)  # level = row of the designed image


def levels(result) -> np.ndarray:
    meta = result.meta
    return dict(result.parts)["levels"].reshape(meta["rows"], meta["cols"])


def part(result, name: str) -> np.ndarray:
    return dict(result.parts)[name]


# ------------------------------------------------------------------------------------------ levels


def test_manual_range_maps_values_to_levels_exactly() -> None:
    image = designed_image(48, 64)
    result = render(image, RANGE_ROWS)
    rows = np.repeat(np.arange(48)[:, None], 64, axis=1)
    assert np.array_equal(levels(result), rows)
    meta = result.meta
    assert meta["region"] == [0, 64, 0, 48] and meta["bin"] == 1 and (meta["rows"], meta["cols"]) == (48, 64)
    assert meta["range"] == [0.0, 254_000.0] and meta["auto"] is False and meta["scale"] == "linear"
    assert meta["peak"] == float(image.max()) and meta["saturated"] == 0


def test_levels_clip_at_both_ends_of_the_colour_scale() -> None:
    image = np.array([[-50.0, 0.0, 25.0, 50.0, 75.0, 100.0, 1e9]])
    values = levels(render(image, View(zmin=0.0, zmax=100.0)))[0]
    # (v - 0) * 254 / 100, truncated, clipped to 0..254: 255 is kept for saturated pixels
    assert list(values) == [0, 0, 63, 127, 190, TOP_LEVEL, TOP_LEVEL]


def test_bins_are_square_block_means_bounded_by_the_view() -> None:
    image = designed_image(48, 64)
    result = render(image, View(zmin=0.0, zmax=254_000.0, bins_x=32, bins_y=40))  # 64/32 = 2 wins over 48/40
    meta = result.meta
    assert meta["bin"] == 2 and (meta["rows"], meta["cols"]) == (24, 32)
    # A 2 x 2 block starting at (2r, 2c) averages to 1000 * (2r + 0.5) + 2c + 0.5: level 2r.
    expected = np.repeat((2 * np.arange(24))[:, None], 32, axis=1)
    assert np.array_equal(levels(result), expected)


def test_a_ragged_edge_becomes_a_smaller_last_block() -> None:
    image = designed_image(5, 7, dtype=np.float64)
    result = render(image, View(zmin=0.0, zmax=254_000.0, bins_x=4, bins_y=4))  # f = ceil(7/4) = 2
    meta = result.meta
    assert meta["bin"] == 2 and (meta["rows"], meta["cols"]) == (3, 4)
    # The last row block is row 4 alone: mean 4000 + col, level 4.
    assert list(levels(result)[:, 0]) == [0, 2, 4]
    assert list(levels(result)[2]) == [4, 4, 4, 4]


@pytest.mark.parametrize(("height", "width"), [(480, 640), (2048, 2048), (10, 10000), (10000, 10), (1, 1), (7, 3)])
@pytest.mark.parametrize(("bins_x", "bins_y"), [(320, 260), (8, 8), (4096, 4096)])
def test_shown_shape_is_bounded_by_the_bins(height: int, width: int, bins_x: int, bins_y: int) -> None:
    result = render(np.zeros((height, width), np.float32), View(bins_x=bins_x, bins_y=bins_y))
    meta = result.meta
    assert 1 <= meta["rows"] <= min(height, bins_y, MAX_BINS)
    assert 1 <= meta["cols"] <= min(width, bins_x, MAX_BINS)
    assert meta["rows"] * meta["bin"] >= height and meta["cols"] * meta["bin"] >= width  # nothing cut off
    assert part(result, "levels").size == meta["rows"] * meta["cols"]


def test_bin_factor_never_exceeds_max_bins_whatever_the_view_claims() -> None:
    assert bin_factor((0, 10_000, 0, 10), 10**9, 10**9) == math.ceil(10_000 / MAX_BINS)
    assert bin_factor((0, 64, 0, 48), 64, 48) == 1
    assert bin_factor((0, 64, 0, 48), 0, 0) == 64  # a view of no bins is one bin wide


# ------------------------------------------------------------------------------------------ regions


def test_region_is_cut_at_native_resolution() -> None:
    image = designed_image(48, 64)
    result = render(image, View(zmin=0.0, zmax=254_000.0, region=(10, 30, 5, 25), bins_x=100, bins_y=100))
    meta = result.meta
    assert meta["region"] == [10, 30, 5, 25] and meta["bin"] == 1 and (meta["rows"], meta["cols"]) == (20, 20)
    assert list(levels(result)[:, 0]) == list(range(5, 25))


@pytest.mark.parametrize(("region", "expected"), [
    ((-500, -400, 0, 48), (0, 1, 0, 48)),  # left of the image: its first column
    ((60, 1_000_000, 40, 2**31), (60, 64, 40, 48)),  # clipped to the image
    ((30, 30, 10, 5), (0, 64, 0, 48)),  # empty: the whole image
    (None, (0, 64, 0, 48)),
])
def test_region_outside_the_image_is_clipped_or_falls_back(region, expected) -> None:
    assert region_of((48, 64), region) == expected
    meta = render(designed_image(48, 64), View(region=region)).meta
    assert meta["rows"] >= 1 and meta["cols"] >= 1


# ------------------------------------------------------------------------------------------ log scale


def test_log_scale_maps_decades_to_equal_steps_and_labels_in_image_units() -> None:
    image = np.array([[1.0, 10.0, 100.0, 1000.0]])
    result = render(image, View(scale="log", zmin=1.0, zmax=1000.0))
    values = levels(result)[0].astype(int)
    assert list(values) == [0, 84, 169, 254]  # 254 / 3 per decade, truncated
    assert result.meta["range"] == pytest.approx([1.0, 1000.0]) and result.meta["scaled_range"] == [0.0, 3.0]
    assert result.meta["ticks"]["text"][0] == "1" and result.meta["ticks"]["text"][-1] == "1000"


def test_log_scale_shows_zero_and_negative_pixels_at_the_floor() -> None:
    image = np.array([[0.0, -5.0, 1.0, 100.0]])
    result = render(image, View(scale="log"))
    values = levels(result)[0]
    assert values[0] == values[1] == 0 and values[3] > values[2]
    assert result.meta["auto"] is True and all(math.isfinite(v) for v in result.meta["range"])


# ------------------------------------------------------------------------------------------ saturation


def test_saturated_pixels_mark_their_bins_and_are_counted() -> None:
    image = designed_image(48, 64, dtype=np.uint16)
    mask = np.zeros(image.shape, bool)
    mask[3, 5] = mask[40, 60] = mask[41, 60] = True
    result = render(image, View(zmin=0.0, zmax=254_000.0, bins_x=32, bins_y=24), saturated=mask)
    shown = levels(result)
    assert result.meta["saturated"] == 3
    assert np.argwhere(shown == SATURATED).tolist() == [[1, 2], [20, 30]]  # the 2 x 2 bins holding them
    assert (shown[shown != SATURATED] <= TOP_LEVEL).all()
    cut = render(image, View(region=(0, 32, 0, 24)), saturated=mask)
    assert cut.meta["saturated"] == 1  # only the ones in the region shown


# ------------------------------------------------------------------------------------------ range and ticks


def test_automatic_range_covers_the_frame_and_is_rounded() -> None:
    image = designed_image(48, 64, dtype=np.float64)  # 0 ... 47063
    meta = render(image, View()).meta
    lo, hi = meta["range"]
    assert meta["auto"] is True and lo <= 0 and hi >= 47063
    assert (lo, hi) == nice_range(0.0, 47063.0)


def test_automatic_colour_range_is_held_while_frames_fit_in_it() -> None:
    """The colour bar must not change with every frame's noise; a frame outside the held range, or
    using too little of it (< 60 %), sets a new one."""
    base = np.random.default_rng(3).uniform(0, 100, (48, 64))
    first = render(base, View()).meta
    hold = tuple(first["scaled_range"])
    for scale in (0.97, 0.9, 0.8):
        held = render(base * scale, View(), hold=hold).meta
        assert held["range"] == first["range"] and held["ticks"] == first["ticks"]
    brighter = render(base * 1.5, View(), hold=hold).meta
    assert brighter["range"][1] >= (base * 1.5).max() > first["range"][1]
    faint = render(base * 0.3, View(), hold=hold).meta
    assert faint["range"][1] < 0.6 * first["range"][1]
    manual = render(base, View(zmin=10.0, zmax=20.0), hold=hold).meta
    assert manual["range"] == [10.0, 20.0] and manual["auto"] is False


def test_flat_frame_gets_a_usable_range() -> None:
    meta = render(np.full((8, 8), 7.0), View()).meta
    lo, hi = meta["range"]
    assert hi > lo and lo <= 7.0 <= hi


def test_linear_ticks_sit_at_round_values_on_the_level_scale() -> None:
    positions, labels = colour_ticks(0.0, 100.0, "linear")
    assert labels == ["0", "20", "40", "60", "80", "100"]
    assert positions == pytest.approx([0.0, 50.8, 101.6, 152.4, 203.2, 254.0])
    positions, labels = colour_ticks(-0.37, 0.52, "linear")
    assert labels == ["-0.2", "0", "0.2", "0.4"]
    assert all(0 <= p <= TOP_LEVEL for p in positions)


def test_log_ticks_are_decades_with_1_2_5_between_few_of_them() -> None:
    positions, labels = colour_ticks(0.0, 2.0, "log")  # 1 ... 100
    assert labels == ["1", "2", "5", "10", "20", "50", "100"]
    assert positions[0] == 0.0 and positions[-1] == pytest.approx(254.0)
    assert positions[3] == pytest.approx(127.0)  # 10 is half way on a log scale of two decades
    _, labels = colour_ticks(0.0, 6.0, "log")  # many decades: decades only
    assert [float(label) for label in labels] == [10.0 ** k for k in range(7)]


# ------------------------------------------------------------------------------------------ histogram, curves


def test_histogram_counts_every_finite_bin_over_its_extent() -> None:
    image = designed_image(48, 64, dtype=np.float64)
    image[0, 0] = np.nan
    result = render(image, View(bins_x=4096, bins_y=4096))
    counts = part(result, "histogram")
    assert counts.dtype == np.float32 and counts.size == HISTOGRAM_BINS
    assert counts.sum() == 48 * 64 - 1
    assert result.meta["histogram"] == {"lo": 1.0, "hi": 47063.0, "bins": HISTOGRAM_BINS}
    expected, _ = np.histogram(image[np.isfinite(image)], bins=HISTOGRAM_BINS, range=(1.0, 47063.0))
    assert np.array_equal(counts, expected)


def test_profile_curves_are_cut_to_the_region_and_binned_like_the_picture() -> None:
    image = designed_image(48, 64, dtype=np.float64)
    curve_x = np.arange(64, dtype=np.float64) * 10
    curve_y = np.arange(48, dtype=np.float64)
    result = render(image, View(region=(8, 40, 4, 44), bins_x=16, bins_y=100),
                    curves_x={"profile": curve_x, "fit": curve_x + 1}, curves_y={"profile": curve_y})
    assert result.meta["bin"] == 2
    assert list(part(result, "x_profile")) == [10 * (c + 0.5) for c in range(8, 40, 2)]
    assert list(part(result, "x_fit")) == [10 * (c + 0.5) + 1 for c in range(8, 40, 2)]
    assert list(part(result, "y_profile")) == [r + 0.5 for r in range(4, 44, 2)]
    assert all(array.dtype == np.float32 for name, array in result.parts if name != "levels")


# ------------------------------------------------------------------------------------------ odd data


def test_nan_and_inf_pixels_do_not_poison_the_frame() -> None:
    image = designed_image(40, 60, dtype=np.float64)
    image[0:10, 0:10] = np.nan
    image[20, 5] = np.inf
    image[21, 5] = -np.inf
    result = render(image, View(zmin=0.0, zmax=254_000.0, bins_x=60, bins_y=40))
    shown = levels(result)
    assert (shown[0:10, 0:10] == 0).all()
    assert shown[20, 5] == TOP_LEVEL and shown[21, 5] == 0
    assert shown[30, 30] == 30
    auto = render(image, View(bins_x=60, bins_y=40)).meta
    assert all(math.isfinite(v) for v in auto["range"]) and auto["peak"] == float(image[np.isfinite(image)].max())


def test_all_nan_frame_renders_blank_with_a_finite_range() -> None:
    result = render(np.full((8, 8), np.nan), View())
    assert (levels(result) == 0).all()
    assert result.meta["peak"] is None and all(math.isfinite(v) for v in result.meta["range"])
    assert part(result, "histogram").sum() == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint32, np.float32, np.float64])
def test_integer_and_float_cameras_render_the_same_picture(dtype) -> None:
    base = (designed_image(30, 40, dtype=np.float64) % 251)  # 0..250: exact in every dtype
    reference = levels(render(base, View(bins_x=40, bins_y=30)))
    assert np.array_equal(levels(render(base.astype(dtype), View(bins_x=40, bins_y=30))), reference)


def test_one_pixel_image() -> None:
    result = render(np.array([[42.0]]), View())
    assert (result.meta["rows"], result.meta["cols"], result.meta["bin"]) == (1, 1, 1)
    assert result.meta["peak"] == 42.0


# ------------------------------------------------------------------------------------------ colour scales


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_colorscales_are_plotly_stops_as_rgb_strings(name: str) -> None:
    stops = colorscale(name)
    assert stops[0][0] == 0.0 and stops[-1][0] == 1.0
    assert [t for t, _ in stops] == sorted(t for t, _ in stops)
    for _, colour in stops:
        assert colour.startswith("rgb(") and all(0 <= int(c) <= 255 for c in colour[4:-1].split(","))


def test_grey_runs_from_black_to_white() -> None:
    stops = colorscale("Grey")
    assert stops[0][1] == "rgb(0, 0, 0)" and stops[-1][1] == "rgb(255, 255, 255)"


# ------------------------------------------------------------------------------------------ nice_range

# Subnormals are left out: floor(-5e-324 / 2) * 2 is -0.0, a "miss" of 5e-324 no colour bar can show.
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@given(finite, finite)
@settings(max_examples=300, deadline=None)
def test_nice_range_contains_the_data_and_is_round(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    if hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)):
        return  # degenerate spans: below
    nlo, nhi = nice_range(lo, hi)
    assert nlo <= lo and nhi >= hi
    span = hi - lo
    slack = 1e-9 * max(abs(lo), abs(hi), 1)
    assert lo - nlo <= span / 8 + slack and nhi - hi <= span / 8 + slack
    step = 10.0 ** math.floor(math.log10(span / 20.0))
    for candidate in (step, 2 * step, 5 * step, 10 * step):
        if all(abs(v / candidate - round(v / candidate)) < 1e-6 for v in (nlo, nhi)):
            break
    else:
        raise AssertionError(f"{(nlo, nhi)} are not multiples of a 1/2/5 step near {span / 20}")


def test_nice_range_is_stable_under_noise() -> None:
    rng = np.random.default_rng(1)
    ranges = {nice_range(0.0 + rng.uniform(0, 2), 1000.0 + rng.uniform(-2, 0)) for _ in range(50)}
    assert len(ranges) == 1


@pytest.mark.parametrize(("lo", "hi"), [(5.0, 5.0), (3.0, 1.0), (0.0, float("inf"))])
def test_nice_range_leaves_degenerate_ranges_alone(lo: float, hi: float) -> None:
    assert nice_range(lo, hi) == (lo, hi)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 20), st.sampled_from(["float64", "float32", "uint16"]),
       st.booleans(), st.integers(0, 2**31))
def test_block_mean_is_the_mean_of_the_finite_pixels_of_each_block(height: int, width: int, f: int, dtype: str,
                                                                    holes: bool, seed: int) -> None:
    from web.render import block_mean

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60000, (height, width)).astype(dtype)
    if holes and image.dtype.kind == "f":
        image[rng.random(image.shape) < 0.3] = np.nan
    hb, wb = -(-height // f), -(-width // f)
    expected = np.full((hb, wb), np.nan)
    for r in range(hb):
        for c in range(wb):
            block = image[r * f:(r + 1) * f, c * f:(c + 1) * f].astype(np.float64)
            if np.isfinite(block).any():
                expected[r, c] = np.nanmean(block)
    got = block_mean(image, f)
    assert got.dtype == np.float32 and got.shape == (hb, wb)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-6, atol=0)
