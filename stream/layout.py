"""Which channel plays which role in a camera stream, detected from its channel list (flags override).

Two conventions are known: the original simulated camera (`image`, `image_profile_x/_y`,
`beam_energy`, `repetition_rate`) and PSI's cam_server pipeline streams (`image`, `x_axis`/`y_axis`
calibrated in micrometres, `x_profile`/`y_profile`, the pipeline's own `x_fit_*`, `*_center_of_mass`,
`*_rms`, `*_fwhm`, `processing_parameters`). Axes follow ScreenPanel: pixel column 0 at the left,
row 0 at the top, whatever direction the calibration runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .protocol import BsreadError, ChannelValue, Message

PROFILE_CHANNELS = (("x_profile", "y_profile"), ("image_profile_x", "image_profile_y"))
AXIS_CHANNELS = ("x_axis", "y_axis")
FIT_FUNCTIONS = ("x_fit_gauss_function", "y_fit_gauss_function")
PROCESSING_PARAMETERS = "processing_parameters"
# The pipeline's own statistics, shown beside ours: (label, x channel, y channel), all in axis units.
STREAM_STATISTICS = (
    ("centre of mass", "x_center_of_mass", "y_center_of_mass"),
    ("rms", "x_rms", "y_rms"),
    ("fwhm", "x_fwhm", "y_fwhm"),
    ("fit mean", "x_fit_mean", "y_fit_mean"),
    ("fit σ", "x_fit_standard_deviation", "y_fit_standard_deviation"),
    ("fit amplitude", "x_fit_amplitude", "y_fit_amplitude"),
    ("fit offset", "x_fit_offset", "y_fit_offset"),
)
CALIBRATED_UNIT = "µm"  # cam_server's calibration is in micrometres
UNIT_SUFFIX = {"µm": "um"}  # column-name suffix of calibrated columns (ASCII)


@dataclass(frozen=True)
class ChannelNames:
    """Roles chosen on the command line; None means "detect from the stream"."""

    image: str = "image"
    energy: str = "beam_energy"  # GeV
    rate: str = "repetition_rate"  # Hz
    profile_x: str | None = None
    profile_y: str | None = None
    axis_x: str | None = None
    axis_y: str | None = None


@dataclass(frozen=True)
class Axis:
    """Coordinates of one image axis: pixel i is at origin + i * step (step < 0: descending)."""

    origin: float
    step: float
    unit: str  # "px" or the calibration's unit

    @property
    def calibrated(self) -> bool:
        return self.unit != "px"

    @property
    def identity(self) -> bool:
        """Coordinates are the pixel indices themselves (not calibrated, not mirrored)."""
        return self.origin == 0.0 and self.step == 1.0

    def at(self, index: float) -> float:
        return self.origin + index * self.step

    def index(self, coordinate: float) -> float:
        return (coordinate - self.origin) / self.step


def pixel_axis() -> Axis:
    return Axis(0.0, 1.0, "px")


@dataclass(frozen=True)
class StreamLayout:
    """The roles found in one stream (a data-header layout)."""

    image: str
    energy: str | None
    rate: str | None
    profile_x: str | None
    profile_y: str | None
    axis_x: str | None
    axis_y: str | None
    fit_function_x: str | None
    fit_function_y: str | None
    parameters: str | None  # processing_parameters (JSON string)
    stream_statistics: tuple[tuple[str, str | None, str | None], ...]  # (label, x channel, y channel) present

    @property
    def is_pipeline(self) -> bool:
        """A cam_server processing pipeline stream (it has neither beam energy nor repetition rate)."""
        return self.parameters is not None or bool(self.stream_statistics)


def detect(message: Message, names: ChannelNames) -> StreamLayout:
    """The layout of a message's channels (call again when `message.format_changed`)."""
    channels = message.channels

    def present(name: str | None) -> str | None:
        return name if name is not None and name in channels else None

    profile_x, profile_y = names.profile_x, names.profile_y
    if profile_x is None and profile_y is None:
        for x, y in PROFILE_CHANNELS:
            if x in channels and y in channels:
                profile_x, profile_y = x, y
                break
    stats = tuple((label, present(x), present(y)) for label, x, y in STREAM_STATISTICS if x in channels or y in channels)
    return StreamLayout(
        image=names.image,
        energy=present(names.energy),
        rate=present(names.rate),
        profile_x=present(profile_x),
        profile_y=present(profile_y),
        axis_x=present(names.axis_x or AXIS_CHANNELS[0]),
        axis_y=present(names.axis_y or AXIS_CHANNELS[1]),
        fit_function_x=present(FIT_FUNCTIONS[0]),
        fit_function_y=present(FIT_FUNCTIONS[1]),
        parameters=present(PROCESSING_PARAMETERS),
        stream_statistics=stats,
    )


def axis_from(values: np.ndarray | None, length: int) -> Axis:
    """The linear calibration of an axis channel (ScreenPanel: from its first and last value).

    Pixels when there is no usable channel or when it holds 0 ... N-1 (cam_server's "uncalibrated"),
    mirrored pixels when it holds N-1 ... 0.
    """
    if values is None or values.ndim != 1 or values.size != length or length < 2:
        return pixel_axis()
    first, last = float(values[0]), float(values[-1])
    if not (math.isfinite(first) and math.isfinite(last)) or first == last:
        return pixel_axis()
    step = (last - first) / (length - 1)
    if (first, step) == (0.0, 1.0):
        return pixel_axis()
    if (first, step) == (float(length - 1), -1.0):
        return Axis(first, step, "px")
    return Axis(first, step, CALIBRATED_UNIT)


class AxisCache:
    """Calibration per axis channel, recomputed only when the channel's bytes (they rarely do) or the
    image length change."""

    def __init__(self) -> None:
        self._raw: dict[str, tuple[bytes, int]] = {}  # the bytes and the image length it was computed for
        self._axes: dict[str, Axis] = {}

    def axis(self, channel: ChannelValue | None, length: int) -> Axis:
        if channel is None or channel.is_empty:
            return pixel_axis()
        raw = (bytes(channel.raw), length)
        name = channel.spec.name
        if self._raw.get(name) != raw or name not in self._axes:
            try:
                values = channel.value
            except BsreadError:
                values = None
            self._axes[name] = axis_from(values if isinstance(values, np.ndarray) else None, length)
            self._raw[name] = raw
        return self._axes[name]
