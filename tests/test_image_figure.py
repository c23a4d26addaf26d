"""components/image_figure.py: the #image-graph figure (axes in the camera's units, ScreenPanel's
orientation, colour bar, profile panels, regions) and the pixel box of a rectangle drawn on it;
callbacks/image_panel.range_message (why a manual colour range is refused)."""

from __future__ import annotations

import json

import pytest

from callbacks.image_panel import range_message
from components.image_figure import MARGIN, box_from_shape, edges, image_figure, roi_shape
from stream.layout import Axis, pixel_axis
from stream.rois import Roi
from web.render import TOP_LEVEL, colorscale

PIXELS = (pixel_axis(), pixel_axis())
DESCENDING_UM = (Axis(80.0, -2.5, "µm"), Axis(-48.0, 2.0, "µm"))  # cam_server: x descending, y ascending


def test_pixel_axes_put_column_0_left_and_row_0_at_the_top() -> None:
    figure = image_figure((48, 64), PIXELS)
    layout = figure["layout"]
    heatmap = figure["data"][0]
    assert heatmap["x"] == [-0.5, 63.5] and heatmap["y"] == [-0.5, 47.5]  # outer edges of the pixels
    assert layout["xaxis"]["autorange"] is True  # x grows to the right from column 0
    assert layout["yaxis"]["autorange"] == "reversed"  # row 0 at the top
    assert layout["xaxis"]["title"]["text"] == "x (px)" and layout["yaxis"]["title"]["text"] == "y (px)"
    assert layout["yaxis"]["scaleanchor"] == "x"  # square pixels


def test_descending_calibration_reads_plus_x_at_the_left_as_screenpanel() -> None:
    figure = image_figure((48, 64), DESCENDING_UM)
    layout = figure["layout"]
    assert edges(DESCENDING_UM[0], 64) == (81.25, -78.75)
    assert figure["data"][0]["x"] == [-78.75, 81.25]
    assert layout["xaxis"]["autorange"] == "reversed"  # the larger value (pixel column 0) at the left
    assert layout["yaxis"]["autorange"] == "reversed"  # ascending y: row 0 (smallest) at the top
    assert layout["xaxis"]["title"]["text"] == "x (µm)"
    mirrored = image_figure((48, 64), (Axis(-80.0, 2.5, "µm"), Axis(48.0, -2.0, "µm")))["layout"]
    assert mirrored["xaxis"]["autorange"] is True and mirrored["yaxis"]["autorange"] is True


def test_the_figure_carries_what_the_painter_reads() -> None:
    figure = image_figure((48, 64), DESCENDING_UM, "Jet")
    layout, heatmap = figure["layout"], figure["data"][0]
    assert layout["margin"] == MARGIN and layout["margin"]["autoexpand"] is False
    assert layout["meta"]["shape"] == [48, 64]
    assert layout["meta"]["x"] == {"origin": 80.0, "step": -2.5, "unit": "µm"}
    assert set(layout["meta"]["domains"]) == {"image_x", "image_y", "profile_x_y", "profile_y_x"}
    assert heatmap["colorscale"] == colorscale("Jet") and (heatmap["zmin"], heatmap["zmax"]) == (0, TOP_LEVEL)
    assert heatmap["colorbar"]["title"]["text"] == "counts" and heatmap["hoverinfo"] == "skip"
    assert [trace["name"] for trace in figure["data"][1:]] == ["x profile", "y profile"]
    json.dumps(figure, allow_nan=False)  # a plain JSON figure: no plotly objects


def test_placeholder_before_the_first_frame() -> None:
    figure = image_figure(None)
    assert figure["layout"]["meta"]["shape"] == [480, 640] and figure["data"][0]["z"] == [[0]]


def test_regions_are_drawn_around_their_pixels_with_their_names_as_text() -> None:
    roi = Roi("spot", 10, 13, 20, 22)
    shape = roi_shape(roi, PIXELS)
    assert (shape["x0"], shape["x1"], shape["y0"], shape["y1"]) == (9.5, 12.5, 19.5, 21.5)
    assert shape["name"] == "spot" and shape["label"]["text"] == "spot" and shape["editable"] is False
    figure = image_figure((48, 64), PIXELS, rois=(roi, Roi("b", 0, 1, 0, 1)))
    assert [s["name"] for s in figure["layout"]["shapes"]] == ["spot", "b"]


@pytest.mark.parametrize("axes", [PIXELS, DESCENDING_UM], ids=["pixels", "micrometres"])
def test_a_drawn_region_gives_back_its_pixel_box(axes) -> None:
    for roi in (Roi("a", 10, 13, 20, 22), Roi("b", 0, 64, 0, 48), Roi("c", 63, 64, 47, 48)):
        box = box_from_shape(roi_shape(roi, axes), axes, (48, 64))
        assert box == (roi.x0, roi.x1, roi.y0, roi.y1)


def test_a_hand_drawn_rectangle_takes_the_pixels_whose_centres_it_encloses() -> None:
    assert box_from_shape({"x0": 9.8, "x1": 12.2, "y0": 30.9, "y1": 19.6}, PIXELS, (48, 64)) == (10, 13, 20, 31)
    assert box_from_shape({"x0": -100, "x1": 1000, "y0": -5, "y1": 5.4}, PIXELS, (48, 64)) == (0, 64, 0, 6)
    # In micrometres, dragged right to left: pixel column i sits at 80 - 2.5 i.
    assert box_from_shape({"x0": 55.1, "x1": 62.6, "y0": -48.0, "y1": -44.1}, DESCENDING_UM, (48, 64)) == (
        7, 10, 0, 2)


@pytest.mark.parametrize(("mode", "zmin", "zmax", "scale", "message"), [
    ("auto", None, None, "linear", ""),
    ("auto", 5, 1, "linear", ""),  # not used: nothing to say
    ("manual", 0, 100, "linear", ""),
    ("manual", None, 100, "linear", "give min and max"),
    ("manual", 100, 100, "linear", "min must be less than max"),
    ("manual", 200, 100, "linear", "min must be less than max"),
    ("manual", "a", 100, "linear", "min and max must be numbers"),
    ("manual", float("nan"), 100, "linear", "min and max must be finite"),
    ("manual", 0, 100, "log", "a log scale needs min > 0"),
    ("manual", 1, 100, "log", ""),
])
def test_a_manual_range_that_cannot_be_used_is_refused_with_a_message(mode, zmin, zmax, scale, message) -> None:
    assert range_message(mode, zmin, zmax, scale) == message
