"""Per-message work of one camera, in its receiver thread: a message becomes a history row and a frame.

For every pulse: the scalar channels; beam statistics (from the image when it is cheap to read, else
from the stream's profiles, else from as few decoded image rows as needed); the calibrated positions
when the axes are calibrated; the regions of interest; a background grab's next frame. A cam_server
`processing_error` frame (zeroed image) gives no beam. While the receiver is behind the socket the
statistics keep to a share of its time (stream/budget.py): a pulse beyond it gets NaN statistics in
the history, and its frame is measured when it is looked at. Bad values are counted through
`report`, never raised.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from . import statistics
from .background import Background
from .budget import StatisticsBudget
from .frames import Frame
from .layout import UNIT_SUFFIX, Axis, AxisCache, ChannelNames, StreamLayout, detect, pixel_axis
from .protocol import BsreadError, ChannelValue, Message
from .ring_buffer import BOOKKEEPING
from .rois import RoiSet, roi_values

log = logging.getLogger(__name__)

IMAGE_FIRST_PIXELS = 2_000_000  # compressed images up to this size are measured from the image itself

# Calibrated copies of the statistics (pixels -> axis units): (pixel column, kind) with kind
# "position" (origin + i * step) or "size" (|step| * n).
CALIBRATED = (("beam_centroid_x", "position"), ("beam_centroid_y", "position"), ("beam_rms_x", "size"),
              ("beam_rms_y", "size"), ("beam_fit_mean_x", "position"), ("beam_fit_mean_y", "position"),
              ("beam_fit_sigma_x", "size"), ("beam_fit_sigma_y", "size"), ("beam_fit_fwhm_x", "size"),
              ("beam_fit_fwhm_y", "size"))


@dataclass(frozen=True)
class Pulse:
    """What one message gave."""

    channels: dict[str, float]  # scalar stream channels
    computed: dict[str, float]  # beam statistics, calibrated columns, ROI values
    image: ChannelValue | None  # a usable 2-D image, or None
    processing_error: str
    measured: bool = True  # False: beam statistics skipped while the receiver was behind (NaN)


def calibrated_name(column: str, unit: str) -> str:
    return f"{column}_{UNIT_SUFFIX.get(unit, unit)}"


class Ingest:
    """Stateful per camera: the stream layout and axis calibration are kept between messages."""

    def __init__(self, names: ChannelNames, rois: RoiSet, background: Background,
                 report: Callable[[BsreadError], None]) -> None:
        self.names = names
        self.rois = rois
        self.background = background
        self.report = report
        self.layout: StreamLayout | None = None
        self.axes: tuple[Axis, Axis] = (pixel_axis(), pixel_axis())
        self.nonfinite_values = 0  # scalar readings that were NaN/Inf (kept, shown as gaps)
        self.budget = StatisticsBudget()
        self.statistics_skipped = 0  # pulses not measured while the receiver was behind
        self._axis_cache = AxisCache()
        self._parameters: tuple[bytes, str] = (b"", "")

    def pulse(self, message: Message, waited_s: float = math.inf) -> Pulse:
        """What `message` gives. `waited_s`: how long the receiver waited for it (0 if it was queued);
        when that is less than a measurement costs, the statistics keep to `budget` (stream/budget.py)."""
        if self.layout is None or message.format_changed:
            self.layout = detect(message, self.names)
        layout = self.layout
        channels = self._scalars(message)
        image = self._image(message.channels.get(layout.image))
        error = self._processing_error(message.channels.get(layout.parameters) if layout.parameters else None)
        if image is not None:
            height, width = image.spec.shape
            self.axes = (self._axis_cache.axis(message.channels.get(layout.axis_x or ""), width),
                         self._axis_cache.axis(message.channels.get(layout.axis_y or ""), height))
        if error:  # a zeroed frame: no beam, nothing to measure
            stats, image_ok, measured = statistics.NO_BEAM, True, True
        elif self.budget.allows(waited_s):
            started = time.perf_counter()
            stats, image_ok = beam_statistics(message, layout, image, self.report)
            self.budget.spend(time.perf_counter() - started)
            measured = True
        else:
            stats, image_ok, measured = statistics.NO_BEAM, True, False
            self.statistics_skipped += 1
        if not image_ok:  # corrupt: counted once here, and not shown (the renderer would count it again)
            image = None
        computed = stats.row()
        computed.update(calibrated(computed, self.axes))
        if image is not None and not error:
            try:
                computed.update(roi_values(self.rois.rois, image))
                if self.background.grabbing:
                    self.background.add(image.value)
            except BsreadError as exc:
                self.report(exc)
                image = None
        return Pulse(channels, computed, image, error, measured)

    def _scalars(self, message: Message) -> dict[str, float]:
        row: dict[str, float] = {}
        for name, channel in message.channels.items():
            if not channel.spec.is_scalar or channel.is_empty:
                continue
            try:
                value = float(channel.value)
            except BsreadError as exc:
                self.report(exc)
                continue
            except (TypeError, ValueError, OverflowError):
                continue
            if not math.isfinite(value):
                self.nonfinite_values += 1
                value = math.nan
            # cam_server sends a `timestamp` channel: kept beside the history's own pulse time
            row[f"{name} (channel)" if name in BOOKKEEPING else name] = value
        return row

    @staticmethod
    def _image(channel: ChannelValue | None) -> ChannelValue | None:
        # A 0xN image has nothing to show (and would reach the renderer as a division by zero).
        if channel is None or channel.is_empty or channel.spec.is_string:
            return None
        return channel if len(channel.spec.shape) == 2 and 0 not in channel.spec.shape else None

    def _processing_error(self, channel: ChannelValue | None) -> str:
        """cam_server's processing_error, parsed only when the parameters string changes."""
        if channel is None or channel.is_empty or not channel.spec.is_string:
            return ""
        raw = bytes(channel.raw)
        if raw != self._parameters[0]:
            error = ""
            try:
                parameters = json.loads(channel.value)
                if isinstance(parameters, dict) and parameters.get("processing_error"):
                    error = str(parameters["processing_error"])[:500]
            except (ValueError, RecursionError, BsreadError):  # RecursionError: absurdly nested JSON
                pass
            self._parameters = (raw, error)
        return self._parameters[1]


def beam_statistics(message: Message, layout: StreamLayout, image: ChannelValue | None,
                    report: Callable[[BsreadError], None]) -> tuple[statistics.BeamStats, bool]:
    """(statistics, False if the image turned out corrupt).

    From the image when it is cheap to read (uncompressed, or not big): windows around the beam
    keep the whole frame's pedestal noise out, which a stream's full-frame profiles cannot. From
    the stream's profiles for big compressed frames (or a corrupt image), else from as few
    decoded rows as needed.
    """
    if image is not None and (image.spec.compression == "none" or image.spec.size <= IMAGE_FIRST_PIXELS):
        stats, ok = _from_image(image, report)
        profiles = _profiles(message, layout, report)  # decoded anyway: a corrupt one is counted now
        if ok:
            return stats, True
        return (statistics.from_profiles(*profiles) if profiles else statistics.NO_BEAM), False
    profiles = _profiles(message, layout, report)
    if profiles is not None:
        return statistics.from_profiles(*profiles), True
    return _from_image(image, report) if image is not None else (statistics.NO_BEAM, True)


def _profiles(message: Message, layout: StreamLayout, report: Callable[[BsreadError], None]
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """The stream's x and y profiles as arrays, or None (absent, empty, corrupt: reported)."""
    px = message.channels.get(layout.profile_x or "")
    py = message.channels.get(layout.profile_y or "")
    if px is None or py is None or px.is_empty or py.is_empty:
        return None
    try:
        vx, vy = px.value, py.value
    except BsreadError as exc:
        report(exc)
        return None
    if isinstance(vx, np.ndarray) and isinstance(vy, np.ndarray) and vx.ndim == vy.ndim == 1:
        return vx, vy
    return None


def _from_image(image: ChannelValue, report: Callable[[BsreadError], None]) -> tuple[statistics.BeamStats, bool]:
    try:
        return statistics.from_rows(image.spec.shape, image.take_rows), True
    except BsreadError as exc:
        report(exc)
        return statistics.NO_BEAM, False


def calibrated(row: Mapping[str, float], axes: tuple[Axis, Axis]) -> dict[str, float]:
    """The CALIBRATED columns of a statistics row, for the axes that are calibrated."""
    axis_x, axis_y = axes
    out: dict[str, float] = {}
    for column, kind in CALIBRATED:
        axis = axis_x if column.endswith("_x") else axis_y
        if not axis.calibrated:
            continue
        value = row[column]
        out[calibrated_name(column, axis.unit)] = axis.at(value) if kind == "position" else abs(axis.step) * value
    return out


class DeferredStatistics(Mapping[str, float]):
    """The computed values of a frame whose pulse was not measured when it arrived (stream/budget.py):
    the beam statistics are measured from its image at the first look (a picture, a snapshot), once."""

    def __init__(self, known: dict[str, float], message: Message, layout: StreamLayout,
                 image: ChannelValue, axes: tuple[Axis, Axis]) -> None:
        self._known = known
        self._source = (message, layout, image)
        self._axes = axes
        self._values: dict[str, float] | None = None
        self._lock = threading.Lock()

    def _all(self) -> dict[str, float]:
        if self._values is None:
            with self._lock:
                if self._values is None:
                    # a corrupt image is counted by whoever decodes it for the picture
                    stats, _ok = beam_statistics(*self._source, lambda exc: None)
                    row = stats.row()
                    self._values = {**self._known, **row, **calibrated(row, self._axes)}
        return self._values

    def __getitem__(self, name: str) -> float:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def make_frame(seq: int, message: Message, pulse: Pulse, received: float, ingest: Ingest) -> Frame | None:
    if pulse.image is None or ingest.layout is None:
        return None
    computed: Mapping[str, float] = pulse.computed
    if not pulse.measured:
        computed = DeferredStatistics(pulse.computed, message, ingest.layout, pulse.image, ingest.axes)
    return Frame(seq, message.pulse_id, message.global_timestamp, received, message, ingest.layout.image,
                 computed, pulse.channels, pulse.processing_error)
