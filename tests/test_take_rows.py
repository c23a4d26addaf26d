"""Partial row decoding (stream.values.take_rows): the rows asked for, equal to indexing the decoded value,
decoding only the compressed blocks that hold them."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import bitshuffle
import numpy as np
import pytest

import stream.compression as compression
from stream.protocol import BsreadError, decode
from tests.hand_built import (
    TYPE_SAMPLES,
    bitshuffle_frame,
    hand_message,
    lz4_frame,
    stamp_bytes,
)

# --------------------------------------------------------------------------- partial row decoding


def _image_message(array: np.ndarray, compression_name: str, block_elements: int = 128) -> list[bytes]:
    """A hand-built message with one 2-D channel `image` holding `array` (its byte order kept)."""
    encoding = "big" if array.dtype.byteorder == ">" else "little"
    type_name = next(name for name, (code, _) in TYPE_SAMPLES.items() if np.dtype(code) == array.dtype.newbyteorder("="))
    raw = np.ascontiguousarray(array).tobytes()
    value = {"none": lambda: raw, "lz4": lambda: lz4_frame(raw, "<" if encoding == "little" else ">"),
             "bitshuffle_lz4": lambda: bitshuffle_frame(array, block_elements)}[compression_name]()
    channel = {"name": "image", "type": type_name, "shape": list(reversed(array.shape)), "encoding": encoding,
               "compression": compression_name}
    return hand_message([channel], [value, stamp_bytes(encoding=encoding)])


def _row_sets(rng: np.random.Generator, height: int) -> list[np.ndarray]:
    every = np.arange(height)
    return [every, every[::-1], every[::3], every[1::7], np.array([0]), np.array([height - 1]),
            np.array([], dtype=np.int64), np.array([-1, 0, -height]), np.array([2, 2, 0]) % height,
            *(np.sort(rng.choice(height, size=rng.integers(1, height + 1), replace=False)) for _ in range(6)),
            *(rng.integers(-height, height, size=rng.integers(1, 2 * height)) for _ in range(3))]


# (type, image shape (rows, columns), bitshuffle block in elements): widths that do not divide the block
# (rows straddle blocks), blocks smaller than a row, a short tail block, raw leftover elements.
TAKE_ROWS_CASES = [("uint16", (48, 64), 128), ("float64", (37, 41), 128), ("int32", (29, 13), 24),
                   ("uint8", (9, 7), 8), ("int16", (5, 300), 64), ("float32", (3, 3), 128), ("uint16", (1, 5), 8)]


@pytest.mark.parametrize(("type_name", "shape", "block_elements"), TAKE_ROWS_CASES)
@pytest.mark.parametrize("compression_name", ["none", "lz4", "bitshuffle_lz4"])
@pytest.mark.parametrize("encoding", ["little", "big"])
def test_take_rows_equals_value_indexed(type_name: str, shape: tuple[int, int], block_elements: int,
                                        compression_name: str, encoding: str) -> None:
    rng = np.random.default_rng(11)
    dtype = np.dtype(TYPE_SAMPLES[type_name][0]).newbyteorder("<" if encoding == "little" else ">")
    array = (rng.integers(0, 100, size=shape) * (1.25 if dtype.kind == "f" else 1)).astype(dtype)
    parts = _image_message(array, compression_name, block_elements)
    for rows in _row_sets(rng, shape[0]):
        channel = decode(parts).channels["image"]  # fresh: nothing decoded or cached yet
        taken = channel.take_rows(rows)
        assert taken.dtype == array.dtype and taken.shape == (len(rows), shape[1])
        assert not taken.flags.writeable
        np.testing.assert_array_equal(taken, array[rows])
        np.testing.assert_array_equal(channel.take_rows(rows), channel.value[rows])


def test_take_rows_decodes_only_the_blocks_holding_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    original = bitshuffle.decompress_lz4

    def counting(buffer: Any, shape: tuple[int, ...], *args: Any) -> Any:
        decoded.append(shape[0])
        return original(buffer, shape, *args)

    monkeypatch.setattr(bitshuffle, "decompress_lz4", counting)
    array = np.arange(101 * 50, dtype=np.uint16).reshape(101, 50)  # 5050 elements: 39 blocks of 128, tail of 58
    parts = _image_message(array, "bitshuffle_lz4", 128)
    # Row r holds elements 50r .. 50r+49: row 2 straddles blocks 0 and 1, row 10 blocks 3 and 4, row 100 is
    # in the tail (elements 4992..5049), row 99 ends in block 38.
    for rows, blocks, tail in [([0], 1, 0), ([4, 5], 2, 0), ([2], 2, 0), ([10, 60], 3, 0), ([100], 0, 58),
                               ([99, 100], 1, 58), ([77, 3, 77], 2, 0)]:
        decoded.clear()
        taken = decode(parts).channels["image"].take_rows(np.array(rows))
        np.testing.assert_array_equal(taken, array[rows])
        assert decoded == [blocks * 128 + tail], rows


def test_take_rows_of_an_uncompressed_value_is_a_view_of_the_frame() -> None:
    array = np.arange(12 * 5, dtype=np.float64).reshape(12, 5)
    parts = _image_message(array, "none")
    channel = decode(parts).channels["image"]
    view = channel.take_rows(np.arange(1, 12, 3))
    assert np.shares_memory(view, np.frombuffer(parts[2], dtype=np.float64))
    np.testing.assert_array_equal(view, array[1::3])
    assert not view.flags.writeable


def test_take_rows_of_a_decoded_value_uses_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    array = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    channel = decode(_image_message(array, "bitshuffle_lz4")).channels["image"]
    np.testing.assert_array_equal(channel.value, array)
    monkeypatch.setattr(bitshuffle, "decompress_lz4", lambda *args: pytest.fail("decoded again"))
    np.testing.assert_array_equal(channel.take_rows(np.array([3, 1, 39])), array[[3, 1, 39]])


def test_take_rows_of_empty_and_non_image_values() -> None:
    channels = [{"name": "image", "type": "uint16", "shape": [4, 3], "compression": "bitshuffle_lz4"},
                {"name": "line", "type": "uint16", "shape": [4]}, {"name": "text", "type": "string"}]
    message = decode(hand_message(channels, [b"", b"", struct.pack("<4H", 1, 2, 3, 4), stamp_bytes(),
                                             b"abc", stamp_bytes()]))
    assert message.channels["image"].take_rows(np.array([0])) is None
    for name in ("line", "text"):
        with pytest.raises(BsreadError) as info:
            message.channels[name].take_rows(np.array([0]))
        assert info.value.reason == "not-an-image"


@pytest.mark.parametrize("compression_name", ["none", "bitshuffle_lz4"])
@pytest.mark.parametrize("rows", [[4], [-5], [0, 1, 9], np.array([0.5]), np.array([2**63 + 1], dtype=np.uint64)])
def test_take_rows_out_of_range_is_an_index_error(compression_name: str, rows: Any) -> None:
    channel = decode(_image_message(np.zeros((4, 6), dtype=np.uint16), compression_name)).channels["image"]
    with pytest.raises(IndexError):
        channel.take_rows(np.asarray(rows))


def _corrupt_bitshuffle(kind: str) -> list[bytes]:
    """A 64x48 uint16 image in blocks of 128 elements (24 blocks) with one thing broken."""
    array = np.random.default_rng(3).integers(0, 4096, size=(64, 48)).astype(np.uint16)
    parts = _image_message(array, "bitshuffle_lz4", 128)
    frame = bytearray(parts[2])
    first_size = struct.unpack_from(">I", frame, 12)[0]
    second = 12 + 4 + first_size  # where block 1's size prefix is
    if kind == "prefix of an unread block overruns":
        struct.pack_into(">I", frame, second, 2**31)
    elif kind == "prefix of an unread block too short":
        struct.pack_into(">I", frame, second, 3)
    elif kind == "garbage in the block read":
        frame[16:16 + first_size] = bytes([0xF0]) * first_size  # LZ4 tokens claiming long literal runs
    elif kind == "truncated":
        del frame[-9:]
    elif kind == "block size not a multiple of 8":
        struct.pack_into(">i", frame, 8, 12 * 2)
    parts[2] = bytes(frame)
    return parts


@pytest.mark.parametrize("kind", ["prefix of an unread block overruns", "prefix of an unread block too short",
                                  "garbage in the block read", "truncated", "block size not a multiple of 8"])
def test_take_rows_of_a_corrupt_frame_is_a_bsread_error(kind: str) -> None:
    """Only row 0 (block 0) is wanted, yet the framing of every block is checked before anything is decoded."""
    channel = decode(_corrupt_bitshuffle(kind)).channels["image"]
    with pytest.raises(BsreadError) as info:
        channel.take_rows(np.array([0]))
    assert info.value.reason in ("bad-compression", "size-mismatch")
    with pytest.raises(BsreadError):
        channel.value


@pytest.mark.parametrize("block_bytes", [2**20, 2**31 - 8])
def test_take_rows_block_size_claims_do_not_size_allocations(block_bytes: int) -> None:
    """A 3000x8 uint8 image (24 kB) sent as one block but announcing a 2 GiB block: nothing near that allocated."""
    array = np.random.default_rng(5).integers(0, 3, size=(3000, 8)).astype(np.uint8)
    frame = struct.pack(">qi", array.nbytes, block_bytes) + bitshuffle.compress_lz4(array.reshape(-1), block_bytes).tobytes()
    channel = {"name": "image", "type": "uint8", "shape": [8, 3000], "compression": "bitshuffle_lz4"}
    message = decode(hand_message([channel], [frame, stamp_bytes()]))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        taken = message.channels["image"].take_rows(np.array([5, 2999]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(taken, array[[5, 2999]])
    assert peak < 1024 * 1024, f"peak {peak} bytes"


def test_take_rows_checks_the_framing_once_per_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The statistics read a value's rows twice (locating rows, then a band): one walk of the block prefixes."""
    walks: list[int] = []
    original = compression._bitshuffle_block_offsets

    def counting(*args: Any) -> Any:
        walks.append(1)
        return original(*args)

    monkeypatch.setattr(compression, "_bitshuffle_block_offsets", counting)
    array = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    channel = decode(_image_message(array, "bitshuffle_lz4", 128)).channels["image"]
    np.testing.assert_array_equal(channel.take_rows(np.arange(0, 64, 8)), array[::8])
    np.testing.assert_array_equal(channel.take_rows(np.arange(30, 40)), array[30:40])
    assert len(walks) == 1
    corrupt = decode(_corrupt_bitshuffle("prefix of an unread block overruns")).channels["image"]
    for _ in range(2):  # a bad frame is not remembered as checked
        with pytest.raises(BsreadError):
            corrupt.take_rows(np.array([0]))
    assert len(walks) == 3
