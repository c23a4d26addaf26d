"""Synthetic camera frames with one Gaussian beam spot whose true statistics are known.

Used by tests/test_statistics.py (accuracy against the truth) and bench/beam_statistics.py. Positions are
pixel indices (column for x, row for y); the spot is sampled at pixel centres, as stream/simulator.py
draws it, so its true rms size is exactly `sigma_x` / `sigma_y`.

- `camera_frame`: a uint16 camera. Poisson pedestal (100 counts: noise 10; one field per frame size,
  shifted at random per pulse), a spot whose peak is `peak_snr` x the pedestal noise, Poisson noise
  on the spot too, 3-5 hot pixels at the dtype's maximum and 3-5 "warm" ones 200-500 counts high,
  anywhere (also on the spot).
- `simulator_frame`: float64 like our simulator: uniform noise 0-0.1 plus a spot of amplitude
  0.8-1.0 (peak ~30x the noise sigma of 0.029), with hot (10.0) and warm (+0.3) pixels.
- `camserver_frame`: the model of PSI cam_server's simulated camera (uint16): exp(-(u^2 + v^2)) with u
  spanning about +-20 across the width and v +-100 down the height (each end moved by up to 1 at
  random), plus uniform noise up to 10 % of full scale and 100 stuck pixels, clipped at 90 % of full
  scale (which flattens the top of the spot: its fitted size comes out ~2 % wide).
Sizes are drawn log-uniform and independently for x and y, centres uniform with the spot >= 5 sigma
from every edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Truth:
    centre_x: float  # px, column index
    centre_y: float  # px, row index
    sigma_x: float  # px
    sigma_y: float  # px
    amplitude: float  # spot peak above the pedestal, image units
    pedestal: float  # mean dark level of a pixel, image units
    profile_amplitude_x: float  # spot peak in the x projection (image summed over rows)
    profile_amplitude_y: float  # ... in the y projection (summed over columns)
    offset_x: float  # pedestal level of the x projection: pedestal * rows
    offset_y: float  # pedestal * columns
    intensity: float  # background-free sum of the spot


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _spot(rng: np.random.Generator, height: int, width: int, sigma_x: tuple[float, float],
          sigma_y: tuple[float, float], amplitude: float, pedestal: float) -> tuple[np.ndarray, np.ndarray, Truth]:
    """(column Gaussian, row Gaussian, truth) of a spot drawn inside a height x width frame."""
    sx = _log_uniform(rng, sigma_x[0], min(sigma_x[1], (width - 1) / 10.0))
    sy = _log_uniform(rng, sigma_y[0], min(sigma_y[1], (height - 1) / 10.0))
    cx, cy = rng.uniform(5 * sx, width - 1 - 5 * sx), rng.uniform(5 * sy, height - 1 - 5 * sy)
    gx = np.exp(-0.5 * ((np.arange(width) - cx) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(height) - cy) / sy) ** 2)
    truth = Truth(cx, cy, sx, sy, amplitude, pedestal, amplitude * float(gy.sum()), amplitude * float(gx.sum()),
                  pedestal * height, pedestal * width, amplitude * float(gx.sum() * gy.sum()))
    return gx, gy, truth


def _bad_pixels(rng: np.random.Generator, image: np.ndarray, hot: float, warm: tuple[float, float]) -> None:
    """3-5 hot pixels at `hot` and 3-5 warm ones raised by `warm` counts (at most to `hot`), anywhere."""
    height, width = image.shape
    for _ in range(int(rng.integers(3, 6))):
        image[rng.integers(height), rng.integers(width)] = hot
    for _ in range(int(rng.integers(3, 6))):
        row, column = rng.integers(height), rng.integers(width)
        extra = rng.uniform(*warm)
        extra = round(extra) if image.dtype.kind == "u" else extra
        image[row, column] = min(float(image[row, column]) + extra, hot)


_PEDESTALS: dict[tuple[int, int, float], np.ndarray] = {}


def _pedestal(rng: np.random.Generator, height: int, width: int, pedestal: float) -> np.ndarray:
    """A Poisson pedestal (uint16): one field per size, drawn once, circularly shifted by a random
    offset per pulse; drawing 10^6 Poisson numbers per pulse would be most of the tests' time."""
    key = (height, width, pedestal)
    if key not in _PEDESTALS:
        field = np.random.default_rng(height * 65536 + width).poisson(pedestal, (height, width))
        _PEDESTALS[key] = field.astype(np.uint16)
    return np.roll(_PEDESTALS[key], (int(rng.integers(height)), int(rng.integers(width))), axis=(0, 1))


def camera_frame(rng: np.random.Generator, height: int, width: int, peak_snr: tuple[float, float] = (100.0, 3000.0),
                 sigma_x: tuple[float, float] = (1.5, 40.0), sigma_y: tuple[float, float] = (1.5, 40.0),
                 pedestal: float = 100.0) -> tuple[np.ndarray, Truth]:
    """A uint16 frame (height x width) and the truth of its spot; see the module docstring."""
    amplitude = _log_uniform(rng, *peak_snr) * math.sqrt(pedestal)
    gx, gy, truth = _spot(rng, height, width, sigma_x, sigma_y, amplitude, pedestal)
    image = _pedestal(rng, height, width, pedestal)
    x0, x1 = np.flatnonzero(gx > 1e-7)[[0, -1]]  # the spot's Poisson counts only where it is not ~0
    y0, y1 = np.flatnonzero(gy > 1e-7)[[0, -1]]
    window = image[y0:y1 + 1, x0:x1 + 1]
    window[...] = np.minimum(window + rng.poisson(amplitude * np.outer(gy[y0:y1 + 1], gx[x0:x1 + 1])), 65535)
    _bad_pixels(rng, image, 65535, (200.0, 500.0))
    return image, truth


_STUCK: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def camserver_frame(rng: np.random.Generator, height: int = 480, width: int = 640) -> tuple[np.ndarray, Truth]:
    """A frame like cam_server's simulated camera and the truth of its spot; see the module docstring."""
    (u0, u1), (v0, v1) = (-20.0 + rng.random(), 20.0 + rng.random()), (-100.0 + rng.random(), 100.0 + rng.random())
    du, dv = (u1 - u0) / (width - 1), (v1 - v0) / (height - 1)  # per px
    gx = np.exp(-np.linspace(u0, u1, width) ** 2)
    gy = np.exp(-np.linspace(v0, v1, height) ** 2)
    image = np.outer(gy, gx) + rng.uniform(0.0, 0.1, size=(height, width))
    if (height, width) not in _STUCK:  # a camera's stuck pixels stay where they are
        stuck = np.random.default_rng(height * 65536 + width)
        _STUCK[height, width] = (stuck.integers(height, size=100), stuck.integers(width, size=100))
    image[_STUCK[height, width]] += 1.0
    full = 65535.0
    pedestal = 0.05 * full
    sigma_x, sigma_y = math.sqrt(0.5) / du, math.sqrt(0.5) / dv  # exp(-u^2) has sigma 1/sqrt(2)
    truth = Truth(-u0 / du, -v0 / dv, sigma_x, sigma_y, full, pedestal, full * float(gy.sum()),
                  full * float(gx.sum()), pedestal * height, pedestal * width, full * float(gx.sum() * gy.sum()))
    return (np.clip(image, 0.0, 0.9) * full).astype(np.uint16), truth


def simulator_frame(rng: np.random.Generator, height: int = 480, width: int = 640,
                    sigma: tuple[float, float] = (2.5, 40.0)) -> tuple[np.ndarray, Truth]:
    """A float64 frame like stream/simulator.py's (with bad pixels added) and the truth of its spot."""
    gx, gy, truth = _spot(rng, height, width, sigma, sigma, rng.uniform(0.8, 1.0), 0.05)
    image = rng.uniform(0.0, 0.1, size=(height, width)) + truth.amplitude * np.outer(gy, gx)
    _bad_pixels(rng, image, 10.0, (0.2, 0.4))
    return image, truth

