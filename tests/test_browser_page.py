"""The operator's page in headless Chromium, as a person sees it: live picture and readings, one screen
at 1920x1080 and 1366x768, full screen, pause from the keyboard, the folded health details, the manual
range refused with a message, the colour bar, STALE counting, and nothing loaded from elsewhere.

One app (a designed stream) and one browser for the module.
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.browser import (UPDATE_TIMEOUT_S, DesignedStream, chrome, open_page, read, require_browser,
                           served, set_viewport, severe_logs, shown_pulse)
from tests.helpers import wait_until

require_browser()
pytestmark = pytest.mark.browser

HEIGHT, WIDTH = 240, 320


def spot(pulse_id: int) -> dict[str, Any]:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    cx = 100 + (pulse_id % 50)
    image = 50.0 + 4000.0 * np.exp(-0.5 * (((cols - cx) / 6.0) ** 2 + ((rows - 120) / 4.0) ** 2))
    return {"image": image, "beam_energy": np.float64(5.0 + (pulse_id % 10) * 0.05),
            "repetition_rate": np.float64(20.0)}


@pytest.fixture(scope="module")
def stream() -> Iterator[DesignedStream]:
    with DesignedStream(spot, rate_hz=20) as designed:
        yield designed


@pytest.fixture(scope="module")
def url(stream: DesignedStream) -> Iterator[str]:
    with served(["--stream", stream.address, "-d", "0.05"]) as (base, _registry):
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chrome((1920, 1080)) as d:
        yield d


def test_picture_and_readings_advance(url: str, driver: Any) -> None:
    open_page(driver, url)
    first = read(driver)
    wait_until(lambda: read(driver)["fingerprint"] not in (None, first["fingerprint"]), timeout=UPDATE_TIMEOUT_S,
               message="the picture's pixels change")
    wait_until(lambda: read(driver)["pulse_id"] not in ("—", first["pulse_id"]), timeout=UPDATE_TIMEOUT_S,
               message="the pulse id reading advances")
    assert read(driver)["state"] == "live"
    assert re.fullmatch(r"\d\.\d{4} GeV", read(driver)["energy"])
    assert not severe_logs(driver)


BOXES_JS = """
const box = sel => { const el = document.querySelector(sel); if (!el) return null;
                     const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const gd = document.querySelector('#image-graph .js-plotly-plot');
const canvas = document.querySelector('#image-canvas canvas.sov-frame');
const plot = gd.querySelector('.xy .nsewdrag') || null;
return {viewport: [window.innerWidth, window.innerHeight],
        scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
        boxes: {'#stream-state': box('#stream-state'), '#image-graph': box('#image-graph'),
                '#health-line': box('#health-line'), '#beam-energy-value': box('#beam-energy-value'),
                '#pulse-id-value': box('#pulse-id-value'), '#repetition-rate-value': box('#repetition-rate-value'),
                '#energy-history-graph': box('#energy-history-graph'), '#rate-history-graph': box('#rate-history-graph'),
                'x profile panel': null},
        picture: canvas ? (r => [r.left, r.top, r.right, r.bottom])(canvas.getBoundingClientRect()) : null,
        clip: canvas ? (r => [r.left, r.top, r.right, r.bottom])(canvas.parentNode.getBoundingClientRect()) : null};
"""


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)], ids=["1920x1080", "1366x768"])
def test_everything_on_one_screen_and_the_picture_gets_the_largest_share(url: str, driver: Any,
                                                                         size: tuple[int, int]) -> None:
    set_viewport(driver, size)
    open_page(driver, url)
    wait_until(lambda: driver.execute_script(BOXES_JS)["picture"] is not None, timeout=UPDATE_TIMEOUT_S)
    found = driver.execute_script(BOXES_JS)
    width, height = found["viewport"]
    assert (width, height) == size
    assert found["scroll"] == [width, height], "the page scrolls"
    for name, b in found["boxes"].items():
        if b is None and name == "x profile panel":
            continue
        assert b is not None, name
        left, top, right, bottom = b
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, (name, b)
    # The detector picture: the canvas, clipped to the image's plot area.
    left, top, right, bottom = found["picture"]
    cl, ct, cr, cb = found["clip"]
    area = max(0, min(right, cr) - max(left, cl)) * max(0, min(bottom, cb) - max(top, ct))
    share = area / (width * height)
    assert share >= 0.20, f"picture {share:.1%} of the screen"
    others = [(b[2] - b[0]) * (b[3] - b[1]) for n, b in found["boxes"].items() if b and n != "#image-graph"]
    assert area > max(others)
    # Every reading shown whole (none cut with an ellipsis), once the readings carry values.
    wait_until(lambda: driver.execute_script(CUT_READINGS_JS) == [], timeout=UPDATE_TIMEOUT_S,
               message=lambda: f"readings cut at {size}: {driver.execute_script(CUT_READINGS_JS)}")
    set_viewport(driver, (1920, 1080))


CUT_READINGS_JS = """return Array.from(document.querySelectorAll('.reading-value'))
    .filter(e => e.textContent.length > 1 && e.scrollWidth > e.clientWidth + 1).map(e => e.id + ': ' + e.textContent);"""


def test_full_screen_by_button_and_f(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    normal = driver.execute_script(BOXES_JS)["boxes"]["#image-graph"]
    driver.find_element(By.ID, "fullscreen-button").click()
    wait_until(lambda: driver.execute_script(BOXES_JS)["boxes"]["#image-graph"][2] - driver.execute_script(
        BOXES_JS)["boxes"]["#image-graph"][0] > (normal[2] - normal[0]) * 1.2, timeout=10, message="bigger image")
    full = driver.execute_script(BOXES_JS)
    assert full["boxes"]["#image-graph"][2] > 0.95 * full["viewport"][0]
    driver.find_element(By.TAG_NAME, "body").send_keys("f")
    wait_until(lambda: abs(driver.execute_script(BOXES_JS)["boxes"]["#image-graph"][2] - normal[2]) < 2, timeout=10,
               message="back to normal with f")


def test_space_toggles_pause_of_the_picture_only(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(" ")
    wait_until(lambda: "PAUSED" in (read(driver)["frame"] or ""), timeout=10, message="paused")
    assert read(driver)["pause"] == "Resume"
    held = shown_pulse(driver)
    reading = read(driver)["pulse_id"]
    wait_until(lambda: read(driver)["pulse_id"] != reading, timeout=UPDATE_TIMEOUT_S,
               message="readings keep updating while paused")
    assert shown_pulse(driver) == held
    body.send_keys(" ")
    wait_until(lambda: (shown_pulse(driver) or 0) > held, timeout=UPDATE_TIMEOUT_S, message="live again")
    assert read(driver)["pause"] == "Pause"


def test_health_details_fold_out(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    line = driver.find_element(By.ID, "health-line").text
    assert "msgs" in line and "invalid" in line
    panel = driver.find_element(By.ID, "health-details")
    assert not panel.is_displayed()
    driver.find_element(By.ID, "health-toggle").click()
    wait_until(lambda: panel.is_displayed() and "messages" in panel.text, timeout=10, message="details shown")
    driver.find_element(By.ID, "health-toggle").click()


def test_manual_range_min_not_below_max_is_refused_with_a_message(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    driver.find_element(By.CSS_SELECTOR, "#image-range-mode input[value='manual']").click()
    for element_id, value in (("image-range-min", "500"), ("image-range-max", "100")):
        field = driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value + "\n")
    message = driver.find_element(By.ID, "image-range-message")
    wait_until(lambda: "less than" in message.text, timeout=10, message="refusal shown")
    ticks = colour_bar(driver)
    assert ticks and float(ticks[-1].replace(",", "")) > 500, "the refused range is not used"
    field = driver.find_element(By.ID, "image-range-max")
    field.clear()
    field.send_keys("1000\n")
    wait_until(lambda: message.text == "", timeout=10)
    wait_until(lambda: (colour_bar(driver) or ["0"])[-1] == "1000", timeout=UPDATE_TIMEOUT_S,
               message="colour bar follows the manual range")
    driver.find_element(By.CSS_SELECTOR, "#image-range-mode input[value='auto']").click()


def colour_bar(driver: Any) -> list[str]:
    return driver.execute_script("""
        const gd = document.querySelector('#image-graph .js-plotly-plot');
        return gd && gd.data && gd.data[0].colorbar ? gd.data[0].colorbar.ticktext : null;""")


def test_colour_bar_is_titled_counts_and_log_ticks_are_round(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    title = driver.execute_script("""const gd = document.querySelector('#image-graph .js-plotly-plot');
                                     return gd.data[0].colorbar.title.text;""")
    assert title == "counts"
    driver.find_element(By.CSS_SELECTOR, "#image-scale input[value='log']").click()
    wait_until(lambda: colour_bar(driver) and all(t in ("1", "2", "5") or re.fullmatch(r"[125]0+", t)
                                                  for t in colour_bar(driver)),
               timeout=UPDATE_TIMEOUT_S, message=f"round log ticks, got {colour_bar(driver)}")
    assert {"100", "1000"} <= set(colour_bar(driver))
    driver.find_element(By.CSS_SELECTOR, "#image-scale input[value='linear']").click()


def test_stale_shows_in_a_corner_and_counts(url: str, driver: Any, stream: DesignedStream) -> None:
    open_page(driver, url)
    stale = "#image-overlay .sov-stale"
    stream.pause()
    try:
        wait_until(lambda: "STALE" in driver.execute_script(f"return document.querySelector('{stale}').textContent"),
                   timeout=UPDATE_TIMEOUT_S, message="STALE shown")
        age = lambda: float(re.search(r"([\d.]+) s ago", driver.execute_script(  # noqa: E731
            f"return document.querySelector('{stale}').textContent")).group(1))
        first = age()
        wait_until(lambda: age() >= first + 2, timeout=10, message="the age counts on")
        box = driver.execute_script(f"""const r = document.querySelector('{stale}').getBoundingClientRect();
            const c = document.querySelector('#image-canvas canvas.sov-frame').parentNode.getBoundingClientRect();
            return [r.right - c.left, r.top - c.top, c.width, c.height, r.width * r.height];""")
        right, top, width, height, area = box
        assert right > width * 0.8 and top < height * 0.1, "top right corner"
        assert area < 0.05 * width * height, "it does not cover the beam"
    finally:
        stream.resume()
    wait_until(lambda: driver.execute_script(f"return document.querySelector('{stale}').textContent") == "",
               timeout=UPDATE_TIMEOUT_S, message="STALE gone when live again")


def test_every_request_goes_to_this_server(url: str, driver: Any) -> None:
    open_page(driver, url)
    origin = urlsplit(url).netloc
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert names
    assert all(urlsplit(name).netloc == origin for name in names if not name.startswith("data:")), names
