"""A stand-in for PSI's cam_server pipeline server, for tests and CI (the real one is not available there).

Written from docs/camserver.md and from watching the real server (docs/camserver-standin.md compares
the two); none of cam_server's code is in here. It serves the REST calls a viewer makes on 127.0.0.1
(a free port, werkzeug in a thread) and starts pipeline instances on demand, each a psi-bsread
`Sender` in PUB mode on a free 127.0.0.1 port, sending the 28 pipeline channels at `rate_hz`:

    with CamServerStandIn(rate_hz=20) as cs:
        client = CamServerClient(cs.url)
        choice = client.stream_for("simulation")      # starts instance "simulation_sp"
        cs.subscribers("simulation_sp"), cs.spot("simulation")

Cameras: "simulation" (calibrated, descending micrometre axes, Gaussian spot on a noisy pedestal),
"simulation2" (pixel axes), "broken" (its saved pipeline reports a `processing_error`: only the six
channels cam_server then sends, zeroed image) and "dead" (listed, but no pipeline starts: "not online").
Like cam_server, errors are answered with HTTP 200 and `{"state": "error", "status": ...}`, instances
stop `no_client_timeout_s` after their last subscriber left, and a restarted instance gets a new port.

`pipeline_channels()` builds one message's channel list (name, value, bsread type) from an image and
its axes, so other tests can send the same layout with any sender.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

HOST = "127.0.0.1"
# Channel names in the order cam_server's processing pipeline sends them.
PIPELINE_CHANNEL_NAMES = (
    "x_axis", "y_axis", "image", "width", "height", "processing_parameters", "timestamp", "min_value", "max_value",
    "x_profile", "y_profile", "intensity", "x_fwhm", "y_fwhm", "x_center_of_mass", "x_rms", "y_center_of_mass",
    "y_rms", "x_fit_gauss_function", "x_fit_offset", "x_fit_amplitude", "x_fit_standard_deviation", "x_fit_mean",
    "y_fit_gauss_function", "y_fit_offset", "y_fit_amplitude", "y_fit_standard_deviation", "y_fit_mean")
# With `processing_error` in the parameters cam_server sends only these, with a zeroed image.
ERROR_CHANNEL_NAMES = ("x_axis", "y_axis", "image", "width", "height", "processing_parameters")
# Keys cam_server adds to a pipeline's configuration in `processing_parameters` (observed).
CONFIG_BASE = {"image_background_enable": False, "image_background": None, "image_threshold": None,
               "image_region_of_interest": None, "image_good_region": None, "image_slices": None,
               "pipeline_type": "processing"}
_BSREAD_TYPES = {np.dtype(t): t for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                                          "uint64", "float32", "float64")}
_STAT_NAMES = ("fwhm", "center_of_mass", "rms", "fit_gauss_function", "fit_offset", "fit_amplitude",
               "fit_standard_deviation", "fit_mean")


def _number(value: float) -> float | int:
    """10.0 -> 10, as cam_server writes whole seconds in its JSON."""
    return int(value) if float(value).is_integer() else value


def _bsread_type(value: Any) -> str:
    return "string" if isinstance(value, str) else _BSREAD_TYPES[np.asarray(value).dtype]


def profile_stats(profile: np.ndarray, axis: np.ndarray) -> dict[str, Any]:
    """FWHM, moments and a Gaussian fit of one profile, in axis units (NaN where there is no peak).

    Background: the profile's median (the spot covers well under half the samples). Fit: Caruana's
    weighted parabola through log(profile - background) over the samples above 20 % of the peak
    (exact for a noiseless Gaussian). Moments over mean ± 3 sigma of the fit.
    """
    p = np.asarray(profile, dtype=np.float64)
    a = np.asarray(axis, dtype=np.float64)
    n = p.size
    index = np.arange(n, dtype=np.float64)
    offset = float(np.median(p)) if n else 0.0
    y = p - offset
    nan = float("nan")
    stats: dict[str, Any] = dict.fromkeys(("fwhm", "center_of_mass", "rms", "fit_amplitude",
                                           "fit_standard_deviation", "fit_mean"), nan)
    stats["fit_offset"] = offset
    stats["fit_gauss_function"] = np.full(n, offset, dtype=np.float32)
    peak = int(np.argmax(y)) if n else 0
    if n < 3 or not y[peak] > 0:
        return stats
    scale = abs(a[-1] - a[0]) / (n - 1)  # axis units per pixel (the sign is in the axis itself)
    lo, hi = peak, peak
    while lo > 0 and y[lo - 1] > 0.2 * y[peak]:
        lo -= 1
    while hi < n - 1 and y[hi + 1] > 0.2 * y[peak]:
        hi += 1
    lo, hi = max(0, min(lo, peak - 1)), min(n - 1, max(hi, peak + 1))
    sel = slice(lo, hi + 1)
    weights = np.clip(y[sel], 1e-12, None)
    # Parabola in the distance from the peak (in absolute pixel indices polyfit is ill-conditioned).
    c2, c1, c0 = np.polyfit(index[sel] - peak, np.log(weights), 2, w=weights)
    if not c2 < 0:
        return stats
    sigma_px, mean_px = float(np.sqrt(-1.0 / (2.0 * c2))), peak + float(-c1 / (2.0 * c2))
    amplitude = float(np.exp(c0 - c1 * c1 / (4.0 * c2)))
    mean, sigma = float(np.interp(mean_px, index, a)), sigma_px * scale
    window = np.abs(index - mean_px) <= 3.0 * sigma_px
    w = np.clip(y, 0.0, None) * window
    if w.sum() > 0:
        com = float((a * w).sum() / w.sum())
        stats["center_of_mass"], stats["rms"] = com, float(np.sqrt(((a - com) ** 2 * w).sum() / w.sum()))
    half = y[peak] / 2.0
    left, right = peak, peak
    while left > 0 and y[left - 1] >= half:
        left -= 1
    while right < n - 1 and y[right + 1] >= half:
        right += 1
    left_x = left - (y[left] - half) / (y[left] - y[left - 1]) if left > 0 else 0.0
    right_x = right + (y[right] - half) / (y[right] - y[right + 1]) if right < n - 1 else float(n - 1)
    stats.update(fwhm=float(right_x - left_x) * scale, fit_amplitude=amplitude, fit_standard_deviation=sigma,
                 fit_mean=mean, fit_gauss_function=(offset + amplitude * np.exp(
                     -((a - mean) ** 2) / (2.0 * sigma * sigma))).astype(np.float32))
    return stats


def pipeline_channels(image: np.ndarray, x_axis: np.ndarray, y_axis: np.ndarray,
                      parameters: Mapping[str, Any] | str, timestamp: float) -> list[tuple[str, Any, str]]:
    """One processing-pipeline message as (name, value, bsread type), in cam_server's header order.

    `image` is numpy (H, W); axes float32 [W], [H]. Parameters with a truthy `processing_error`
    give cam_server's error layout (six channels, zeroed image). Integer images give int64 profiles,
    float images float64 ones; fits are float64 in axis units, the fitted curves float32 (as observed).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, not {image.shape}")
    height, width = image.shape
    x_axis, y_axis = np.asarray(x_axis, dtype=np.float32), np.asarray(y_axis, dtype=np.float32)
    if x_axis.shape != (width,) or y_axis.shape != (height,):
        raise ValueError(f"axes {x_axis.shape}, {y_axis.shape} do not fit an image of {image.shape}")
    text = parameters if isinstance(parameters, str) else json.dumps(dict(parameters))
    error = json.loads(text).get("processing_error") if text else None
    values: dict[str, Any] = {"x_axis": x_axis, "y_axis": y_axis, "image": np.zeros_like(image) if error else image,
                              "width": np.int64(width), "height": np.int64(height), "processing_parameters": text}
    if not error:
        profile_type = np.int64 if image.dtype.kind in "iub" else np.float64
        x_profile = image.sum(axis=0, dtype=profile_type)
        y_profile = image.sum(axis=1, dtype=profile_type)
        values.update(timestamp=np.float64(timestamp), min_value=image.min(), max_value=image.max(),
                      x_profile=x_profile, y_profile=y_profile, intensity=x_profile.sum(dtype=profile_type))
        x_stats, y_stats = profile_stats(x_profile, x_axis), profile_stats(y_profile, y_axis)
        for axis_name, stats in (("x", x_stats), ("y", y_stats)):
            for stat in _STAT_NAMES:
                value = stats[stat]
                values[f"{axis_name}_{stat}"] = value if isinstance(value, np.ndarray) else np.float64(value)
    names = ERROR_CHANNEL_NAMES if error else PIPELINE_CHANNEL_NAMES
    return [(name, values[name], _bsread_type(values[name])) for name in names]


@dataclass(frozen=True)
class Spot:
    """The Gaussian beam spot a simulated camera shows: pixels, and axis units (µm if calibrated)."""

    x_px: float
    y_px: float
    sigma_x_px: float
    sigma_y_px: float
    amplitude: float  # counts above the pedestal at the centre
    x: float
    y: float
    sigma_x: float
    sigma_y: float


@dataclass(frozen=True)
class Camera:
    """A simulated camera: geometry, calibration, and the spot it shows."""

    name: str
    width: int
    height: int
    pixel_size_um: tuple[float, float] | None = None  # None: uncalibrated (pixel axes 0 … N-1)
    spot_at: tuple[float, float] = (0.5, 0.5)  # spot centre as fractions of width / height
    spot_sigma_px: tuple[float, float] = (5.0, 4.0)
    amplitude: float = 20000.0  # counts
    pedestal: float = 2000.0  # counts
    noise: float = 100.0  # counts, Gaussian, per pixel
    online: bool = True

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """x_axis [W], y_axis [H] (float32): `(i - origin) * -pixel_size` when calibrated, descending."""
        if self.pixel_size_um is None:
            return np.arange(self.width, dtype=np.float32), np.arange(self.height, dtype=np.float32)
        # The origin sits where the real simulation's calibration puts it (pixel 637 of 1280, 483 of 960).
        origin_x, origin_y = self.width * 637 // 1280, self.height * 483 // 960
        return ((np.arange(self.width) - origin_x) * -self.pixel_size_um[0]).astype(np.float32), \
            ((np.arange(self.height) - origin_y) * -self.pixel_size_um[1]).astype(np.float32)

    def spot(self) -> Spot:
        x_px, y_px = self.spot_at[0] * (self.width - 1), self.spot_at[1] * (self.height - 1)
        x_axis, y_axis = self.axes()
        sx = abs(float(x_axis[-1] - x_axis[0])) / (self.width - 1)
        sy = abs(float(y_axis[-1] - y_axis[0])) / (self.height - 1)
        return Spot(x_px, y_px, self.spot_sigma_px[0], self.spot_sigma_px[1], self.amplitude,
                    float(np.interp(x_px, np.arange(self.width), x_axis)),
                    float(np.interp(y_px, np.arange(self.height), y_axis)),
                    self.spot_sigma_px[0] * sx, self.spot_sigma_px[1] * sy)

    @functools.cached_property
    def _noiseless(self) -> np.ndarray:
        spot = self.spot()
        gx = np.exp(-((np.arange(self.width) - spot.x_px) ** 2) / (2 * spot.sigma_x_px ** 2))
        gy = np.exp(-((np.arange(self.height) - spot.y_px) ** 2) / (2 * spot.sigma_y_px ** 2))
        return self.pedestal + self.amplitude * np.outer(gy, gx)

    def frame(self, rng: np.random.Generator) -> np.ndarray:
        """One uint16 frame (H, W): pedestal + spot + noise."""
        image = self._noiseless + rng.normal(0.0, self.noise, (self.height, self.width))
        return np.clip(np.rint(image), 0, 65535).astype(np.uint16)


def default_cameras(size: tuple[int, int] = (160, 120), size2: tuple[int, int] = (128, 96)) -> dict[str, Camera]:
    """The stand-in's cameras; pixel sizes from the real simulation's calibration (30 mm over 852 / 620 px)."""
    w, h = size
    w2, h2 = size2
    return {
        "simulation": Camera("simulation", w, h, (30000.0 / 852, 30000.0 / 620), (0.575, 0.43), (w / 26, h / 30)),
        "simulation2": Camera("simulation2", w2, h2, None, (0.35, 0.6), (w2 / 25, h2 / 24), amplitude=15000.0),
        "broken": Camera("broken", w2, h2),
        "dead": Camera("dead", w2, h2, online=False),
    }


def saved_pipeline_configs(no_client_timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Saved pipelines `<camera>_sp`; broken_sp names a background image that does not exist."""
    configs = {name: {**CONFIG_BASE, "name": name, "camera_name": name[:-3]}
               for name in ("simulation_sp", "simulation2_sp", "broken_sp")}
    configs["broken_sp"].update(image_background_enable=True, image_background="broken_background",
                                notify_on_error=True)
    for config in configs.values():
        config["no_client_timeout"] = _number(no_client_timeout_s)
    return configs


class _Refused(Exception):
    """A request cam_server answers with state "error"; the text is its status."""


class _Instance(threading.Thread):
    """One pipeline instance: a bsread PUB sender in its own thread, counting its subscribers."""

    def __init__(self, owner: CamServerStandIn, instance_id: str, camera: Camera, config: dict[str, Any]) -> None:
        super().__init__(name=f"camserver-standin-{instance_id}", daemon=True)
        self.owner, self.instance_id, self.camera, self.config = owner, instance_id, camera, config
        self.address = ""
        self.error = ""
        self.subscribers = 0
        self.sent = 0
        self.started_at = time.time()
        self._idle_since: float | None = None  # monotonic time the last subscriber left (None: someone is there)
        self.ready = threading.Event()
        self.stopping = threading.Event()
        parameters = {**config, "no_client_timeout": _number(owner.no_client_timeout_s), "queue_size": owner.queue_size,
                      "mode": "PUB", "block": True, "data_compression": None, "data_header_compression": None}
        if config.get("image_background_enable") and config.get("image_background"):
            parameters["image_background_ok"] = False  # the stand-in has no background images
            parameters["processing_error"] = f"Invalid background image file: {config['image_background']}"
        self.parameters = json.dumps(parameters)

    def run(self) -> None:
        import bsread  # GPL test-only peer; imported here so the module loads without it

        sender = bsread.Sender(queue_size=self.owner.queue_size, address=f"tcp://{HOST}", port="*", mode=bsread.PUB)
        try:
            sender.open()
        except Exception as exc:  # noqa: BLE001 - reported to the REST caller, like a terminated instance
            self.error = f"could not bind: {exc}"
            self.ready.set()
            return
        socket = sender.stream.socket
        socket.setsockopt(zmq.LINGER, 0)
        monitor = socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        peers: set[int] = set()
        try:
            self.address = socket.getsockopt(zmq.LAST_ENDPOINT).decode()
            self.ready.set()
            x_axis, y_axis = self.camera.axes()
            period = 1.0 / self.owner.rate_hz
            self._idle_since = time.monotonic()
            while not self.stopping.is_set():
                # Frames tick on the camera's clock, so every instance of a camera sends the same pulse ids.
                tick = int((time.monotonic() - self.owner.clock) / period) + 1
                next_tick = self.owner.clock + tick * period
                pulse_id = self.owner.first_pulse_id + tick - 1
                while True:
                    self._watch(monitor, peers, min(next_tick - time.monotonic(), 0.05))
                    if self.stopping.is_set() or time.monotonic() >= next_tick:
                        break
                if self.stopping.is_set():
                    break
                idle_since = self._idle_since
                if idle_since is not None and time.monotonic() - idle_since >= self.owner.no_client_timeout_s:
                    if self.owner._forget(self):
                        break
                image = self.camera.frame(np.random.default_rng([self.owner.seed, pulse_id]))
                now = time.time()
                channels = pipeline_channels(image, x_axis, y_axis, self.parameters, now)
                sender.send(data={name: value for name, value, _ in channels}, pulse_id=pulse_id, timestamp=now)
                self.sent += 1
        finally:
            self.subscribers = 0
            socket.disable_monitor()
            monitor.close(0)
            # What Sender.close() does, minus its disconnect() of the bound address, which always
            # fails and logs a traceback: close the socket and the context mflow made for it.
            socket.close(0)
            sender.stream.context.term()
            sender.status_stream_open = False
            self.owner._forget(self)

    def _watch(self, monitor: zmq.Socket, peers: set[int], timeout_s: float) -> None:
        """Take the PUB socket's connection events (waiting up to timeout_s for the first)."""
        timeout_ms = max(0, int(timeout_s * 1000))
        while monitor.poll(timeout_ms):
            event = recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_ACCEPTED:
                peers.add(event["value"])
            else:
                peers.discard(event["value"])
            self.subscribers = len(peers)
            self._idle_since = None if peers else time.monotonic()
            timeout_ms = 0

    def info(self) -> dict[str, Any]:
        elapsed = max(time.time() - self.started_at, 1e-9)
        return {"stream_address": self.address, "is_stream_active": True, "camera_name": self.camera.name,
                "config": self.config, "instance_id": self.instance_id, "read_only": False,
                "last_start_time": time.strftime("%Y-%m-%d %H:%M:%S UTC+0000", time.gmtime(self.started_at)),
                "statistics": {"clients": self.subscribers, "time": time.strftime("%H:%M:%S"),
                               "tx": f"{self.sent / elapsed:.2f}Hz - {self.sent}",
                               "frame_shape": f"{self.camera.width}x{self.camera.height}x2"}}


class CamServerStandIn:
    """cam_server's pipeline REST API and instance streams on 127.0.0.1; a context manager.

    rate_hz: messages per second per instance. size / size2: (width, height) of "simulation" /
    of "simulation2", "broken" and "dead". no_client_timeout_s: an instance stops this long after
    its last subscriber left (or after starting without one). saved_pipelines: which of
    simulation_sp, simulation2_sp, broken_sp the server lists (a camera without one gets a
    processing instance). queue_size: the PUB socket's high-water mark (cam_server's pipelines: 10).
    first_pulse_id: pulse id of the cameras' first frame (frames tick on one clock from the start;
    SwissFEL's real ids are ~1.5e10). seed: noise, reproducible per pulse id.
    """

    def __init__(self, rate_hz: float = 10.0, size: tuple[int, int] = (160, 120), size2: tuple[int, int] = (128, 96),
                 no_client_timeout_s: float = 10.0,
                 saved_pipelines: tuple[str, ...] = ("simulation_sp", "simulation2_sp", "broken_sp"),
                 seed: int = 1, queue_size: int = 10, first_pulse_id: int = 1) -> None:
        if not rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        self.rate_hz, self.no_client_timeout_s, self.seed, self.queue_size = rate_hz, no_client_timeout_s, seed, queue_size
        self.first_pulse_id = first_pulse_id
        self.cameras = default_cameras(size, size2)
        known = saved_pipeline_configs(no_client_timeout_s)
        self.saved = {name: known[name] for name in saved_pipelines}
        self.clock = time.monotonic()
        self.url = ""
        self._instances: dict[str, _Instance] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> CamServerStandIn:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any) -> None:  # one line per request would drown test output
                pass

        self._server = make_server(HOST, 0, self._app(), threaded=True, request_handler=QuietHandler)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="camserver-standin-rest", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the REST server and every instance; returns when their threads have ended."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            self._closed = True
            instances = list(self._instances.values())
        for instance in instances:
            instance.stopping.set()
        for instance in instances:
            instance.join(10)
        alive = [i.name for i in instances if i.is_alive()] + (
            [self._thread.name] if self._thread is not None and self._thread.is_alive() else [])
        self._thread = None
        if alive:
            raise RuntimeError(f"stand-in threads did not stop: {alive}")

    def __enter__(self) -> CamServerStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------- for the tests

    def spot(self, camera: str) -> Spot:
        return self.cameras[camera].spot()

    def instances(self) -> list[str]:
        """Ids of the running instances."""
        with self._lock:
            return list(self._instances)

    def _get(self, instance_id: str) -> _Instance | None:
        with self._lock:
            return self._instances.get(instance_id)

    def threads(self) -> list[threading.Thread]:
        """The threads the stand-in runs right now (REST server, one per instance)."""
        with self._lock:
            return [t for t in (self._thread, *self._instances.values()) if t is not None]

    def stream_address(self, instance_id: str) -> str | None:
        instance = self._get(instance_id)
        return instance.address if instance else None

    def subscribers(self, instance_id: str) -> int:
        """Peers connected to the instance's PUB socket right now (0 if it is not running)."""
        instance = self._get(instance_id)
        return instance.subscribers if instance else 0

    def messages_sent(self, instance_id: str) -> int:
        instance = self._get(instance_id)
        return instance.sent if instance else 0

    def stop_instance(self, instance_id: str) -> bool:
        instance = self._get(instance_id)
        if instance is None:
            return False
        instance.stopping.set()
        instance.join(10)
        return True

    # ---------------------------------------------------------------------------- instances

    def _forget(self, instance: _Instance) -> bool:
        with self._lock:
            if self._instances.get(instance.instance_id) is instance:
                del self._instances[instance.instance_id]
                return True
            return False

    def _start(self, instance_id: str, config: dict[str, Any]) -> _Instance:
        """Start an instance (the caller holds the lock); _Refused with cam_server's words if it cannot."""
        camera = self.cameras.get(config.get("camera_name"))  # type: ignore[arg-type]
        if camera is None:
            name = config.get("camera_name")
            raise _Refused(f"Unable to load config '{name}'. Config file 'camera_config/{name}.json' does not exist.")
        if not camera.online:
            raise _Refused(f"Camera {camera.name} is not online. Cannot start pipeline.")
        if config.get("image_background_enable") and config.get("image_background") and not config.get("notify_on_error"):
            raise _Refused(f"'{instance_id}' instance terminated. See logs.")  # what cam_server says then
        if self._closed:
            raise _Refused("The server is shutting down.")
        instance = _Instance(self, instance_id, camera, config)
        instance.start()
        if not instance.ready.wait(10) or instance.error:
            instance.stopping.set()
            raise _Refused(f"'{instance_id}' instance terminated. See logs.")
        self._instances[instance_id] = instance
        return instance

    # --------------------------------------------------------------------------------- REST

    def _app(self) -> Any:
        from flask import Flask, abort, jsonify, request
        from werkzeug.exceptions import HTTPException

        app = Flask("camserver_standin")
        app.json.sort_keys = False  # cam_server's replies read state, status, then the field

        def ok(status: str, **fields: Any) -> Any:
            return jsonify({"state": "ok", "status": status, **fields})

        @app.errorhandler(_Refused)
        def refused(exc: _Refused) -> Any:
            return jsonify({"state": "error", "status": str(exc)})

        @app.errorhandler(Exception)
        def failed(exc: Exception) -> Any:  # cam_server turns exceptions into HTTP 200 error replies too
            if isinstance(exc, HTTPException):
                return exc
            return jsonify({"state": "error", "status": str(exc)})

        @app.get("/api/v1/pipeline/camera")
        def cameras() -> Any:
            return ok("List of available cameras.", cameras=list(self.cameras))

        @app.get("/api/v1/pipeline")
        def pipelines() -> Any:
            return ok("List of available cameras.", pipelines=list(self.saved))  # sic, cam_server's text

        @app.get("/api/v1/pipeline/instance/<instance_id>")
        def instance_stream(instance_id: str) -> Any:
            with self._lock:
                instance = self._instances.get(instance_id)
                if instance is None:
                    if instance_id not in self.saved:
                        raise _Refused(f"Instance '{instance_id}' is not present on server and it is not a "
                                       "saved pipeline name.")
                    instance = self._start(instance_id, dict(self.saved[instance_id]))
            return ok(f"Stream address for pipeline {instance_id}.", stream=instance.address)

        @app.get("/api/v1/pipeline/instance/<instance_id>/info")
        def instance_info(instance_id: str) -> Any:
            instance = self._get(instance_id)
            if instance is None:
                raise _Refused(f"Instance '{instance_id}' does not exist.")
            return ok(f"Pipeline instance {instance_id} info retrieved.", info=instance.info())

        @app.post("/api/v1/pipeline")
        def create_instance() -> Any:
            body = request.get_data()
            try:
                config = json.loads(body) if body else None
            except ValueError:
                abort(400, "Invalid JSON")
            if not isinstance(config, dict) or not config:
                raise _Refused("You must specify either the pipeline name or the configuration for the pipeline.")
            instance_id = request.args.get("instance_id") or str(uuid.uuid4())
            config = {**CONFIG_BASE, **config}
            with self._lock:
                if instance_id in self._instances:
                    raise _Refused(f"Instance with id '{instance_id}' is already present and running. Use another "
                                   "instance_id or stop the current instance if you want to reuse the same instance_id.")
                instance = self._start(instance_id, config)
            return ok(f"Stream address for pipeline {instance_id}.", instance_id=instance_id,
                      stream=instance.address, config=config)

        return app


def main() -> None:
    """Run the stand-in by hand (e.g. to point the dashboard at it) until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second per instance")
    parser.add_argument("--width", type=int, default=160, help="width of camera 'simulation' (px)")
    parser.add_argument("--height", type=int, default=120, help="height of camera 'simulation' (px)")
    parser.add_argument("--no-client-timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    with CamServerStandIn(args.rate, (args.width, args.height), no_client_timeout_s=args.no_client_timeout) as cs:
        print(f"camserver stand-in: pipeline={cs.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
