"""History charts: time buckets (components/history_figures.py) and the per-browser updates
(callbacks/history_panel.history_update): full figures, then increments; min-max band and mean per
bucket, an empty bucket is a gap, a window is exactly the last N s of pulse time (the rows its CSV holds).

Pulse times are multiples of 1/16 s (exact in binary), so bucket membership is exact; expected values
are computed here with plain Python from the values fed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest
from dash import no_update

from callbacks.history_panel import history_update
from components.history_figures import (MAX_POINTS, NICE_WIDTHS, WINDOWS, Chart, Series, bucket_width, bucketize,
                                        extend_data, history_figure, plotly_text, traces, window_statistics)
from components.history_panel import GRAPHS, charts_for
from stream.ring_buffer import RingBuffer
from tests.web_fixtures import T0, FedCamera, camera_values, designed_image

STEP = 1 / 16  # s between pulses (16 Hz)
IMAGE = designed_image(8, 8)


def buffer_of(values: list[float], times: list[float], name: str = "e") -> RingBuffer:
    buffer = RingBuffer(10_000)
    for index, (value, stamp) in enumerate(zip(values, times)):
        buffer.append(1000 + index, stamp, {name: value})
    return buffer


def expected_buckets(values, times, width: float, first: int, last: int) -> list[tuple | None]:
    groups: dict[int, list[float]] = defaultdict(list)
    for value, stamp in zip(values, times):
        if math.isfinite(value):
            groups[math.floor(stamp / width)].append(value)
    def shown(v: float) -> float:  # charts carry 6 significant digits (the CSV all of them)
        return float(f"{v:.6g}")

    return [(shown(min(groups[i])), shown(sum(groups[i]) / len(groups[i])), shown(max(groups[i])))
            if groups.get(i) else None for i in range(first, last + 1)]


def as_triples(stats: dict[str, list]) -> list[tuple | None]:
    return [None if mean is None else (lo, mean, hi) for lo, mean, hi in zip(stats["min"], stats["mean"], stats["max"])]


# ------------------------------------------------------------------------------------------ bucket width


@pytest.mark.parametrize("window", list(WINDOWS) + ["bogus"])
@pytest.mark.parametrize("rate", [1.0, 10.0, 100.0, 1000.0, 0.0, float("nan"), -5.0, float("inf")])
def test_bucket_width_keeps_a_window_under_max_points_and_above_a_few_pulses(window: str, rate: float) -> None:
    span = 5000.0
    width = bucket_width(window, rate, span)
    seconds = WINDOWS.get(window, WINDOWS["1 min"]) or span
    assert width in NICE_WIDTHS or width == math.ceil(width)
    assert seconds / width <= MAX_POINTS
    usable = rate if math.isfinite(rate) and rate > 0 else 100.0
    assert width >= 2.5 / usable - 1e-9  # never a bucket thinner than 2.5 pulse intervals: no false gaps


def test_one_minute_at_100_hz_is_300_buckets_of_200_ms() -> None:
    assert bucket_width("1 min", 100.0, 10.0) == 0.2
    assert bucket_width("10 min", 100.0, 10.0) == 2
    assert bucket_width("1 h", 100.0, 10.0) == 12
    assert bucket_width("1 min", 1.0, 10.0) == 2.5  # a slow stream: 2.5 pulses a bucket


# ------------------------------------------------------------------------------------------ bucketize


def test_buckets_hold_min_mean_and_max_of_their_pulses() -> None:
    times = [T0 + k * STEP for k in range(40)]
    values = [5.0 + (k * 37 % 11) / 10 for k in range(40)]
    history = buffer_of(values, times).read()
    first, last = math.floor(times[0] / 0.5), math.floor(times[-1] / 0.5)
    data = bucketize(history, 0.5, first, last, ["e"], "time")
    assert as_triples(data["e"]) == expected_buckets(values, times, 0.5, first, last)
    # x is each bucket's middle in ms since the epoch (UTC)
    assert data["x"] == [(i + 0.5) * 500.0 for i in range(first, last + 1)]


def test_an_empty_bucket_is_a_gap_and_nan_values_are_left_out() -> None:
    times = [T0 + k * STEP for k in range(8)] + [T0 + 3 + k * STEP for k in range(8)]  # silent 2.5 s
    values = [1.0, 3.0, float("nan"), 2.0] * 4
    history = buffer_of(values, times).read()
    first, last = math.floor(times[0] / 0.5), math.floor(times[-1] / 0.5)
    data = bucketize(history, 0.5, first, last, ["e", "missing"], "time")
    triples = as_triples(data["e"])
    assert triples == expected_buckets(values, times, 0.5, first, last)
    assert triples[0] == (1.0, 2.0, 3.0) and triples[1:6] == [None] * 5  # the outage: gaps, not a line
    assert data["missing"] == {"mean": [None] * len(triples), "min": [None] * len(triples),
                               "max": [None] * len(triples)}
    json.dumps(data, allow_nan=False)  # gaps are null, never NaN


def test_pulse_id_axis_uses_each_buckets_last_pulse_id() -> None:
    times = [T0 + k * STEP for k in range(16)] + [T0 + 2 + k * STEP for k in range(8)]
    buffer = RingBuffer(100)
    for k, stamp in enumerate(times):
        buffer.append(15_000_000_000 + k, stamp, {"e": 1.0})
    first = math.floor(times[0] / 0.5)
    data = bucketize(buffer.read(), 0.5, first, first + 4, ["e"], "pulse_id")
    assert data["x"] == [15_000_000_007, 15_000_000_015, None, None, 15_000_000_023]
    assert all(isinstance(x, int) for x in data["x"] if x is not None)


# ------------------------------------------------------------------------------------------ figures


CHART = Chart("Beam energy", "GeV", (Series("e", "energy"),))
TWO_AXES = Chart("Centroid and size", "centroid (px)", (Series("a", "centroid x"), Series("b", "rms x", "y2")),
                 unit2="rms size (px)")


def test_each_series_is_a_band_and_a_mean_line() -> None:
    data = {"x": [10, 20, 30], "e": {"mean": [2.0, None, 4.0], "min": [1.0, None, 3.0], "max": [3.0, None, 5.0]}}
    band, mean = traces(CHART, data, 10)
    # each bucket's min-max as its own closed shape, an empty bucket as five gaps (trimming stays aligned)
    assert band["x"] == [5, 15, 15, 5, None, None, None, None, None, None, 25, 35, 35, 25, None]
    assert band["y"] == [3.0, 3.0, 1.0, 1.0, None, None, None, None, None, None, 5.0, 5.0, 3.0, 3.0, None]
    assert band["fill"] == "toself" and band["line"]["width"] == 0 and band["hoverinfo"] == "skip"
    assert mean["y"] == [2.0, None, 4.0] and mean["connectgaps"] is False and mean["name"] == "energy"


def test_pulse_id_axis_reads_full_integers() -> None:
    figure = history_figure(CHART, {"x": [15_000_000_000]}, "pulse_id", "r", 1)
    axis = figure["layout"]["xaxis"]
    assert axis["tickformat"] == "d" and axis["hoverformat"] == "d" and axis["title"]["text"] == "pulse id"


def test_time_axis_is_labelled_utc() -> None:
    axis = history_figure(CHART, {"x": []}, "time", "r", 200)["layout"]["xaxis"]
    assert axis["type"] == "date" and axis["title"]["text"] == "time (UTC)"


def test_second_axis_and_units() -> None:
    layout = history_figure(TWO_AXES, {"x": []}, "time", "r", 200)["layout"]
    assert layout["yaxis"]["title"]["text"] == "centroid (px)"
    assert layout["yaxis2"]["title"]["text"] == "rms size (px)" and layout["yaxis2"]["overlaying"] == "y"
    assert [t["yaxis"] for t in traces(TWO_AXES, {"x": []}, 200)] == ["y"] * 2 + ["y2"] * 2


def test_a_chart_without_series_says_what_to_do() -> None:
    figure = history_figure(Chart("", "", (), empty="choose a channel"), {"x": []}, "time", "r", 200)
    assert figure["data"] == []
    assert figure["layout"]["annotations"][0]["text"] == "choose a channel"
    assert figure["layout"]["xaxis"] == {"visible": False}


def test_stream_text_in_titles_is_escaped_for_plotly() -> None:
    hostile = '<a href="https://example.invalid">x</a> & <b>'
    assert plotly_text(hostile) == '&lt;a href="https://example.invalid"&gt;x&lt;/a&gt; &amp; &lt;b&gt;'
    figure = history_figure(Chart(hostile, hostile, (Series("e", hostile),)), {"x": []}, "time", "r", 200)
    assert "<" not in figure["layout"]["title"]["text"] and "<" not in figure["layout"]["yaxis"]["title"]["text"]


def test_extend_data_has_a_band_and_a_mean_per_series_in_figure_order() -> None:
    data = {"x": [10, 20], "a": {"mean": [1.0, 2.0], "min": [0.5, 1.5], "max": [1.5, 2.5]},
            "b": {"mean": [None, 3.0], "min": [None, 2.0], "max": [None, 4.0]}}
    value, indices, max_points = extend_data(TWO_AXES, data, 123, 10)
    assert indices == [0, 1, 2, 3]
    assert max_points == {"x": [615, 123, 615, 123], "y": [615, 123, 615, 123]}  # five band points a bucket
    assert value["x"][1] == value["x"][3] == [10, 20]
    assert value["y"][0] == [1.5, 1.5, 0.5, 0.5, None, 2.5, 2.5, 1.5, 1.5, None] and value["y"][1] == [1.0, 2.0]
    assert value["y"][2] == [None] * 5 + [4.0, 4.0, 2.0, 2.0, None] and value["y"][3] == [None, 3.0]
    figure = history_figure(TWO_AXES, data, "time", "r", 10)
    assert [t["y"] for t in figure["data"]] == value["y"]  # an increment continues the figure's traces
    assert extend_data(CHART, {"x": [], "e": {}}, 10, 10) is None


def test_window_statistics_ignore_nan_and_match_numpy() -> None:
    values = [5.0, float("nan"), 5.5, 6.0, float("inf"), 4.5]
    history = buffer_of(values, [T0 + k for k in range(6)]).read()
    stats = window_statistics(history, ["e", "missing"])
    finite = np.array([5.0, 5.5, 6.0, 4.5])
    assert stats["e"] == {"mean": pytest.approx(finite.mean()), "std": pytest.approx(finite.std()), "min": 4.5,
                          "max": 6.0, "n": 4}
    assert stats["missing"]["n"] == 0 and math.isnan(stats["missing"]["mean"])


# ------------------------------------------------------------------------------------------ charts per stream


def test_default_charts_follow_the_stream() -> None:
    camera = FedCamera()
    camera.feed(camera_values(IMAGE))
    energy, rate, beam, fourth = charts_for(camera.layout, camera.axes, None)
    assert energy.columns == ("beam_energy",) and rate.columns == ("repetition_rate",)
    assert beam.columns == ("beam_centroid_x", "beam_centroid_y", "beam_rms_x", "beam_rms_y")
    assert fourth.series == () and fourth.empty
    pipeline = FedCamera()
    pipeline.feed({"image": IMAGE, "x_axis": np.arange(8, 0, -1, dtype=np.float32) * 2.0,
                   "y_axis": np.arange(8, dtype=np.float32) * 2.0 + 1, "intensity": np.int64(5)})
    first, second, beam, _ = charts_for(pipeline.layout, pipeline.axes, "intensity")
    assert first.columns == ("beam_intensity",)  # no beam energy: never an empty chart
    assert second.columns == ("beam_fit_amplitude_x", "beam_fit_amplitude_y")
    assert beam.columns == ("beam_centroid_x_um", "beam_centroid_y_um", "beam_rms_x_um", "beam_rms_y_um")
    assert "µm" in beam.unit and "µm" in beam.unit2


# ------------------------------------------------------------------------------------------ history_update


def fed_energy(count: int, start: int = 0, camera: FedCamera | None = None, gap_after: int | None = None
               ) -> tuple[FedCamera, list[float], list[float]]:
    camera = camera or FedCamera()
    values, times = [], []
    for k in range(start, start + count):
        stamp = T0 + k * STEP + (5.0 if gap_after is not None and k >= gap_after else 0.0)
        energy = 5.0 + (k * 7 % 13) / 100
        camera.feed(camera_values(IMAGE, energy=energy), pulse_id=1 + k, timestamp=stamp)
        values.append(energy)
        times.append(stamp)
    return camera, values, times


def energy_buckets(figure_or_extend, extend: bool = False) -> tuple[list, list]:
    """(x, [(min, mean, max) or (None, None, None)]) of the energy chart, from its band and mean traces."""
    if extend:
        data = figure_or_extend[0]
        band_y, mean_x, mean_y = data["y"][0], data["x"][1], data["y"][1]
    else:
        band, mean = figure_or_extend["data"][:2]
        band_y, mean_x, mean_y = band["y"], mean["x"], mean["y"]
    quads = [band_y[i:i + 5] for i in range(0, len(band_y), 5)]
    assert len(quads) == len(mean_y)
    return mean_x, [(q[2], m, q[0]) for q, m in zip(quads, mean_y)]


def test_full_figures_hold_exactly_the_rows_of_the_windows_csv() -> None:
    camera, _, _ = fed_energy(16 * 90)  # 90 s at 16 Hz
    figures, extends, response = history_update(camera, "1 min", "time", None, None, True)
    assert extends == [no_update] * len(GRAPHS)
    width = response["w"]
    window = camera.buffer.window(60.0)  # what /api/readings.csv?seconds=60 exports
    stamps, energy = window.column("timestamp"), window.column("beam_energy")
    assert stamps[-1] - stamps[0] <= 60.0 and camera.buffer.newest_time() - 60.0 <= stamps[0]
    first, complete = math.floor(stamps[0] / width), math.floor(stamps[-1] / width) - 1
    x, triples = energy_buckets(figures[0])
    assert x == pytest.approx([(i + 0.5) * width * 1000 for i in range(first, complete + 1)], abs=0.05)
    assert [None if t[1] is None else t for t in triples] == expected_buckets(list(energy), list(stamps), width,
                                                                               first, complete)
    assert response["next"] == complete + 1


def test_increments_neither_repeat_nor_skip_a_bucket_and_are_small() -> None:
    camera, values, times = fed_energy(16 * 20)
    figures, _, response = history_update(camera, "1 min", "pulse_id", None, None, True)
    x, triples = energy_buckets(figures[0])
    first = math.floor((times[-1] - 60) / response["w"])  # the window when the browser connected
    pulse = 16 * 20
    for burst in (3, 16, 0, 1, 40, 7, 16):
        _, more_values, more_times = fed_energy(burst, pulse, camera)
        pulse += burst
        values += more_values
        times += more_times
        figures, extends, response = history_update(camera, "1 min", "pulse_id", None, response, False)
        assert figures == [no_update] * len(GRAPHS)
        if extends[0] is not no_update:
            more_x, more_triples = energy_buckets(extends[0], extend=True)
            x += more_x
            triples += more_triples
            # at most 5 KiB per second of pulse time the increment covers (a tick is 1 s)
            assert len(json.dumps([e for e in extends if e is not no_update])) < 5 * 1024 * max(1.0, burst / 16)
    expected = expected_buckets(values, times, response["w"], first, response["next"] - 1)
    assert [None if t[1] is None else t for t in triples] == expected
    shown = [pulse_id for pulse_id in x if pulse_id is not None]
    assert len(x) == len(expected) and shown == sorted(set(shown))  # each bucket once, in order


def test_a_silent_stream_is_a_gap_in_the_chart() -> None:
    camera, values, times = fed_energy(64, gap_after=32)  # 5 s without pulses in the middle
    figures, _, response = history_update(camera, "1 min", "time", None, None, True)
    x, triples = energy_buckets(figures[0])
    gaps = [t for t in triples if t[1] is None]
    assert len(gaps) >= 5 / response["w"] - 2  # every silent bucket is sent, as a gap


def test_nothing_new_sends_nothing_and_settings_send_whole_figures() -> None:
    camera, _, _ = fed_energy(100)
    figures, extends, response = history_update(camera, "1 min", "time", None, None, True)
    again = history_update(camera, "1 min", "time", None, response, False)
    assert again[0] == [no_update] * 4 and again[1] == [no_update] * 4 and again[2] == response
    other = history_update(camera, "10 min", "time", None, response, False)  # the key changed
    assert all(figure is not no_update for figure in other[0])
    channel = history_update(camera, "1 min", "time", "beam_energy", response, False)
    assert channel[0][3]["data"][1]["name"] == "beam_energy"
    bogus = history_update(camera, "1 min", "time", "<no such channel>", None, True)
    assert bogus[0][3]["data"] == []  # a channel the stream lacks is ignored, not an error


def test_before_the_first_pulse_the_charts_are_empty_figures() -> None:
    figures, extends, response = history_update(FedCamera(), "1 min", "time", None, None, True)
    assert all(figure["data"] == [] or all(t["x"] == [] for t in figure["data"]) for figure in figures)
    assert response["next"] is None and extends == [no_update] * 4


def test_a_channel_with_a_large_offset_keeps_its_spread() -> None:
    """Epoch-second values (a stream's own timestamp channel) must not be rounded to 1000 s steps."""
    times = [T0 + k * STEP for k in range(64)]
    values = [1.8e9 + k * STEP for k in range(64)]
    history = buffer_of(values, times).read()
    first, last = math.floor(times[0] / 1.0), math.floor(times[-1] / 1.0)
    data = bucketize(history, 1.0, first, last, ["e"], "time")
    means = [m for m in data["e"]["mean"] if m is not None]
    assert len(set(means)) == len(means) > 2  # every bucket its own value
    assert means == pytest.approx([v for v in means], abs=1e-3)
    assert max(means) - min(means) == pytest.approx(values[-1] - values[0] - 15 * STEP, abs=1.0)
