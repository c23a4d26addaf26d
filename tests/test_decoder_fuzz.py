"""Property-based fuzzing of the decoder: whatever arrives, only BsreadError escapes and memory stays bounded.

Inputs: valid messages mutated byte-wise (bit flips, replaced/inserted/removed bytes, truncation, parts
dropped/duplicated), optionally re-hashed so a mutated data header gets past the md5 check and into
the parser; structured data headers with random types/shapes/compressions and value bytes; random JSON.
Each input goes through Decoder.decode, every ChannelValue.value (and .rows), and Receiver.handle
(decode + ring buffer + statistics), which must never raise at all.

The examples are derandomized so the suite is repeatable; for a longer random campaign run e.g.
`FUZZ_EXAMPLES=20000 FUZZ_RANDOM=1 python -m pytest tests/test_decoder_fuzz.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tracemalloc
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.encoder import Encoder

from stream.protocol import TYPES, BsreadError, Decoder
from stream.receiver import Receiver
from stream.ring_buffer import RingBuffer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MEMORY_LIMIT = 4 * 1024 * 1024  # bytes; the largest legitimate value here decodes to well under 1 MiB


def examples(default: int) -> int:
    return EXAMPLES or default


# ------------------------------------------------------------------------------------- base messages


def _bases() -> list[list[bytes]]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4096, size=(12, 16)).astype(np.uint16)
    values = {
        "image": image,
        "image_profile_x": image.sum(axis=0).astype(np.float64),
        "image_profile_y": image.sum(axis=1).astype(np.float64),
        "beam_energy": 5.25,
        "flags": np.array([True, False, True]),
        "text": "fuzz ✓",
        "empty": None,
    }
    bases = []
    for compression, dh_compression, encoding in [("none", "none", "little"), ("lz4", "lz4", "big"),
                                                  ("bitshuffle_lz4", "bitshuffle_lz4", "little"),
                                                  ("bitshuffle_lz4", "none", "big"), ("lz4", "none", "little")]:
        encoder = Encoder(dh_compression=dh_compression)
        bases.append(encoder.encode(1000, 1_700_000_000.25, values, compression=compression, encoding=encoding))
    # Larger bitshuffle image with several blocks (partial row decoding has more to choose from).
    big = rng.normal(size=(64, 48)).astype(np.float32)
    bases.append(Encoder().encode(1, 1.0, {"image": big, "x": np.int8(3)}, compression="bitshuffle_lz4"))
    return bases


BASES = _bases()


def rehash(parts: list[bytes]) -> list[bytes]:
    """Fix the main header's md5 after the data header was changed (if the main header is still JSON)."""
    if len(parts) < 2:
        return parts
    try:
        main = json.loads(parts[0])
    except (ValueError, UnicodeDecodeError):
        return parts
    if not isinstance(main, dict):
        return parts
    main["hash"] = hashlib.md5(parts[1]).hexdigest()
    return [json.dumps(main).encode(), *parts[1:]]


@st.composite
def mutated_messages(draw: st.DrawFn) -> list[bytes]:
    parts = [bytearray(p) for p in draw(st.sampled_from(BASES))]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "replace", "insert", "delete", "truncate", "drop_part",
                                     "dup_part", "swap_parts", "empty_part"]))
        if not parts:
            break
        index = draw(st.integers(0, len(parts) - 1))
        part = parts[index]
        if kind == "flip" and part:
            pos = draw(st.integers(0, len(part) - 1))
            part[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "replace" and part:
            pos = draw(st.integers(0, len(part) - 1))
            part[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            pos = draw(st.integers(0, len(part)))
            part[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and part:
            pos = draw(st.integers(0, len(part) - 1))
            del part[pos:pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del part[draw(st.integers(0, len(part))):]
        elif kind == "drop_part":
            del parts[index]
        elif kind == "dup_part":
            parts.insert(index, bytearray(part))
        elif kind == "swap_parts":
            other = draw(st.integers(0, len(parts) - 1))
            parts[index], parts[other] = parts[other], parts[index]
        elif kind == "empty_part":
            parts[index] = bytearray()
    result = [bytes(p) for p in parts]
    return rehash(result) if draw(st.booleans()) else result


@st.composite
def truncated_messages(draw: st.DrawFn) -> list[bytes]:
    base = draw(st.sampled_from(BASES))
    parts = list(base[: draw(st.integers(0, len(base)))])
    if parts and draw(st.booleans()):
        index = draw(st.integers(0, len(parts) - 1))
        parts[index] = parts[index][: draw(st.integers(0, max(0, len(parts[index]) - 1)))]
    return rehash(parts) if draw(st.booleans()) else parts


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                 st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3))
DIMENSION = st.one_of(st.integers(-2, 80), st.integers(0, 2**40), st.sampled_from([1, 2**31, 2**63]))


@st.composite
def channel_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": draw(st.one_of(
        st.sampled_from(["image", "image_profile_x", "image_profile_y", "beam_energy", "a", "b"]),
        st.text(max_size=6), JUNK))}
    if draw(st.booleans()):
        entry["type"] = draw(st.one_of(st.sampled_from(list(TYPES)), JUNK))
    if draw(st.booleans()):
        entry["shape"] = draw(st.one_of(st.lists(DIMENSION, min_size=0, max_size=4), JUNK))
    if draw(st.booleans()):
        entry["encoding"] = draw(st.one_of(st.sampled_from(["little", "big"]), JUNK))
    if draw(st.booleans()):
        entry["compression"] = draw(st.one_of(st.sampled_from(["none", "lz4", "bitshuffle_lz4"]), JUNK))
    return entry


@st.composite
def value_bytes(draw: st.DrawFn) -> bytes:
    """Random value bytes, sometimes with a plausible lz4/bitshuffle header claiming some size."""
    payload = draw(st.binary(max_size=96))
    kind = draw(st.sampled_from(["raw", "lz4", "bitshuffle"]))
    claimed = draw(st.one_of(st.integers(0, 4096), st.integers(0, 2**40)))
    if kind == "lz4":
        return struct.pack(draw(st.sampled_from(["<I", ">I"])), claimed % 2**32) + payload
    if kind == "bitshuffle":
        block = draw(st.sampled_from([0, 8, 64, 128, 1024, 8192, 3, -8]))
        return struct.pack(">qi", claimed, block) + payload
    return payload


@st.composite
def structured_messages(draw: st.DrawFn) -> list[bytes]:
    channels = draw(st.lists(channel_entries(), min_size=0, max_size=4))
    data_header = json.dumps({"htype": "bsr_d-1.1", "channels": channels}).encode()
    main: dict[str, Any] = {"htype": "bsr_m-1.1", "pulse_id": draw(st.integers(-(2**63), 2**64 - 1)),
                            "hash": hashlib.md5(data_header).hexdigest()}
    if draw(st.booleans()):
        main["global_timestamp"] = draw(st.one_of(
            st.fixed_dictionaries({"sec": st.integers(0, 2**40), "ns": st.integers(0, 10**9)}),
            st.fixed_dictionaries({"epoch": st.floats(allow_nan=False, allow_infinity=False)}),
            JUNK))
    parts = [json.dumps(main).encode(), data_header]
    for _ in channels:
        stamp = draw(st.one_of(st.just(struct.pack("<qq", 1, 2)), st.just(b""), st.binary(max_size=20)))
        parts += [draw(value_bytes()), stamp]
    if draw(st.integers(0, 9)) == 0:
        parts += [b""] * draw(st.integers(1, 2))  # wrong part count
    return parts


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                        max_size=4),
                    max_leaves=12)


@st.composite
def random_json_messages(draw: st.DrawFn) -> list[bytes]:
    main = draw(JSON)
    header = draw(st.one_of(JSON, st.fixed_dictionaries({"htype": st.just("bsr_d-1.1"), "channels": JSON})))
    header_bytes = json.dumps(header).encode()
    if isinstance(main, dict) and draw(st.booleans()):
        main.update({"htype": "bsr_m-1.1", "pulse_id": draw(st.integers(0, 10)),
                     "hash": hashlib.md5(header_bytes).hexdigest()})
    parts = [json.dumps(main).encode(), header_bytes]
    parts += draw(st.lists(st.binary(max_size=32), max_size=6))
    return parts


# ------------------------------------------------------------------------------------------ checking


@pytest.fixture(scope="module", autouse=True)
def quiet_receiver_log() -> Iterator[None]:
    # Each example uses a fresh Receiver, which logs the first message of every reason: thousands of lines.
    logger = logging.getLogger("stream.receiver")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _decode_fully(parts: list[bytes], decoder: Decoder) -> None:
    try:
        message = decoder.decode(parts)
    except BsreadError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    for channel in message.channels.values():
        image = len(channel.spec.shape) == 2
        for read in (lambda: channel.value,
                     lambda: channel.take_rows(np.arange(0, channel.spec.shape[0], 3)) if image else None):
            try:
                read()
            except BsreadError as exc:
                assert exc.reason and isinstance(exc.reason, str)


def check(parts: list[bytes], warm: bool) -> None:
    """Nothing but BsreadError from the codec, nothing at all from Receiver.handle; bounded memory."""
    decoder = Decoder()
    receiver = Receiver("tcp://127.0.0.1:1", RingBuffer(capacity=4))  # never started: no socket
    if warm:  # a decoder that has a header cached takes the other path through _header_for
        decoder.decode(BASES[0])
        receiver.handle(BASES[0])
    tracemalloc.start()  # only around the code under test: tracing hypothesis itself is slow
    try:
        _decode_fully(parts, decoder)
        receiver.handle(parts)
        frame = receiver.buffer.latest_frame()
        if frame is not None:
            try:
                frame.image()
            except BsreadError:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"decoding used {peak} bytes"
    health = receiver.health()
    assert health.received + health.invalid >= 1 + int(warm)  # every message recorded or counted


def test_bases_are_valid() -> None:
    for parts in BASES:
        message = Decoder().decode(parts)
        for channel in message.channels.values():
            channel.value
    assert len(BASES) >= 5


@settings(FUZZ, max_examples=examples(300))
@given(parts=mutated_messages(), warm=st.booleans())
def test_mutated_messages(parts: list[bytes], warm: bool) -> None:
    check(parts, warm)


@settings(FUZZ, max_examples=examples(100))
@given(parts=truncated_messages(), warm=st.booleans())
def test_truncated_messages(parts: list[bytes], warm: bool) -> None:
    check(parts, warm)


@settings(FUZZ, max_examples=examples(200))
@given(parts=structured_messages(), warm=st.booleans())
def test_structured_random_headers(parts: list[bytes], warm: bool) -> None:
    check(parts, warm)


@settings(FUZZ, max_examples=examples(100))
@given(parts=random_json_messages(), warm=st.booleans())
def test_random_json(parts: list[bytes], warm: bool) -> None:
    check(parts, warm)


@settings(FUZZ, max_examples=examples(100))
@given(parts=st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes(parts: list[bytes]) -> None:
    check(parts, warm=False)
