"""History charts in headless Chromium, against a stream whose pulse time runs 10x faster than the clock
(so a minute of history takes seconds): each bucket's min-max band beside its mean, a gap where the
stream was silent, the "1 min" window exactly the last 60 s of pulse time (the rows its CSV holds),
the time axis in UTC, pulse ids as full integers, centroid and size on separate axes, the fourth
chart's empty state and beam statistics.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from tests.browser import UPDATE_TIMEOUT_S, DesignedStream, chrome, choose, open_page, require_browser, served
from tests.helpers import wait_until

require_browser()
pytestmark = pytest.mark.browser

FIRST_PULSE = 15_000_000_000  # SwissFEL-sized pulse ids
PULSE_PERIOD_S = 0.5  # pulse time per message; messages go out at 20 Hz: pulse time runs 10x faster


def frame(pulse_id: int) -> dict[str, Any]:
    rows, cols = np.mgrid[0:60, 0:80]
    image = 10.0 + 500.0 * np.exp(-0.5 * (((cols - 40) / 3.0) ** 2 + ((rows - 30) / 2.0) ** 2))
    # energy alternates 5.0 / 5.5: a bucket's mean is 5.25, its band spans 5.0-5.5
    return {"image": image, "beam_energy": np.float64(5.0 if pulse_id % 2 else 5.5),
            "repetition_rate": np.float64(2.0)}


@pytest.fixture(scope="module")
def stream() -> Iterator[DesignedStream]:
    with DesignedStream(frame, rate_hz=20, first_pulse_id=FIRST_PULSE, pulse_period_s=PULSE_PERIOD_S) as designed:
        yield designed


@pytest.fixture(scope="module")
def url(stream: DesignedStream) -> Iterator[str]:
    with served(["--stream", stream.address]) as (base, _registry):
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chrome((1920, 1080)) as d:
        yield d


def chart(driver: Any, graph_id: str) -> dict[str, Any]:
    """The chart's traces and axes as plotly.js holds them (gd.data, gd.layout)."""
    return driver.execute_script("""
        const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
        if (!gd || !gd.data) return null;
        const ticks = Array.from(gd.querySelectorAll('.xtick text')).map(t => t.textContent);
        return {traces: gd.data.map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
                                           yaxis: t.yaxis || 'y', fill: t.fill || null})),
                layout: {x: gd.layout.xaxis, y: gd.layout.yaxis, y2: gd.layout.yaxis2 || null,
                         annotations: gd.layout.annotations || []},
                ticks: ticks};""", graph_id)


def newest_pulse_time(url: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url + "/api/readings.csv?seconds=1", timeout=10) as reply:
        rows = pd.read_csv(io.StringIO(reply.read().decode()))
    return float(rows["timestamp_epoch"].iloc[-1])


def test_band_and_mean_window_and_gap(url: str, driver: Any, stream: DesignedStream) -> None:
    open_page(driver, url)
    # a minute of pulse time takes 6 s
    wait_until(lambda: (newest_pulse_time(url) - stream.first_time) > 75, timeout=60, message="75 s of pulse time")
    stream.pause()  # 3 s of silence = 30 s of pulse time missing
    silent_from = newest_pulse_time(url)
    time.sleep(3)  # not a synchronisation: the silence itself is what is tested (a real outage of the stream)
    stream.resume()
    wait_until(lambda: newest_pulse_time(url) > silent_from + 45, timeout=60, message="pulses after the gap")
    wait_until(lambda: len([v for v in chart(driver, "energy-history-graph")["traces"][1]["y"] if v is not None]) > 10,
               timeout=UPDATE_TIMEOUT_S)
    energy = chart(driver, "energy-history-graph")
    band, mean = energy["traces"]
    assert band["fill"] == "toself"
    # the band: per bucket a closed shape from its max (5.5) down to its min (5.0), then a gap
    quads = [band["y"][i:i + 5] for i in range(0, len(band["y"]), 5)]
    assert len(band["y"]) == 5 * len(mean["y"])  # one quad (or five gaps) per bucket
    filled = [q for q in quads if q[0] is not None]
    assert all(q[0] == q[1] >= q[2] == q[3] and q[4] is None for q in filled), filled
    assert sum(q[:4] == [5.5, 5.5, 5.0, 5.0] for q in filled) >= len(filled) - 2  # all but partial buckets
    values = [m for m in mean["y"] if m is not None]
    assert len(values) > 10
    assert sum(m == pytest.approx(5.25, abs=0.06) for m in values) >= len(values) - 2  # all but partial buckets
    # a gap: empty buckets between filled ones, about 30 s of pulse time
    xs = [x for x, m in zip(mean["x"], mean["y"]) if m is not None]
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert max(gaps) >= 25_000, f"largest step between points {max(gaps)} ms"
    index = mean["y"].index(None, next(i for i, m in enumerate(mean["y"]) if m is not None))
    assert any(m is not None for m in mean["y"][index:]), "points after the gap"
    # the window: 1 min of pulse time (buckets of 2 s: middles from first to last span 58 s), in UTC;
    # the chart is at most one tick (1 s, 10 s of this stream's pulse time) behind the stream
    newest = newest_pulse_time(url)
    first_x, last_x = mean["x"][0] / 1000.0, mean["x"][-1] / 1000.0
    assert 56 <= last_x - first_x <= 60, (first_x, last_x)
    assert newest - 25 <= last_x <= newest, (last_x, newest)
    assert energy["layout"]["x"]["title"]["text"] == "time (UTC)"
    tick = next(t for t in energy["ticks"] if re.fullmatch(r"\d\d:\d\d:\d\d", t))
    assert any(time.strftime("%H:%M:%S", time.gmtime(t)) == tick for t in np.arange(first_x - 120, newest + 120, 1.0)), (
        tick, "a tick label is a UTC time of the window")
    # the CSV of "1 min" holds the rows of the last 60 s of pulse time
    import urllib.request

    with urllib.request.urlopen(url + "/api/readings.csv?seconds=60", timeout=10) as reply:
        rows = pd.read_csv(io.StringIO(reply.read().decode()))
    assert rows["timestamp_epoch"].iloc[0] >= rows["timestamp_epoch"].iloc[-1] - 60
    assert rows["timestamp_epoch"].iloc[0] < rows["timestamp_epoch"].iloc[-1] - 55


def test_pulse_id_axis_reads_full_integers(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    driver.find_element(By.CSS_SELECTOR, "#history-xaxis input[value='pulse_id']").click()
    wait_until(lambda: (chart(driver, "rate-history-graph") or {}).get("layout", {}).get("x", {}).get("tickformat") == "d",
               timeout=UPDATE_TIMEOUT_S)
    wait_until(lambda: chart(driver, "rate-history-graph")["ticks"], timeout=UPDATE_TIMEOUT_S)
    ticks = chart(driver, "rate-history-graph")["ticks"]
    assert all(re.fullmatch(r"1500000\d{4}", t.replace(",", "")) for t in ticks), ticks
    assert chart(driver, "rate-history-graph")["layout"]["x"]["title"]["text"] == "pulse id"
    driver.find_element(By.CSS_SELECTOR, "#history-xaxis input[value='time']").click()


def test_centroid_and_size_on_their_own_axes_with_units(url: str, driver: Any) -> None:
    open_page(driver, url)
    wait_until(lambda: chart(driver, "beam-history-graph") and len(chart(driver, "beam-history-graph")["traces"]) == 8,
               timeout=UPDATE_TIMEOUT_S)
    beam = chart(driver, "beam-history-graph")
    axes = {t["name"]: t["yaxis"] for t in beam["traces"] if not t["name"].endswith("min–max")}
    assert axes == {"centroid x": "y", "centroid y": "y", "rms x": "y2", "rms y": "y2"}
    assert beam["layout"]["y"]["title"]["text"] == "centroid (px)"
    assert beam["layout"]["y2"]["title"]["text"] == "rms size (px)"
    for graph, unit in (("energy-history-graph", "GeV"), ("rate-history-graph", "Hz")):
        assert chart(driver, graph)["layout"]["y"]["title"]["text"] == unit


def test_fourth_chart_empty_state_then_a_beam_statistic(url: str, driver: Any) -> None:
    open_page(driver, url)
    wait_until(lambda: chart(driver, "channel-history-graph")["layout"]["annotations"], timeout=UPDATE_TIMEOUT_S)
    assert "choose a channel" in chart(driver, "channel-history-graph")["layout"]["annotations"][0]["text"]
    choose(driver, "history-channel-select", "beam_rms_x")
    wait_until(lambda: any(t["name"] == "beam_rms_x" for t in chart(driver, "channel-history-graph")["traces"]),
               timeout=UPDATE_TIMEOUT_S)
    fourth = chart(driver, "channel-history-graph")
    assert fourth["layout"]["y"]["title"]["text"] == "px"
    wait_until(lambda: any(v is not None for v in chart(driver, "channel-history-graph")["traces"][1]["y"]),
               timeout=UPDATE_TIMEOUT_S)
    sizes = [v for v in chart(driver, "channel-history-graph")["traces"][1]["y"] if v is not None]
    assert all(2.0 < v < 4.5 for v in sizes), sizes  # the spot's sigma_x is 3 px


def test_statistics_table_lists_the_beam(url: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, url)
    driver.find_element(By.ID, "details-toggle").click()
    table = driver.find_element(By.ID, "history-stats")
    wait_until(lambda: "beam_centroid_x" in table.text and "beam_energy (GeV)" in table.text, timeout=UPDATE_TIMEOUT_S)
    assert "beam_rms_y (px)" in table.text and "beam_intensity (counts)" in table.text
