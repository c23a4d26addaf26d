"""Regions of interest: the strict request contract (`parse_rois`), the shared set, and exact sum / mean /
max over the raw pixels of each half-open box, for every compression, against numpy on known images."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import stream.protocol as protocol
from stream.protocol import BsreadError, ChannelValue
from stream.rois import MAX_ROIS, Roi, RoiError, RoiSet, parse_rois, roi_values
from tests.helpers import make_message

SHAPE = (48, 64)  # (H, W)
COMPRESSIONS = ["none", "lz4", "bitshuffle_lz4"]


def box(name: str = "a", x0: Any = 1, x1: Any = 5, y0: Any = 2, y1: Any = 7) -> dict[str, Any]:
    return {"name": name, "x0": x0, "x1": x1, "y0": y0, "y1": y1}


# --------------------------------------------------------------------------------------- contract


def test_valid_regions() -> None:
    rois = parse_rois({"rois": [box("a"), box("B-2_z", 0, 64, 0, 48), box("one", 63, 64, 47, 48)]}, SHAPE)
    assert rois == (Roi("a", 1, 5, 2, 7), Roi("B-2_z", 0, 64, 0, 48), Roi("one", 63, 64, 47, 48))
    assert rois[0].as_dict() == box("a")
    assert rois[0].columns == ("roi_a_sum", "roi_a_mean", "roi_a_max")
    assert parse_rois({"rois": []}, SHAPE) == ()
    assert parse_rois({"rois": []}, None) == ()  # clearing needs no image
    assert len(parse_rois({"rois": [box(f"r{i}") for i in range(MAX_ROIS)]}, SHAPE)) == MAX_ROIS
    assert parse_rois({"rois": [box("x" * 32)]}, SHAPE)[0].name == "x" * 32


@pytest.mark.parametrize("body, complaint", [
    (None, "expected a JSON object"),
    ([box()], "expected a JSON object"),
    ({"rois": box()}, "expected a JSON object"),
    ({"rois": [], "extra": 1}, "expected a JSON object"),
    ({}, "expected a JSON object"),
    ({"rois": [box(f"r{i}") for i in range(MAX_ROIS + 1)]}, f"at most {MAX_ROIS}"),
    ({"rois": ["a"]}, "region 1: expected exactly the keys"),
    ({"rois": [box(), {**box("b"), "colour": "red"}]}, "region 2: expected exactly the keys"),
    ({"rois": [{k: v for k, v in box().items() if k != "y1"}]}, "expected exactly the keys"),
    ({"rois": [box("")]}, "name must be"),
    ({"rois": [box("x" * 33)]}, "name must be"),
    ({"rois": [box("a b")]}, "name must be"),
    ({"rois": [box("ä")]}, "name must be"),
    ({"rois": [box("a\n")]}, "name must be"),
    ({"rois": [box("a.b")]}, "name must be"),
    ({"rois": [box(7)]}, "name must be"),
    ({"rois": [box(x0=True)]}, "must be integers"),
    ({"rois": [box(x1=5.0)]}, "must be integers"),
    ({"rois": [box(y0="2")]}, "must be integers"),
    ({"rois": [box(y1=None)]}, "must be integers"),
    ({"rois": [box(x0=-1)]}, "inside the 64 × 48 image"),
    ({"rois": [box(x1=65)]}, "inside the 64 × 48 image"),
    ({"rois": [box(y1=49)]}, "inside the 64 × 48 image"),
    ({"rois": [box(x0=5, x1=5)]}, "x0 < x1"),
    ({"rois": [box(x0=6, x1=5)]}, "x0 < x1"),
    ({"rois": [box(y0=7, y1=7)]}, "y0 < y1"),
    ({"rois": [box("a"), box("a", 0, 2, 0, 2)]}, "unique"),
])
def test_refused_regions_say_why(body: Any, complaint: str) -> None:
    with pytest.raises(RoiError) as error:
        parse_rois(body, SHAPE)
    assert complaint in str(error.value)
    assert isinstance(error.value, ValueError)


def test_regions_need_an_image_to_be_checked_against() -> None:
    with pytest.raises(RoiError, match="no image yet"):
        parse_rois({"rois": [box()]}, None)


def test_roi_set_is_replaced_as_a_whole() -> None:
    rois = RoiSet()
    assert rois.rois == () and rois.version == 0
    first = parse_rois({"rois": [box("a"), box("b")]}, SHAPE)
    rois.replace(first)
    assert rois.rois == first and rois.version == 1
    rois.replace(())
    assert rois.rois == () and rois.version == 2


# ----------------------------------------------------------------------------------------- values

REGIONS = (Roi("corner", 0, 1, 0, 1), Roi("row", 0, 64, 10, 11), Roi("column", 63, 64, 0, 48),
           Roi("full", 0, 64, 0, 48), Roi("middle", 20, 41, 5, 30), Roi("overlap", 30, 50, 25, 40),
           Roi("bottom", 3, 9, 44, 48))


def known_image(dtype: str, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100.0, 30.0, SHAPE).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -30_000), min(info.max, 60_000), SHAPE, endpoint=True).astype(dtype)


def expected(rois: tuple[Roi, ...], image: np.ndarray) -> dict[str, float]:
    out = {}
    for roi in rois:
        pixels = image[roi.y0:roi.y1, roi.x0:roi.x1].astype(np.float64)
        out[f"roi_{roi.name}_sum"] = float(pixels.sum())
        out[f"roi_{roi.name}_mean"] = float(pixels.sum()) / pixels.size
        out[f"roi_{roi.name}_max"] = float(pixels.max())
    return out


def channel_of(image: np.ndarray, compression: str, **encode: Any) -> ChannelValue:
    return make_message(1, {"image": image}, compression=compression, **encode).channels["image"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("dtype", ["uint16", "int32", "uint8", "float64", "float32"])
def test_values_are_exact_for_every_compression(compression: str, dtype: str) -> None:
    image = known_image(dtype)
    values = roi_values(REGIONS, channel_of(image, compression))
    truth = expected(REGIONS, image)
    assert set(values) == set(truth)
    for name, value in truth.items():
        if image.dtype.kind == "f":
            assert values[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name
        else:
            assert values[name] == value, name  # integer pixel sums are exact in float64


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_big_endian_images(compression: str) -> None:
    image = known_image("uint16").astype(">u2")
    values = roi_values(REGIONS, channel_of(image, compression, encoding="big"))
    assert values == expected(REGIONS, image)


def test_box_is_half_open() -> None:
    image = np.zeros(SHAPE, np.uint16)
    image[7, :] = 1000  # row y1 of the box: outside it
    image[:, 5] = 1000  # column x1: outside
    image[2, 1] = 3  # (y0, x0): inside
    values = roi_values((Roi("a", 1, 5, 2, 7),), channel_of(image, "none"))
    assert values == {"roi_a_sum": 3.0, "roi_a_mean": 3.0 / 20, "roi_a_max": 3.0}


def test_a_box_outside_the_image_gives_nan_and_the_others_still_count() -> None:
    """The image got smaller since the boxes were set."""
    small = known_image("uint16")[:20, :30]
    rois = (Roi("inside", 0, 30, 0, 20), Roi("wide", 0, 31, 0, 5), Roi("tall", 0, 5, 0, 21))
    values = roi_values(rois, channel_of(small, "lz4"))
    assert values["roi_inside_sum"] == float(small.astype(np.float64).sum())
    for name in ("wide", "tall"):
        assert all(math.isnan(values[f"roi_{name}_{kind}"]) for kind in ("sum", "mean", "max"))


def test_no_regions_and_empty_image() -> None:
    assert roi_values((), channel_of(known_image("uint16"), "none")) == {}
    # An image channel with an empty value this pulse (the spec of an image, no bytes).
    empty_channel = ChannelValue(channel_of(known_image("uint16"), "none").spec, b"", None)
    assert empty_channel.is_empty
    values = roi_values(REGIONS[:2], empty_channel)
    assert set(values) == {c for roi in REGIONS[:2] for c in roi.columns}
    assert all(math.isnan(v) for v in values.values())


def test_nan_pixels_of_a_float_image_are_left_out_of_sum_mean_and_max() -> None:
    image = np.ones(SHAPE, np.float64)
    image[0:2, 0:2] = np.nan
    image[5, 5] = 7.0
    values = roi_values((Roi("some", 0, 3, 0, 3), Roi("all", 0, 2, 0, 2), Roi("peak", 4, 7, 4, 7)),
                        channel_of(image, "bitshuffle_lz4"))
    assert values["roi_some_sum"] == 5.0 and values["roi_some_max"] == 1.0 and values["roi_some_mean"] == 1.0
    # a box of NaN pixels only has no sum, no mean, no max (not 0)
    assert all(math.isnan(values[f"roi_all_{kind}"]) for kind in ("sum", "mean", "max"))
    assert values["roi_peak_max"] == 7.0 and values["roi_peak_sum"] == 15.0


def test_only_the_covered_rows_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    image = known_image("uint16")
    channel = channel_of(image, "bitshuffle_lz4")
    asked: list[list[int]] = []
    take_rows = ChannelValue.take_rows

    def spy(self: ChannelValue, rows: Any) -> Any:
        asked.append(np.asarray(rows).tolist())
        return take_rows(self, rows)

    def whole_image(*args: Any) -> Any:
        raise AssertionError("the whole image was decoded")

    monkeypatch.setattr(ChannelValue, "take_rows", spy)
    monkeypatch.setattr(protocol, "decode_value", whole_image)
    rois = (Roi("a", 0, 4, 30, 33), Roi("b", 10, 12, 31, 35), Roi("c", 0, 1, 2, 3))
    values = roi_values(rois, channel)
    assert asked == [[2, 30, 31, 32, 33, 34]]
    assert values == expected(rois, image)


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_a_corrupt_image_raises_bsread_error(compression: str) -> None:
    channel = channel_of(np.zeros(SHAPE, np.uint16), compression)
    raw = bytearray(channel.raw)
    raw[12:] = b"\xff" * (len(raw) - 12)
    corrupt = ChannelValue(channel.spec, bytes(raw), None)
    with pytest.raises(BsreadError):
        roi_values(REGIONS[:1], corrupt)


def test_a_deleted_regions_columns_leave_the_history() -> None:
    """Renaming regions again and again must not fill the history with dead columns."""
    from tests.web_fixtures import FedCamera, camera_values

    camera = FedCamera()
    image = known_image("uint16")
    for k in range(300):  # more renames than the history has columns
        camera.rois.replace((Roi(f"r{k}", 0, 2, 0, 2),))
        camera.feed(camera_values(image))
    computed = camera.buffer.computed
    assert [c for c in computed if c.startswith("roi_")] == ["roi_r299_sum", "roi_r299_mean", "roi_r299_max"]
    assert camera.buffer.newest().column("roi_r299_sum")[-1] == float(image[0:2, 0:2].sum())


def test_two_browsers_adding_regions_at_once_keep_both() -> None:
    import threading

    rois = RoiSet()
    barrier = threading.Barrier(8)

    def add(index: int) -> None:
        barrier.wait()
        rois.update(lambda current: current + (Roi(f"r{index}", index, index + 1, 0, 1),))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.name for r in rois.rois) == [f"r{i}" for i in range(8)]
