"""Operator tools in headless Chromium, on a designed uint16 stream whose every value is known:
a region of interest drawn with the mouse (shared with another page, its sums in the CSV), averaging,
background grab and subtraction (hover values), the histogram setting the manual range, saturated
pixels marked and counted, PNG and HDF5 snapshots.
"""

from __future__ import annotations

import io
import json
import re
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from tests.browser import (UPDATE_TIMEOUT_S, DesignedStream, chrome, open_page, read, require_browser, served,
                           shown_pulse)
from tests.helpers import wait_until
from tests.test_browser_frames import SAMPLES_JS, hover_at, pause, resume

require_browser()
pytestmark = pytest.mark.browser

HEIGHT, WIDTH = 150, 200
SATURATED = [(row, col) for row in range(5, 8) for col in range(190, 193)]  # 9 pixels at 65535


def base(pulse_id: int) -> np.ndarray:
    """col + 300 * row, +10 on odd pulses: a mean of two pulses is +5, exactly."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = (cols + 300 * rows + 10 * (pulse_id % 2)).astype(np.uint16)
    for row, col in SATURATED:
        image[row, col] = 65535
    return image


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with DesignedStream(lambda p: {"image": base(p)}, rate_hz=20) as stream, \
            served(["--stream", stream.address, "-d", "0.05"]) as (address, _registry):
        yield address


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads: Path) -> Iterator[Any]:
    with chrome((1600, 1000), downloads=downloads) as d:
        yield d


def open_tools(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    panel = driver.find_element(By.ID, "tools-collapse")
    if not panel.is_displayed():
        driver.find_element(By.ID, "tools-button").click()
    wait_until(lambda: driver.find_element(By.ID, "average-frames").is_displayed(), timeout=10, message="tools open")


def set_input(driver: Any, element_id: str, value: Any) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(f"{value}\n")


HOVER_VALUE = re.compile(r"x (\d+), y (\d+) px · (-?\d+) counts · pulse (\d+)")


def hover_value(driver: Any, graph: Any, col: int, row: int) -> tuple[int, int, int, int]:
    hover_at(driver, graph, col, row)
    text = lambda: driver.execute_script("return document.getElementById('image-hover').textContent")  # noqa: E731
    found = wait_until(lambda: HOVER_VALUE.fullmatch(text()), timeout=UPDATE_TIMEOUT_S, message=text)
    return tuple(int(v) for v in found.groups())  # type: ignore[return-value]


def api(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=10) as reply:
        return json.loads(reply.read())


def test_region_drawn_with_the_mouse_is_shared_and_summed_every_pulse(url: str, driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    open_tools(driver)
    set_input(driver, "roi-name", "core")
    driver.find_element(By.CSS_SELECTOR, "#image-graph .modebar-btn[data-val='drawrect'], "
                                         "#image-graph .modebar-btn[data-attr='dragmode'][data-val='drawrect']").click()
    graph = driver.find_element(By.CSS_SELECTOR, "#image-graph .js-plotly-plot")
    (x0, y0), (x1, y1) = driver.execute_script(SAMPLES_JS, [[20.5, 10.5], [29.5, 13.5]])["points"]
    origin = graph.rect
    centre = origin["x"] + origin["width"] / 2, origin["y"] + origin["height"] / 2
    ActionChains(driver).move_to_element_with_offset(graph, round(x0 - centre[0]), round(y0 - centre[1])) \
        .click_and_hold().move_by_offset(round(x1 - x0), round(y1 - y0)).release().perform()
    wait_until(lambda: api(url, "/api/rois")["rois"], timeout=UPDATE_TIMEOUT_S, message="region stored")
    roi = api(url, "/api/rois")["rois"][0]
    assert roi["name"] == "core"
    assert (roi["x0"], roi["x1"], roi["y0"], roi["y1"]) == (21, 30, 11, 14), roi
    wait_until(lambda: "core: x 21–30, y 11–14 px" in driver.find_element(By.ID, "roi-list").text, timeout=10)
    # another page shows it on its image
    first = driver.current_window_handle
    driver.switch_to.new_window("window")
    try:
        open_page(driver, url, (HEIGHT, WIDTH))
        names = lambda: driver.execute_script(  # noqa: E731
            "return (document.querySelector('#image-graph .js-plotly-plot').layout.shapes || []).map(s => s.name)")
        wait_until(lambda: "core" in names(), timeout=UPDATE_TIMEOUT_S, message="the region on the other page")
    finally:
        driver.close()
        driver.switch_to.window(first)
    # every pulse's row carries the sums of the raw pixels in the half-open box
    wait_until(lambda: "roi_core_sum" in api(url, "/api/status")["computed"], timeout=10)
    with urllib.request.urlopen(url + "/api/readings.csv?seconds=2", timeout=10) as reply:
        rows = pd.read_csv(io.StringIO(reply.read().decode())).dropna(subset=["roi_core_sum"])
    assert len(rows) > 5
    for _, row in rows.iterrows():
        box = base(int(row["pulse_id"]))[11:14, 21:30].astype(np.float64)
        assert row["roi_core_sum"] == box.sum() and row["roi_core_max"] == box.max()
        assert row["roi_core_mean"] == pytest.approx(box.mean())
    driver.find_element(By.ID, "roi-clear-button").click()
    wait_until(lambda: not api(url, "/api/rois")["rois"], timeout=10)


def test_averaging_then_background_subtraction_show_in_the_hover_values(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    open_tools(driver)
    graph = driver.find_element(By.CSS_SELECTOR, "#image-graph .js-plotly-plot")
    col, row, value, pulse = hover_value(driver, graph, 50, 40)
    assert value == col + 300 * row + 10 * (pulse % 2)  # raw
    set_input(driver, "average-frames", 2)
    wait_until(lambda: "mean of 2" in (read(driver)["frame"] or ""), timeout=UPDATE_TIMEOUT_S)
    col, row, value, pulse = hover_value(driver, graph, 50, 40)
    wait_until(lambda: hover_value(driver, graph, 50, 40)[2] == col + 300 * row + 5, timeout=UPDATE_TIMEOUT_S,
               message="the mean of two consecutive pulses")
    set_input(driver, "background-frames", 2)
    driver.find_element(By.ID, "background-grab-button").click()
    wait_until(lambda: api(url, "/api/background")["state"] == "ready", timeout=UPDATE_TIMEOUT_S,
               message="background grabbed")
    wait_until(lambda: driver.find_element(By.ID, "background-state").text.startswith("2 frames, 200 × 150 px"),
               timeout=UPDATE_TIMEOUT_S)
    driver.find_element(By.ID, "background-subtract-switch").click()
    wait_until(lambda: "background subtracted" in (read(driver)["frame"] or ""), timeout=UPDATE_TIMEOUT_S)
    wait_until(lambda: hover_value(driver, graph, 50, 40)[2] == 0, timeout=UPDATE_TIMEOUT_S,
               message="mean of two minus the mean of two")
    driver.find_element(By.ID, "background-subtract-switch").click()
    set_input(driver, "average-frames", 1)
    driver.find_element(By.ID, "background-clear-button").click()
    wait_until(lambda: api(url, "/api/background")["state"] == "none", timeout=10)


def test_histogram_drag_sets_the_manual_range(url: str, driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    open_tools(driver)
    plot = "#histogram-plot"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, plot + " .bars path"), timeout=UPDATE_TIMEOUT_S,
               message="histogram drawn")
    shapes = driver.execute_script(f"return document.querySelector('{plot}').layout.shapes.map(s => s.x0)")
    assert len(shapes) == 2 and shapes[0] < shapes[1]  # the colour range marked
    area = driver.find_element(By.CSS_SELECTOR, plot + " .nsewdrag")
    width = area.rect["width"]
    ActionChains(driver).move_to_element_with_offset(area, round(-width * 0.3), 0).click_and_hold() \
        .move_by_offset(round(width * 0.3), 0).release().perform()
    wait_until(lambda: driver.find_element(By.ID, "image-range-min").get_attribute("value") != "", timeout=10,
               message="manual range set from the histogram")
    low = float(driver.find_element(By.ID, "image-range-min").get_attribute("value"))
    high = float(driver.find_element(By.ID, "image-range-max").get_attribute("value"))
    assert 0 < low < high
    assert driver.find_element(By.CSS_SELECTOR, "#image-range-mode input[value='manual']").is_selected()
    driver.find_element(By.CSS_SELECTOR, "#image-range-mode input[value='auto']").click()


MAGENTA_JS = """const c = document.querySelector('#image-canvas canvas.sov-frame');
const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
for (let i = 0; i < px.length; i += 4) { if (px[i] === 255 && px[i + 1] === 0 && px[i + 2] === 255) n++; }
return n;"""


def test_saturated_pixels_are_marked_and_counted(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    wait_until(lambda: driver.find_element(By.ID, "saturated-value").text == "9 px", timeout=UPDATE_TIMEOUT_S,
               message=lambda: driver.find_element(By.ID, "saturated-value").text)
    assert driver.execute_script(MAGENTA_JS) > 0
    open_tools(driver)
    set_input(driver, "saturation-level", 44000)  # col + 300 row >= 44000: rows 146-149 and some of 145
    expected = int((base(0)[..., :] >= 44000).sum())
    wait_until(lambda: driver.find_element(By.ID, "saturated-value").text.replace(",", "") in (
        f"{expected} px", f"{int((base(1) >= 44000).sum())} px"), timeout=UPDATE_TIMEOUT_S,
               message=lambda: driver.find_element(By.ID, "saturated-value").text)
    driver.find_element(By.ID, "saturation-switch").click()
    wait_until(lambda: driver.execute_script(MAGENTA_JS) == 0, timeout=UPDATE_TIMEOUT_S, message="marking off")
    driver.find_element(By.ID, "saturation-switch").click()
    set_input(driver, "saturation-level", "")


def test_snapshots_download_the_picture_and_the_raw_frame(url: str, driver: Any, downloads: Path) -> None:
    import h5py
    from PIL import Image
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    open_tools(driver)
    pulse = pause(driver)
    driver.find_element(By.ID, "snapshot-png-button").click()
    driver.find_element(By.ID, "snapshot-h5-button").click()
    pattern = re.compile(rf"stream_pulse{pulse}_\d{{8}}T\d{{6}}Z\.(png|h5)")
    wait_until(lambda: {p.suffix for p in downloads.iterdir() if pattern.fullmatch(p.name)} == {".png", ".h5"},
               timeout=UPDATE_TIMEOUT_S, message=lambda: sorted(p.name for p in downloads.iterdir()))
    png = next(p for p in downloads.iterdir() if p.suffix == ".png" and pattern.fullmatch(p.name))
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[0] > 300 and picture.shape[1] > 400
    assert (picture.reshape(-1, 3) == [0x27, 0x2B, 0x30]).all(axis=1).mean() > 0.2  # dark background
    assert (picture.reshape(-1, 3) == [255, 0, 255]).all(axis=1).any()  # as shown: the saturated pixels marked
    viridis = picture.reshape(-1, 3)[:, 1] > picture.reshape(-1, 3)[:, 0] + 40  # the picture's greens and yellows
    assert viridis.mean() > 0.05
    h5 = next(p for p in downloads.iterdir() if p.suffix == ".h5" and pattern.fullmatch(p.name))
    with h5py.File(h5) as file:
        assert int(file["pulse_id"][()]) == pulse
        image = file["image"][()]
        assert image.dtype == np.uint16 and image.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(image, base(pulse))
        assert file.attrs["camera"] == "stream"
        assert json.loads(file.attrs["processing"]) == {"average": 1, "background": False}
    resume(driver)
    assert shown_pulse(driver) is not None


def test_export_csv_downloads_the_readings_of_the_window(url: str, driver: Any, downloads: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url, (HEIGHT, WIDTH))
    before = {p.name for p in downloads.iterdir()}
    driver.find_element(By.ID, "export-csv-button").click()
    wait_until(lambda: any(p.suffix == ".csv" and p.name not in before for p in downloads.iterdir()),
               timeout=UPDATE_TIMEOUT_S, message=lambda: sorted(p.name for p in downloads.iterdir()))
    csv = next(p for p in downloads.iterdir() if p.suffix == ".csv" and p.name not in before)
    assert re.fullmatch(r"readings-stream-\d{8}T\d{6}Z\.csv", csv.name), csv.name
    rows = pd.read_csv(csv)
    assert list(rows.columns[:3]) == ["pulse_id", "timestamp", "timestamp_epoch"] and len(rows) > 5
    assert rows["timestamp_epoch"].iloc[-1] - rows["timestamp_epoch"].iloc[0] <= 60
