"""Per-pulse beam statistics (centroid, rms size, Gaussian fits), robust to noise, pedestal and hot pixels.

This is the number an operator focuses the beam on, so it must hold on real camera frames. Each
profile is fitted with a Gaussian seeded robustly, hot pixels left out (stream/profile_fit.py);
centroid and rms are the fit's mean and sigma when it converged and is sane, else moments, NaN when
there is no beam. Positions and sizes are in pixels (column index for x, row index for y).

`from_profiles` takes two projections (cam_server's x_profile, y_profile). A whole projection of a
small spot carries the pedestal noise of every row, so from an image (`from_image`, `from_rows`) the
profiles are taken near the spot instead: a locating pass reads rows kP and kP+1 (P = 4, or 8 for
images over 2 Mpixel: the bitshuffle blocks of a 2048-wide uint16 frame hold two rows each, so 1/4 of
it is decoded) and finds the spot by the brightest run of three pixels in a row (hot pixels are one
or two wide). Then, over a band of rows around it, the y profile sums the columns within +-3 sigma_x
of the spot and the x profile the rows within +-3 sigma_y. Amplitudes, offsets and the intensity are
scaled to what whole projections would give (the offset as if the pedestal were uniform).
Limits: one spot, the brightest; in big images a spot much below 100x the pedestal noise at
sigma_y = 1.5 px can fall between the locating rows; 3+ adjacent hot pixels in a row look like a spot;
the x size of a tilted spot is the one within +-3 sigma_y of its centre (<= 1.3 % below the projection's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .profile_fit import NO_FIT, NO_PROFILE, AxisFit, Profile, finite, half_maximum, measure, median

__all__ = ["STATS_COLUMNS", "AxisFit", "BeamStats", "NO_BEAM", "NO_FIT", "fit_profile", "from_profiles", "from_image",
           "from_rows"]

STATS_COLUMNS: tuple[str, ...] = (
    "beam_intensity", "beam_centroid_x", "beam_centroid_y", "beam_rms_x", "beam_rms_y",
    "beam_fit_amplitude_x", "beam_fit_mean_x", "beam_fit_sigma_x", "beam_fit_offset_x", "beam_fit_fwhm_x",
    "beam_fit_amplitude_y", "beam_fit_mean_y", "beam_fit_sigma_y", "beam_fit_offset_y", "beam_fit_fwhm_y")

BAND_SIGMAS = 3.0  # profiles of an image sum the rows (columns) within this many sigma of the spot
REACH_SIGMAS = 6.0  # the band of rows read reaches this far from the spot (the fit needs +-4 to +-5)
SMALL_IMAGE_PIXELS = 1 << 21  # up to this size the locating rows have a period of 4, above of 8


@dataclass(frozen=True)
class BeamStats:
    """Per-pulse beam statistics; `row()` names them as STATS_COLUMNS."""

    intensity: float  # background-subtracted counts of the spot
    centroid_x: float  # px
    centroid_y: float  # px
    rms_x: float  # px
    rms_y: float  # px
    fit_x: AxisFit
    fit_y: AxisFit

    def row(self) -> dict[str, float]:
        fits = [(f.amplitude, f.mean, f.sigma, f.offset, f.fwhm) for f in (self.fit_x, self.fit_y)]
        values = (self.intensity, self.centroid_x, self.centroid_y, self.rms_x, self.rms_y, *fits[0], *fits[1])
        return dict(zip(STATS_COLUMNS, map(float, values)))


NO_BEAM = BeamStats(math.nan, math.nan, math.nan, math.nan, math.nan, NO_FIT, NO_FIT)


def _profile(profile: np.ndarray) -> Profile:
    """`measure` of any 1-D numeric profile (int64 of cam_server included); NaN/Inf bins are missing samples."""
    p = np.asarray(profile)
    if p.ndim != 1 or p.dtype.kind not in "biuf":  # object arrays (ints beyond float range), complex, text
        return NO_PROFILE
    p = p.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        x, ok = np.arange(p.size, dtype=np.float64), np.isfinite(p)
        return measure(x, p) if ok.all() else measure(x[ok], p[ok])


def fit_profile(profile: np.ndarray) -> tuple[float, AxisFit]:
    """(background-subtracted sum of the beam, Gaussian fit) of one profile; (NaN, NO_FIT) without a beam.

    The sum covers the fit window (+-5 sigma); the fit is NO_FIT when it did not converge sanely.
    """
    result = _profile(profile)
    return result.intensity, result.fit


def _combine(x: Profile, y: Profile) -> BeamStats:
    if math.isnan(x.centroid) and math.isnan(y.centroid):
        return NO_BEAM
    intensity = y.intensity if math.isnan(x.intensity) else x.intensity
    return BeamStats(intensity, x.centroid, y.centroid, x.rms, y.rms, x.fit, y.fit)


def from_profiles(profile_x: np.ndarray, profile_y: np.ndarray) -> BeamStats:
    """Statistics from the two projections: x = image summed over rows, y = summed over columns."""
    return _combine(_profile(profile_x), _profile(profile_y))


def _numeric(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """Rows as read, if a real numeric array of the expected shape (bool as uint8, NaN/Inf pixels as
    the median of the finite ones), else None."""
    a = np.asarray(block)
    if a.shape != shape or a.dtype.kind not in "biuf":
        return None
    return a.view(np.uint8) if a.dtype.kind == "b" else finite(a) if a.dtype.kind == "f" else a


def _coarse_rows(height: int, width: int) -> tuple[np.ndarray, int]:
    """(rows of the locating pass, their period P): rows kP and kP+1."""
    period = 4 if height * width <= SMALL_IMAGE_PIXELS else 8
    starts = np.arange(0, height, period, dtype=np.int64)
    rows = np.stack((starts, starts + 1), axis=1).reshape(-1)
    return rows[rows < height], period


def _locate(rows: np.ndarray, block: np.ndarray) -> tuple[float, float] | None:
    """(row, rough sigma_y in px) of the spot in `block` (the image's `rows`), or None.

    A row scores its brightest run of three pixels: the minimum over three neighbours drops hot
    pixels and keeps >= 80 % of the peak of a spot with sigma_x >= 1.5 px. Runs are taken along the
    flattened rows (twice as fast as 2-D slices); the two that wrap into the next row are harmless.
    """
    flat = np.ascontiguousarray(block).reshape(-1)
    run = np.minimum(flat[:-2], flat[1:-1])
    np.minimum(run, flat[2:], out=run)
    ridge = np.maximum.reduceat(run, np.arange(0, run.size, block.shape[1])).astype(np.float64)
    scale = float(np.max(np.abs(ridge)))
    if not 0.0 < scale < math.inf:
        return None
    ridge *= 1.0 / scale
    seed = half_maximum(rows.astype(np.float64), ridge - median(ridge))
    return None if seed is None else (seed[1], seed[2])


def _band(height: int, centre: float, sigma: float, coarse: np.ndarray, period: int) -> tuple[np.ndarray, float]:
    """(rows of the band around a spot at row `centre`, how many image rows each one stands for):
    every row within reach, or only the locating rows there (read already) if they sample the spot."""
    reach = REACH_SIGMAS * sigma + period  # a period of doubt about the centre
    lo, hi = max(0, math.floor(centre - reach)), min(height - 1, math.ceil(centre + reach))
    if sigma >= period:
        return coarse[(coarse >= lo) & (coarse <= hi)], period / 2.0
    return np.arange(lo, hi + 1, dtype=np.int64), 1.0


def _share(positions: np.ndarray, size: int, centre: float, sigma: float) -> float:
    """Fraction of a Gaussian's sum over positions 0..size-1 that falls on `positions`."""
    def total(at: np.ndarray) -> float:
        return float(np.sum(np.exp(-0.5 * ((at - centre) / sigma) ** 2)))
    return total(positions.astype(np.float64)) / max(total(np.arange(size, dtype=np.float64)), 1e-300)


def _scaled(p: Profile, share: float, offset_factor: float) -> Profile:
    """A profile of part of the spot and pedestal, scaled to the whole projection."""
    f = p.fit
    fit = AxisFit(f.amplitude / share, f.mean, f.sigma, f.offset * offset_factor, f.fwhm, f.converged)
    return Profile(p.intensity / share, p.centroid, p.rms, fit)


def _band_statistics(rows: np.ndarray, weight: float, band: np.ndarray, height: int,
                     period: int) -> tuple[BeamStats, tuple[float, float] | None]:
    """Statistics from a band of rows around the spot, and the (row, sigma) a wider band must cover if
    this one was too narrow (None if it was wide enough)."""
    width = band.shape[1]
    columns, at_rows = np.arange(width, dtype=np.float64), rows.astype(np.float64)
    rough_x = measure(columns, band.sum(axis=0, dtype=np.float64), fit=False)
    if math.isnan(rough_x.centroid):
        return NO_BEAM, None
    reach = BAND_SIGMAS * rough_x.rms
    c0, c1 = max(0, math.floor(rough_x.centroid - reach)), min(width, math.ceil(rough_x.centroid + reach) + 1)
    y = measure(at_rows, band[:, c0:c1].sum(axis=1, dtype=np.float64))
    if math.isnan(y.rms):
        return NO_BEAM, None
    tight = np.abs(at_rows - y.centroid) <= max(BAND_SIGMAS * y.rms, 0.5)
    if not tight.any():
        return NO_BEAM, None
    x = measure(columns, band[tight].sum(axis=0, dtype=np.float64) * weight)
    x_centre, x_sigma = (rough_x.centroid, rough_x.rms) if math.isnan(x.rms) else (x.centroid, x.rms)
    summed_rows = np.count_nonzero(tight) * weight
    x = _scaled(x, _share(rows[tight], height, y.centroid, y.rms) * weight, height / summed_rows)
    y_centre, y_sigma = y.centroid, y.rms
    y = _scaled(y, _share(columns[c0:c1], width, x_centre, x_sigma), width / (c1 - c0))
    reach = (REACH_SIGMAS - 2.0) * y_sigma  # enough pedestal on either side for the fit's offset
    covered = ((rows[0] == 0 or rows[0] <= y_centre - reach)
               and (rows[-1] == height - 1 or rows[-1] >= y_centre + reach)
               and (weight == 1.0 or y_sigma >= period))
    return _combine(x, y), None if covered else (y_centre, y_sigma)


def from_rows(shape: tuple[int, int], read_rows: Callable[[np.ndarray], np.ndarray]) -> BeamStats:
    """Statistics of an image of `shape` (rows, columns) that reads only some of its rows.

    `read_rows(sorted int64 row indices)` returns those rows as an array (len(rows), columns), e.g.
    ChannelValue.take_rows of a bitshuffle_lz4 image; its exceptions (BsreadError) propagate. It is
    called for the locating rows (1/2 of an image up to 2 Mpixel, 1/4 of a bigger one), then for a
    band of rows around a spot smaller than the locating period (at most ~6 % of a 2048-row frame).
    """
    height, width = (int(shape[0]), int(shape[1])) if len(shape) == 2 else (0, 0)
    if height < 7 or width < 7:
        return NO_BEAM
    coarse, period = _coarse_rows(height, width)
    with np.errstate(all="ignore"):
        block = _numeric(read_rows(coarse), (coarse.size, width))
        found = None if block is None else _locate(coarse, block)
        stats = NO_BEAM
        for _ in range(3):  # a spot taller than the locating pass guessed gets a wider band
            if found is None:
                break
            rows, weight = _band(height, found[0], found[1], coarse, period)
            if weight != 1.0:
                band = block[np.searchsorted(coarse, rows)]
            else:
                band = _numeric(read_rows(rows), (rows.size, width))
            if band is None:
                return NO_BEAM
            stats, found = _band_statistics(rows, weight, band, height, period)
        return stats


def from_image(image: np.ndarray) -> BeamStats:
    """Statistics of a whole 2-D image in memory (uncompressed or already decoded): `from_rows` of it."""
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        return NO_BEAM
    return from_rows(image.shape, image.__getitem__)
