"""components/readings_csv.py: the CSV of the recorded readings (the export button and /api/readings.csv).

Columns: pulse_id, timestamp (ISO-8601 UTC), timestamp_epoch, every scalar channel named as in the
stream, then the computed ones (beam statistics in pixels, calibrated *_um copies, roi_<name>_*).
Values are compared with what was fed, exactly.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

import numpy as np
import pandas as pd

from components.formatting import iso_utc
from components.readings_csv import readings_csv
from stream.rois import Roi
from stream.statistics import STATS_COLUMNS
from tests.web_fixtures import T0, FedCamera, camera_values, designed_image
from stream.camera import Limits

WEIRD_NAMES = ("SARCL02-DBPM110:X1", "name with spaces", "comma,name", 'quote"name', "Δ-energy µJ", "=1+1")


def read(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def fed(n: int = 30, history: int = 1000) -> tuple[FedCamera, list[dict[str, Any]]]:
    camera = FedCamera(limits=Limits(history=history))
    rng = np.random.default_rng(11)
    sent = []
    for i in range(n):
        values: dict[str, Any] = {
            "image": rng.uniform(0, 10, size=(12, 16)),
            "image_profile_x": rng.uniform(0, 1, 16),  # arrays are not CSV columns
            "beam_energy": np.float64(np.nan if i == 4 else rng.uniform(5, 6)),
            "repetition_rate": np.float64(100.0),
            "counter": np.int32(i * 3 - 40),
        }
        for j, name in enumerate(WEIRD_NAMES):
            values[name] = np.float64(i + j / 10)
        stamp = T0 + 0.123456 + 0.01 * i
        camera.feed(values, pulse_id=15_000_000_000 + i, timestamp=stamp)
        sent.append({"pulse_id": 15_000_000_000 + i, "timestamp": stamp, **values})
    return camera, sent


def test_columns_in_order_with_the_stream_names() -> None:
    camera, _ = fed()
    frame = read(readings_csv(camera.buffer.read()))
    scalars = ["beam_energy", "repetition_rate", "counter", *WEIRD_NAMES]
    expected = ["pulse_id", "timestamp", "timestamp_epoch"] + ["'=1+1" if n == "=1+1" else n for n in scalars]
    assert list(frame.columns) == expected + list(STATS_COLUMNS)
    assert "image" not in frame.columns and "image_profile_x" not in frame.columns


def test_values_are_the_ones_received() -> None:
    camera, sent = fed()
    history = camera.buffer.read()
    frame = read(readings_csv(history))
    assert frame["pulse_id"].dtype.kind == "i"
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in sent]  # SwissFEL-sized ids, exactly
    assert list(frame["timestamp_epoch"]) == [row["timestamp"] for row in sent]
    for name in ("beam_energy", "repetition_rate", "counter", "SARCL02-DBPM110:X1", "comma,name", "Δ-energy µJ"):
        expected = np.array([float(row[name]) for row in sent])
        assert np.array_equal(frame[name].to_numpy(dtype=float), expected, equal_nan=True), name
    assert math.isnan(frame["beam_energy"][4])  # NaN is an empty cell
    for name in STATS_COLUMNS:
        assert np.array_equal(frame[name].to_numpy(dtype=float), history.column(name), equal_nan=True), name


def test_timestamps_are_iso_8601_utc_and_agree_with_the_readings() -> None:
    camera, sent = fed(5)
    frame = read(readings_csv(camera.buffer.read()))
    for text, row in zip(frame["timestamp"], sent):
        parsed = dt.datetime.fromisoformat(text)
        assert text.endswith("Z") and parsed.utcoffset() == dt.timedelta(0)
        assert abs(parsed.timestamp() - row["timestamp"]) < 1e-6
        assert text == iso_utc(row["timestamp"])  # the same text the readings panel and snapshots show


def test_pulse_times_of_a_100_hz_stream_read_as_sent() -> None:
    camera = FedCamera()
    for k in range(1, 4):
        camera.feed(camera_values(designed_image(4, 4)), timestamp=T0 + k * 0.01)
    frame = read(readings_csv(camera.buffer.read()))
    assert list(frame["timestamp"]) == ["2027-01-15T08:00:00.010000Z", "2027-01-15T08:00:00.020000Z",
                                        "2027-01-15T08:00:00.030000Z"]


def test_computed_columns_regions_and_calibration() -> None:
    camera = FedCamera()
    image = designed_image(48, 64)
    x_axis = np.arange(64, dtype=np.float32) * -2.0 + 100
    y_axis = np.arange(48, dtype=np.float32) * 0.5
    camera.feed({"image": image, "x_axis": x_axis, "y_axis": y_axis})
    camera.rois.replace((Roi("spot", 10, 13, 20, 22), Roi("edge", 63, 64, 0, 48)))
    camera.feed({"image": image, "x_axis": x_axis, "y_axis": y_axis})
    frame = read(readings_csv(camera.buffer.read()))
    computed = list(frame.columns[frame.columns.get_loc("beam_intensity"):])
    assert computed[:len(STATS_COLUMNS)] == list(STATS_COLUMNS)
    assert {"beam_centroid_x_um", "beam_centroid_y_um", "beam_rms_x_um", "beam_rms_y_um",
            "beam_fit_mean_x_um", "beam_fit_sigma_y_um"} <= set(computed)
    assert {"roi_spot_sum", "roi_spot_mean", "roi_spot_max", "roi_edge_sum"} <= set(computed)
    last = frame.iloc[-1]
    spot = image[20:22, 10:13].astype(np.float64)
    assert spot.sum() == 3 * (20_000 + 21_000) + 2 * (10 + 11 + 12)
    assert (last["roi_spot_sum"], last["roi_spot_mean"], last["roi_spot_max"]) == (spot.sum(), spot.mean(), 21012.0)
    edge = image[:, 63].astype(np.float64)
    assert (last["roi_edge_sum"], last["roi_edge_max"]) == (edge.sum(), 47063.0)
    assert math.isnan(frame.iloc[0]["roi_spot_sum"])  # before the regions were set


def test_a_wrapped_buffer_and_an_empty_one() -> None:
    camera, sent = fed(n=25, history=10)
    frame = read(readings_csv(camera.buffer.read()))
    assert list(frame["pulse_id"]) == [row["pulse_id"] for row in sent[-10:]]
    empty = readings_csv(FedCamera().buffer.read())
    assert empty.split("\r\n")[0].split(",")[:3] == ["pulse_id", "timestamp", "timestamp_epoch"]
    assert len(read(empty)) == 0


def test_crlf_and_one_line_per_row() -> None:
    camera, sent = fed(4)
    text = readings_csv(camera.buffer.read())
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert len(text.split("\r\n")) == len(sent) + 2  # header, rows, the empty string after the last CRLF


def test_a_channel_named_like_a_lead_column_does_not_replace_it() -> None:
    camera = FedCamera()
    for i in range(3):
        camera.feed({"timestamp_epoch": np.float64(-1.0 - i), "beam_energy": 5.0},
                    pulse_id=100 + i, timestamp=T0 + i)
    text = readings_csv(camera.buffer.read())
    header = text.split("\r\n")[0].split(",")
    assert len(header) == len(set(header)), header
    frame = read(text)
    assert list(frame["timestamp_epoch"]) == [T0 + i for i in range(3)] and list(frame["pulse_id"]) == [100, 101, 102]
    assert list(frame["timestamp_epoch (channel)"]) == [-1.0, -2.0, -3.0]


def test_formula_names_are_defused_for_spreadsheets() -> None:
    camera = FedCamera()
    camera.feed({"=HYPERLINK(\"x\")": 1.0, "+1": 2.0, "-1": 3.0, "@SUM(A1)": 4.0, "ok": 5.0})
    header = read(readings_csv(camera.buffer.read())).columns
    assert {"'=HYPERLINK(\"x\")", "'+1", "'-1", "'@SUM(A1)", "ok"} <= set(header)


def test_the_csv_streams_in_pieces_that_join_to_the_whole() -> None:
    from components.readings_csv import readings_csv_chunks
    from stream.ring_buffer import RingBuffer

    buffer = RingBuffer(1000)
    for k in range(250):
        buffer.append(k, 1.8e9 + k / 100, {"beam_energy": 5.0 + k / 1000})
    pieces = list(readings_csv_chunks(buffer.read(), rows=100))
    assert len(pieces) == 3 and pieces[0].startswith("pulse_id,") and not pieces[1].startswith("pulse_id")
    assert "".join(pieces) == readings_csv(buffer.read())
    assert "".join(readings_csv_chunks(RingBuffer(10).read())).startswith("pulse_id,timestamp,timestamp_epoch")
