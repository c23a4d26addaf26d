"""Cameras fed by the test itself, for the web-layer tests: no thread, no socket, nothing timed.

`FedCamera` is the product's `stream.camera.Camera` whose receiver is never started: `feed(...)`
hands it one encoded bsread message, which goes through the real path (Receiver.handle: decoding
and health counters; Ingest: scalars, statistics, ROIs, background; history and recent frames)
before `feed` returns. `FedRegistry` offers such cameras to `app.create_app` with the methods the
app uses of `stream.cameras.CameraRegistry`.

Frames whose answer is known: `designed_image` (pixel value = col + 1000 * row, so every pixel says
where it is) and `camera_values` (the channels of the original simulated camera, values chosen here).
"""

from __future__ import annotations

import types

from typing import Any, Mapping

import numpy as np

from config import parse_args
from stream.camera import Camera, CameraSpec, Limits
from stream.cameras import CameraUnavailable, camera_state
from stream.encoder import Encoder
from stream.layout import ChannelNames
from stream.receiver import Receiver

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
PERIOD_S = 0.01  # pulse spacing of the fed streams (100 Hz)


def designed_image(height: int = 48, width: int = 64, dtype: Any = np.uint32) -> np.ndarray:
    """Pixel (row, col) holds col + 1000 * row: any value read back names its pixel."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (cols + 1000 * rows).astype(dtype)


def camera_values(image: np.ndarray, energy: float = 5.25, rate: float = 100.0, profiles: bool = True,
                  **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"image": image}
    if profiles:
        values["image_profile_x"] = image.sum(axis=0, dtype=np.float64)
        values["image_profile_y"] = image.sum(axis=1, dtype=np.float64)
    values.update({"beam_energy": np.float64(energy), "repetition_rate": np.float64(rate)})
    values.update(extra)
    return values


class FedCamera(Camera):
    """A Camera fed synchronously by the test (see the module docstring)."""

    def __init__(self, name: str = "cam", limits: Limits = Limits(history=10_000), names: ChannelNames = ChannelNames(),
                 address: str = "tcp://127.0.0.1:1", **kwargs: Any) -> None:
        super().__init__(CameraSpec(name, address=address, source=address), names, limits, **kwargs)
        self._receiver = Receiver(address, self._on_message)  # never started: decoding and health only
        self.encoder = Encoder()
        self.pulse_id = 0

    def feed(self, values: Mapping[str, Any], pulse_id: int | None = None, timestamp: float | None = None,
             **encode: Any) -> int:
        """Encode one message (next pulse id, 100 Hz pulse time unless given) and receive it; returns the pulse id."""
        self.pulse_id = self.pulse_id + 1 if pulse_id is None else pulse_id
        stamp = T0 + self.pulse_id * PERIOD_S if timestamp is None else timestamp
        self.feed_parts(self.encoder.encode(self.pulse_id, stamp, values, **encode))
        return self.pulse_id

    def feed_parts(self, parts: list[Any]) -> None:
        self._receiver.handle(parts)

    def start(self) -> "FedCamera":  # nothing to connect
        return self

    def stop(self, timeout: float = 1.0) -> None:
        pass


class FedRegistry:
    """What the app uses of a CameraRegistry, over cameras the test holds."""

    def __init__(self, *cameras: Camera, camserver_error: str = "") -> None:
        self.cameras = {camera.name: camera for camera in cameras}
        self.camserver_error = camserver_error

    @property
    def default(self) -> str | None:
        return next(iter(self.cameras), None)

    def camera_names(self) -> list[str]:
        return list(self.cameras)

    def known(self, name: str) -> bool:
        return name in self.cameras

    def get(self, name: str | None) -> Camera | None:
        return self.cameras.get(name or self.default or "")

    def watch(self, name: str | None) -> Camera:
        name = name or self.default
        if name not in self.cameras:
            raise CameraUnavailable(f"there is no camera {name!r}")
        camera = self.cameras[name]
        camera.touch()
        return camera

    def caught_up_events(self) -> list:
        return []

    def listing(self) -> list[dict[str, Any]]:
        return [{"name": name, "watched": camera.watched, "state": camera_state(camera), "error": "",
                 "source": camera.spec.source} for name, camera in self.cameras.items()]

    def start(self) -> "FedRegistry":
        return self

    def stop(self, timeout: float = 1.0) -> None:
        pass


def fed_app(*cameras: Camera, argv: list[str] | None = None) -> Any:
    """`app.create_app` over fed cameras (one "cam" when none is given). Starts nothing."""
    import app as app_module

    return app_module.create_app(parse_args(argv or []), FedRegistry(*(cameras or (FedCamera(),))))


class ManualClock:
    """A clock the test moves by hand (`clock.now += 1`), for modules that read `time.monotonic()`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def install(self, monkeypatch: Any, module: Any) -> "ManualClock":
        """Replace `module.time` by this clock (monotonic and perf_counter)."""
        monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=self, perf_counter=self))
        return self
