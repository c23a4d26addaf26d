"""What a person sees, in headless Chromium: the heatmap is drawn, the readings advance, the state says
live, two pages update at once, Pause holds the view and Resume catches up, the CSV downloads, and the
page requests nothing from anywhere but this server (the control room is air-gapped).

One app (simulated camera) and one browser for the whole module.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from stream.ring_buffer import STATS_COLUMNS
from stream.simulator import SimulatorConfig
from stream.source import LiveSource
from tests.helpers import wait_until
from tests.live_app import get, running_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    _reason = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})"
    if os.environ.get("SOV_REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
        pytest.fail(_reason + " and SOV_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

PAGE_TIMEOUT_S = 90.0  # first load parses ~5 MB of plotly.js on a loaded 2-core machine
UPDATE_TIMEOUT_S = 30.0
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                # Pages in other windows must not be throttled (two pages update at once).
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--window-size=1400,1000")

READ_PAGE_JS = """
const text = id => { const el = document.getElementById(id); return el ? el.textContent : null; };
const fingerprint = s => {  // FNV-1a of the base64 levels: equal pictures, equal fingerprints
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0).toString(16) + ':' + s.length;
};
const gd = document.querySelector('#image-graph .js-plotly-plot');
const live = window.streamViewerLive || {};
let image = null, plotly = null, screen = null;
if (gd && gd.data && gd._fullData && gd._fullData[0]) {
    // The newest frame the page has (viewer.js keeps it; before the first answer it is plotly's).
    const heatmap = (live.figure || gd).data[0], z = heatmap.z;
    image = {dtype: z ? z.dtype || null : null, bdata: z && z.bdata ? fingerprint(z.bdata) : null,
             shape: z && z.shape ? z.shape : null, x0: heatmap.x0, dx: heatmap.dx, y0: heatmap.y0,
             colorscale: heatmap.colorscale};
    // What plotly.js itself holds, decoded from the typed array.
    const full = gd._fullData[0].z;
    plotly = {rows: full ? full.length : 0, cols: full && full[0] ? full[0].length : 0,
              row_type: full && full[0] ? Object.prototype.toString.call(full[0]) : null,
              bdata: gd.data[0].z && gd.data[0].z.bdata ? fingerprint(gd.data[0].z.bdata) : null};
}
if (live.layer && live.layer.style.visibility === 'visible' && live.canvas.width > 0) {
    // The pixels on screen in the live layer: a fingerprint of every 7th byte.
    const px = live.canvas.getContext('2d').getImageData(0, 0, live.canvas.width, live.canvas.height).data;
    let h = 2166136261;
    for (let i = 0; i < px.length; i += 7) { h ^= px[i]; h = Math.imul(h, 16777619); }
    screen = (h >>> 0).toString(16);
}
const history = document.querySelector('#energy-history-graph .js-plotly-plot');
const loops = window.streamViewerLoops || {};
return {
    state: text('stream-state'), pulse_id: text('pulse-id-value'), energy: text('beam-energy-value'),
    rate: text('repetition-rate-value'), pause: text('pause-button'), hidden: document.hidden,
    heatmap_drawn: !!document.querySelector('#image-graph .heatmaplayer image'),
    image: image, plotly: plotly, screen: screen,
    live_frames: live.frames || 0, live_shown: !!document.querySelector('#image-graph.sov-live'),
    history_points: history && history.data && history.data[0] ? history.data[0].x.length : 0,
    image_requests: loops.image ? loops.image.n : 0,
    // Idle: no request on its way or due, and nothing of the last answer still waiting to be shown.
    image_loop_idle: loops.image ? !loops.image.pending && loops.image.timer === null
                                   && !(live.gapWork && live.gapWork()) : false,
};
"""


# Redraws #image-graph with plotly.js, with the newest frame (the page paused, so no frame arrives
# meanwhile), then compares the live layer's canvas, which viewer.js repaints once plotly.js has
# drawn, with plotly's own heatmap image, at the centre of sampled bins and of the brightest bin.
COMPARE_JS = """
const done = arguments[arguments.length - 1];
const gd = document.querySelector('#image-graph .js-plotly-plot');
const live = window.streamViewerLive;
gd.once('plotly_afterplot', () => setTimeout(() => {
    const element = gd.querySelector('.heatmaplayer image');
    const href = element.getAttribute('href') || element.getAttribute('xlink:href');
    const box = gd.getBoundingClientRect(), area = element.getBoundingClientRect();
    const picture = new Image();
    picture.onerror = () => done({error: 'plotly image did not load'});
    picture.onload = () => {
        const reference = document.createElement('canvas');
        reference.width = Math.round(box.width);
        reference.height = Math.round(box.height);
        const rctx = reference.getContext('2d');
        rctx.imageSmoothingEnabled = false;
        rctx.drawImage(picture, area.left - box.left, area.top - box.top, area.width, area.height);
        const ref = rctx.getImageData(0, 0, reference.width, reference.height).data;
        // The live layer's image canvas holds one pixel per bin, placed over `placed` (relative to the
        // plot area) by the compositor.
        const canvas = live.canvas, placed = live.arranged.image;
        const mine = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, trace = gd.data[0];
        const [rows, cols] = trace.z.shape.split(',').map(Number);
        const raw = atob(trace.z.bdata);
        let peak = 0;
        for (let k = 1; k < raw.length; k++) { if (raw.charCodeAt(k) > raw.charCodeAt(peak)) peak = k; }
        const bins = [[Math.floor(peak / cols), peak % cols]];
        const step = Math.max(1, Math.floor(Math.min(rows, cols) / 25));
        for (let i = 0; i < rows; i += step) { for (let j = 0; j < cols; j += step) { bins.push([i, j]); } }
        let n = 0, bad = 0, worst = 0;
        const colours = new Set();
        for (const [i, j] of bins) {
            const x = xa._offset + xa.l2p(trace.x0 + j * trace.dx), y = ya._offset + ya.l2p(trace.y0 + i * trace.dy);
            if (x < xa._offset + 1 || x > xa._offset + xa._length - 1 || y < ya._offset + 1 ||
                y > ya._offset + ya._length - 1) continue;
            const r = 4 * (Math.floor(y) * reference.width + Math.floor(x));
            const col = Math.floor((x - xa._offset - placed.left) / placed.width * canvas.width);
            const row = Math.floor((y - ya._offset - placed.top) / placed.height * canvas.height);
            if (col < 0 || col >= canvas.width || row < 0 || row >= canvas.height) { bad += 1; continue; }
            const m = 4 * (row * canvas.width + col);
            let diff = 0;
            for (let c = 0; c < 3; c++) diff = Math.max(diff, Math.abs(ref[r + c] - mine[m + c]));
            n += 1; worst = Math.max(worst, diff); if (diff > 3) bad += 1;
            colours.add(mine[m] + ',' + mine[m + 1] + ',' + mine[m + 2]);
        }
        // Where the canvas really is on screen against plotly's own image of the same bins.
        const shown = canvas.getBoundingClientRect();
        const offset = Math.max(Math.abs(shown.left - area.left), Math.abs(shown.top - area.top),
                                Math.abs(shown.right - area.right), Math.abs(shown.bottom - area.bottom));
        done({n: n, bad: bad, worst: worst, colours: colours.size, level: raw.charCodeAt(peak), offset: offset,
              shown: document.getElementById('image-graph').classList.contains('sov-live')});
    };
    picture.src = href;
}, 0));
const newest = live.figure;  // the frame on screen; plotly.js may hold an older one
if (newest && newest.data !== gd.data) { Plotly.react(gd, newest.data, newest.layout); } else { Plotly.redraw(gd); }
"""


def pause(browser: Any) -> dict[str, Any]:
    browser.find_element(By.ID, "pause-button").click()
    wait_until(lambda: read_page(browser)["pause"] == "Resume", timeout=UPDATE_TIMEOUT_S, message="button not Resume")
    return wait_until(lambda: (lambda page: page if page["image_loop_idle"] else None)(read_page(browser)),
                      timeout=UPDATE_TIMEOUT_S, interval=0.1, message="the image loop did not stop")


def resume(browser: Any) -> None:
    browser.find_element(By.ID, "pause-button").click()
    wait_until(lambda: read_page(browser)["pause"] == "Pause", timeout=UPDATE_TIMEOUT_S, message="button not Pause")


def live_layer_matches_plotly(browser: Any) -> dict[str, Any]:
    result = browser.execute_async_script(COMPARE_JS)
    assert "error" not in result, result
    assert result["shown"], "the live layer is not shown after plotly drew"
    assert result["n"] >= 50, f"too few bins compared: {result}"
    assert result["bad"] == 0, f"the live layer's pixels differ from plotly's heatmap: {result}"
    assert result["offset"] <= 1.0, f"the live layer is not where plotly draws the image: {result}"
    # The automatic colour range is held while the beam spans >= 60 % of it: the peak level is >= ~150.
    assert result["colours"] >= 5 and result["level"] >= 128, f"a picture without a beam compared: {result}"
    return result


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Any, Any]]:
    # The real app on its simulated camera, at 50 Hz so the browser is not starved of CPU.
    source = LiveSource(None, capacity=50_000,
                        simulator=SimulatorConfig(port=0, delay_s=0.02, host="127.0.0.1", mode="push")).start()
    try:
        with running_app(["--history", "50000"], source=source) as app:
            yield app
    finally:
        source.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(served, downloads: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request, for the origin check
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.set_page_load_timeout(PAGE_TIMEOUT_S)
        browser.set_script_timeout(30)
        browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        open_page(browser, served[0])
        yield browser
    finally:
        browser.quit()


def read_page(browser: Any) -> dict[str, Any]:
    return browser.execute_script(READ_PAGE_JS)


def open_page(browser: Any, url: str) -> dict[str, Any]:
    browser.get(url)
    return wait_until(lambda: (lambda page: page if page["heatmap_drawn"] and page["pulse_id"] not in (None, "—")
                               else None)(read_page(browser)),
                      timeout=PAGE_TIMEOUT_S, interval=0.2, message="the page never drew the image")


def status(url: str) -> dict[str, Any]:
    return json.loads(get(url + "/api/status")[1])


def pulse_id(page: dict[str, Any]) -> int:
    return int(page["pulse_id"])


# ----------------------------------------------------------------------------------------------- tests


def test_page_draws_the_image_and_the_readings_advance(served, driver, tmp_path: Path) -> None:
    url = served[0]
    first = read_page(driver)
    assert driver.title == "Stream Online Viewer"
    assert first["hidden"] is False
    image = first["image"]
    assert image["dtype"] == "u1" and image["bdata"], "z did not arrive as a base64 uint8 typed array"
    plotly = first["plotly"]
    assert plotly["row_type"] == "[object Uint8Array]"
    assert plotly["rows"] >= 50 and plotly["cols"] >= 50  # a real picture, not the 1x1 placeholder
    assert plotly["rows"] <= 480 and plotly["cols"] <= 640

    def advanced(page: dict[str, Any]) -> bool:
        return (pulse_id(page) > pulse_id(first) and page["live_frames"] > first["live_frames"] + 2
                and page["screen"] not in (None, first["screen"]))

    later = wait_until(lambda: (lambda page: page if advanced(page) else None)(read_page(driver)),
                       timeout=UPDATE_TIMEOUT_S, interval=0.2, message="the picture on screen did not advance")
    assert later["image"]["bdata"] != image["bdata"], "the heatmap did not change with the pulse"
    assert later["live_shown"], "the live layer paints but is not shown"
    assert later["state"] == "live"
    assert later["energy"].endswith(" GeV") and 5.0 <= float(later["energy"].split()[0]) <= 5.5
    assert later["rate"] == "100.00 Hz"
    assert pulse_id(later) <= status(url)["last_pulse_id"]

    page = wait_until(lambda: (lambda p: p if p["history_points"] >= 2 else None)(read_page(driver)),
                      timeout=UPDATE_TIMEOUT_S, interval=0.2, message="energy history stayed empty")
    more = wait_until(lambda: (lambda p: p if p["history_points"] > page["history_points"] else None)(read_page(driver)),
                      timeout=UPDATE_TIMEOUT_S, interval=0.2, message="energy history did not grow")
    assert more["history_points"] > page["history_points"]

    shot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_two_pages_update_at_once(served, driver) -> None:
    url = served[0]
    first_window = driver.current_window_handle
    driver.switch_to.new_window("window")
    second_window = driver.current_window_handle
    try:
        open_page(driver, url)

        def snapshot() -> dict[str, dict[str, Any]]:
            pages = {}
            for handle in (first_window, second_window):
                driver.switch_to.window(handle)
                pages[handle] = read_page(driver)
            return pages

        start = snapshot()

        def both_advanced() -> dict[str, dict[str, Any]] | None:
            now = snapshot()
            ok = all(pulse_id(now[h]) > pulse_id(start[h]) and now[h]["image_requests"] > start[h]["image_requests"]
                     and now[h]["image"]["bdata"] != start[h]["image"]["bdata"]
                     and now[h]["screen"] != start[h]["screen"] for h in now)
            return now if ok else None

        # Each page keeps its own request loop going while the other one is open.
        now = wait_until(both_advanced, timeout=UPDATE_TIMEOUT_S, interval=0.2, message="both pages did not update")
        assert all(page["state"] == "live" for page in now.values())
    finally:
        driver.switch_to.window(second_window)
        driver.close()
        driver.switch_to.window(first_window)


def test_pause_holds_the_view_and_resume_catches_up(served, driver) -> None:
    url = served[0]
    button = driver.find_element(By.ID, "pause-button")
    assert button.text == "Pause"
    button.click()
    wait_until(lambda: read_page(driver)["pause"] == "Resume", timeout=UPDATE_TIMEOUT_S, message="button not Resume")
    # An answer already in flight when Pause was clicked may still land; then the loop goes idle.
    held = wait_until(lambda: (lambda page: page if page["image_loop_idle"] else None)(read_page(driver)),
                      timeout=UPDATE_TIMEOUT_S, interval=0.1, message="the image loop did not stop")
    received = status(url)["received"]
    # Watch the paused page for a while: nothing it shows may change, although the stream goes on.
    watch_until = time.monotonic() + 2.5
    while time.monotonic() < watch_until:
        page = read_page(driver)
        assert page["pulse_id"] == held["pulse_id"], "the paused page kept updating"
        assert page["image"]["bdata"] == held["image"]["bdata"], "the paused heatmap changed"
        assert page["screen"] == held["screen"], "the paused picture on screen changed"
        assert page["image_requests"] == held["image_requests"], "the paused page kept asking for frames"
        time.sleep(0.2)
    newest = status(url)
    assert newest["received"] > received and newest["last_pulse_id"] > pulse_id(held)

    driver.find_element(By.ID, "pause-button").click()
    wait_until(lambda: read_page(driver)["pause"] == "Pause", timeout=UPDATE_TIMEOUT_S, message="button not Pause")
    caught_up = wait_until(
        lambda: (lambda page: page if pulse_id(page) >= newest["last_pulse_id"] else None)(read_page(driver)),
        timeout=UPDATE_TIMEOUT_S, interval=0.1, message="resume did not catch up with the stream")
    assert caught_up["image"]["bdata"] != held["image"]["bdata"]
    wait_until(lambda: read_page(driver)["screen"] != held["screen"], timeout=UPDATE_TIMEOUT_S, interval=0.1,
               message="the picture on screen did not follow the resumed stream")


def test_the_live_layer_paints_what_plotly_draws(served, driver) -> None:
    """Between plotly.js redraws, frames are painted into viewer.js's canvas over the plot; it must
    show exactly what plotly.js would (same colours, same place), or the picture would lie."""
    pause(driver)
    try:
        live_layer_matches_plotly(driver)
    finally:
        resume(driver)


def test_draw_plotly_turns_the_live_layer_off(served, driver) -> None:
    """`?draw=plotly` (the benchmark's comparison): every frame goes through plotly.js."""
    first_window = driver.current_window_handle
    driver.switch_to.new_window("window")
    try:
        driver.get(served[0] + "/?draw=plotly")
        first = wait_until(lambda: (lambda page: page if page["plotly"] and page["plotly"]["bdata"]
                                    and page["pulse_id"] not in (None, "—") else None)(read_page(driver)),
                           timeout=PAGE_TIMEOUT_S, interval=0.2, message="the page never drew the image")
        seen = {first["plotly"]["bdata"]}
        wait_until(lambda: seen.add(read_page(driver)["plotly"]["bdata"]) or len(seen) >= 4,
                   timeout=UPDATE_TIMEOUT_S, interval=0.05, message="plotly.js did not draw new frames")
        page = read_page(driver)
        assert page["live_frames"] == 0 and not page["live_shown"] and page["screen"] is None
    finally:
        driver.close()
        driver.switch_to.window(first_window)


def test_zoom_is_shown_at_native_resolution_and_settings_apply(served, driver) -> None:
    relayout = "Plotly.relayout(document.querySelector('#image-graph .js-plotly-plot'), arguments[0]);"
    # A box zoom on pixels x 100..149, y 200..239 (the y axis runs downwards).
    driver.execute_script(relayout, {"xaxis.range": [99.5, 149.5], "yaxis.range": [239.5, 199.5]})
    zoomed = wait_until(lambda: (lambda page: page if page["image"]["x0"] == 100 else None)(read_page(driver)),
                        timeout=UPDATE_TIMEOUT_S, interval=0.2, message="the zoomed region never arrived")
    assert zoomed["image"]["shape"] == "40, 50"
    assert zoomed["image"]["dx"] == 1 and zoomed["image"]["y0"] == 200
    # Once zoomed, the live layer lines up with the new axes (each bin is ~15 screen pixels now).
    wait_until(lambda: read_page(driver)["live_shown"], timeout=UPDATE_TIMEOUT_S, interval=0.1,
               message="the live layer did not come back after zooming")
    pause(driver)
    try:
        result = driver.execute_async_script(COMPARE_JS)
        assert "error" not in result and result["shown"] and result["n"] >= 50 and result["bad"] == 0, result
        assert result["offset"] <= 1.0, result
    finally:
        resume(driver)

    driver.execute_script(relayout, {"xaxis.autorange": True, "yaxis.autorange": True})
    full = wait_until(lambda: (lambda page: page if page["image"]["x0"] != 100 else None)(read_page(driver)),
                      timeout=UPDATE_TIMEOUT_S, interval=0.2, message="zooming out did not restore the full frame")
    rows, cols = (int(n) for n in full["image"]["shape"].split(","))
    assert full["image"]["dx"] > 1 and rows < 480 and cols > 50

    Select(driver.find_element(By.ID, "image-colormap")).select_by_value("Jet")
    wait_until(lambda: read_page(driver)["image"]["colorscale"] == "Jet", timeout=UPDATE_TIMEOUT_S, interval=0.2,
               message="the colour map did not change")
    # The live layer paints with the new colour scale too (its colour table comes from plotly's).
    wait_until(lambda: read_page(driver)["live_shown"], timeout=UPDATE_TIMEOUT_S, interval=0.1,
               message="the live layer did not come back after the colour map changed")
    pause(driver)
    try:
        live_layer_matches_plotly(driver)
    finally:
        resume(driver)
    Select(driver.find_element(By.ID, "image-colormap")).select_by_value("Viridis")


def test_export_csv_downloads_the_readings(served, driver, downloads: Path) -> None:
    url = served[0]
    before = set(downloads.iterdir())
    channels = status(url)["channels"]
    driver.find_element(By.ID, "export-csv-button").click()

    def finished() -> list[Path]:
        new = [p for p in set(downloads.iterdir()) - before if p.suffix == ".csv"]
        partial = [p for p in downloads.iterdir() if p.name.endswith(".crdownload")]
        return new if new and not partial else []

    (csv_file,) = wait_until(finished, timeout=UPDATE_TIMEOUT_S, interval=0.2, message="no CSV was downloaded")
    assert csv_file.name.startswith("readings-")
    text = csv_file.read_text(encoding="utf-8")
    header = text.splitlines()[0].split(",")
    assert header == ["pulse_id", "timestamp", "timestamp_epoch", *channels, *STATS_COLUMNS]
    frame = pd.read_csv(io.StringIO(text))
    assert len(frame) > 50
    assert (np.diff(frame["pulse_id"]) == 1).all(), "pulse ids in the export are not consecutive"
    assert frame["timestamp"].str.endswith("Z").all()
    assert frame["timestamp_epoch"].iloc[-1] - frame["timestamp_epoch"].iloc[0] <= 60  # the "1 min" window


def test_every_request_goes_to_this_server(served, driver) -> None:
    """Runs last: by now the page has loaded, updated, opened a second window and downloaded a file."""
    url = served[0]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    requested: set[str] = set()
    sockets: set[str] = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent" and params.get("documentURL", "").startswith(origin):
            requested.add(params["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            sockets.add(params["url"])
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert driver.current_url.startswith(origin)
    assert any("plotly" in u for u in requested) and any("_dash-update-component" in u for u in requested)
    assert resources
    foreign = sorted(u for u in requested | set(resources) | sockets
                     if not (u.startswith(origin + "/") or u.startswith(("data:", "blob:"))))
    assert not foreign, f"the page reached beyond its own server: {foreign[:10]}"
