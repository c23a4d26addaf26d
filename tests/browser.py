"""Browser test support: headless Chromium (Debian's chromium + chromium-driver through selenium), the
app served in this process on a free port, and streams whose frames the tests design.

Tests watch what a person sees: canvas pixels, texts, the plotly figure's public state (gd.layout,
gd.data), HTTP answers. Nothing in the product exists for them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import zmq

import app as app_module
from config import parse_args
from stream.encoder import Encoder
from tests.helpers import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT_S = 90.0  # first load parses ~5 MB of plotly.js on a loaded 2-core machine
UPDATE_TIMEOUT_S = 30.0
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         # Pages in other windows must not be throttled (several pages update at once).
         "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
         "--disable-backgrounding-occluded-windows", "--hide-scrollbars", "--force-device-scale-factor=1")


def require_browser() -> None:
    """Skip (or, in CI with SOV_REQUIRE_BROWSER, fail) when Debian's Chromium is not installed."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return
    reason = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})"
    if os.environ.get("SOV_REQUIRE_BROWSER"):
        pytest.fail(reason + " and SOV_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@contextlib.contextmanager
def chrome(size: tuple[int, int] = (1920, 1080), downloads: Path | None = None) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        set_viewport(driver, size)
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: Any, size: tuple[int, int]) -> None:
    """Make the page's viewport (not the window) exactly `size` (the window adds its frame)."""
    window = list(size)
    for _ in range(5):
        driver.set_window_size(*window)
        inner = wait_until(lambda: driver.execute_script("return [window.innerWidth, window.innerHeight]"), timeout=10)
        if tuple(inner) == tuple(size):
            return
        window = [w + s - i for w, s, i in zip(window, size, inner)]
    raise AssertionError(f"viewport {inner}, not {size}")


@contextlib.contextmanager
def served(argv: list[str], camserver: Any = None) -> Iterator[tuple[str, Any]]:
    """The app with `argv` on 127.0.0.1:<free port>; yields (base url, camera registry)."""
    from web.serve import Server

    config = parse_args([*argv, "--diagnostics"])
    registry = app_module.build_registry(config, camserver=camserver).start()
    server = None
    try:
        dash_app = app_module.create_app(config, registry)
        server = Server(dash_app.server, "127.0.0.1", 0, threads=16).start()
        yield f"http://127.0.0.1:{server.port}", registry
    finally:
        if server is not None:
            server.close()
        registry.stop()


class DesignedStream:
    """A PUSH stream of frames the test designs (our encoder), on a random port, at `rate_hz`.

    `frame(pulse_id) -> dict of channels` decides each message; `pause()`/`resume()` make the stream
    go silent and come back (for gaps and STALE).
    """

    def __init__(self, frame: Callable[[int], dict[str, Any]], rate_hz: float = 20.0, first_pulse_id: int = 1,
                 pulse_period_s: float | None = None) -> None:
        """`pulse_period_s`: pulse time between messages (default: real time), e.g. 0.5 at 20 Hz
        makes pulse time run 10x faster than the clock (an hour of history in minutes)."""
        self.frame = frame
        self.period_s = 1.0 / rate_hz
        self.pulse_period_s = pulse_period_s
        self.first_time = time.time()
        self.pulse_id = self.first_pulse_id = first_pulse_id
        self.sent = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 20)
        self.port = self._socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._silent = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="designed-stream", daemon=True)

    def __enter__(self) -> "DesignedStream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(0)
        self._context.term()

    def pulse_time(self, pulse_id: int) -> float:
        """The pulse time of a message when pulse time runs on its own clock."""
        return self.first_time + (pulse_id - self.first_pulse_id) * (self.pulse_period_s or self.period_s)

    def pause(self) -> None:
        self._silent.set()

    def resume(self) -> None:
        self._silent.clear()

    def _run(self) -> None:
        encoder = Encoder()
        deadline = time.monotonic()
        while not self._stop.is_set():
            if not self._silent.is_set():
                stamp = time.time() if self.pulse_period_s is None else self.pulse_time(self.pulse_id)
                parts = encoder.encode(self.pulse_id, stamp, self.frame(self.pulse_id))
                if self._socket.poll(100, zmq.POLLOUT):
                    self._socket.send_multipart(parts)
                    self.sent += 1
            self.pulse_id += 1  # the machine goes on while its stream is silent
            deadline += self.period_s
            self._stop.wait(max(0.0, deadline - time.monotonic()))


def ramp(height: int, width: int, dtype: Any = np.float64) -> np.ndarray:
    """Pixel (col, row) holds col + 1000 * row: every value says where it is."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (cols + 1000 * rows).astype(dtype)


# ------------------------------------------------------------------------------------------- page


READ_JS = """
const text = id => { const el = document.getElementById(id); return el ? el.textContent : null; };
const overlay = document.querySelector('#image-overlay .sov-info');
const canvas = document.querySelector('#image-canvas canvas.sov-frame');
let fingerprint = null;
if (canvas && canvas.width > 0 && canvas.height > 0) {
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 2166136261;
    for (let i = 0; i < px.length; i += 7) { h ^= px[i]; h = Math.imul(h, 16777619); }
    fingerprint = (h >>> 0).toString(16);
}
return {state: text('stream-state'), pulse_id: text('pulse-id-value'), energy: text('beam-energy-value'),
        frame: overlay ? overlay.textContent : null, fingerprint: fingerprint,
        canvas: canvas ? [canvas.width, canvas.height] : null, pause: text('pause-button')};
"""


def read(driver: Any) -> dict[str, Any]:
    return driver.execute_script(READ_JS)


def shown_pulse(driver: Any) -> int | None:
    """The pulse id the picture shows (its overlay), or None."""
    text = read(driver)["frame"] or ""
    parts = text.split()
    return int(parts[1]) if len(parts) > 1 and parts[0] == "pulse" and parts[1].isdigit() else None


FIGURE_SHAPE_JS = """const gd = document.querySelector('#image-graph .js-plotly-plot');
return gd && gd.layout && gd.layout.meta ? gd.layout.meta.shape : null;"""


def open_page(driver: Any, url: str, shape: tuple[int, int] | None = None) -> None:
    """Load the page and wait for its first frame (and, given the image's (H, W), for the figure built
    for it: a zoom made before that would be replaced with the new figure)."""
    driver.get(url)
    wait_until(lambda: shown_pulse(driver) is not None, timeout=PAGE_TIMEOUT_S, interval=0.2,
               message="the picture's first frame")
    if shape is not None:
        wait_until(lambda: driver.execute_script(FIGURE_SHAPE_JS) == list(shape), timeout=UPDATE_TIMEOUT_S,
                   message="the figure of this image")


def severe_logs(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def choose(driver: Any, dropdown_id: str, value: str) -> None:
    """Pick `value` in a dcc.Dropdown as a person does: open it, click the option."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, dropdown_id).click()
    option = f"[role=listbox] [role=option] input[value='{value}']"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, option), timeout=UPDATE_TIMEOUT_S,
               message=f"option {value!r} of #{dropdown_id}")
    driver.find_element(By.CSS_SELECTOR, option).find_element(By.XPATH, "./ancestor::label").click()
