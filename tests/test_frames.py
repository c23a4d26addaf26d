"""Recent frames: what a frame holds, the live list bounded in count and bytes (only the newest while
nobody watches), pins of paused browsers bounded in number, age and bytes, and memory that stays
bounded under any pattern of pushes, watching and pinning."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream.frames as frames_module
from stream.frames import Frame, FrameStore
from tests.web_fixtures import ManualClock
from stream.protocol import BsreadError
from tests.helpers import make_message

T0 = 1_700_000_000.0


def make_frame(seq: int, width: int = 16, compression: str = "none", image: Any = None,
               image_channel: str = "image") -> Frame:
    if image is None:
        image = np.full((4, width), seq % 251, np.uint8)
    message = make_message(1000 + seq, {"image": image, "beam_energy": 5.0 + seq}, timestamp=T0 + seq,
                           compression=compression)
    return Frame(seq, message.pulse_id, message.global_timestamp, T0 + seq + 0.5, message, image_channel,
                 {"beam_intensity": float(seq)}, {"beam_energy": 5.0 + seq})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock().install(monkeypatch, frames_module)


def seqs(frames: tuple[Frame, ...]) -> list[int]:
    return [frame.seq for frame in frames]


# ------------------------------------------------------------------------------------- one frame


def test_a_frame_holds_the_whole_message_zero_copy() -> None:
    image = np.arange(4 * 16, dtype=np.uint16).reshape(4, 16)
    frame = make_frame(3, image=image)
    assert (frame.seq, frame.pulse_id, frame.timestamp, frame.received) == (3, 1003, T0 + 3, T0 + 3.5)
    assert frame.shape == (4, 16) and frame.dtype == np.dtype("<u2")
    assert frame.channel is frame.message.channels["image"]
    assert frame.message.value("beam_energy") == 8.0  # the pulse's other channels stay with it
    decoded = frame.image()
    np.testing.assert_array_equal(decoded, image)
    assert not decoded.flags.writeable and np.shares_memory(decoded, frame.channel.value)
    assert frame.nbytes == frame.message.nbytes  # uncompressed: the frames as received, nothing more
    assert frame.computed == {"beam_intensity": 3.0} and frame.processing_error == ""


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_a_compressed_frame_counts_its_decoded_image(compression: str) -> None:
    image = np.zeros((32, 64), np.float64)  # compresses to almost nothing
    frame = make_frame(1, compression=compression, image=image)
    assert frame.message.nbytes < image.nbytes
    assert frame.nbytes == frame.message.nbytes + image.nbytes
    np.testing.assert_array_equal(frame.image(), image)


def test_a_frame_whose_channel_is_not_an_image_or_corrupt_raises_bsread_error() -> None:
    message = make_message(1, {"image": np.zeros((4, 6)), "profile": np.ones(6)})
    not_2d = Frame(0, 1, T0, T0, message, "profile")
    with pytest.raises(BsreadError):
        not_2d.image()
    corrupt = make_frame(1, compression="lz4", image=np.zeros((8, 8)))
    raw = bytearray(corrupt.channel.raw)
    raw[4:] = b"\xff" * (len(raw) - 4)
    corrupt.channel.raw = bytes(raw)
    with pytest.raises(BsreadError):
        corrupt.image()


# ------------------------------------------------------------------------------------ live frames


def test_empty_store() -> None:
    store = FrameStore(4, 10_000)
    assert store.latest() is None and store.recent() == () and store.nbytes == 0
    assert store.get(0) is None and store.get(0, "client") is None
    assert store.pin("client") == () and store.pinned("client") == ()


def test_only_the_newest_frame_is_kept_while_nobody_watches() -> None:
    store = FrameStore(max_frames=5, max_bytes=10**9)
    for seq in range(4):
        store.push(make_frame(seq))
    assert seqs(store.recent()) == [3] and store.latest().seq == 3
    assert store.nbytes == store.latest().nbytes


def test_the_last_frames_are_kept_while_watched_and_trimmed_when_not() -> None:
    store = FrameStore(max_frames=5, max_bytes=10**9)
    store.keep_recent(True)
    for seq in range(8):
        store.push(make_frame(seq))
    assert seqs(store.recent()) == [3, 4, 5, 6, 7] and store.latest().seq == 7
    assert store.get(4).seq == 4 and store.get(2) is None
    store.keep_recent(False)
    assert seqs(store.recent()) == [7]
    assert store.nbytes == sum(frame.nbytes for frame in store.recent())


def test_bytes_bound_the_live_frames_but_the_newest_always_stays() -> None:
    one = make_frame(0).nbytes
    store = FrameStore(max_frames=100, max_bytes=3 * one + one // 2)
    store.keep_recent(True)
    for seq in range(10):
        store.push(make_frame(seq))
    assert seqs(store.recent()) == [7, 8, 9] and store.nbytes == 3 * one
    huge = make_frame(10, width=4096)
    assert huge.nbytes > store.max_bytes
    store.push(huge)
    assert store.recent() == (huge,) and store.nbytes == huge.nbytes
    store.push(make_frame(11))
    assert seqs(store.recent()) == [11]


def test_max_frames_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameStore(0, 100)


# ------------------------------------------------------------------------------------------ pins


def test_a_pin_keeps_frames_for_its_client_after_they_left_the_live_list(clock: ManualClock) -> None:
    store = FrameStore(max_frames=3, max_bytes=10**9)
    store.keep_recent(True)
    for seq in range(5):
        store.push(make_frame(seq))
    pinned = store.pin("paused", upto_seq=3)
    assert seqs(pinned) == [2, 3] and store.pinned("paused") == pinned
    assert seqs(store.pin("other")) == [2, 3, 4]
    for seq in range(5, 9):
        store.push(make_frame(seq))
    assert seqs(store.recent()) == [6, 7, 8]
    assert store.get(3, "paused") is pinned[1]
    assert store.get(3) is None and store.get(3, "stranger") is None  # a pin is its client's only
    assert store.get(7, "paused").seq == 7  # live frames are found with a client too
    store.unpin("paused")
    assert store.pinned("paused") == () and store.get(3, "paused") is None
    store.unpin("never-pinned")  # harmless
    assert seqs(store.pinned("other")) == [2, 3, 4]


def test_pinning_again_replaces_the_clients_pin() -> None:
    store = FrameStore(max_frames=3, max_bytes=10**9)
    store.keep_recent(True)
    for seq in range(3):
        store.push(make_frame(seq))
    store.pin("a")
    store.push(make_frame(3))
    assert seqs(store.pin("a")) == [1, 2, 3] and seqs(store.pinned("a")) == [1, 2, 3]
    assert store.pin("a", upto_seq=-1) == ()


def test_pins_are_bounded_in_number_least_recently_used_first(clock: ManualClock) -> None:
    store = FrameStore(max_frames=2, max_bytes=10**9)
    store.push(make_frame(0))
    for index in range(frames_module.MAX_PINS):
        clock.now += 1
        store.pin(f"c{index}")
    clock.now += 1
    store.pinned("c0")  # used again: now the most recent
    clock.now += 1
    store.pin("newcomer")
    assert store.pinned("c1") == ()  # the least recently used went
    clients = [f"c{index}" for index in range(frames_module.MAX_PINS)] + ["newcomer"]
    assert [client for client in clients if not store.pinned(client)] == ["c1"]


def test_pins_nobody_used_for_the_ttl_are_dropped(clock: ManualClock) -> None:
    store = FrameStore(max_frames=2, max_bytes=10**9)
    store.push(make_frame(0))
    store.pin("old")
    store.pin("used")
    clock.now += frames_module.PIN_TTL_S - 1
    store.pinned("used")
    clock.now += 2
    store.pin("new")  # expiry happens when a pin is made
    assert store.pinned("old") == ()
    assert store.pinned("used") and store.pinned("new")


def test_pins_are_bounded_in_bytes(clock: ManualClock) -> None:
    one = make_frame(0).nbytes
    store = FrameStore(max_frames=3, max_bytes=3 * one)
    store.keep_recent(True)
    seq = 0
    for client in ("a", "b", "c"):
        for _ in range(3):
            store.push(make_frame(seq))
            seq += 1
        clock.now += 1
        store.pin(client)
    # Each pin holds 3 frames of its own; together they would be three times the budget.
    assert store.pinned("a") == () and store.pinned("b") == ()
    assert seqs(store.pinned("c")) == [6, 7, 8]
    # Frames shared by pins count once.
    store.pin("d")
    assert seqs(store.pinned("c")) == seqs(store.pinned("d")) == [6, 7, 8]


# ---------------------------------------------------------------------------------- memory bound

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(1, 600)),  # image width: frames of very different sizes
    st.tuples(st.just("watch"), st.booleans()),
    st.tuples(st.just("pin"), st.integers(0, 20)),
    st.tuples(st.just("unpin"), st.integers(0, 20)),
    st.tuples(st.just("wait"), st.integers(0, 400)),
), max_size=60)


@settings(deadline=None, max_examples=150, derandomize=True, database=None)
@given(actions=ACTIONS, max_frames=st.integers(1, 6), budget=st.integers(1, 8))
def test_memory_stays_bounded_under_any_pattern(actions: list[tuple[str, Any]], max_frames: int,
                                                budget: int) -> None:
    clock = ManualClock()
    original = frames_module.time
    frames_module.time = clock  # type: ignore[assignment]
    try:
        unit = make_frame(0, width=64).nbytes
        store = FrameStore(max_frames, budget * unit)
        watched, seq, biggest, pushed = False, 0, 0, None
        for action, argument in actions:
            if action == "push":
                pushed = make_frame(seq, width=argument)
                biggest = max(biggest, pushed.nbytes)
                store.push(pushed)
                seq += 1
            elif action == "watch":
                watched = argument
                store.keep_recent(argument)
            elif action == "pin":
                store.pin(f"client{argument}")
            elif action == "unpin":
                store.unpin(f"client{argument}")
            else:
                clock.now += argument
            live = store.recent()
            assert len(live) <= (max_frames if watched else 1)
            assert store.nbytes == sum(frame.nbytes for frame in live)
            assert store.nbytes <= store.max_bytes or len(live) == 1  # only the newest may exceed it
            assert store.latest() is (pushed if pushed is not None else None)
            assert seqs(live) == sorted(seqs(live))
            pins = store._pins
            assert len(pins) <= frames_module.MAX_PINS
            pinned = {id(frame): frame.nbytes for pin in pins.values() for frame in pin.frames}
            assert sum(pinned.values()) <= store.max_bytes or len(pins) == 1
            assert sum(pinned.values()) <= max(store.max_bytes, biggest)
    finally:
        frames_module.time = original  # type: ignore[assignment]


def test_one_writer_and_readers_concurrently() -> None:
    store = FrameStore(max_frames=8, max_bytes=10**9)
    store.keep_recent(True)
    frames = [make_frame(seq) for seq in range(1500)]
    done = threading.Event()
    problems: list[str] = []

    def reader(index: int) -> None:
        client = f"reader{index}"
        newest = -1
        while not done.is_set():
            recent = store.recent()
            if recent and seqs(recent) != list(range(recent[0].seq, recent[0].seq + len(recent))):
                problems.append(f"recent not consecutive: {seqs(recent)}")
            pinned = store.pin(client)
            if pinned and store.get(pinned[0].seq, client) is not pinned[0]:
                problems.append("a pinned frame was not found")
            latest = store.latest()
            if latest is not None:
                if latest.seq < newest:
                    problems.append("latest went backwards")
                newest = latest.seq

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        for frame in frames:
            store.push(frame)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert not problems, problems[:3]
    assert seqs(store.recent()) == list(range(1492, 1500))
