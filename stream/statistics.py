"""Beam statistics per pulse (INTERIM: the old moment method behind the new API; being replaced)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np

STATS_COLUMNS = ("beam_intensity", "beam_centroid_x", "beam_centroid_y", "beam_rms_x", "beam_rms_y",
                 "beam_fit_amplitude_x", "beam_fit_mean_x", "beam_fit_sigma_x", "beam_fit_offset_x", "beam_fit_fwhm_x",
                 "beam_fit_amplitude_y", "beam_fit_mean_y", "beam_fit_sigma_y", "beam_fit_offset_y", "beam_fit_fwhm_y")


@dataclass(frozen=True)
class AxisFit:
    amplitude: float = math.nan
    mean: float = math.nan
    sigma: float = math.nan
    offset: float = math.nan
    fwhm: float = math.nan
    converged: bool = False


@dataclass(frozen=True)
class BeamStats:
    intensity: float
    centroid_x: float
    centroid_y: float
    rms_x: float
    rms_y: float
    fit_x: AxisFit
    fit_y: AxisFit

    def row(self) -> dict[str, float]:
        values = [self.intensity, self.centroid_x, self.centroid_y, self.rms_x, self.rms_y]
        for fit in (self.fit_x, self.fit_y):
            values += [fit.amplitude, fit.mean, fit.sigma, fit.offset, fit.fwhm]
        return dict(zip(STATS_COLUMNS, values))


NO_BEAM = BeamStats(math.nan, math.nan, math.nan, math.nan, math.nan, AxisFit(), AxisFit())


def _moments(profile: np.ndarray) -> tuple[float, float, float]:
    p = np.asarray(profile, dtype=np.float64)
    if p.size == 0 or not np.isfinite(p).all():
        return math.nan, math.nan, math.nan
    background = float(np.median(p))
    signal = p - background
    sigma = 1.4826 * float(np.median(np.abs(signal)))
    peak = np.where(signal > 3.0 * sigma, signal, 0.0)
    total = float(peak.sum())
    if total <= 0:
        return float(signal.sum()), math.nan, math.nan
    pos = np.arange(p.size, dtype=np.float64)
    centroid = float(np.dot(pos, peak) / total)
    rms = math.sqrt(max(float(np.dot((pos - centroid) ** 2, peak) / total), 0.0))
    return float(signal.sum()), centroid, rms


def fit_profile(profile: np.ndarray) -> tuple[float, AxisFit]:
    total, centroid, rms = _moments(profile)
    return total, AxisFit(math.nan, centroid, rms, math.nan, 2.3548 * rms, False)


def from_profiles(profile_x: np.ndarray, profile_y: np.ndarray) -> BeamStats:
    sx, fx = fit_profile(profile_x)
    _, fy = fit_profile(profile_y)
    return BeamStats(sx, fx.mean, fy.mean, fx.sigma, fy.sigma, fx, fy)


def from_image(image: np.ndarray) -> BeamStats:
    with np.errstate(all="ignore"):
        return from_profiles(image.sum(axis=0, dtype=np.float64), image.sum(axis=1, dtype=np.float64))


def from_rows(shape: tuple[int, int], read_rows: Callable[[np.ndarray], np.ndarray]) -> BeamStats:
    return from_image(read_rows(np.arange(shape[0])))
