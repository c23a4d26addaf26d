"""Ring buffer, the columnar history: wrap-around at every fill level, late and bounded columns, channel
and computed column groups, incremental and windowed reads, binary search by time, immutable snapshots,
and one writer with concurrent readers."""

from __future__ import annotations

import dataclasses
import math
import sys
import threading

import numpy as np
import pytest

import stream.ring_buffer as ring_buffer
from stream.ring_buffer import BOOKKEEPING, RingBuffer

T0 = 1_700_000_000.0


def fill(buffer: RingBuffer, count: int, first_pulse: int = 100, first_value: int = 0, dt: float = 1.0) -> None:
    """`count` rows: pulse first_pulse + i at T0 + (first_value + i) * dt with energy first_value + i."""
    for i in range(first_value, first_value + count):
        buffer.append(first_pulse + i - first_value, T0 + i * dt, {"beam_energy": float(i)}, {"beam_x": -float(i)})


def seqs(history) -> list[int]:
    return history.column("seq").tolist()


# ---------------------------------------------------------------------------------- wrap-around


def test_wrap_around_keeps_the_newest_rows_in_order() -> None:
    buffer = RingBuffer(capacity=5)
    fill(buffer, 12)
    assert buffer.count == 12
    history = buffer.read()
    assert (history.start, history.end, len(history)) == (7, 12, 5)
    assert seqs(history) == [7, 8, 9, 10, 11]
    assert history.column("pulse_id").tolist() == [107, 108, 109, 110, 111]
    np.testing.assert_array_equal(history.column("beam_energy"), [7.0, 8.0, 9.0, 10.0, 11.0])
    np.testing.assert_array_equal(history.column("beam_x"), [-7.0, -8.0, -9.0, -10.0, -11.0])
    np.testing.assert_array_equal(history.column("timestamp"), [T0 + i for i in range(7, 12)])


@pytest.mark.parametrize("appended", [0, 1, 4, 5, 6, 9, 10, 11, 23])
def test_read_is_correct_at_every_fill_level(appended: int) -> None:
    capacity = 5
    buffer = RingBuffer(capacity=capacity)
    fill(buffer, appended)
    history = buffer.read()
    expected = list(range(max(0, appended - capacity), appended))
    assert seqs(history) == expected and (history.start, history.end) == (expected[0] if expected else 0, appended)
    np.testing.assert_array_equal(history.column("beam_energy") if appended else [], [float(i) for i in expected])
    for name, column in history.columns.items():
        assert len(column) == len(expected), name
    # The append returned each row's sequence number.
    assert buffer.append(1, T0, {}) == appended


def test_capacity_must_be_at_least_two() -> None:
    with pytest.raises(ValueError):
        RingBuffer(capacity=1)


def test_pulse_ids_beyond_int64_are_marked_not_wrapped() -> None:
    buffer = RingBuffer(capacity=4)
    buffer.append(2**63 - 1, T0, {})
    buffer.append(2**64 - 1, T0, {})  # a uint64 pulse id that int64 cannot hold
    buffer.append(15_000_000_000, T0, {})  # SwissFEL-sized: exact
    assert buffer.read().column("pulse_id").tolist() == [2**63 - 1, -1, 15_000_000_000]


# ------------------------------------------------------------------------------- column groups


def test_late_columns_get_nan_for_earlier_rows() -> None:
    buffer = RingBuffer(capacity=100)
    for i in range(3):
        buffer.append(i, T0 + i, {"beam_energy": 5.0 + i})
    for i in range(3, 6):
        buffer.append(i, T0 + i, {"beam_energy": 5.0 + i, "charge": 200.0 + i}, {"roi_a_sum": 10.0 * i})
    buffer.append(6, T0 + 6, {"beam_energy": 11.0})  # both missing again
    assert buffer.channels == ("beam_energy", "charge") and buffer.computed == ("roi_a_sum",)
    history = buffer.read()
    for name, values in (("charge", [203.0, 204.0, 205.0]), ("roi_a_sum", [30.0, 40.0, 50.0])):
        column = history.column(name)
        assert np.isnan(column[:3]).all() and np.isnan(column[6]), name
        np.testing.assert_array_equal(column[3:6], values)
    np.testing.assert_array_equal(history.column("beam_energy"), [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    assert history.channels == ("beam_energy", "charge") and history.computed == ("roi_a_sum",)
    assert history.names == ("beam_energy", "charge", "roi_a_sum")


def test_late_column_after_wrap_around() -> None:
    buffer = RingBuffer(capacity=4)
    fill(buffer, 6)
    buffer.append(7, T0 + 7, {"beam_energy": 7.0, "charge": 1.5})
    history = buffer.read()
    assert seqs(history) == [3, 4, 5, 6]
    assert np.isnan(history.column("charge")[:3]).all() and history.column("charge")[3] == 1.5
    assert np.isnan(history.column("beam_x")[3])  # a computed column missing from this row


def test_computed_columns_registered_up_front_keep_their_order() -> None:
    buffer = RingBuffer(capacity=10, computed=("beam_b", "beam_a"))
    assert buffer.computed == ("beam_b", "beam_a") and buffer.channels == ()
    empty = buffer.read()
    assert set(empty.columns) == set(BOOKKEEPING) | {"beam_b", "beam_a"} and len(empty) == 0
    buffer.append(1, T0, {"z": 1.0}, {"beam_a": 2.0, "beam_c": 3.0})
    history = buffer.read()
    assert history.computed == ("beam_b", "beam_a", "beam_c") and history.channels == ("z",)
    assert np.isnan(history.column("beam_b")[0]) and history.column("beam_a")[0] == 2.0


def test_computed_names_win_over_stream_channels_of_the_same_name() -> None:
    buffer = RingBuffer(capacity=10, computed=("beam_centroid_x",))
    buffer.append(1, T0, {"beam_centroid_x": 99.0, "beam_new": 98.0, "e": 1.0},
                  {"beam_centroid_x": 1.0, "beam_new": 2.0})
    buffer.append(2, T0, {"beam_centroid_x": 99.0, "beam_new": 98.0, "e": 1.0}, {})  # ours missing: NaN
    history = buffer.read()
    assert history.channels == ("e",) and history.computed == ("beam_centroid_x", "beam_new")
    np.testing.assert_array_equal(history.column("beam_centroid_x"), [1.0, np.nan])
    np.testing.assert_array_equal(history.column("beam_new"), [2.0, np.nan])


def test_computed_column_wins_over_a_stream_channel_seen_first() -> None:
    """A stream channel may carry the name of a column computed only later (an ROI set by an operator):
    from then on the column is ours; the stream's earlier values are not passed off as ours."""
    buffer = RingBuffer(capacity=10)
    buffer.append(1, T0, {"roi_a_sum": 99.0, "e": 1.0})
    buffer.append(2, T0, {"roi_a_sum": 99.0, "e": 2.0}, {"roi_a_sum": 5.0})
    buffer.append(3, T0, {"roi_a_sum": 99.0, "e": 3.0}, {"roi_a_sum": 6.0})
    history = buffer.read()
    assert history.channels == ("e",) and history.computed == ("roi_a_sum",)
    np.testing.assert_array_equal(history.column("roi_a_sum"), [np.nan, 5.0, 6.0])
    np.testing.assert_array_equal(history.column("e"), [1.0, 2.0, 3.0])


def test_bookkeeping_names_are_refused_as_columns() -> None:
    buffer = RingBuffer(capacity=10, computed=("seq", "beam_x"))
    buffer.append(77, T0, {"pulse_id": 1.0, "timestamp": 2.0, "seq": 3.0, "x": 5.0},
                  {"seq": 4.0, "pulse_id": 5.0, "timestamp": 6.0})
    history = buffer.read()
    assert history.column("pulse_id").tolist() == [77] and history.column("timestamp").tolist() == [T0]
    assert history.column("seq").tolist() == [0]
    assert history.channels == ("x",) and history.computed == ("beam_x",)
    assert history.column("pulse_id").dtype == np.int64 and history.column("seq").dtype == np.int64


def test_number_of_columns_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ring_buffer, "MAX_COLUMNS", 4)
    buffer = RingBuffer(capacity=10, computed=("beam_a",))
    buffer.append(1, T0, {f"ch{i}": float(i) for i in range(5)}, {"beam_b": 1.0})
    buffer.append(2, T0, {f"ch{i}": float(i) for i in range(6)}, {"beam_b": 2.0, "beam_c": 3.0})
    assert len(buffer.channels) + len(buffer.computed) == 4
    assert buffer.computed == ("beam_a", "beam_b") and buffer.channels == ("ch0", "ch1")
    history = buffer.read()
    assert set(history.columns) == set(BOOKKEEPING) | {"beam_a", "beam_b", "ch0", "ch1"}
    np.testing.assert_array_equal(history.column("ch1"), [1.0, 1.0])


def test_values_are_stored_as_float64() -> None:
    buffer = RingBuffer(capacity=10)
    buffer.append(1, T0, {"size": 640, "flag": True, "big": float(2**53), "nan": math.nan})
    history = buffer.read()
    assert history.column("size")[0] == 640.0 and history.column("flag")[0] == 1.0
    assert history.column("big")[0] == float(2**53) and np.isnan(history.column("nan")[0])
    assert all(history.column(name).dtype == np.float64 for name in history.names)


# ---------------------------------------------------------------------------- incremental reads


def test_read_since_returns_only_newer_rows() -> None:
    buffer = RingBuffer(capacity=100)
    fill(buffer, 3)
    first = buffer.read()
    assert first.end == 3
    fill(buffer, 2, first_pulse=200, first_value=3)
    newer = buffer.read(since=first.end)
    assert (newer.start, newer.end) == (3, 5) and seqs(newer) == [3, 4]
    np.testing.assert_array_equal(newer.column("beam_energy"), [3.0, 4.0])
    assert newer.column("pulse_id").tolist() == [200, 201]
    nothing = buffer.read(since=newer.end)
    assert len(nothing) == 0 and nothing.start == nothing.end == 5
    assert all(len(column) == 0 for column in nothing.columns.values())


def test_read_since_older_than_the_buffer_returns_what_is_left() -> None:
    buffer = RingBuffer(capacity=4)
    fill(buffer, 10)
    history = buffer.read(since=2)
    assert history.start == 6 and seqs(history) == [6, 7, 8, 9]
    assert seqs(buffer.read(since=-5)) == [6, 7, 8, 9]


def test_read_until_stops_before_that_row_across_the_wrap() -> None:
    buffer = RingBuffer(capacity=4)
    fill(buffer, 10)  # rows 6..9 kept, row 8 stored at index 0 after the wrap
    one = buffer.read(since=8, until=9)
    assert (one.start, one.end) == (8, 9) and seqs(one) == [8] and one.column("beam_energy").tolist() == [8.0]
    assert seqs(buffer.read(since=5, until=8)) == [6, 7] and seqs(buffer.read(until=100)) == [6, 7, 8, 9]
    assert len(buffer.read(since=3, until=5)) == 0 and len(buffer.read(since=9, until=9)) == 0  # gone, empty


def test_read_since_from_the_future_is_empty() -> None:
    """A browser may hold a sequence number from before a server restart; that must not break reads."""
    buffer = RingBuffer(capacity=10)
    fill(buffer, 2)
    history = buffer.read(since=50)
    assert len(history) == 0 and history.start <= history.end == 2
    assert all(len(column) == 0 for column in history.columns.values())


def test_read_max_rows_newer_than_and_their_combination() -> None:
    buffer = RingBuffer(capacity=100)
    fill(buffer, 10)
    last3 = buffer.read(max_rows=3)
    np.testing.assert_array_equal(last3.column("beam_energy"), [7.0, 8.0, 9.0])
    assert last3.start == 7
    assert len(buffer.read(max_rows=0)) == 0 and len(buffer.read(max_rows=1000)) == 10
    recent = buffer.read(newer_than=T0 + 6.5)
    assert seqs(recent) == [7, 8, 9] and recent.start == 7 and len(recent) == 3
    assert seqs(buffer.read(newer_than=T0 + 7)) == [7, 8, 9]  # at or after
    assert len(buffer.read(newer_than=T0 + 100)) == 0
    assert seqs(buffer.read(since=8, newer_than=T0)) == [8, 9]
    assert seqs(buffer.read(since=2, max_rows=5, newer_than=T0 + 6)) == [6, 7, 8, 9]


def test_read_only_copies_just_the_asked_columns() -> None:
    buffer = RingBuffer(capacity=10, computed=("beam_x",))
    fill(buffer, 3)
    buffer.append(9, T0 + 9, {"beam_energy": 1.0, "charge": 2.0}, {"beam_x": 3.0})
    history = buffer.read(only=["charge", "beam_x", "no_such_column"])
    assert set(history.columns) == set(BOOKKEEPING) | {"charge", "beam_x"}
    assert history.channels == ("beam_energy", "charge")  # the groups still describe the whole buffer
    np.testing.assert_array_equal(history.column("charge"), [np.nan, np.nan, np.nan, 2.0])
    assert set(buffer.read(only=()).columns) == set(BOOKKEEPING)
    assert set(buffer.window(2.0, only={"beam_energy"}).columns) == set(BOOKKEEPING) | {"beam_energy"}


# -------------------------------------------------------------------------- windows and time search


def test_window_holds_the_rows_within_seconds_of_the_newest_pulse() -> None:
    buffer = RingBuffer(capacity=100)
    fill(buffer, 10, dt=0.5)  # T0 ... T0 + 4.5
    assert seqs(buffer.window(1.0)) == [7, 8, 9]  # T0 + 3.5 and later
    assert seqs(buffer.window(0.0)) == [9]
    assert seqs(buffer.window(1000.0)) == list(range(10))
    assert seqs(buffer.window(None)) == list(range(10))


def test_window_after_wrap_around() -> None:
    buffer = RingBuffer(capacity=8)
    fill(buffer, 20)
    assert seqs(buffer.window(2.5)) == [17, 18, 19]
    assert seqs(buffer.window(100.0)) == list(range(12, 20))  # only what is still kept


def test_empty_buffer_reads_windows_and_times() -> None:
    buffer = RingBuffer(capacity=5, computed=("beam_x",))
    for history in (buffer.read(), buffer.window(10.0), buffer.window(None), buffer.newest(),
                    buffer.read(since=3, max_rows=2, newer_than=T0)):
        assert len(history) == 0 and history.end == 0
        assert all(len(column) == 0 for column in history.columns.values())
    assert math.isnan(buffer.newest_time()) and math.isnan(buffer.oldest_time())
    assert buffer.seq_at_time(T0) == 0 and buffer.count == 0


def test_newest_and_times() -> None:
    buffer = RingBuffer(capacity=4)
    fill(buffer, 1)
    assert seqs(buffer.newest()) == [0] and buffer.newest_time() == buffer.oldest_time() == T0
    fill(buffer, 9, first_pulse=101, first_value=1)
    newest = buffer.newest()
    assert seqs(newest) == [9] and newest.column("beam_energy").tolist() == [9.0]
    assert buffer.newest_time() == T0 + 9 and buffer.oldest_time() == T0 + 6


@pytest.mark.parametrize("appended", [1, 3, 7, 8, 9, 15, 16, 17, 40])
def test_seq_at_time_is_the_first_kept_row_at_or_after(appended: int) -> None:
    capacity = 8
    buffer = RingBuffer(capacity=capacity)
    fill(buffer, appended, dt=0.1)
    oldest = max(0, appended - capacity)
    times = T0 + np.arange(appended) * 0.1
    for probe in [T0 - 1e6, T0 - 0.05, *(times - 0.05), *times, *(times + 0.05), T0 + 1e6]:
        kept = [seq for seq in range(oldest, appended) if times[seq] >= probe]
        assert buffer.seq_at_time(probe) == (kept[0] if kept else appended), probe


def test_seq_at_time_with_equal_times_finds_the_first() -> None:
    buffer = RingBuffer(capacity=10)
    for i, stamp in enumerate([1.0, 2.0, 2.0, 2.0, 3.0, 3.0]):
        buffer.append(i, T0 + stamp, {})
    assert buffer.seq_at_time(T0 + 2.0) == 1 and buffer.seq_at_time(T0 + 3.0) == 4
    assert buffer.seq_at_time(T0 + 2.5) == 4


# ---------------------------------------------------------------------------- snapshot immutability


def test_snapshots_are_read_only_and_unaffected_by_later_appends() -> None:
    buffer = RingBuffer(capacity=3)
    fill(buffer, 3)
    snapshots = [buffer.read(), buffer.read(newer_than=T0 + 1), buffer.window(1.0), buffer.newest(),
                 buffer.read(only=["beam_x"])]
    before = [{name: column.copy() for name, column in s.columns.items()} for s in snapshots]
    for snapshot in snapshots:
        for column in snapshot.columns.values():
            assert not column.flags.writeable
            with pytest.raises(ValueError):
                column[...] = 99
        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.end = 0  # type: ignore[misc]

    fill(buffer, 4, first_pulse=500, first_value=3)  # overwrites every slot
    buffer.append(9, T0 + 9, {"beam_energy": 8.0, "late": 1.0}, {"beam_late": 2.0})
    for snapshot, columns in zip(snapshots, before):
        for name, column in columns.items():
            np.testing.assert_array_equal(snapshot.columns[name], column)
        assert "late" not in snapshot.columns and snapshot.channels == ("beam_energy",)
        assert snapshot.computed == ("beam_x",)
    np.testing.assert_array_equal(buffer.read().column("beam_energy"), [5.0, 6.0, 8.0])


def test_snapshot_columns_do_not_share_memory_with_the_buffer() -> None:
    buffer = RingBuffer(capacity=6)
    fill(buffer, 9)  # wrapped: the history is two pieces of the ring
    for history in (buffer.read(), buffer.read(since=7)):
        for column in history.columns.values():
            for storage in buffer._columns.values():
                assert not np.shares_memory(column, storage)


# ------------------------------------------------------------------------------------ concurrency


def test_concurrent_readers_always_see_consistent_snapshots() -> None:
    """One writer, several readers: every History is internally consistent, whatever the interleaving."""
    buffer = RingBuffer(capacity=64, computed=("beam_x",))
    done = threading.Event()
    problems: list[str] = []

    def check(history) -> None:
        seq = history.column("seq")
        if not np.array_equal(seq, np.arange(history.start, history.end)):
            problems.append(f"seq {seq[:3]}... for [{history.start}, {history.end})")
        if not np.array_equal(history.column("pulse_id"), seq + 10_000):
            problems.append("pulse_id does not match seq")
        if not np.array_equal(history.column("timestamp"), T0 + seq * 0.01):
            problems.append("timestamp does not match seq")
        if "beam_energy" in history.columns and not np.array_equal(history.column("beam_energy"), seq.astype(float)):
            problems.append("beam_energy does not match seq")
        if not np.array_equal(history.column("beam_x"), -seq.astype(float)):
            problems.append("beam_x does not match seq")
        if "late" in history.columns:
            expected = np.where(seq >= 500, -seq.astype(float), np.nan)
            if not np.array_equal(history.column("late"), expected, equal_nan=True):
                problems.append("late channel does not match seq")

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not done.is_set():
            count = buffer.count
            kind = int(rng.integers(0, 4))
            if kind == 0:
                history = buffer.read(since=int(rng.integers(0, count + 10)))
            elif kind == 1:
                history = buffer.window(float(rng.uniform(0, 1)))
            elif kind == 2:
                history = buffer.read(max_rows=int(rng.integers(0, 80)), newer_than=T0 + float(rng.uniform(0, 20)))
            else:
                history = buffer.read(since=buffer.seq_at_time(T0 + float(rng.uniform(0, 20))), only=["late", "beam_x"])
            check(history)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so races would show
    for thread in threads:
        thread.start()
    try:
        for i in range(2000):
            channels = {"beam_energy": float(i), **({"late": -float(i)} if i >= 500 else {})}
            buffer.append(10_000 + i, T0 + i * 0.01, channels, {"beam_x": -float(i)})
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
        sys.setswitchinterval(interval)
    assert not problems, problems[:5]
    assert buffer.count == 2000
