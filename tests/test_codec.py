"""bsread codec: golden messages (hand-built bytes and encoder round trips), header reuse, zero-copy,
lazy decompression, and one test per validation reason code."""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from typing import Any, Callable

import bitshuffle
import lz4.block
import numpy as np
import pytest
import zmq

import stream.compression as compression
import stream.protocol as protocol
import stream.values as values
from stream.encoder import Encoder

# --------------------------------------------------------------------------------- hand-built frames
from stream.protocol import TYPES, BsreadError, Decoder, decode
# Everything below is built from json/struct/hashlib/numpy byte order and the lz4/bitshuffle libraries
# directly, never through stream.encoder.Encoder, so the decoder is checked against the protocol itself.

SEC, NS = 1_700_000_000, 250_000_000
STAMP = SEC + NS * 1e-9

# bsread type -> numpy type char and values that probe the extremes of the type.
TYPE_SAMPLES: dict[str, tuple[str, list[Any]]] = {
    "int8": ("i1", [-128, 127, -1, 0, 5, 100]),
    "uint8": ("u1", [0, 255, 1, 128, 7, 9]),
    "int16": ("i2", [-32768, 32767, -2, 0, 300, 1234]),
    "uint16": ("u2", [0, 65535, 1, 4095, 256, 513]),
    "int32": ("i4", [-(2**31), 2**31 - 1, -3, 0, 70000, 12]),
    "uint32": ("u4", [0, 2**32 - 1, 2**31, 65536, 4, 99]),
    "int64": ("i8", [-(2**63), 2**63 - 1, -4, 0, 2**40, 77]),
    "uint64": ("u8", [0, 2**64 - 1, 2**63, 2**40 + 1, 8, 123]),
    "float32": ("f4", [-1.5, 3.25, 0.0, 1e30, -2.0**-20, 7.0]),
    "float64": ("f8", [-1.5e300, 2.0**-1074, 0.1, np.pi, -0.0, 5.0]),
    "bool": ("?", [True, False, True, True, False, False]),
}
SHAPES = {"scalar": (), "1d": (6,), "2d": (2, 3)}


def sample_array(type_name: str, shape: tuple[int, ...], order: str = "<") -> np.ndarray:
    code, values = TYPE_SAMPLES[type_name]
    count = int(np.prod(shape)) if shape else 1
    return np.array(values[:count], dtype=np.dtype(code).newbyteorder(order)).reshape(shape)


def stamp_bytes(sec: int = SEC, ns: int = NS, encoding: str = "little") -> bytes:
    return struct.pack("<qq" if encoding == "little" else ">qq", sec, ns)


def lz4_frame(raw: bytes, size_order: str = "<") -> bytes:
    return struct.pack(size_order + "I", len(raw)) + lz4.block.compress(raw, store_size=False)


def bitshuffle_frame(array: np.ndarray, block_elements: int = 128, header_block: int | None = None) -> bytes:
    flat = np.ascontiguousarray(array).reshape(-1)
    itemsize = flat.dtype.itemsize
    payload = bitshuffle.compress_lz4(flat.view(f"u{itemsize}"), block_elements).tobytes()
    block_bytes = block_elements * itemsize if header_block is None else header_block
    return struct.pack(">qi", flat.nbytes, block_bytes) + payload


def hand_message(
    channels: list[dict[str, Any]],
    parts: list[bytes],
    pulse_id: int = 42,
    global_timestamp: dict[str, Any] | None = None,
    dh_compression: str | None = None,
    main_override: dict[str, Any] | None = None,
) -> list[bytes]:
    """A bsread message from a channel list and the value/timestamp parts (two per channel)."""
    data_header = json.dumps({"htype": "bsr_d-1.1", "channels": channels}).encode()
    if dh_compression == "lz4":
        data_header = lz4_frame(data_header)
    elif dh_compression == "bitshuffle_lz4":
        data_header = bitshuffle_frame(np.frombuffer(data_header, dtype=np.uint8), block_elements=8192)
    main: dict[str, Any] = {
        "htype": "bsr_m-1.1",
        "pulse_id": pulse_id,
        "global_timestamp": {"sec": SEC, "ns": NS} if global_timestamp is None else global_timestamp,
        "hash": hashlib.md5(data_header).hexdigest(),
    }
    if dh_compression is not None:
        main["dh_compression"] = dh_compression
    main.update(main_override or {})
    return [json.dumps(main).encode(), data_header, *parts]


def decode_everything(parts: list[Any], decoder: Decoder | None = None) -> dict[str, Any]:
    """Decode a message and every channel value (lazy decoding errors surface here too)."""
    message = (decoder or Decoder()).decode(parts)
    return {name: channel.value for name, channel in message.channels.items()}


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
