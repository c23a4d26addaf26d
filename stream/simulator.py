"""A simulated SwissFEL beam-diagnostics camera that sends real bsread messages over ZeroMQ.

Channels, as the original prototype's camera: `image` (Gaussian beam spot plus uniform noise),
`image_size_x/_y`, `image_profile_x/_y`, `beam_energy` (GeV, 5.0-5.5) and `repetition_rate` (Hz).
Pacing is deadline based, so `delay=0.01` really sends 100 messages per second.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq

from .compression import COMPRESSIONS

from .encoder import Encoder

log = logging.getLogger(__name__)

NOISE_FRAMES = 8  # precomputed noise fields, cycled: large frames stay cheap to produce
SPOT_SIGMAS = 5.0  # the beam spot is drawn within +-5 sigma of its centre
FLUSH_LINGER_MS = 5000  # after the last of `count` messages: how long queued ones may take to leave


@dataclass(frozen=True)
class SimulatorConfig:
    port: int = 8888
    delay_s: float = 0.1  # seconds between messages
    count: int = -1  # messages to send, -1 = endless
    mode: str = "push"  # "push" | "pub"
    compression: str = "none"  # for array channels
    width: int = 640
    height: int = 480
    dtype: str = "float64"  # "float64" | "uint16"
    host: str = "*"  # interface to bind; "*" = all (as the original simulator)
    transport: str = "tcp"  # "tcp" | "inproc" (same process and ZeroMQ context as the receiver: no copies)
    start_pulse_id: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "inproc"):
            raise ValueError(f"transport must be tcp or inproc, not {self.transport!r}")
        if self.mode not in ("push", "pub"):
            raise ValueError(f"mode must be push or pub, not {self.mode!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        if self.dtype not in ("float64", "uint16"):
            raise ValueError("dtype must be float64 or uint16")
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise ValueError("image size must be between 1x1 and 16384x16384")
        if self.delay_s < 0:
            raise ValueError("delay must be >= 0")


class BeamModel:
    """Produces the channel values of consecutive pulses.

    Cheap enough for 100 Hz of 2048x2048 frames: the noise fields are precomputed in the output type
    (and their profiles with them), and each pulse only copies one of them and adds the beam spot
    inside a +-SPOT_SIGMAS window; beyond it the Gaussian is below 4e-6 of its peak, far under the noise.
    """

    def __init__(self, width: int, height: int, dtype: str = "float64", seed: int | None = None) -> None:
        self.width, self.height, self.dtype = width, height, dtype
        self._rng = np.random.default_rng(seed)
        self._x = np.arange(width, dtype=np.float64)
        self._y = np.arange(height, dtype=np.float64)
        # uint16 cameras: counts on a 12-bit scale with a dark pedestal.
        self._gain = 3000.0 if dtype == "uint16" else 1.0
        self._pedestal = 100.0 if dtype == "uint16" else 0.0
        self._noise = []
        for _ in range(NOISE_FRAMES):
            noise = self._rng.uniform(0.0, 0.1, size=(height, width))
            if dtype == "uint16":
                noise = (noise * self._gain + self._pedestal).astype(np.uint16)
            noise.flags.writeable = False
            self._noise.append(noise)
        self._noise_profiles = [(n.sum(axis=0, dtype=np.float64), n.sum(axis=1, dtype=np.float64))
                                for n in self._noise]
        self._center = np.array([width / 2.0, height / 2.0])
        self._index = 0

    def next(self) -> dict[str, object]:
        rng = self._rng
        # The spot wanders slowly (orbit drift) and jitters pulse to pulse.
        drift = np.array([self.width, self.height]) * 0.004
        self._center += rng.normal(0.0, 1.0, 2) * drift
        self._center = np.clip(self._center, [self.width * 0.3, self.height * 0.3], [self.width * 0.7, self.height * 0.7])
        jitter = rng.normal(0.0, 1.5, 2) * max(1.0, min(self.width, self.height) / 480)
        cx, cy = self._center + jitter
        scale = max(1.0, min(self.width, self.height) / 480)
        sx, sy = 10.0 * scale * rng.uniform(0.9, 1.1), 8.0 * scale * rng.uniform(0.9, 1.1)
        x0, x1 = _window(cx, sx, self.width)
        y0, y1 = _window(cy, sy, self.height)
        amplitude = rng.uniform(0.8, 1.0) * self._gain
        gx = np.exp(-0.5 * ((self._x[x0:x1] - cx) / sx) ** 2)
        gy = np.exp(-0.5 * ((self._y[y0:y1] - cy) / sy) ** 2) * amplitude
        frame = self._index % NOISE_FRAMES
        self._index += 1
        image = self._noise[frame].copy()
        spot = np.outer(gy, gx)
        if self.dtype == "uint16":
            patch = image[y0:y1, x0:x1]
            patch[...] = np.minimum(patch + spot, 65535.0)  # truncated to counts, as a camera's ADC
        else:
            image[y0:y1, x0:x1] += spot
        nx, ny = self._noise_profiles[frame]
        profile_x = nx.copy()
        profile_x[x0:x1] += spot.sum(axis=0)
        profile_y = ny.copy()
        profile_y[y0:y1] += spot.sum(axis=1)
        return {
            "image": image,
            "image_size_x": np.int64(self.width),
            "image_size_y": np.int64(self.height),
            "image_profile_x": profile_x,
            "image_profile_y": profile_y,
            "beam_energy": np.float64(rng.uniform(5.0, 5.5)),  # GeV
            "repetition_rate": np.float64(100.0),  # Hz
        }


def _window(centre: float, sigma: float, size: int) -> tuple[int, int]:
    """[lo, hi) pixel range within SPOT_SIGMAS sigma of `centre`, clipped to the image (may be empty)."""
    lo = int(math.floor(centre - SPOT_SIGMAS * sigma))
    hi = int(math.ceil(centre + SPOT_SIGMAS * sigma)) + 1
    lo = min(max(lo, 0), size)
    return lo, min(max(hi, lo), size)


class Simulator:
    """Sends simulated camera messages on a bound PUSH or PUB socket, in its own thread or inline."""

    def __init__(self, config: SimulatorConfig, context: zmq.Context | None = None) -> None:
        self.config = config
        self._context = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: zmq.Socket | None = None
        self.sent = 0
        self.port = config.port

    def bind(self) -> int:
        """Bind the socket (port 0 = a random free port); returns the port."""
        config = self.config
        socket = self._context.socket(zmq.PUSH if config.mode == "push" else zmq.PUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, 100)
        if config.transport == "inproc":
            socket.bind(self.address)
        elif config.port == 0:
            self.port = socket.bind_to_random_port(f"tcp://{config.host}")
        else:
            socket.bind(f"tcp://{config.host}:{config.port}")
            self.port = config.port
        self._socket = socket
        return self.port

    @property
    def address(self) -> str:
        if self.config.transport == "inproc":
            return f"inproc://bsread-simulator-{id(self):x}"
        host = "127.0.0.1" if self.config.host in ("*", "0.0.0.0") else self.config.host
        return f"tcp://{host}:{self.port}"

    def run(self) -> int:
        """Send until `count` messages are sent or `stop()` is called; returns messages sent."""
        if self._socket is None:
            self.bind()
        config = self.config
        model = BeamModel(config.width, config.height, config.dtype, config.seed)
        encoder = Encoder()
        compression = {"image": config.compression, "image_profile_x": config.compression,
                       "image_profile_y": config.compression}
        pulse_id = config.start_pulse_id
        deadline = time.monotonic()
        socket = self._socket
        assert socket is not None
        try:
            while not self._stop.is_set() and (config.count < 0 or self.sent < config.count):
                values = model.next()
                # The model makes fresh arrays every pulse, so ZeroMQ may send them in place.
                parts = encoder.encode(pulse_id, time.time(), values, compression=compression, copy=False)
                try:
                    # A PUSH with no peer would block forever; keep honouring stop() meanwhile.
                    while not self._stop.is_set():
                        if socket.poll(100, zmq.POLLOUT):
                            try:  # NOBLOCK: the peer may leave between poll and send (then it would block)
                                socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                            except zmq.Again:
                                continue
                            self.sent += 1
                            break
                except zmq.ZMQError as exc:
                    if self._stop.is_set():
                        break
                    raise exc
                pulse_id += 1
                deadline += config.delay_s
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                elif wait < -1.0:  # far behind (machine busy): do not burst to catch up
                    deadline = time.monotonic()
        finally:
            # Stopped: drop what is still queued. Done (`count` sent): let it leave, or `-n 5` would
            # deliver fewer than 5 messages when the last ones are still in ZeroMQ's queue.
            socket.close(linger=0 if self._stop.is_set() else FLUSH_LINGER_MS)
            self._socket = None
        return self.sent

    def start(self) -> "Simulator":
        if self._socket is None:
            self.bind()
        self._thread = threading.Thread(target=self.run, name="bsread-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
