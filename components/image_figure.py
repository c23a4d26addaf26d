"""The #image-graph figure: axes in the camera's units, colour bar, profile panels, regions of interest.

Rebuilt only when the camera, its geometry or the colour map changes, never per frame: the frames
are painted over its plot area by assets/painter.js, which takes its geometry from what is fixed
here (margins without auto-expansion, domains) and from the axis ranges plotly.js writes back into
`gd.layout` (it widens one of them to keep the aspect ratio). The heatmap is one cell covering the
image, in level units 0…254, so the colour bar is plotly's own; its tick labels are set per frame.
"""

from __future__ import annotations

from typing import Any

from stream.layout import Axis, pixel_axis
from stream.rois import Roi
from web.render import TOP_LEVEL, colorscale

MARGIN = {"l": 56, "r": 62, "t": 6, "b": 38, "autoexpand": False}  # px; painter.js reads these from the layout
IMAGE_DOMAIN_X = (0.0, 0.86)
IMAGE_DOMAIN_Y = (0.0, 0.84)
PROFILE_X_DOMAIN_Y = (0.86, 1.0)  # x profile panel above the image
PROFILE_Y_DOMAIN_X = (0.88, 1.0)  # y profile panel right of the image
PROFILE_COLOR = "#f39c12"
FIT_COLOR = "#5dade2"
STREAM_FIT_COLOR = "#e74c3c"
ROI_COLOR = "#2ecc71"
AXIS = {"showgrid": False, "zeroline": False, "color": "#aaa", "tickangle": 0, "ticklabeloverflow": "allow"}


def axis_title(name: str, axis: Axis) -> str:
    return f"{name} ({axis.unit})"


def edges(axis: Axis, length: int) -> tuple[float, float]:
    """Coordinates of the outer edges of pixel 0 and pixel length-1 (in that order)."""
    return axis.at(-0.5), axis.at(length - 0.5)


def image_figure(shape: tuple[int, int] | None, axes: tuple[Axis, Axis] = (pixel_axis(), pixel_axis()),
                 colormap: str = "Viridis", rois: tuple[Roi, ...] = (), revision: str = "image") -> dict[str, Any]:
    """Figure for an image of `shape` (H, W); before the first frame a placeholder 640 x 480."""
    height, width = shape or (480, 640)
    axis_x, axis_y = axes
    # ScreenPanel's orientation: pixel column 0 at the left, row 0 at the top, whatever way the
    # calibration runs (a descending x_axis reads +X at the left).
    x_first, x_last = edges(axis_x, width)
    y_top, y_bottom = edges(axis_y, height)
    meta = {"shape": [height, width], "x": {"origin": axis_x.origin, "step": axis_x.step, "unit": axis_x.unit},
            "y": {"origin": axis_y.origin, "step": axis_y.step, "unit": axis_y.unit},
            "domains": {"image_x": IMAGE_DOMAIN_X, "image_y": IMAGE_DOMAIN_Y, "profile_x_y": PROFILE_X_DOMAIN_Y,
                        "profile_y_x": PROFILE_Y_DOMAIN_X}}
    heatmap = {
        "type": "heatmap", "z": [[0]], "x": sorted((x_first, x_last)), "y": sorted((y_top, y_bottom)),
        "zmin": 0, "zmax": TOP_LEVEL, "colorscale": colorscale(colormap), "hoverinfo": "skip", "opacity": 0,
        "colorbar": {"x": 1.0, "xanchor": "left", "xpad": 8, "y": 0.4, "len": 0.8, "thickness": 12,
                     "title": {"text": "counts", "side": "right"}, "tickvals": [], "ticktext": [],
                     "tickfont": {"color": "#ccc"}, "tickangle": 0, "ticklabeloverflow": "allow"},
    }
    line = {"type": "scatter", "mode": "lines", "hoverinfo": "skip", "x": [], "y": []}
    return {
        "data": [
            heatmap,
            {**line, "name": "x profile", "xaxis": "x", "yaxis": "y2", "line": {"color": PROFILE_COLOR, "width": 1}},
            {**line, "name": "y profile", "xaxis": "x2", "yaxis": "y", "line": {"color": PROFILE_COLOR, "width": 1}},
        ],
        "layout": {
            "uirevision": revision, "meta": meta, "margin": MARGIN, "hovermode": False, "dragmode": "zoom",
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", "font": {"color": "#ddd", "size": 11},
            "showlegend": False,
            # Autorange (from the heatmap cell's extent), not fixed ranges: plotly.js widens one axis
            # to keep the aspect ratio and would keep a widening made for an earlier, smaller size.
            "xaxis": {**AXIS, "domain": list(IMAGE_DOMAIN_X), "autorange": "reversed" if x_first > x_last else True,
                      "title": {"text": axis_title("x", axis_x), "standoff": 4}},
            "yaxis": {**AXIS, "domain": list(IMAGE_DOMAIN_Y), "autorange": "reversed" if y_top < y_bottom else True,
                      "scaleanchor": "x", "constrain": "range", "title": {"text": axis_title("y", axis_y), "standoff": 4}},
            "xaxis2": {**AXIS, "domain": list(PROFILE_Y_DOMAIN_X), "anchor": "y", "visible": False},
            "yaxis2": {**AXIS, "domain": list(PROFILE_X_DOMAIN_Y), "anchor": "x", "visible": False},
            "shapes": [roi_shape(roi, axes) for roi in rois],
            "newshape": {"line": {"color": ROI_COLOR, "width": 1.5}, "fillcolor": "rgba(0,0,0,0)"},
        },
    }


def roi_shape(roi: Roi, axes: tuple[Axis, Axis]) -> dict[str, Any]:
    """A region of interest as a rectangle around its pixels, labelled with its name (as text)."""
    axis_x, axis_y = axes
    return {"type": "rect", "xref": "x", "yref": "y", "editable": False, "name": roi.name,
            "x0": axis_x.at(roi.x0 - 0.5), "x1": axis_x.at(roi.x1 - 0.5),
            "y0": axis_y.at(roi.y0 - 0.5), "y1": axis_y.at(roi.y1 - 0.5),
            "line": {"color": ROI_COLOR, "width": 1.5},
            "label": {"text": roi.name, "textposition": "top left", "font": {"color": ROI_COLOR, "size": 11}}}


def box_from_shape(shape: dict[str, Any], axes: tuple[Axis, Axis], image_shape: tuple[int, int]) -> tuple[int, ...]:
    """The pixel box [x0, x1) x [y0, y1) of the pixels whose centres a drawn rectangle encloses."""
    axis_x, axis_y = axes
    height, width = image_shape
    cols = sorted((axis_x.index(float(shape["x0"])), axis_x.index(float(shape["x1"]))))
    rows = sorted((axis_y.index(float(shape["y0"])), axis_y.index(float(shape["y1"]))))
    x0, x1 = max(0, int(-(-cols[0] // 1))), min(width, int(cols[1] // 1) + 1)
    y0, y1 = max(0, int(-(-rows[0] // 1))), min(height, int(rows[1] // 1) + 1)
    return x0, x1, y0, y1
