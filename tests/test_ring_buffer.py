"""Ring buffer: wrap-around, late channels, incremental reads, immutable snapshots, latest frame only,
and beam statistics (from profiles and from the image)."""

from __future__ import annotations

import dataclasses
import math
import struct
import sys

import numpy as np
import pytest

import stream.ring_buffer as ring_buffer
from stream.protocol import BsreadError, Decoder
from stream.ring_buffer import STATS_COLUMNS, RingBuffer, beam_statistics, image_statistics
from tests.helpers import make_message
from tests.test_codec import hand_message, lz4_frame, stamp_bytes

T0 = 1_700_000_000.0
# Our names for the statistics columns, mapped to whatever the buffer calls them.
INTENSITY, CENTROID_X, CENTROID_Y, RMS_X, RMS_Y = STATS_COLUMNS


def gaussian_spot(width: int, height: int, cx: float, cy: float, sx: float, sy: float, noise: float = 0.05,
                  seed: int = 0) -> np.ndarray:
    x = np.arange(width, dtype=np.float64)
    y = np.arange(height, dtype=np.float64)
    image = np.outer(np.exp(-0.5 * ((y - cy) / sy) ** 2), np.exp(-0.5 * ((x - cx) / sx) ** 2))
    return image + np.random.default_rng(seed).uniform(0.0, noise, size=(height, width))


def append_energies(buffer: RingBuffer, values: list[float], first_pulse: int = 100) -> None:
    for i, value in enumerate(values):
        buffer.append(make_message(first_pulse + i, {"beam_energy": value}, timestamp=T0 + i))


# ---------------------------------------------------------------------------------- wrap-around


def test_wrap_around_keeps_the_newest_rows_in_order() -> None:
    buffer = RingBuffer(capacity=5)
    append_energies(buffer, [float(i) for i in range(12)])
    assert buffer.count == 12
    history = buffer.read()
    assert (history.start, history.end, len(history)) == (7, 12, 5)
    np.testing.assert_array_equal(history.column("seq"), [7, 8, 9, 10, 11])
    np.testing.assert_array_equal(history.column("pulse_id"), [107, 108, 109, 110, 111])
    np.testing.assert_array_equal(history.column("beam_energy"), [7.0, 8.0, 9.0, 10.0, 11.0])
    np.testing.assert_allclose(history.column("timestamp"), [T0 + i for i in range(7, 12)])


@pytest.mark.parametrize("appended", [1, 4, 5, 6, 10, 11, 23])
def test_read_is_correct_at_every_fill_level(appended: int) -> None:
    capacity = 5
    buffer = RingBuffer(capacity=capacity)
    append_energies(buffer, [float(i) for i in range(appended)])
    history = buffer.read()
    expected = list(range(max(0, appended - capacity), appended))
    np.testing.assert_array_equal(history.column("seq"), expected)
    np.testing.assert_array_equal(history.column("beam_energy"), [float(i) for i in expected])
    for name, column in history.columns.items():
        assert len(column) == len(expected), name


def test_capacity_must_be_at_least_two() -> None:
    with pytest.raises(ValueError):
        RingBuffer(capacity=1)


# ------------------------------------------------------------------------------- late channels


def test_late_channel_gets_nan_for_earlier_rows() -> None:
    buffer = RingBuffer(capacity=100)
    for i in range(3):
        buffer.append(make_message(i, {"beam_energy": 5.0 + i}))
    for i in range(3, 6):
        buffer.append(make_message(i, {"beam_energy": 5.0 + i, "charge": 200.0 + i}))
    buffer.append(make_message(6, {"beam_energy": 11.0}))  # charge missing again
    assert buffer.scalar_channels == ("beam_energy", "charge")
    history = buffer.read()
    charge = history.column("charge")
    assert np.isnan(charge[:3]).all()
    np.testing.assert_array_equal(charge[3:6], [203.0, 204.0, 205.0])
    assert np.isnan(charge[6])
    np.testing.assert_array_equal(history.column("beam_energy"), [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    assert history.scalar_channels == ("beam_energy", "charge")


def test_late_channel_after_wrap_around() -> None:
    buffer = RingBuffer(capacity=4)
    append_energies(buffer, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    buffer.append(make_message(7, {"beam_energy": 7.0, "charge": 1.5}))
    history = buffer.read()
    np.testing.assert_array_equal(history.column("seq"), [3, 4, 5, 6])
    assert np.isnan(history.column("charge")[:3]).all() and history.column("charge")[3] == 1.5


def test_empty_scalar_value_is_nan_and_arrays_strings_are_not_columns() -> None:
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {"beam_energy": 5.1, "profile": np.ones(8), "note": "hello"}))
    buffer.append(make_message(2, {"beam_energy": None, "profile": np.ones(8), "note": "hello"}))
    assert buffer.scalar_channels == ("beam_energy",)
    energy = buffer.read().column("beam_energy")
    assert energy[0] == 5.1 and np.isnan(energy[1])


def test_reserved_names_do_not_overwrite_bookkeeping_columns() -> None:
    buffer = RingBuffer(capacity=10)
    channels = {"pulse_id": 1.0, "timestamp": 2.0, "seq": 3.0, "x": 5.0}
    channels.update({name: 4.0 for name in STATS_COLUMNS})
    buffer.append(make_message(77, channels, timestamp=T0))
    history = buffer.read()
    assert history.column("pulse_id")[0] == 77
    assert history.column("timestamp")[0] == T0
    assert history.column("seq")[0] == 0
    for name in STATS_COLUMNS:
        assert np.isnan(history.column(name)[0])  # no image/profiles: statistics are NaN
    assert buffer.scalar_channels == ("x",)


def test_number_of_scalar_channels_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ring_buffer, "MAX_SCALAR_CHANNELS", 3)
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {f"ch{i}": float(i) for i in range(5)}))
    buffer.append(make_message(2, {f"ch{i}": float(i) for i in range(6)}))
    assert buffer.scalar_channels == ("ch0", "ch1", "ch2")
    assert set(buffer.read().columns) >= {"ch0", "ch1", "ch2"}
    assert not {"ch3", "ch4", "ch5"} & set(buffer.read().columns)


def test_non_finite_values_are_kept_as_gaps_and_counted() -> None:
    buffer = RingBuffer(capacity=10)
    for i, value in enumerate([1.0, math.inf, math.nan, 2.0]):
        buffer.append(make_message(i, {"e": value}))
    column = buffer.read().column("e")
    assert column[0] == 1.0 and np.isnan(column[1]) and np.isnan(column[2]) and column[3] == 2.0
    assert buffer.nonfinite_values == 2


def test_integer_and_bool_scalars_become_float_columns() -> None:
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {"size": np.int64(640), "flag": np.bool_(True), "big": np.uint64(2**53)}))
    history = buffer.read()
    assert history.column("size")[0] == 640.0 and history.column("flag")[0] == 1.0
    assert history.column("big")[0] == float(2**53)


def test_corrupt_scalar_is_reported_and_skipped() -> None:
    reported: list[BsreadError] = []
    buffer = RingBuffer(capacity=10, on_bad_value=reported.append)
    channels = [{"name": "good"}, {"name": "bad", "compression": "lz4"}]
    parts = hand_message(channels, [struct.pack("<d", 1.0), stamp_bytes(),
                                    struct.pack("<I", 8) + b"\xff" * 5, stamp_bytes()])
    buffer.append(Decoder().decode(parts))
    assert [e.reason for e in reported] == ["bad-compression"]
    assert buffer.count == 1
    assert buffer.read().column("good")[0] == 1.0
    assert "bad" not in buffer.scalar_channels

    ok = hand_message(channels, [struct.pack("<d", 2.0), stamp_bytes(), lz4_frame(struct.pack("<d", 3.0)),
                                 stamp_bytes()])
    buffer.append(Decoder().decode(ok))
    np.testing.assert_array_equal(buffer.read(since=1).column("bad"), [3.0])


# ---------------------------------------------------------------------------- incremental reads


def test_read_since_returns_only_newer_rows() -> None:
    buffer = RingBuffer(capacity=100)
    append_energies(buffer, [1.0, 2.0, 3.0])
    first = buffer.read()
    assert first.end == 3
    append_energies(buffer, [4.0, 5.0], first_pulse=200)
    newer = buffer.read(since=first.end)
    assert (newer.start, newer.end) == (3, 5)
    np.testing.assert_array_equal(newer.column("seq"), [3, 4])
    np.testing.assert_array_equal(newer.column("beam_energy"), [4.0, 5.0])
    np.testing.assert_array_equal(newer.column("pulse_id"), [200, 201])
    nothing = buffer.read(since=newer.end)
    assert len(nothing) == 0 and nothing.start == nothing.end == 5
    assert all(len(column) == 0 for column in nothing.columns.values())


def test_read_since_older_than_the_buffer_returns_what_is_left() -> None:
    buffer = RingBuffer(capacity=4)
    append_energies(buffer, [float(i) for i in range(10)])
    history = buffer.read(since=2)
    assert history.start == 6
    np.testing.assert_array_equal(history.column("seq"), [6, 7, 8, 9])


def test_read_since_from_the_future_is_empty() -> None:
    """A client may hold a sequence number from before a server restart; that must not break reads."""
    buffer = RingBuffer(capacity=10)
    append_energies(buffer, [1.0, 2.0])
    history = buffer.read(since=50)
    assert len(history) == 0
    assert history.start <= history.end == 2
    assert all(len(column) == 0 for column in history.columns.values())


def test_read_max_rows_and_newer_than() -> None:
    buffer = RingBuffer(capacity=100)
    append_energies(buffer, [float(i) for i in range(10)])
    last3 = buffer.read(max_rows=3)
    np.testing.assert_array_equal(last3.column("beam_energy"), [7.0, 8.0, 9.0])
    assert last3.start == 7
    recent = buffer.read(newer_than=T0 + 6.5)
    np.testing.assert_array_equal(recent.column("seq"), [7, 8, 9])
    assert recent.start == 7 and len(recent) == 3
    assert len(buffer.read(newer_than=T0 + 100)) == 0
    combined = buffer.read(since=8, newer_than=T0)
    np.testing.assert_array_equal(combined.column("seq"), [8, 9])


# ---------------------------------------------------------------------------- snapshot immutability


def test_snapshots_are_read_only_and_unaffected_by_later_appends() -> None:
    buffer = RingBuffer(capacity=3)
    append_energies(buffer, [1.0, 2.0, 3.0])
    snapshot = buffer.read()
    before = {name: column.copy() for name, column in snapshot.columns.items()}
    for column in snapshot.columns.values():
        assert not column.flags.writeable
        with pytest.raises(ValueError):
            column[0] = 99
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.end = 0  # type: ignore[misc]

    append_energies(buffer, [4.0, 5.0, 6.0, 7.0], first_pulse=500)  # overwrites every slot
    buffer.append(make_message(9, {"beam_energy": 8.0, "late": 1.0}))
    for name, column in before.items():
        np.testing.assert_array_equal(snapshot.columns[name], column)
    assert "late" not in snapshot.columns and snapshot.scalar_channels == ("beam_energy",)
    np.testing.assert_array_equal(buffer.read().column("beam_energy"), [6.0, 7.0, 8.0])


def test_snapshot_filtered_by_time_is_read_only_too() -> None:
    buffer = RingBuffer(capacity=10)
    append_energies(buffer, [1.0, 2.0, 3.0])
    for column in buffer.read(newer_than=T0 + 1).columns.values():
        assert not column.flags.writeable


# ------------------------------------------------------------------------------------ latest frame


def test_only_the_latest_frame_is_kept() -> None:
    buffer = RingBuffer(capacity=10)
    assert buffer.latest_frame() is None
    images = [np.full((6, 8), i, dtype=np.uint16) for i in range(3)]
    for i, image in enumerate(images):
        buffer.append(make_message(10 + i, {"image": image}, timestamp=T0 + i), received=T0 + i + 0.5)
    frame = buffer.latest_frame()
    assert frame is not None
    assert (frame.seq, frame.pulse_id, frame.timestamp, frame.received) == (2, 12, T0 + 2, T0 + 2.5)
    assert frame.shape == (6, 8)
    np.testing.assert_array_equal(frame.image(), images[2])
    assert not frame.image().flags.writeable
    # Only one frame is referenced by the buffer, whatever its history length.
    frames = [v for v in vars(buffer).values() if isinstance(v, ring_buffer.Frame)]
    assert frames == [frame]

    buffer.append(make_message(20, {"beam_energy": 5.0}))  # no image: the frame stays
    assert buffer.latest_frame() is frame
    buffer.append(make_message(21, {"image": None}))  # empty image: the frame stays
    assert buffer.latest_frame() is frame


def test_frame_is_zero_copy_and_lazy() -> None:
    image = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)
    buffer = RingBuffer(capacity=10)
    message = make_message(1, {"image": image})
    buffer.append(message)
    assert buffer.latest_frame().channel is message.channels["image"]
    assert np.shares_memory(buffer.latest_frame().image(), message.channels["image"].value)


def test_non_2d_image_channel_is_not_a_frame() -> None:
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {"image": np.ones(16)}))
    assert buffer.latest_frame() is None


# ------------------------------------------------------------------------------- beam statistics

CX, CY, SX, SY = 300.3, 200.7, 10.0, 8.0


def test_beam_statistics_from_profiles() -> None:
    image = gaussian_spot(640, 480, CX, CY, SX, SY)
    intensity, cx, cy, rx, ry = beam_statistics(image.sum(axis=0), image.sum(axis=1))
    assert cx == pytest.approx(CX, abs=0.3) and cy == pytest.approx(CY, abs=0.3)
    assert rx == pytest.approx(SX, rel=0.1) and ry == pytest.approx(SY, rel=0.1)
    assert intensity == pytest.approx(2 * math.pi * SX * SY, rel=0.1)  # background removed


def test_image_statistics_on_a_strided_subsample() -> None:
    image = gaussian_spot(1600, 1200, 812.4, 533.2, 25.0, 20.0)  # larger than STATS_SAMPLES: subsampled
    intensity, cx, cy, rx, ry = image_statistics(image)
    assert cx == pytest.approx(812.4, abs=1.0) and cy == pytest.approx(533.2, abs=1.0)
    assert rx == pytest.approx(25.0, rel=0.15) and ry == pytest.approx(20.0, rel=0.15)
    assert intensity == pytest.approx(2 * math.pi * 25.0 * 20.0, rel=0.15)


def test_statistics_of_degenerate_inputs_are_nan() -> None:
    assert all(math.isnan(v) for v in image_statistics(np.zeros(5)))
    assert all(math.isnan(v) for v in image_statistics(np.zeros((0, 4))))
    _, cx, cy, rx, ry = beam_statistics(np.zeros(10), np.zeros(10))
    assert all(math.isnan(v) for v in (cx, cy, rx, ry))
    _, cx, *_ = beam_statistics(np.full(8, np.nan), np.ones(8))
    assert math.isnan(cx)


def _stats(history) -> dict[str, float]:
    names = ("intensity", "centroid_x", "centroid_y", "rms_x", "rms_y")
    return {short: float(history.column(name)[-1]) for short, name in zip(names, STATS_COLUMNS)}


def test_buffer_statistics_use_profiles_when_present() -> None:
    """Profiles (cheap) win over the image: make them disagree and see which one is used."""
    image = gaussian_spot(640, 480, 100.0, 100.0, SX, SY)  # spot at (100, 100) in the image ...
    elsewhere = gaussian_spot(640, 480, CX, CY, SX, SY)  # ... but the profiles say (300.3, 200.7)
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {"image": image, "image_profile_x": elsewhere.sum(axis=0),
                                   "image_profile_y": elsewhere.sum(axis=1)}))
    stats = _stats(buffer.read())
    assert stats["centroid_x"] == pytest.approx(CX, abs=0.3)
    assert stats["centroid_y"] == pytest.approx(CY, abs=0.3)
    assert stats["rms_x"] == pytest.approx(SX, rel=0.1)


@pytest.mark.parametrize("dtype", ["float64", "uint16"])
def test_buffer_statistics_from_the_image_without_profiles(dtype: str) -> None:
    image = gaussian_spot(640, 480, CX, CY, SX, SY)
    if dtype == "uint16":
        image = (image * 3000 + 100).astype(np.uint16)  # a camera's counts with a dark pedestal
    buffer = RingBuffer(capacity=10)
    buffer.append(make_message(1, {"image": image}, compression="bitshuffle_lz4"))
    stats = _stats(buffer.read())
    assert stats["centroid_x"] == pytest.approx(CX, abs=0.5)
    assert stats["centroid_y"] == pytest.approx(CY, abs=0.5)
    assert stats["rms_x"] == pytest.approx(SX, rel=0.15)
    assert stats["rms_y"] == pytest.approx(SY, rel=0.15)


def test_statistics_of_overflowing_values_are_nan_not_an_exception() -> None:
    """Finite but huge readings (a corrupt or hostile frame) overflow the moments: NaN, never a crash."""
    for profile in ([1e308] * 3 + [0.0] * 5, [0.0] * 5 + [1.7e308] * 2):
        _, cx, _, rx, _ = beam_statistics(np.array(profile), np.ones(4))
        assert math.isnan(cx) and math.isnan(rx)
    buffer = RingBuffer(capacity=4)
    buffer.append(make_message(1, {"image_profile_x": np.array([0.0] * 5 + [1.7e308] * 2),
                                   "image_profile_y": np.ones(5), "image": np.full((5, 7), 1.7e308)}))
    assert buffer.count == 1 and math.isnan(buffer.read().column(CENTROID_X)[0])


def test_concurrent_readers_always_see_consistent_snapshots() -> None:
    """One writer, several readers: every History is internally consistent, whatever the interleaving."""
    import threading

    buffer = RingBuffer(capacity=64)
    messages = [make_message(10_000 + i, {"beam_energy": float(i), **({"late": -float(i)} if i >= 500 else {})})
                for i in range(2000)]
    done = threading.Event()
    problems: list[str] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not done.is_set():
            since = int(rng.integers(0, buffer.count + 10))
            history = buffer.read(since=since)
            seq = history.column("seq")
            if not np.array_equal(seq, np.arange(history.start, history.end)):
                problems.append(f"seq {seq[:3]}... for [{history.start}, {history.end})")
            if not np.array_equal(history.column("pulse_id"), seq + 10_000):
                problems.append("pulse_id does not match seq")
            if "beam_energy" not in history.columns:
                if buffer.count > 0 and len(history) > 0:
                    problems.append("beam_energy missing from a non-empty snapshot")
                continue  # nothing appended yet when this reader started
            if not np.array_equal(history.column("beam_energy"), seq.astype(float)):
                problems.append("beam_energy does not match seq")
            if "late" in history.columns:
                late = history.column("late")
                expected = np.where(seq >= 500, -seq.astype(float), np.nan)
                if not np.array_equal(late, expected, equal_nan=True):
                    problems.append("late channel does not match seq")

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so races would show
    for thread in threads:
        thread.start()
    try:
        for message in messages:
            buffer.append(message)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
        sys.setswitchinterval(interval)
    assert not problems, problems[:5]
    assert buffer.count == 2000
