"""bsread codec: golden messages (hand-built bytes and encoder round trips), header reuse, zero-copy and
lazy decompression. Validation reasons: test_codec_validation.py; partial row decoding: test_take_rows.py."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import numpy as np
import pytest
import zmq

import stream.compression as compression
import stream.protocol as protocol
from stream.encoder import Encoder
from stream.protocol import BsreadError, Decoder, decode
from tests.hand_built import (
    SHAPES,
    STAMP,
    TYPE_SAMPLES,
    bitshuffle_frame,
    hand_message,
    lz4_frame,
    sample_array,
    stamp_bytes,
)

# ------------------------------------------------------------------------------ literal golden bytes

LITERAL_DATA_HEADER = (
    b'{"htype":"bsr_d-1.1","channels":[{"name":"img","type":"uint16","shape":[3,2],"encoding":"big"},'
    b'{"name":"E","type":"float32"},{"name":"msg","type":"string","shape":[1]},{"name":"gone","type":"int8"}]}'
)
LITERAL_HASH = "f697088d8af330536dc45341a3f4200c"
LITERAL_MESSAGE = [
    b'{"htype":"bsr_m-1.1","pulse_id":1234567890123,"global_timestamp":{"sec":1700000000,"ns":250000000},'
    b'"hash":"f697088d8af330536dc45341a3f4200c"}',
    LITERAL_DATA_HEADER,
    bytes.fromhex("0001 0002 0003 0004 0005 0006"),  # img: 6 x uint16 big endian
    bytes.fromhex("000000006553f100 000000000ee6b280"),  # its timestamp, big endian
    bytes.fromhex("0000a840"),  # E: float32 5.25 little endian
    bytes.fromhex("00f1536500000000 80b2e60e00000000"),  # timestamp, little endian
    "Grüezi".encode("utf-8"),  # msg
    bytes.fromhex("00f1536500000000 80b2e60e00000000"),
    b"",  # gone: empty value
    b"",  # and empty timestamp
]


def test_literal_golden_message() -> None:
    assert hashlib.md5(LITERAL_DATA_HEADER).hexdigest() == LITERAL_HASH  # the golden data itself is sound
    message = decode(LITERAL_MESSAGE)
    assert message.pulse_id == 1234567890123
    assert message.global_timestamp == pytest.approx(STAMP, abs=1e-6)
    assert list(message.channels) == ["img", "E", "msg", "gone"]

    img = message.channels["img"]
    # shape [3, 2] is fastest-varying first: numpy (2, 3), filled row by row.
    assert img.spec.shape == (2, 3)
    assert img.value.dtype == np.dtype(">u2")
    np.testing.assert_array_equal(img.value, [[1, 2, 3], [4, 5, 6]])
    assert img.timestamp == pytest.approx(STAMP, abs=1e-6)

    energy = message.channels["E"]
    assert energy.spec.type == "float32" and energy.spec.shape == () and energy.spec.encoding == "little"
    assert energy.value == np.float32(5.25) and energy.value.dtype == np.float32

    assert message.value("msg") == "Grüezi"
    gone = message.channels["gone"]
    assert gone.is_empty and gone.value is None and gone.timestamp is None
    assert message.nbytes == sum(len(part) for part in LITERAL_MESSAGE)


# ---------------------------------------------------------------------- hand-built: every type/shape


@pytest.mark.parametrize("encoding", ["little", "big"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("type_name", list(TYPE_SAMPLES))
def test_hand_built_types_shapes_endianness(type_name: str, shape_name: str, encoding: str) -> None:
    shape = SHAPES[shape_name]
    order = "<" if encoding == "little" else ">"
    array = sample_array(type_name, shape, order)
    announced = [1] if shape == () else list(reversed(shape))
    channel = {"name": "ch", "type": type_name, "shape": announced, "encoding": encoding, "compression": "none"}
    parts = hand_message([channel], [array.tobytes(), stamp_bytes(encoding=encoding)])

    value = decode(parts).channels["ch"]
    assert value.spec.type == type_name
    assert value.timestamp == pytest.approx(STAMP, abs=1e-6)
    decoded = value.value
    expected_dtype = np.dtype(TYPE_SAMPLES[type_name][0]).newbyteorder(order)
    if shape == ():
        assert np.ndim(decoded) == 0 and not isinstance(decoded, np.ndarray)
        assert decoded.dtype == np.dtype(TYPE_SAMPLES[type_name][0])  # numpy scalars are native order
        assert decoded == array[()]
    else:
        assert decoded.shape == shape
        assert decoded.dtype == expected_dtype
        np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("encoding", ["little", "big"])
@pytest.mark.parametrize("type_name", ["uint8", "int16", "uint16", "int32", "float32", "float64", "uint64", "bool"])
def test_hand_built_lz4_values(type_name: str, encoding: str) -> None:
    order = "<" if encoding == "little" else ">"
    values = sample_array(type_name, (6,), order)
    image = np.resize(values, (7, 9)).astype(values.dtype)  # announced as [9, 7]; resize drops byte order
    assert image.dtype == values.dtype
    channel = {"name": "image", "type": type_name, "shape": [9, 7], "encoding": encoding, "compression": "lz4"}
    parts = hand_message([channel], [lz4_frame(image.tobytes(), order), stamp_bytes(encoding=encoding)])
    decoded = decode(parts).channels["image"].value
    assert decoded.shape == (7, 9)
    np.testing.assert_array_equal(decoded, image)


def test_hand_built_lz4_size_prefix_little_endian_on_big_channel() -> None:
    """psi-bsread always writes the lz4 size prefix little endian, even for big-endian channels."""
    array = np.arange(40, dtype=">i4")
    channel = {"name": "a", "type": "int32", "shape": [40], "encoding": "big", "compression": "lz4"}
    parts = hand_message([channel], [lz4_frame(array.tobytes(), "<"), stamp_bytes(encoding="big")])
    np.testing.assert_array_equal(decode(parts).channels["a"].value, np.arange(40))


@pytest.mark.parametrize(
    ("type_name", "shape", "block_elements"),
    [
        ("uint16", (48, 64), 128),  # several full blocks
        ("float64", (37, 41), 128),  # a short last block and 5 leftover elements sent raw
        ("int8", (3, 5), 8),  # one block of 8 plus 7 leftover elements
        ("float32", (100,), 0),  # block size 0 in the header: the library default
        ("uint8", (4,), 128),  # fewer elements than one bitshuffle group: all leftover
        ("bool", (2, 6), 8),
    ],
)
@pytest.mark.parametrize("encoding", ["little", "big"])
def test_hand_built_bitshuffle_values(type_name: str, shape: tuple[int, ...], block_elements: int, encoding: str) -> None:
    order = "<" if encoding == "little" else ">"
    code = TYPE_SAMPLES[type_name][0]
    rng = np.random.default_rng(7)
    if type_name == "bool":
        array = rng.integers(0, 2, size=shape).astype(bool)
    else:
        array = (rng.integers(0, 100, size=shape)).astype(np.dtype(code).newbyteorder(order))
    frame = bitshuffle_frame(array, block_elements)  # 0: the library's default block, announced as 0
    announced = list(reversed(shape))
    channel = {"name": "v", "type": type_name, "shape": announced, "encoding": encoding, "compression": "bitshuffle_lz4"}
    decoded = decode(hand_message([channel], [frame, stamp_bytes(encoding=encoding)])).channels["v"].value
    assert decoded.shape == shape
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
def test_hand_built_strings(compression: str) -> None:
    text = '{"roi": [0, 640], "note": "Strahl ölig — µm"}'
    raw = text.encode("utf-8")
    if compression == "lz4":
        raw = lz4_frame(raw)
    elif compression == "bitshuffle_lz4":
        raw = bitshuffle_frame(np.frombuffer(text.encode(), dtype=np.uint8), block_elements=8192)
    channel = {"name": "processing_parameters", "type": "string", "compression": compression}
    message = decode(hand_message([channel], [raw, stamp_bytes()]))
    assert message.value("processing_parameters") == text


@pytest.mark.parametrize("dh_compression", ["lz4", "bitshuffle_lz4"])
def test_hand_built_compressed_data_header(dh_compression: str) -> None:
    channels = [{"name": f"ch{i}", "type": "int32", "shape": [1]} for i in range(20)]
    parts = [p for i in range(20) for p in (struct.pack("<i", i * 11), stamp_bytes())]
    message = decode(hand_message(channels, parts, dh_compression=dh_compression))
    assert [message.value(f"ch{i}") for i in range(20)] == [i * 11 for i in range(20)]
    assert message.header.raw[:1] != b"{"  # kept as received (compressed)


def test_hand_built_defaults_and_epoch_timestamp() -> None:
    """No type (= float64), no shape (= scalar), no encoding (= little), no compression; `epoch` key."""
    parts = hand_message([{"name": "x"}], [struct.pack("<d", 2.5), stamp_bytes()],
                         global_timestamp={"epoch": 1_600_000_000, "ns": 5})
    message = decode(parts)
    spec = message.channels["x"].spec
    assert (spec.type, spec.shape, spec.encoding, spec.compression) == ("float64", (), "little", "none")
    assert message.value("x") == 2.5
    assert message.global_timestamp == pytest.approx(1_600_000_000 + 5e-9, abs=1e-6)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ({"sec": 1_700_000_001, "ns": 500_000_000}, 1_700_000_001.5),
        ({"epoch": 1_700_000_002, "ns": 250_000_000}, 1_700_000_002.25),
        ({"sec": 1_700_000_003}, 1_700_000_003.0),  # ns omitted
    ],
)
def test_global_timestamp_variants(stamp: dict[str, int], expected: float) -> None:
    parts = hand_message([{"name": "x"}], [struct.pack("<d", 1.0), stamp_bytes()], global_timestamp=stamp)
    assert decode(parts).global_timestamp == pytest.approx(expected, abs=1e-6)


def test_missing_global_timestamp_is_zero() -> None:
    parts = hand_message([{"name": "x"}], [struct.pack("<d", 1.0), stamp_bytes()])
    main = json.loads(parts[0])
    del main["global_timestamp"]
    parts[0] = json.dumps(main).encode()
    assert decode(parts).global_timestamp == 0.0


def test_hand_built_empty_values_every_kind() -> None:
    channels = [
        {"name": "image", "type": "uint16", "shape": [640, 480], "compression": "bitshuffle_lz4"},
        {"name": "profile", "type": "float64", "shape": [640], "compression": "lz4"},
        {"name": "energy", "type": "float64"},
        {"name": "text", "type": "string"},
    ]
    message = decode(hand_message(channels, [b""] * 8))
    for name in ("image", "profile", "energy", "text"):
        channel = message.channels[name]
        assert channel.is_empty and channel.value is None and channel.timestamp is None
    assert message.value("energy", default=-1.0) is None  # present but empty: None, not the default
    assert message.value("absent", default=-1.0) == -1.0


def test_channel_timestamps_are_per_channel_and_endian() -> None:
    channels = [{"name": "a", "encoding": "little"}, {"name": "b", "encoding": "big"}]
    parts = hand_message(channels, [struct.pack("<d", 1.0), stamp_bytes(10, 1, "little"),
                                    struct.pack(">d", 2.0), stamp_bytes(20, 2, "big")])
    message = decode(parts)
    assert message.channels["a"].timestamp == pytest.approx(10 + 1e-9)
    assert message.channels["b"].timestamp == pytest.approx(20 + 2e-9)
    assert message.value("b") == 2.0


# ------------------------------------------------------------------------------ encoder round trips

ALL_COMPRESSIONS = ["none", "lz4", "bitshuffle_lz4"]


@pytest.mark.parametrize("compression", ALL_COMPRESSIONS)
@pytest.mark.parametrize("encoding", ["little", "big"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("type_name", list(TYPE_SAMPLES))
def test_encoder_round_trip(type_name: str, shape_name: str, encoding: str, compression: str) -> None:
    shape = SHAPES[shape_name]
    order = "<" if encoding == "little" else ">"
    value = sample_array(type_name, shape, order)
    if shape == ():
        value = value[()]  # numpy scalar
    parts = Encoder().encode(7, STAMP, {"ch": value}, compression=compression, encoding=encoding)

    # What the encoder announces, checked against the protocol (not against our decoder).
    entry = json.loads(parts[1])["channels"][0]
    assert entry["type"] == type_name
    assert entry["shape"] == ([1] if shape == () else list(reversed(shape)))
    assert entry["encoding"] == encoding
    sent_compression = "none" if shape == () else compression  # scalars are sent plain
    assert entry["compression"] == sent_compression
    if sent_compression == "none":
        assert parts[2] == np.asarray(value).astype(np.asarray(value).dtype.newbyteorder(order)).tobytes()
    assert parts[3] == stamp_bytes(encoding=encoding)

    channel = decode(parts).channels["ch"]
    if shape == ():
        assert channel.value == value
    else:
        assert channel.value.shape == shape
        assert channel.value.dtype == np.dtype(TYPE_SAMPLES[type_name][0]).newbyteorder(order)
        np.testing.assert_array_equal(channel.value, value)


@pytest.mark.parametrize("compression", ALL_COMPRESSIONS)
@pytest.mark.parametrize("encoding", ["little", "big"])
def test_encoder_round_trip_string(compression: str, encoding: str) -> None:
    parts = Encoder().encode(1, STAMP, {"s": "naïve ☃", "empty": ""}, compression=compression, encoding=encoding)
    entry = json.loads(parts[1])["channels"][0]
    assert entry["type"] == "string" and entry["shape"] == [1]
    message = decode(parts)
    assert message.value("s") == "naïve ☃"
    # Uncompressed, "" is an empty value part, which the protocol reads as "no value"; compressed
    # framing makes the part non-empty, so the empty string survives.
    assert message.value("empty") == (None if compression == "none" else "")


def test_image_shape_is_announced_reversed() -> None:
    image = np.arange(480 * 640, dtype=np.uint16).reshape(480, 640)
    parts = Encoder().encode(1, STAMP, {"image": image})
    assert json.loads(parts[1])["channels"][0]["shape"] == [640, 480]
    decoded = decode(parts).value("image")
    assert decoded.shape == (480, 640)
    assert decoded[1, 0] == 640  # row-major: the fastest dimension is x
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize("dh_compression", ALL_COMPRESSIONS)
@pytest.mark.parametrize("compression", ALL_COMPRESSIONS)
def test_encoder_dh_compression(dh_compression: str, compression: str) -> None:
    image = np.random.default_rng(3).random((48, 64))
    encoder = Encoder(dh_compression=dh_compression)
    parts = encoder.encode(3, STAMP, {"image": image, "e": 5.2, "s": "x"}, compression=compression)
    main = json.loads(parts[0])
    assert main.get("dh_compression", "none") == dh_compression
    assert main["hash"] == hashlib.md5(parts[1]).hexdigest()
    assert (parts[1][:1] == b"{") == (dh_compression == "none")
    message = decode(parts)
    np.testing.assert_array_equal(message.value("image"), image)
    assert message.value("e") == 5.2 and message.value("s") == "x"


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_highly_compressible_image_round_trip(compression: str) -> None:
    """An all-zero frame compresses close to LZ4's ~255:1 limit; the ratio guard must still accept it."""
    image = np.zeros((1024, 1024), dtype=np.float64)
    parts = Encoder().encode(1, STAMP, {"image": image}, compression=compression)
    assert len(parts[2]) * 100 < image.nbytes
    np.testing.assert_array_equal(decode(parts).value("image"), image)


def test_encoder_empty_values() -> None:
    encoder = Encoder()
    first = encoder.encode(1, STAMP, {"image": np.ones((4, 5), np.uint8), "e": 1.0})
    second = encoder.encode(2, STAMP, {"image": None, "e": None})
    assert second[2:] == [b"", b"", b"", b""]
    assert second[1] == first[1]  # the layout of a known channel is kept for an empty value
    decoder = Decoder()
    decoder.decode(first)
    message = decoder.decode(second)
    assert not message.format_changed
    assert message.channels["image"].spec.shape == (4, 5)
    assert message.value("image") is None and message.value("e") is None


def test_encoder_channel_timestamps() -> None:
    parts = Encoder().encode(1, 100.5, {"a": 1.0, "b": 2.0, "c": 3.0},
                             channel_timestamps={"a": 50.25, "b": None})
    message = decode(parts)
    assert message.channels["a"].timestamp == pytest.approx(50.25)
    assert message.channels["b"].timestamp is None and message.value("b") == 2.0
    assert message.channels["c"].timestamp == pytest.approx(100.5)


# ------------------------------------------------------------------- header reuse and format_changed


def test_header_table_reused_while_hash_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = protocol._parse_data_header
    monkeypatch.setattr(protocol, "_parse_data_header", lambda *a: calls.append(1) or original(*a))
    encoder, decoder = Encoder(), Decoder()
    first = decoder.decode(encoder.encode(1, STAMP, {"a": 1.0, "img": np.zeros((3, 4))}))
    second = decoder.decode(encoder.encode(2, STAMP, {"a": 2.0, "img": np.ones((3, 4))}))
    assert first.format_changed is True
    assert second.format_changed is False
    assert second.header is first.header  # the same parsed DataHeader object
    assert second.channels["a"].spec is first.channels["a"].spec
    assert len(calls) == 1
    assert second.value("a") == 2.0 and second.value("img").sum() == 12

    third = decoder.decode(encoder.encode(3, STAMP, {"a": 3.0, "img": np.zeros((3, 5))}))  # new layout
    assert third.format_changed is True
    assert third.header is not first.header and third.header.hash != first.header.hash
    assert third.channels["img"].spec.shape == (3, 5)
    assert len(calls) == 2
    fourth = decoder.decode(encoder.encode(4, STAMP, {"a": 4.0, "img": np.zeros((3, 5))}))
    assert fourth.format_changed is False and fourth.header is third.header


def test_format_changed_back_and_forth() -> None:
    decoder = Decoder()
    a = Encoder().encode(1, STAMP, {"x": 1.0})
    b = Encoder().encode(2, STAMP, {"x": 1.0, "y": 2})
    flags = [decoder.decode(parts).format_changed for parts in (a, a, b, b, a)]
    assert flags == [True, False, True, False, True]


def test_bad_message_does_not_disturb_the_cached_header() -> None:
    decoder, encoder = Decoder(), Encoder()
    good = encoder.encode(1, STAMP, {"x": 1.0})
    first = decoder.decode(good)
    with pytest.raises(BsreadError):
        decoder.decode(good[:2])  # part-count
    again = decoder.decode(encoder.encode(2, STAMP, {"x": 2.0}))
    assert again.header is first.header and not again.format_changed


def test_same_hash_but_different_header_bytes_is_rejected() -> None:
    """A cached header is reused only when the bytes match too; otherwise the md5 is checked again."""
    decoder = Decoder()
    parts = hand_message([{"name": "x", "type": "int32"}], [struct.pack("<i", 1), stamp_bytes()])
    decoder.decode(parts)
    forged = list(parts)
    forged[1] = parts[1].replace(b"int32", b"int16")  # same hash in the main header
    forged[2] = struct.pack("<h", 1)
    with pytest.raises(BsreadError) as info:
        decoder.decode(forged)
    assert info.value.reason == "bad-hash"


# ------------------------------------------------------------------------ zero copy / lazy decoding


def test_uncompressed_values_are_zero_copy_views_of_the_frames() -> None:
    image = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)
    profile = np.linspace(0.0, 1.0, 64)
    parts = Encoder().encode(1, STAMP, {"image": image, "profile": profile})
    message = decode(parts)
    value = message.value("image")
    assert np.shares_memory(value, np.frombuffer(parts[2], dtype=np.uint8))
    assert np.shares_memory(message.value("profile"), np.frombuffer(parts[4], dtype=np.uint8))
    assert not value.flags.writeable
    with pytest.raises(ValueError):
        value[0, 0] = 1


def test_zero_copy_with_real_zmq_frames() -> None:
    context = zmq.Context()
    try:
        push, pull = context.socket(zmq.PUSH), context.socket(zmq.PULL)
        for sock in (push, pull):
            sock.setsockopt(zmq.LINGER, 0)
        pull.bind("inproc://zero-copy")
        push.connect("inproc://zero-copy")
        image = np.arange(256 * 256, dtype=np.float64).reshape(256, 256)  # large: zmq keeps it out of line
        push.send_multipart(Encoder().encode(1, STAMP, {"image": image}))
        assert pull.poll(5000)
        frames = pull.recv_multipart(copy=False)
        value = decode(frames).value("image")
        np.testing.assert_array_equal(value, image)
        assert np.shares_memory(value, np.frombuffer(frames[2].buffer, dtype=np.uint8))
        push.close(0)
        pull.close(0)
    finally:
        context.destroy(linger=0)


@pytest.mark.parametrize(("compression_name", "function"), [("lz4", "_lz4_decompress"),
                                                            ("bitshuffle_lz4", "_bitshuffle_decompress")])
def test_compressed_values_decoded_only_on_access(monkeypatch: pytest.MonkeyPatch, compression_name: str,
                                                  function: str) -> None:
    calls: list[int] = []
    original = getattr(compression, function)

    def counting(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(compression, function, counting)
    image = np.random.default_rng(1).integers(0, 4096, size=(48, 64)).astype(np.uint16)
    message = decode(Encoder().encode(1, STAMP, {"image": image, "profile": image.sum(axis=0)},
                                      compression=compression_name))
    assert calls == []  # decode() only validated the framing
    np.testing.assert_array_equal(message.value("image"), image)
    assert len(calls) == 1
    message.value("image")
    assert len(calls) == 1  # cached
    np.testing.assert_array_equal(message.value("profile"), image.sum(axis=0))
    assert len(calls) == 2
