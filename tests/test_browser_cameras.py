"""Real SwissFEL cameras in headless Chromium, against the cam_server stand-in (tests/camserver_standin.py):
micrometre axes the right way round (ScreenPanel's: pixel column 0 at the left, so a descending x_axis
reads +X at the left), the beam where the stream says, fit curves and crosshair drawn, pixels for an
uncalibrated camera, the camera chosen by dropdown and by URL, two browsers on two cameras, the
grace-period disconnect, processing_error as a banner, a camera that will not start.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import (UPDATE_TIMEOUT_S, chrome, choose, open_page, read, require_browser, served,
                           shown_pulse)
from tests.camserver_standin import CamServerStandIn
from tests.helpers import wait_until

require_browser()
pytestmark = pytest.mark.browser

GRACE_S = 3.0


@pytest.fixture(scope="module")
def camserver() -> Iterator[CamServerStandIn]:
    with CamServerStandIn(rate_hz=10.0, size=(160, 120), size2=(128, 96), no_client_timeout_s=5.0) as standin:
        yield standin


@pytest.fixture(scope="module")
def url(camserver: CamServerStandIn) -> Iterator[str]:
    with served(["--camserver", camserver.url, "--grace", str(GRACE_S)]) as (base, _registry):
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chrome((1600, 1000)) as d:
        yield d


def api(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=10) as reply:
        return json.loads(reply.read())


LAYOUT_JS = """const gd = document.querySelector('#image-graph .js-plotly-plot');
return gd && gd.layout && gd.layout.meta ? {x: gd.layout.xaxis.range, y: gd.layout.yaxis.range, meta: gd.layout.meta,
        xtitle: gd.layout.xaxis.title.text, ytitle: gd.layout.yaxis.title.text} : null;"""

BRIGHTEST_JS = """
// The brightest bin of the picture on screen, in data coordinates (from the canvas and the figure's layout).
const canvas = document.querySelector('#image-canvas canvas.sov-frame'), gd = document.querySelector('#image-graph .js-plotly-plot');
const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let best = -1, at = 0;
for (let i = 0; i < px.length; i += 4) { const v = px[i] + px[i + 1] - px[i + 2]; if (v > best) { best = v; at = i / 4; } }
const c = at % canvas.width, r = Math.floor(at / canvas.width), box = canvas.getBoundingClientRect();
const flipX = canvas.style.transform.includes('scale(-1'), u = (c + 0.5) / canvas.width, v = (r + 0.5) / canvas.height;
const sx = box.left + (flipX ? 1 - u : u) * box.width, sy = box.top + v * box.height;
const L = gd.layout, m = L.margin, g = gd.getBoundingClientRect();
const w = gd.clientWidth - m.l - m.r, h = gd.clientHeight - m.t - m.b;
const left = g.left + m.l + L.xaxis.domain[0] * w, top = g.top + m.t + (1 - L.yaxis.domain[1]) * h;
const pw = (L.xaxis.domain[1] - L.xaxis.domain[0]) * w, ph = (L.yaxis.domain[1] - L.yaxis.domain[0]) * h;
const xr = L.xaxis.range, yr = L.yaxis.range;
return [xr[0] + (sx - left) / pw * (xr[1] - xr[0]), yr[1] - (sy - top) / ph * (yr[1] - yr[0])];
"""

LINE_COLOURS_JS = """
// Which line colours the profile panels and the crosshair show (the painter's line canvas).
const lines = document.querySelector('#image-canvas canvas.sov-lines');
const px = lines.getContext('2d').getImageData(0, 0, lines.width, lines.height).data;
const want = {profile: [243, 156, 18], fit: [93, 173, 226], stream_fit: [231, 76, 60], crosshair: [255, 255, 255]};
const found = {};
for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] < 250) continue;
    for (const [name, c] of Object.entries(want)) {
        if (Math.abs(px[i] - c[0]) < 6 && Math.abs(px[i + 1] - c[1]) < 6 && Math.abs(px[i + 2] - c[2]) < 6) {
            found[name] = (found[name] || 0) + 1;
        }
    }
}
return found;
"""


def test_calibrated_camera_in_micrometres_the_right_way_round(url: str, driver: Any,
                                                               camserver: CamServerStandIn) -> None:
    open_page(driver, url + "/?camera=simulation", (120, 160))
    layout = driver.execute_script(LAYOUT_JS)
    assert layout["xtitle"] == "x (µm)" and layout["ytitle"] == "y (µm)"
    assert layout["meta"]["x"]["step"] < 0 and layout["meta"]["y"]["step"] < 0  # descending axes
    assert layout["x"][0] > layout["x"][1], "+X at the left: the x axis runs right to left"
    assert layout["y"][0] < layout["y"][1], "+Y at the top (row 0, the largest y, on top)"
    spot = camserver.spot("simulation")
    x, y = driver.execute_script(BRIGHTEST_JS)
    bin_um = 2 * abs(layout["meta"]["x"]["step"])
    assert abs(x - spot.x) < 2 * bin_um and abs(y - spot.y) < 2 * bin_um, ((x, y), (spot.x, spot.y))
    readings = driver.find_element("id", "centroid-value").text
    assert "µm" in readings and "px" in readings
    assert driver.find_element("id", "beam-energy-value").text == "not in stream"
    assert "centre of mass" in driver.find_element("id", "stream-statistics-value").text


def test_fit_curves_and_crosshair_are_drawn(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url + "/?camera=simulation", (120, 160))
    wait_until(lambda: {"profile", "fit", "stream_fit", "crosshair"} <= set(driver.execute_script(LINE_COLOURS_JS)),
               timeout=UPDATE_TIMEOUT_S, message=lambda: driver.execute_script(LINE_COLOURS_JS))
    driver.find_element(By.CSS_SELECTOR, "#crosshair-switch").click()
    wait_until(lambda: "crosshair" not in driver.execute_script(LINE_COLOURS_JS), timeout=UPDATE_TIMEOUT_S,
               message="crosshair off")
    driver.find_element(By.CSS_SELECTOR, "#crosshair-switch").click()


def test_uncalibrated_camera_by_url_is_in_pixels(url: str, driver: Any) -> None:
    open_page(driver, url + "/?camera=simulation2", (96, 128))
    layout = driver.execute_script(LAYOUT_JS)
    assert layout["xtitle"] == "x (px)" and layout["ytitle"] == "y (px)"
    assert layout["x"][0] < layout["x"][1] and layout["y"][0] > layout["y"][1], "column 0 left, row 0 top"


def test_camera_chosen_in_the_dropdown_and_the_address_agree(url: str, driver: Any) -> None:
    open_page(driver, url + "/?camera=simulation", (120, 160))
    choose(driver, "camera-select", "simulation2")
    wait_until(lambda: parse_qs(urlsplit(driver.current_url).query).get("camera") == ["simulation2"], timeout=10,
               message=lambda: driver.current_url)
    wait_until(lambda: (driver.execute_script(LAYOUT_JS) or {}).get("xtitle") == "x (px)", timeout=UPDATE_TIMEOUT_S)
    wait_until(lambda: shown_pulse(driver) is not None and read(driver)["canvas"][0] <= 128, timeout=UPDATE_TIMEOUT_S)
    driver.back()  # the address decides again
    wait_until(lambda: (driver.execute_script(LAYOUT_JS) or {}).get("xtitle") == "x (µm)", timeout=UPDATE_TIMEOUT_S)


def test_two_browsers_on_two_cameras_at_once(url: str, driver: Any) -> None:
    open_page(driver, url + "/?camera=simulation", (120, 160))
    first = driver.current_window_handle
    driver.switch_to.new_window("window")
    try:
        open_page(driver, url + "/?camera=simulation2", (96, 128))
        second = driver.current_window_handle
        for handle, camera in ((first, "simulation"), (second, "simulation2")):
            driver.switch_to.window(handle)
            before = shown_pulse(driver)
            wait_until(lambda: shown_pulse(driver) > before, timeout=UPDATE_TIMEOUT_S, message=f"{camera} advances")
            assert driver.execute_script(LAYOUT_JS)["xtitle"] == ("x (µm)" if camera == "simulation" else "x (px)")
        watched = {c["name"]: c for c in api(url, "/api/cameras")["cameras"]}
        assert watched["simulation"]["watched"] and watched["simulation2"]["watched"]
        assert watched["simulation"]["state"] == watched["simulation2"]["state"] == "live"
    finally:
        driver.switch_to.window(second)
        driver.close()
        driver.switch_to.window(first)


def test_a_camera_nobody_watches_is_disconnected_after_the_grace_period(url: str, driver: Any,
                                                                         camserver: CamServerStandIn) -> None:
    open_page(driver, url + "/?camera=simulation2", (96, 128))
    wait_until(lambda: camserver.subscribers("simulation2_sp") == 1, timeout=UPDATE_TIMEOUT_S)
    open_page(driver, url + "/?camera=simulation", (120, 160))  # nobody watches simulation2 any more
    wait_until(lambda: camserver.subscribers("simulation2_sp") == 0, timeout=GRACE_S + 20,
               message="our connection to simulation2 closed")
    states = {c["name"]: c["state"] for c in api(url, "/api/cameras")["cameras"]}
    assert states["simulation2"] == "disconnected" and states["simulation"] == "live"
    assert camserver.subscribers("simulation_sp") == 1


def test_processing_error_is_a_banner_and_no_beam(url: str, driver: Any) -> None:
    open_page(driver, url + "/?camera=broken")
    banner = "#image-overlay .sov-banner"
    wait_until(lambda: "processing error" in driver.execute_script(f"return document.querySelector('{banner}').textContent"),
               timeout=UPDATE_TIMEOUT_S)
    wait_until(lambda: driver.find_element("id", "centroid-value").text == "—", timeout=UPDATE_TIMEOUT_S)
    assert "crosshair" not in driver.execute_script(LINE_COLOURS_JS)


def test_a_camera_that_will_not_start_says_why(url: str, driver: Any) -> None:
    driver.get(url + "/?camera=dead")
    wait_until(lambda: driver.find_elements("id", "camera-message"), timeout=UPDATE_TIMEOUT_S)
    message = driver.find_element("id", "camera-message")
    wait_until(lambda: "not online" in message.text, timeout=UPDATE_TIMEOUT_S, message=lambda: message.text)
    assert driver.find_element("id", "stream-state").text == "error"
    status = api(url, "/api/status?camera=dead")
    assert status["state"] == "error" and "not online" in status["error"] and "Traceback" not in status["error"]
    assert api(url, "/api/status?camera=simulation")["state"] == "live"  # the others are unaffected
