"""The picture itself, in headless Chromium: the painter's canvas against plotly.js's own heatmap of the
same frame (pixel for pixel, full view and zoomed), zoom at native resolution, pause with a
full-resolution zoom of the held frame and stepping through the kept frames, hover values equal to
the frame's pixels, two pages at once.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, Iterator

import numpy as np
import pytest

from tests.browser import (UPDATE_TIMEOUT_S, DesignedStream, chrome, open_page, read, require_browser, served,
                           set_viewport, shown_pulse)
from tests.helpers import wait_until

require_browser()
pytestmark = pytest.mark.browser

HEIGHT, WIDTH = 400, 600


def pattern(pulse_id: int) -> dict[str, Any]:
    """Pixel (col, row) = col + 1000 * row + 1e6 * (pulse_id % 50): a value says where and when it is."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = (cols + 1000 * rows + 1_000_000 * (pulse_id % 50)).astype(np.float64)
    return {"image": image}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with DesignedStream(pattern, rate_hz=20) as stream, \
            served(["--stream", stream.address, "-d", "0.05", "--frames", "400"]) as (base, _):
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chrome((1400, 900)) as d:
        yield d


def pause(driver: Any) -> int:
    from selenium.webdriver.common.by import By

    if read(driver)["pause"] != "Resume":
        driver.find_element(By.ID, "pause-button").click()
    wait_until(lambda: "PAUSED" in (read(driver)["frame"] or ""), timeout=10, message="paused")
    return shown_pulse(driver)


def resume(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    if read(driver)["pause"] == "Resume":
        driver.find_element(By.ID, "pause-button").click()
    wait_until(lambda: "PAUSED" not in (read(driver)["frame"] or ""), timeout=10, message="resumed")


def relayout(driver: Any, update: dict) -> None:
    """What a zoom drag does: plotly.js's public relayout of the image graph."""
    driver.execute_script("""const gd = document.querySelector('#image-graph .js-plotly-plot');
                             return window.Plotly.relayout(gd, arguments[0]);""", update)


SAMPLES_JS = """
// Screen positions of the centres of the bins on screen (from the figure's public layout) and the
// plot area: what both pages must agree on.
const gd = document.querySelector('#image-graph .js-plotly-plot'), L = gd.layout, m = L.margin;
const w = gd.clientWidth - m.l - m.r, h = gd.clientHeight - m.t - m.b;
const box = {left: m.l + L.xaxis.domain[0] * w, top: m.t + (1 - L.yaxis.domain[1]) * h,
             width: (L.xaxis.domain[1] - L.xaxis.domain[0]) * w, height: (L.yaxis.domain[1] - L.yaxis.domain[0]) * h};
const xr = L.xaxis.range, yr = L.yaxis.range, origin = gd.getBoundingClientRect();
const px = x => origin.left + box.left + (x - xr[0]) / (xr[1] - xr[0]) * box.width;
const py = y => origin.top + box.top + (yr[1] - y) / (yr[1] - yr[0]) * box.height;
return {box: [origin.left + box.left, origin.top + box.top, box.width, box.height], xr: xr, yr: yr,
        points: arguments[0].map(p => [px(p[0]), py(p[1])])};
"""


def screenshot(driver: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")).astype(int)


def step_to(driver: Any, shown: int, wanted: int) -> None:
    from selenium.webdriver.common.by import By

    label = driver.find_element(By.ID, "frame-label")
    wait_until(lambda: f"pulse {shown} (" in label.text, timeout=10, message="the kept frames are known")
    body = driver.find_element(By.TAG_NAME, "body")
    while shown > wanted:
        body.send_keys("\ue012")  # ←
        wait_until(lambda: shown_pulse(driver) == shown - 1, timeout=10,
                   message=lambda: f"step to {shown - 1}: {label.text!r}, shows {shown_pulse(driver)}")
        shown -= 1


def settled_screenshot(driver: Any) -> np.ndarray:
    """A screenshot once the image's plot area is the same in two in a row (plotly.js may be drawing)."""
    left, top, width, height = (int(v) for v in driver.execute_script(SAMPLES_JS, [])["box"])
    shots = [screenshot(driver)]

    def same() -> bool:
        shots.append(screenshot(driver))
        a, b = (shot[top:top + height, left:left + width] for shot in shots[-2:])
        return np.array_equal(a, b)

    wait_until(same, timeout=UPDATE_TIMEOUT_S, interval=0.2, message="the page settles")
    return shots[-1]


def bin_centres(bin_factor: int, cols: range, rows: range) -> list[list[float]]:
    """Data coordinates (pixel axes) of the centres of bins of `bin_factor` pixels."""
    return [[c * bin_factor + (bin_factor - 1) / 2, r * bin_factor + (bin_factor - 1) / 2] for r in rows for c in cols]


def compare_with_plotly(driver: Any, url: str, view: dict | None) -> int:
    """Pause this page, show the same frame in a ?draw=plotly page with the same view and compare
    the colours at bin centres. Returns the number of points compared."""
    held = pause(driver)
    painter_window = driver.current_window_handle
    info = driver.find_element("id", "image-info").text
    factor = int(re.search(r"in (\d+) × \1 bins", info).group(1)) if "bins" in info else 1
    size = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.switch_to.new_window("window")
    try:
        set_viewport(driver, tuple(size))
        open_page(driver, url + "?draw=plotly", (HEIGHT, WIDTH))
        if view:
            relayout(driver, view)
        # The same frame: pause, then step back through the kept frames to the painter's.
        if shown_pulse(driver) < held:
            wait_until(lambda: shown_pulse(driver) >= held, timeout=UPDATE_TIMEOUT_S)
        step_to(driver, pause(driver), held)
        reference = settled_screenshot(driver)
        plotly_geometry = driver.execute_script(SAMPLES_JS, [])
    finally:
        driver.close()
        driver.switch_to.window(painter_window)
    painted = settled_screenshot(driver)
    if os.environ.get("SOV_DEBUG_SHOTS"):
        from PIL import Image
        Image.fromarray(painted.astype(np.uint8)).save("/tmp/painted.png")
        Image.fromarray(reference.astype(np.uint8)).save("/tmp/reference.png")
    grid = driver.execute_script(SAMPLES_JS, [])
    assert grid["xr"] == pytest.approx(plotly_geometry["xr"]) and grid["yr"] == pytest.approx(plotly_geometry["yr"])
    xr, yr = sorted(grid["xr"]), sorted(grid["yr"])
    first_col, last_col = max(0, int(xr[0] / factor) + 1), min(WIDTH // factor, int(xr[1] / factor)) - 1
    first_row, last_row = max(0, int(yr[0] / factor) + 1), min(HEIGHT // factor, int(yr[1] / factor)) - 1
    cols = range(first_col, last_col, max(1, (last_col - first_col) // 25))
    rows = range(first_row, last_row, max(1, (last_row - first_row) // 20))
    points = driver.execute_script(SAMPLES_JS, bin_centres(factor, cols, rows))["points"]
    compared = 0
    for x, y in points:
        a, b = painted[int(y), int(x)], reference[int(y), int(x)]
        assert np.abs(a - b).max() <= 2, (x, y, a, b)
        compared += 1
    resume(driver)
    return compared


def test_the_painter_paints_what_plotly_draws(url: str, driver: Any) -> None:
    open_page(driver, url, (HEIGHT, WIDTH))
    assert compare_with_plotly(driver, url, None) > 300


def test_zoomed_the_painter_still_paints_what_plotly_draws(url: str, driver: Any) -> None:
    open_page(driver, url, (HEIGHT, WIDTH))
    view = {"xaxis.range": [40.5, 100.5], "yaxis.range": [90.5, 50.5]}
    relayout(driver, view)
    # plotly.js widens the y range to keep pixels square: 60 columns, the rows that fit
    wait_until(lambda: read(driver)["canvas"][0] == 60, timeout=UPDATE_TIMEOUT_S,
               message=f"native pixels of the zoom, got {read(driver)['canvas']}")
    wait_until(lambda: "native pixels" in driver.find_element("id", "image-info").text, timeout=10)
    assert compare_with_plotly(driver, url, view) > 300
    relayout(driver, {"xaxis.autorange": True, "yaxis.autorange": "reversed"})


def test_zoom_on_a_paused_frame_renders_it_at_full_resolution(url: str, driver: Any) -> None:
    open_page(driver, url, (HEIGHT, WIDTH))
    held = pause(driver)
    shown = read(driver)["canvas"]
    assert shown[0] < WIDTH  # the full view is binned
    relayout(driver, {"xaxis.range": [10.5, 70.5], "yaxis.range": [60.5, 20.5]})
    wait_until(lambda: read(driver)["canvas"][0] == 60, timeout=UPDATE_TIMEOUT_S,
               message=f"native pixels of the held frame, got {read(driver)['canvas']}")
    assert shown_pulse(driver) == held
    relayout(driver, {"xaxis.autorange": True, "yaxis.autorange": "reversed"})
    resume(driver)


def test_a_paused_page_steps_through_the_kept_frames(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    held = pause(driver)
    label = driver.find_element(By.ID, "frame-label")
    wait_until(lambda: f"pulse {held}" in label.text, timeout=10, message="the stepper names the held frame")
    total = int(re.search(r"of (\d+) kept", label.text).group(1))
    assert total > 10
    body = driver.find_element(By.TAG_NAME, "body")
    for back in range(1, 4):
        body.send_keys("\ue012")  # ←
        wait_until(lambda: shown_pulse(driver) == held - back, timeout=10, message=f"{back} back")
    body.send_keys("\ue014")  # →
    wait_until(lambda: shown_pulse(driver) == held - 2, timeout=10)
    assert f"pulse {held - 2}" in label.text
    resume(driver)


HOVER_JS = "const t = document.getElementById('image-hover'); return t && t.style.display !== 'none' ? t.textContent : '';"


HOVER = re.compile(r"x (\d+), y (\d+) px · (\d+) counts · pulse (\d+)")


def hover_at(driver: Any, graph: Any, col: int, row: int) -> None:
    """Move the pointer over pixel (col, row), placed from the figure's layout as it is now.

    Callers repeat it until the hover answers: the page may still be settling (panels sizing to the
    window), and a pointer placed from the previous layout would point at another pixel.
    """
    x, y = driver.execute_script(SAMPLES_JS, [[col, row]])["points"][0]
    origin = graph.rect
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element_with_offset(graph, round(x - origin["x"] - origin["width"] / 2),
                                                     round(y - origin["y"] - origin["height"] / 2)).perform()


def hovered(driver: Any, col: int, row: int) -> tuple[int, int, float, int] | None:
    """(col, row, value, pulse) the hover shows, if it shows a value near (col, row)."""
    found = HOVER.fullmatch(driver.execute_script(HOVER_JS))
    if not found:
        return None
    c, r, value, pulse = int(found.group(1)), int(found.group(2)), float(found.group(3)), int(found.group(4))
    return (c, r, value, pulse) if abs(c - col) <= 1 and abs(r - row) <= 1 else None


def test_hover_shows_the_counts_of_the_frame_on_screen(url: str, driver: Any) -> None:
    open_page(driver, url, (HEIGHT, WIDTH))
    graph = driver.find_element("css selector", "#image-graph .js-plotly-plot")
    for col, row in ((37, 21), (250, 170), (599, 399)):
        wait_until(lambda: hover_at(driver, graph, col, row) or hovered(driver, col, row), timeout=UPDATE_TIMEOUT_S,
                   interval=0.2, message=lambda: f"hover at ({col}, {row}): {driver.execute_script(HOVER_JS)!r}")
        for _ in range(5):  # live frames: each value must be the pixel of the frame it names
            shown = hovered(driver, col, row)
            if shown:
                c, r, value, pulse = shown
                assert value == c + 1000 * r + 1_000_000 * (pulse % 50), driver.execute_script(HOVER_JS)
    held = pause(driver)  # paused: the value of the held frame, and the frame on screen says which
    wait_until(lambda: hover_at(driver, graph, 37, 21) or (hovered(driver, 37, 21) or (0, 0, 0, 0))[3] == held,
               timeout=UPDATE_TIMEOUT_S, interval=0.2, message=lambda: driver.execute_script(HOVER_JS))
    c, r, value, pulse = hovered(driver, 37, 21)
    assert value == c + 1000 * r + 1_000_000 * (held % 50)
    assert shown_pulse(driver) == held and "level" not in driver.execute_script(HOVER_JS)
    resume(driver)


def test_two_pages_update_at_once(url: str, driver: Any) -> None:
    open_page(driver, url, (HEIGHT, WIDTH))
    first = driver.current_window_handle
    driver.switch_to.new_window("window")
    try:
        open_page(driver, url, (HEIGHT, WIDTH))
        second = driver.current_window_handle
        seen = {}
        for handle in (first, second):
            driver.switch_to.window(handle)
            seen[handle] = shown_pulse(driver)
        for handle in (first, second):
            driver.switch_to.window(handle)
            wait_until(lambda: shown_pulse(driver) > seen[handle] + 5, timeout=UPDATE_TIMEOUT_S,
                       message="both pages advance")
    finally:
        driver.switch_to.window(second)
        driver.close()
        driver.switch_to.window(first)
