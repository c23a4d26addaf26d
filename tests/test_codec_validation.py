"""bsread codec validation: one test per reason a message or value is refused, absurd size claims refused
without allocating, corrupt compressed values failing only when read."""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from typing import Any, Callable

import bitshuffle
import numpy as np
import pytest

import stream.values as values
from stream.encoder import Encoder
from stream.protocol import TYPES, BsreadError, Decoder, decode
from tests.hand_built import (
    SEC,
    STAMP,
    bitshuffle_frame,
    decode_everything,
    hand_message,
    lz4_frame,
    stamp_bytes,
)

# ------------------------------------------------------------------------------------ validation


def _base() -> tuple[list[dict[str, Any]], list[bytes]]:
    channels = [{"name": "a", "type": "int32", "shape": [2], "encoding": "little", "compression": "none"}]
    return channels, [struct.pack("<2i", 1, 2), stamp_bytes()]


def _with_main(**override: Any) -> list[bytes]:
    channels, parts = _base()
    return hand_message(channels, parts, main_override=override)


def _with_main_removed(key: str) -> list[bytes]:
    parts = hand_message(*_base())
    main = json.loads(parts[0])
    del main[key]
    parts[0] = json.dumps(main).encode()
    return parts


def _with_channel(value: bytes | None = None, stamp: bytes | None = None, **entry: Any) -> list[bytes]:
    channels, parts = _base()
    channels[0].update(entry)
    channels[0] = {k: v for k, v in channels[0].items() if v is not DROP}
    return hand_message(channels, [parts[0] if value is None else value, parts[1] if stamp is None else stamp])


def _with_data_header(document: Any) -> list[bytes]:
    data_header = json.dumps(document).encode()
    main = {"htype": "bsr_m-1.1", "pulse_id": 1, "hash": hashlib.md5(data_header).hexdigest()}
    return [json.dumps(main).encode(), data_header, *(_base()[1])]


def _raw_data_header(raw: bytes, dh_compression: str | None = None) -> list[bytes]:
    main: dict[str, Any] = {"htype": "bsr_m-1.1", "pulse_id": 1, "hash": hashlib.md5(raw).hexdigest()}
    if dh_compression:
        main["dh_compression"] = dh_compression
    return [json.dumps(main).encode(), raw, *(_base()[1])]


DROP = object()
IMAGE_BYTES = 64 * 48 * 2

MALFORMED: dict[str, tuple[Callable[[], list[Any]], str]] = {
    # bad-main-header
    "main not json": (lambda: [b"\xff{not json", *hand_message(*_base())[1:]], "bad-main-header"),
    "main is a list": (lambda: [b"[1, 2]", *hand_message(*_base())[1:]], "bad-main-header"),
    "main empty": (lambda: [b"", *hand_message(*_base())[1:]], "bad-main-header"),
    "wrong htype": (lambda: _with_main(htype="bsr_d-1.1"), "bad-main-header"),
    "htype not a string": (lambda: _with_main(htype=1.1), "bad-main-header"),
    "pulse_id missing": (lambda: _with_main_removed("pulse_id"), "bad-main-header"),
    "pulse_id string": (lambda: _with_main(pulse_id="12"), "bad-main-header"),
    "pulse_id float": (lambda: _with_main(pulse_id=12.5), "bad-main-header"),
    "pulse_id bool": (lambda: _with_main(pulse_id=True), "bad-main-header"),
    "hash missing": (lambda: _with_main_removed("hash"), "bad-main-header"),
    "global_timestamp list": (lambda: _with_main(global_timestamp=[1, 2]), "bad-main-header"),
    "global_timestamp sec string": (lambda: _with_main(global_timestamp={"sec": "now", "ns": 0}), "bad-main-header"),
    "global_timestamp no sec": (lambda: _with_main(global_timestamp={"ns": 0}), "bad-main-header"),
    # bad-data-header
    "data header not json": (lambda: _raw_data_header(b"{\"htype\": "), "bad-data-header"),
    "data header a list": (lambda: _with_data_header([]), "bad-data-header"),
    "data header wrong htype": (lambda: _with_data_header({"htype": "bsr_m-1.1", "channels": []}), "bad-data-header"),
    "channels not a list": (lambda: _with_data_header({"htype": "bsr_d-1.1", "channels": {"a": 1}}), "bad-data-header"),
    "channel not an object": (lambda: _with_data_header({"htype": "bsr_d-1.1", "channels": ["a"]}), "bad-data-header"),
    "channel without name": (lambda: _with_channel(name=DROP), "bad-data-header"),
    "channel name not a string": (lambda: _with_channel(name=5), "bad-data-header"),
    "duplicate channel names": (
        lambda: hand_message([{"name": "a"}, {"name": "a"}], [b"", b"", b"", b""]), "bad-data-header"),
    "bad encoding": (lambda: _with_channel(encoding="middle"), "bad-data-header"),
    "lz4 data header not json": (lambda: _raw_data_header(lz4_frame(b"\x00\x01 not json"), "lz4"), "bad-data-header"),
    # part-count
    "no parts": (lambda: [], "part-count"),
    "only main header": (lambda: hand_message(*_base())[:1], "part-count"),
    "timestamp missing": (lambda: hand_message(*_base())[:-1], "part-count"),
    "value and timestamp missing": (lambda: hand_message(*_base())[:-2], "part-count"),
    "extra part": (lambda: hand_message(*_base()) + [b""], "part-count"),
    # size-mismatch
    "value too short": (lambda: _with_channel(value=struct.pack("<i", 1)), "size-mismatch"),
    "value too long": (lambda: _with_channel(value=struct.pack("<3i", 1, 2, 3)), "size-mismatch"),
    "lz4 claims wrong size": (
        lambda: _with_channel(value=lz4_frame(struct.pack("<3i", 1, 2, 3)), compression="lz4"), "size-mismatch"),
    "bitshuffle claims wrong size": (
        lambda: _with_channel(value=bitshuffle_frame(np.arange(4, dtype="<i4"), 8), compression="bitshuffle_lz4"),
        "size-mismatch"),
    "bitshuffle negative size": (
        lambda: _with_channel(value=struct.pack(">qi", -8, 64) + b"\0" * 8, compression="bitshuffle_lz4"),
        "size-mismatch"),
    "string too long": (
        lambda: _with_channel(value=b"x" * (values.MAX_STRING_BYTES + 1), type="string", shape=[1]), "size-mismatch"),
    # unknown-type
    "unknown type": (lambda: _with_channel(type="complex128"), "unknown-type"),
    "type not a string": (lambda: _with_channel(type=["int32"]), "unknown-type"),
    # bad-compression
    "unknown channel compression": (lambda: _with_channel(compression="zstd"), "bad-compression"),
    "unknown dh_compression": (lambda: _with_main(dh_compression="gzip"), "bad-compression"),
    "lz4 value too short": (lambda: _with_channel(value=b"\x08\x00", compression="lz4"), "bad-compression"),
    "lz4 garbage payload": (
        lambda: _with_channel(value=struct.pack("<I", 8) + b"\xff" * 6, compression="lz4"), "bad-compression"),
    "lz4 impossible ratio": (
        lambda: hand_message([{"name": "img", "type": "uint16", "shape": [64, 48], "compression": "lz4"}],
                             [struct.pack("<I", IMAGE_BYTES) + b"\x00", stamp_bytes()]), "bad-compression"),
    "bitshuffle value too short": (
        lambda: _with_channel(value=struct.pack(">q", 8), compression="bitshuffle_lz4"), "bad-compression"),
    "bitshuffle truncated blocks": (
        lambda: hand_message([{"name": "img", "type": "uint16", "shape": [64, 48], "compression": "bitshuffle_lz4"}],
                             [bitshuffle_frame(np.ones((48, 64), np.uint16))[:-9], stamp_bytes()]), "bad-compression"),
    "bitshuffle block size not a multiple of 8": (
        lambda: hand_message([{"name": "img", "type": "uint16", "shape": [64, 48], "compression": "bitshuffle_lz4"}],
                             [bitshuffle_frame(np.ones((48, 64), np.uint16), header_block=6), stamp_bytes()]),
        "bad-compression"),
    "bitshuffle corrupt block": (
        lambda: hand_message(
            [{"name": "img", "type": "uint16", "shape": [64, 48], "compression": "bitshuffle_lz4"}],
            [_corrupt_bitshuffle_block(), stamp_bytes()]), "bad-compression"),
    "lz4 data header garbage": (
        lambda: _raw_data_header(struct.pack("<I", 100) + b"\xff" * 20, "lz4"), "bad-compression"),
    # bad-hash
    "hash mismatch": (lambda: _with_main(hash="0" * 32), "bad-hash"),
    # bad-timestamp
    "timestamp 8 bytes": (lambda: _with_channel(stamp=struct.pack("<q", SEC)), "bad-timestamp"),
    "timestamp 17 bytes": (lambda: _with_channel(stamp=stamp_bytes() + b"\0"), "bad-timestamp"),
    # bad-shape
    "shape not a list": (lambda: _with_channel(shape="640"), "bad-shape"),
    "shape empty": (lambda: _with_channel(shape=[]), "bad-shape"),
    "shape negative": (lambda: _with_channel(shape=[-2]), "bad-shape"),
    "shape float": (lambda: _with_channel(shape=[2.0]), "bad-shape"),
    "shape bool": (lambda: _with_channel(shape=[True]), "bad-shape"),
    "shape too many dimensions": (lambda: _with_channel(shape=[1, 1, 1, 2]), "bad-shape"),
    # absurd-shape
    "absurd image": (lambda: _with_channel(shape=[100000, 100000], value=b"0123456789"), "absurd-shape"),
    "absurd 3-d": (lambda: _with_channel(shape=[4096, 4096, 4096], type="uint8"), "absurd-shape"),
}


def _corrupt_bitshuffle_block() -> bytes:
    frame = bytearray(bitshuffle_frame(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64), 128))
    # Keep every length prefix intact but scramble the first LZ4 block's contents.
    first_length = struct.unpack_from(">I", frame, 12)[0]
    frame[16:16 + first_length] = b"\xf0" * first_length
    return bytes(frame)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_message_reason(case: str) -> None:
    build, reason = MALFORMED[case]
    parts = build()
    with pytest.raises(BsreadError) as info:
        decode_everything(parts)
    assert info.value.reason == reason, f"{case}: {info.value}"
    assert isinstance(info.value, ValueError)  # BsreadError stays catchable as ValueError


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_message_with_warm_decoder(case: str) -> None:
    """The same checks apply when a decoder has already cached a (different) header."""
    decoder = Decoder()
    decoder.decode(Encoder().encode(1, STAMP, {"a": np.zeros(2, np.int32)}))
    build, reason = MALFORMED[case]
    with pytest.raises(BsreadError) as info:
        decode_everything(build(), decoder)
    assert info.value.reason == reason


def test_corrupt_compressed_value_fails_only_when_read() -> None:
    """decode() checks framing; a corrupt payload with plausible framing is reported on .value."""
    message = decode(MALFORMED["lz4 garbage payload"][0]())
    channel = message.channels["a"]
    with pytest.raises(BsreadError) as info:
        channel.value
    assert info.value.reason == "bad-compression"


def test_every_known_type_accepted() -> None:
    channels = [{"name": name, "type": name} for name in TYPES]
    message = decode(hand_message(channels, [b""] * (2 * len(TYPES))))
    assert {c.spec.type for c in message.channels.values()} == set(TYPES)


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        # 100000 x 100000 float64 image: rejected from the header alone.
        ({"type": "float64", "shape": [100000, 100000]}, b"0123456789"),
        # 20000 x 20000 uint8 (400 MB, below the hard limit): the 10-byte payload is the giveaway.
        ({"type": "uint8", "shape": [20000, 20000]}, b"0123456789"),
        ({"type": "uint8", "shape": [20000, 20000], "compression": "lz4"}, struct.pack("<I", 400_000_000) + b"012345"),
        ({"type": "uint8", "shape": [20000, 20000], "compression": "bitshuffle_lz4"},
         struct.pack(">qi", 400_000_000, 8192) + b"0123456789"),
        ({"type": "float64", "shape": [100000, 100000], "compression": "bitshuffle_lz4"},
         struct.pack(">qi", 8 * 10**10, 8192) + b"0123456789"),
    ],
)
def test_absurd_claims_rejected_without_allocating(entry: dict[str, Any], value: bytes) -> None:
    parts = hand_message([{"name": "image", **entry}], [value, stamp_bytes()])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(BsreadError) as info:
            decode_everything(parts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason in ("absurd-shape", "size-mismatch", "bad-compression")
    assert peak < 1024 * 1024, f"peak {peak} bytes"


@pytest.mark.parametrize("block_bytes", [8192, 2**20, 2**31 - 8])
def test_bitshuffle_block_size_does_not_size_allocations(block_bytes: int) -> None:
    """The block size is the sender's claim; 112 bytes claiming a 2 GiB block must not cost 2 GiB."""
    values = np.arange(100, dtype=np.uint8)
    frame = struct.pack(">qi", values.nbytes, block_bytes) + bitshuffle.compress_lz4(values, 0).tobytes()
    channel = {"name": "v", "type": "uint8", "shape": [100], "compression": "bitshuffle_lz4"}
    header = json.dumps({"htype": "bsr_d-1.1", "channels": [channel]}).encode()
    packed_header = bitshuffle.compress_lz4(np.frombuffer(header, np.uint8), 0).tobytes()
    parts = hand_message([channel], [frame, stamp_bytes()])
    parts[1] = struct.pack(">qi", len(header), block_bytes) + packed_header  # the data header too
    main = json.loads(parts[0])
    main.update(dh_compression="bitshuffle_lz4", hash=hashlib.md5(parts[1]).hexdigest())
    parts[0] = json.dumps(main).encode()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        value = decode(parts).value("v")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(value, values)
    assert peak < 1024 * 1024, f"peak {peak} bytes"
