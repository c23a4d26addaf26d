"""Per-message work of one camera, in its receiver thread: a message becomes a history row and a frame.

For every pulse: the scalar channels; beam statistics (from the stream's profiles when it has them,
else from as few image rows as needed); the calibrated positions when the axes are calibrated; the
regions of interest; a background grab's next frame. A cam_server `processing_error` frame (zeroed
image) gives no beam. Bad values are counted through `report`, never raised.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import statistics
from .background import Background
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
        self._axis_cache = AxisCache()
        self._parameters: tuple[bytes, str] = (b"", "")

    def pulse(self, message: Message) -> Pulse:
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
        stats, image_ok = (statistics.NO_BEAM, True) if error else self._statistics(message, layout, image)
        if not image_ok:  # corrupt: counted once here, and not shown (the renderer would count it again)
            image = None
        computed = stats.row()
        computed.update(self._calibrated(computed))
        if image is not None and not error:
            try:
                computed.update(roi_values(self.rois.rois, image))
                if self.background.grabbing:
                    self.background.add(image.value)
            except BsreadError as exc:
                self.report(exc)
                image = None
        return Pulse(channels, computed, image, error)

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

    def _statistics(self, message: Message, layout: StreamLayout, image: ChannelValue | None
                    ) -> tuple[statistics.BeamStats, bool]:
        """(statistics, False if the image turned out corrupt).

        From the image when it is cheap to read (uncompressed, or not big): windows around the beam
        keep the whole frame's pedestal noise out, which a stream's full-frame profiles cannot. From
        the stream's profiles for big compressed frames (or a corrupt image), else from as few
        decoded rows as needed.
        """
        if image is not None and (image.spec.compression == "none" or image.spec.size <= IMAGE_FIRST_PIXELS):
            stats, ok = self._from_image(image)
            profiles = self._profiles(message, layout)  # decoded anyway: a corrupt one is counted now
            if ok:
                return stats, True
            return (statistics.from_profiles(*profiles) if profiles else statistics.NO_BEAM), False
        stats = self._from_profiles(message, layout)
        if stats is not None:
            return stats, True
        return self._from_image(image) if image is not None else (statistics.NO_BEAM, True)

    def _from_profiles(self, message: Message, layout: StreamLayout) -> statistics.BeamStats | None:
        profiles = self._profiles(message, layout)
        return statistics.from_profiles(*profiles) if profiles else None

    def _profiles(self, message: Message, layout: StreamLayout) -> tuple[np.ndarray, np.ndarray] | None:
        """The stream's x and y profiles as arrays, or None (absent, empty, corrupt: reported)."""
        px = message.channels.get(layout.profile_x or "")
        py = message.channels.get(layout.profile_y or "")
        if px is None or py is None or px.is_empty or py.is_empty:
            return None
        try:
            vx, vy = px.value, py.value
        except BsreadError as exc:
            self.report(exc)
            return None
        if isinstance(vx, np.ndarray) and isinstance(vy, np.ndarray) and vx.ndim == vy.ndim == 1:
            return vx, vy
        return None

    def _from_image(self, image: ChannelValue) -> tuple[statistics.BeamStats, bool]:
        try:
            return statistics.from_rows(image.spec.shape, image.take_rows), True
        except BsreadError as exc:
            self.report(exc)
            return statistics.NO_BEAM, False

    def _calibrated(self, row: dict[str, float]) -> dict[str, float]:
        axis_x, axis_y = self.axes
        out: dict[str, float] = {}
        for column, kind in CALIBRATED:
            axis = axis_x if column.endswith("_x") else axis_y
            if not axis.calibrated:
                continue
            value = row[column]
            out[calibrated_name(column, axis.unit)] = axis.at(value) if kind == "position" else abs(axis.step) * value
        return out


def make_frame(seq: int, message: Message, pulse: Pulse, received: float, image_channel: str) -> Frame | None:
    if pulse.image is None:
        return None
    return Frame(seq, message.pulse_id, message.global_timestamp, received, message, image_channel,
                 pulse.computed, pulse.channels, pulse.processing_error)
