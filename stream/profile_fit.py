"""Robust Gaussian fit of one beam profile: the core of stream/statistics.py.

A profile (an image summed over rows or columns) holds a Poisson pedestal summed over many pixels,
hot pixels (spikes of one or two bins) and the beam. `measure` seeds on a 3-bin morphological opening
(which removes the spikes) by the half maximum, leaves spikes out, fits amplitude, mean, sigma and
offset by Levenberg-Marquardt on +-5 sigma of the seed (so far hot pixels and pedestal slopes do not
matter), drops isolated outliers the spike test cannot see (a hot pixel on the flank of a narrow
beam) and refits. Without a sane fit it falls back to moments within +-4 sigma of the seed; without a
significant peak it gives NaN. Positions are whatever the caller passes (pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
FIT_SIGMAS = 5.0  # fit window half-width; beyond it a Gaussian is below 4e-6 of its peak
MOMENT_SIGMAS = 4.0  # fallback moments: truncation shrinks a Gaussian's rms by < 0.1 %
MIN_SIGNIFICANCE = 5.0  # fitted amplitude over its standard error; below it there is no beam
MIN_PEAK_NOISE = 6.0  # seed height over its noise (of one bin, or of SEED_SCALES bins); below it no beam
SEED_SCALES = (1, 3, 9, 27)  # box widths (bins) a seed is looked for at: a wide beam can be buried bin by bin
# A bin is a spike when the opening lowers it by SPIKE_NOISE noise sigmas and by a fraction of its
# height above the baseline: SPIKE_FRACTION (a spike higher than the narrowest beam it sits on) or
# less, down to 2 %, for wider beams.
SPIKE_NOISE = 7.0
SPIKE_FRACTION = 0.6
OUTLIER_SPREAD = 8.0  # an isolated residual above this many robust sigmas is a hot pixel
MAX_ITERATIONS = 40


@dataclass(frozen=True)
class AxisFit:
    """Gaussian fit of one profile: amplitude and offset in profile units, mean, sigma, fwhm in px."""

    amplitude: float
    mean: float
    sigma: float
    offset: float
    fwhm: float
    converged: bool


NO_FIT = AxisFit(math.nan, math.nan, math.nan, math.nan, math.nan, False)


@dataclass(frozen=True)
class Profile:
    """What one profile says about the beam: the fit's mean/sigma, else moments, else NaN."""

    intensity: float  # background-subtracted sum over the fit (or moments) window, profile units x px
    centroid: float  # px
    rms: float  # px
    fit: AxisFit


NO_PROFILE = Profile(math.nan, math.nan, math.nan, NO_FIT)


def median(a: np.ndarray) -> float:
    """Median of a non-empty array from at most ~512 evenly spread samples (plenty for a baseline or
    a noise level); np.partition of those costs far less than np.median of all."""
    a = a.reshape(-1)[::a.size // 512 + 1]
    k = a.size // 2
    part = np.partition(a, (k - 1, k) if a.size % 2 == 0 else k)
    return float(part[k]) if a.size % 2 else 0.5 * (float(part[k - 1]) + float(part[k]))


def finite(a: np.ndarray) -> np.ndarray | None:
    """`a` with NaN/Inf replaced by the median of its finite values; None if it has none."""
    ok = np.isfinite(a)
    if ok.all():
        return a
    return np.where(ok, a, median(a[ok])) if ok.any() else None


def _opening(y: np.ndarray) -> np.ndarray:
    """Morphological opening over 3 bins (minimum, then maximum): removes peaks 1 or 2 bins wide (hot
    pixels), keeps wider ones (a spot of sigma 1.5 px keeps >= 80 % of its height); never above `y`."""
    low = np.minimum(np.minimum(y[:-2], y[1:-1]), y[2:])
    low = np.concatenate((low[:1], low, low[-1:]))
    high = np.maximum(np.maximum(low[:-2], low[1:-1]), low[2:])
    return np.minimum(np.concatenate((high[:1], high, high[-1:])), y)


def half_maximum(x: np.ndarray, s: np.ndarray) -> tuple[float, float, float] | None:
    """(height, centre, sigma from the FWHM) of the highest peak of `s` (baseline 0), or None."""
    i = int(np.argmax(s))
    peak = float(s[i])
    if not 0.0 < peak < math.inf:
        return None
    half = 0.5 * peak
    left, right = np.flatnonzero(s[:i] < half), np.flatnonzero(s[i:] < half)
    j = int(left[-1]) if left.size else -1
    k = i + int(right[0]) if right.size else -1
    lo = float(np.interp(half, s[j:j + 2], x[j:j + 2])) if j >= 0 else float(x[0])  # s rises at j
    hi = float(np.interp(half, (s[k], s[k - 1]), (x[k], x[k - 1]))) if k > 0 else float(x[-1])  # falls at k
    return peak, 0.5 * (lo + hi), max(hi - lo, 1e-3) / FWHM_PER_SIGMA


def _seed(x: np.ndarray, s: np.ndarray, noise: float) -> tuple[float, float, float] | None:
    """(height, centre, sigma) of the most significant peak of `s` (baseline 0, bin noise `noise`) in a
    box average over any of SEED_SCALES bins, the box's width taken out again; None if not significant."""
    single = float(np.max(s)) / noise
    if single >= 2.0 * MIN_PEAK_NOISE:  # clear bin by bin: the usual case, and the sharpest seed
        return half_maximum(x, s)
    sums = np.concatenate(([0.0], np.cumsum(s)))
    best = (single, 1)
    for w in SEED_SCALES[1:]:
        if 4 * w > s.size:
            break
        z = float(np.max(sums[w:] - sums[:-w])) / (math.sqrt(w) * noise)  # the box's peak over its noise
        best = max(best, (z, w))
    z, w = best
    if z < MIN_PEAK_NOISE:
        return None
    if w == 1:
        return half_maximum(x, s)
    positions = np.concatenate(([0.0], np.cumsum(x)))
    seed = half_maximum((positions[w:] - positions[:-w]) / w, (sums[w:] - sums[:-w]) / w)
    if seed is None:
        return None
    spacing = float(x[-1] - x[0]) / (x.size - 1)
    sigma = math.sqrt(max(seed[2] ** 2 - (w * w - 1) / 12.0 * spacing ** 2, (0.5 * spacing) ** 2))  # box variance
    return seed[0] * seed[2] / sigma, seed[1], sigma  # a box keeps the area: height x sigma


def _solve(h: list[list[float]], b: list[float], damping: float) -> list[float] | None:
    """(h + damping * diag(h)) x = b for a 4x4 symmetric positive definite h, None if it is not: an
    unrolled Cholesky in plain Python, a fifth of np.linalg.solve's per-call cost (~25 % of a fit)."""
    d = 1.0 + damping
    q0 = h[0][0] * d
    l00 = math.sqrt(q0) if q0 > 0.0 else 0.0
    l10, l20, l30 = (h[1][0] / l00, h[2][0] / l00, h[3][0] / l00) if l00 else (0.0, 0.0, 0.0)
    q1 = h[1][1] * d - l10 * l10
    l11 = math.sqrt(q1) if l00 and q1 > 0.0 else 0.0
    l21, l31 = ((h[2][1] - l20 * l10) / l11, (h[3][1] - l30 * l10) / l11) if l11 else (0.0, 0.0)
    q2 = h[2][2] * d - l20 * l20 - l21 * l21
    l22 = math.sqrt(q2) if l11 and q2 > 0.0 else 0.0
    l32 = (h[3][2] - l30 * l20 - l31 * l21) / l22 if l22 else 0.0
    q3 = h[3][3] * d - l30 * l30 - l31 * l31 - l32 * l32
    if not (l22 and q3 > 0.0):
        return None
    l33 = math.sqrt(q3)
    z0 = b[0] / l00
    z1 = (b[1] - l10 * z0) / l11
    z2 = (b[2] - l20 * z0 - l21 * z1) / l22
    x3 = (b[3] - l30 * z0 - l31 * z1 - l32 * z2) / l33 / l33
    x2 = (z2 - l32 * x3) / l22
    x1 = (z1 - l21 * x2 - l31 * x3) / l11
    return [(z0 - l10 * x1 - l20 * x2 - l30 * x3) / l00, x1, x2, x3]


def _levenberg_marquardt(x: np.ndarray, y: np.ndarray, theta: list[float]) -> tuple[list[float], float] | None:
    """Least squares a*exp(-(x-m)^2/2s^2) + c from theta = [a, m, s, c] (analytic Jacobian,
    Marquardt's diagonal damping). (theta, standard error of a) if it converged, else None."""
    jac = np.empty((4, x.size))
    jac[3] = 1.0
    lam = 1e-3

    def residual(t: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        u = (x - t[1]) * (1.0 / t[2])
        g = np.exp(u * u * -0.5)
        r = y - (g * t[0] + t[3])
        return u, g, r, float(r @ r)

    u, g, r, cost = residual(theta)
    for _ in range(MAX_ITERATIONS):
        jac[0] = g
        np.multiply(g, u * (theta[0] / theta[2]), out=jac[1])
        np.multiply(jac[1], u, out=jac[2])
        hessian, grad = (jac @ jac.T).tolist(), (jac @ r).tolist()
        while True:
            step = _solve(hessian, grad, lam)
            if step is None or lam > 1e12:
                return None
            trial = [p + d for p, d in zip(theta, step)]
            if trial[2] > 0.0:
                trial_u, trial_g, trial_r, trial_cost = residual(trial)
                if trial_cost <= cost:
                    break
            lam *= 10.0
        theta, u, g, r, cost = trial, trial_u, trial_g, trial_r, trial_cost
        lam = max(lam * 0.1, 1e-9)
        if abs(step[1]) <= 1e-4 * theta[2] and abs(step[2]) <= 1e-4 * theta[2]:  # error now ~1e-8 sigma
            inverse = _solve(hessian, [1.0, 0.0, 0.0, 0.0], 0.0)  # its first element: variance of a
            return None if inverse is None else (theta, math.sqrt(max(inverse[0] * cost / max(x.size - 4, 1), 0.0)))
    return None


def _outliers(x: np.ndarray, y: np.ndarray, theta: list[float], noise: float) -> np.ndarray:
    """Indices of isolated bins far above a fit: hot pixels that make no local maximum (on the steep
    flank of a narrow beam), which the spike test cannot see."""
    r = y - (theta[0] * np.exp(-0.5 * ((x - theta[1]) / theta[2]) ** 2) + theta[3])
    padded = np.concatenate((r[:1], r, r[-1:]))
    neighbours = np.maximum(np.minimum(padded[:-2], padded[2:]), 0.0)  # the lower side of a 2-bin cluster
    limit = max(OUTLIER_SPREAD * 1.4826 * median(np.abs(r)), SPIKE_NOISE * noise)
    return np.flatnonzero((r > limit) & (r > 2.0 * neighbours))


def _fit(x: np.ndarray, y: np.ndarray, seed: list[float], noise: float) -> tuple[list[float], float, float] | None:
    """(a, m, s, c), window [lo, hi] in px: a sane fit on +-FIT_SIGMAS of the seed, redone without
    outliers or on the fit's own window if that moved much; None if there is no sane fit."""
    for _ in range(3):
        lo = int(np.searchsorted(x, seed[1] - FIT_SIGMAS * seed[2]))
        hi = int(np.searchsorted(x, seed[1] + FIT_SIGMAS * seed[2], "right"))
        lo, hi = max(0, min(lo, hi - 7)), min(x.size, max(hi, lo + 7))  # >= 7 points for 4 parameters
        result = _levenberg_marquardt(x[lo:hi], y[lo:hi], seed) if hi - lo >= 7 else None
        if result is None:
            return None
        theta, error = result
        # Sane: a significant peak, centred inside the profile, at most half as wide as the profile.
        if not (theta[0] > MIN_SIGNIFICANCE * error and x[0] <= theta[1] <= x[-1] and theta[2] <= 0.5 * (x[-1] - x[0])):
            return None
        window = (float(x[lo]), float(x[hi - 1]))
        outliers = _outliers(x[lo:hi], y[lo:hi], theta, noise)
        if outliers.size:
            x, y = np.delete(x, lo + outliers), np.delete(y, lo + outliers)
        elif abs(theta[2] - seed[2]) <= 0.2 * seed[2] and abs(theta[1] - seed[1]) <= 0.5 * seed[2]:
            break
        seed = theta
    return theta, window[0], window[1]


def measure(x: np.ndarray, p: np.ndarray, fit: bool = True) -> Profile:
    """The beam in a finite float64 profile `p` at increasing positions `x` (px).

    fit=False: only the seed (half-maximum centre and sigma, no intensity), for choosing windows.
    """
    scale = float(np.max(np.abs(p))) if p.size >= 7 else 0.0
    if not 0.0 < scale < math.inf:
        return NO_PROFILE
    y = p * (1.0 / scale)  # values in [-1, 1]: nothing below can overflow
    noise = max(1.4826 / math.sqrt(2.0) * median(np.abs(np.diff(y))), 1e-12)
    opened = _opening(y)
    base = median(opened)
    seed = _seed(x, opened - base, noise)
    if seed is None:
        return NO_PROFILE
    peak, centre, sigma = seed
    if not fit:
        return Profile(math.nan, centre, sigma, NO_FIT)
    # The top two bins of a Gaussian lose up to 1 - exp(-1/s^2) of their height to the opening;
    # 3x that, for the seed's sigma is rough.
    fraction = min(max(3.0 * (1.0 - math.exp(-1.0 / sigma ** 2)), 0.02), SPIKE_FRACTION)
    spike = (y - opened > SPIKE_NOISE * noise) & (y - opened > fraction * (y - base))
    outside = y[(np.abs(x - centre) > FIT_SIGMAS * sigma) & ~spike]
    base = median(outside) if outside.size >= 8 else base
    spacing = float(x[-1] - x[0]) / (x.size - 1)  # px per sample: sums become integrals
    good = ~spike
    fitted = _fit(x[good], y[good], [peak, centre, sigma, base], noise)
    y = np.where(spike, opened, y)  # for sums: a spike's bin counts at the level around it
    if fitted is not None:
        (a, m, s, c), lo, hi = fitted
        window = y[int(np.searchsorted(x, lo)):int(np.searchsorted(x, hi, "right"))]
        intensity = (float(np.sum(window)) - c * window.size) * spacing * scale
        return Profile(intensity, m, s, AxisFit(a * scale, m, s, c * scale, FWHM_PER_SIGMA * s, True))
    half_width = 0.5 * FWHM_PER_SIGMA * sigma
    if centre - half_width <= x[0] + 1e-9 or centre + half_width >= x[-1] - 1e-9:
        return NO_PROFILE  # no half-maximum crossing on one side: a slope or an edge, not a peak to take moments of
    inside = np.abs(x - centre) <= MOMENT_SIGMAS * sigma
    w, xi = y[inside] - base, x[inside]
    total = float(np.sum(w))
    if not total > 0.0:
        return NO_PROFILE
    mean = float(w @ xi) / total
    variance = float(w @ (xi - mean) ** 2) / total
    return Profile(total * spacing * scale, mean, math.sqrt(variance) if variance > 0.0 else math.nan, NO_FIT)
