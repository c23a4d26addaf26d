"""Interop with PSI's psi-bsread, used here only as a test peer (GPL-3.0; nothing of it is in stream/).

Direction 1: bsread.Sender -> our Receiver. Direction 2: our Simulator / Encoder -> bsread.Source.
Values are compared exactly against what was sent.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest
import zmq

bsread = pytest.importorskip("bsread")

from stream.encoder import Encoder  # noqa: E402

from stream.protocol import Message
from stream.simulator import BeamModel, Simulator, SimulatorConfig  # noqa: E402
from tests.helpers import LOCALHOST, free_port, send_multipart, wait_until  # noqa: E402

SIMULATOR_CHANNELS = {"image", "image_size_x", "image_size_y", "image_profile_x", "image_profile_y", "beam_energy",
                      "repetition_rate"}
RECEIVE_TIMEOUT_MS = 10_000


def sender_payload(index: int, rng: np.random.Generator) -> dict[str, Any]:
    """What a bsread sender puts in message `index`: every kind of value it can describe."""
    return {
        "image": rng.integers(0, 4096, size=(480, 640)).astype(np.uint16),
        "image_f32": rng.normal(size=(48, 64)).astype(np.float32),
        "profile": rng.normal(size=640),
        "big_endian": np.arange(index, index + 5, dtype=">i4"),
        "as_list": [1.5, 2.5, float(index)],
        "beam_energy": 5.0 + index / 10,  # Python float -> float64
        "count": 1000 + index,  # Python int -> int64
        "flag": index % 2 == 0,  # Python bool
        "small": np.int16(-300 - index),
        "huge": np.uint64(2**63 + index),
        "single": np.float32(0.25 * index),
        "text": f"Grüße #{index}",
        "nothing": None,
    }


def assert_same(name: str, received: Any, sent: Any) -> None:
    if sent is None:
        assert received is None, name
    elif isinstance(sent, str):
        assert received == sent, name
    elif isinstance(sent, (np.ndarray, list)):
        expected = np.asarray(sent)
        assert isinstance(received, np.ndarray), name
        assert received.shape == expected.shape, name
        assert received.dtype.kind == expected.dtype.kind and received.dtype.itemsize == expected.dtype.itemsize, name
        np.testing.assert_array_equal(received, expected, err_msg=name)
    else:
        assert np.ndim(received) == 0, name
        assert received == sent, (name, received, sent)
        assert type(received.item()) is type(np.asarray(sent).item()), name


@pytest.fixture
def bsread_sender() -> Iterator[Any]:
    senders: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("address", f"tcp://{LOCALHOST}")
        kwargs.setdefault("send_timeout", RECEIVE_TIMEOUT_MS)  # a missing peer fails instead of hanging
        sender = bsread.Sender(**kwargs)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        if sender.status_stream_open:
            sender.close()


# ------------------------------------------------------------------------- bsread.Sender -> Receiver


@pytest.mark.parametrize(
    ("data_compression", "header_compression"),
    [
        (None, None),
        ("lz4", None),
        ("bitshuffle_lz4", None),
        (None, "lz4"),
        ("lz4", "lz4"),
        ("bitshuffle_lz4", "bitshuffle_lz4"),
    ],
)
def test_bsread_sender_into_our_receiver(bsread_sender, start_receiver, data_compression: str | None,
                                         header_compression: str | None) -> None:
    port = free_port()
    sender = bsread_sender(port=port, data_compression=data_compression, data_header_compression=header_compression)
    sender.open()
    messages: list[Message] = []
    receiver = start_receiver(f"tcp://{LOCALHOST}:{port}", on_message=messages.append)
    rng = np.random.default_rng(2024)
    sent = [sender_payload(i, rng) for i in range(3)]
    for i, data in enumerate(sent):
        sender.send(data=data, pulse_id=5000 + i, timestamp=(1_700_000_000 + i, 125_000_000))
    wait_until(lambda: len(messages) == 3, message="3 messages from bsread.Sender")

    health = receiver.health()
    assert health.invalid == 0 and dict(health.invalid_by_reason) == {}
    assert [m.format_changed for m in messages] == [True, False, False]
    for i, (message, data) in enumerate(zip(messages, sent)):
        assert message.pulse_id == 5000 + i
        assert message.global_timestamp == pytest.approx(1_700_000_000 + i + 0.125, abs=1e-6)
        assert list(message.channels) == list(data)
        expected_compression = data_compression or "none"
        assert message.channels["image"].spec.compression == expected_compression
        for name, value in data.items():
            assert_same(name, message.value(name), value)
        assert message.channels["beam_energy"].timestamp == pytest.approx(1_700_000_000 + i + 0.125, abs=1e-6)
    # The camera's pipeline saw the same stream: history rows, scalar columns, the recent frames.
    history = receiver.sink.buffer.read()
    assert history.column("pulse_id").tolist() == [5000, 5001, 5002]
    np.testing.assert_array_equal(history.column("beam_energy"), [5.0, 5.1, 5.2])
    np.testing.assert_array_equal(history.column("count"), [1000.0, 1001.0, 1002.0])
    np.testing.assert_array_equal(history.column("flag"), [1.0, 0.0, 1.0])
    frames = receiver.sink.frames.recent()
    assert [frame.pulse_id for frame in frames] == [5000, 5001, 5002]
    for frame, data in zip(frames, sent):
        np.testing.assert_array_equal(frame.image(), data["image"])


def test_bsread_sender_format_change(bsread_sender, start_receiver) -> None:
    port = free_port()
    sender = bsread_sender(port=port)
    sender.open()
    messages: list[Message] = []
    start_receiver(f"tcp://{LOCALHOST}:{port}", on_message=messages.append)
    sender.send(data={"a": 1.0}, pulse_id=1)
    sender.send(data={"a": 2.0}, pulse_id=2)
    sender.send(data={"a": 3.0, "b": np.arange(3, dtype=np.int8)}, pulse_id=3)
    sender.send(data={"a": 4.0, "b": np.arange(3, dtype=np.int8)}, pulse_id=4)
    wait_until(lambda: len(messages) == 4)
    assert [m.format_changed for m in messages] == [True, False, True, False]
    assert messages[1].header is messages[0].header and messages[3].header is messages[2].header
    np.testing.assert_array_equal(messages[3].value("b"), [0, 1, 2])


def test_bsread_publisher_into_our_sub_receiver(bsread_sender, start_receiver) -> None:
    port = free_port()
    sender = bsread_sender(port=port, mode=bsread.PUB)
    sender.open()
    messages: list[Message] = []
    start_receiver(f"tcp://{LOCALHOST}:{port}", mode="sub", on_message=messages.append)
    pulse = [0]

    def publish() -> bool:  # PUB drops everything until the subscription has arrived
        pulse[0] += 1
        sender.send(data={"beam_energy": 5.0 + pulse[0], "text": "pub"}, pulse_id=pulse[0])
        return len(messages) > 0

    wait_until(publish, interval=0.05, message="first published message")
    last = messages[-1]
    assert last.value("beam_energy") == 5.0 + last.pulse_id and last.value("text") == "pub"


def test_bsread_sender_connecting_to_our_bound_receiver(bsread_sender, start_receiver) -> None:
    port = free_port()
    messages: list[Message] = []
    start_receiver(f"tcp://{LOCALHOST}:{port}", bind=True, on_message=messages.append)
    sender = bsread_sender(port=port, conn_type=bsread.CONNECT)
    sender.open()
    image = np.arange(12, dtype=np.float64).reshape(3, 4)
    sender.send(data={"image": image}, pulse_id=9)
    wait_until(lambda: len(messages) == 1)
    np.testing.assert_array_equal(messages[0].value("image"), image)


# ------------------------------------------------------------------------- Simulator -> bsread.Source


@pytest.fixture
def bsread_source() -> Iterator[Any]:
    sources: list[Any] = []

    def make(port: int) -> Any:
        source = bsread.Source(host=LOCALHOST, port=port, mode=bsread.PULL, receive_timeout=RECEIVE_TIMEOUT_MS)
        source.connect()
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.disconnect()


def receive(source: Any) -> Any:
    message = source.receive()
    assert message is not None, "bsread.Source received nothing (timeout or undecodable message)"
    return message.data


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
def test_our_simulator_into_bsread_source(zctx, bsread_source, compression: str) -> None:
    config = SimulatorConfig(port=0, host=LOCALHOST, delay_s=0.0, count=3, compression=compression, seed=31,
                             start_pulse_id=1000)
    simulator = Simulator(config, context=zctx)
    simulator.bind()
    source = bsread_source(simulator.port)
    simulator.start()
    try:
        model = BeamModel(config.width, config.height, config.dtype, seed=31)
        for offset in range(3):
            message = receive(source)
            expected = model.next()
            assert message.pulse_id == 1000 + offset
            assert set(message.data) == SIMULATOR_CHANNELS
            assert message.format_changed == (offset == 0)
            image = message.data["image"].value
            assert image.shape == (480, 640) and image.dtype == np.float64
            np.testing.assert_array_equal(image, expected["image"])
            for name in ("image_profile_x", "image_profile_y"):
                np.testing.assert_array_equal(message.data[name].value, expected[name])
            assert message.data["image_profile_x"].value.shape == (640,)
            assert message.data["image_profile_y"].value.shape == (480,)
            assert message.data["image_size_x"].value == 640 and message.data["image_size_y"].value == 480
            assert message.data["beam_energy"].value == expected["beam_energy"]
            assert 5.0 <= message.data["beam_energy"].value <= 5.5
            assert message.data["repetition_rate"].value == 100.0
            assert message.global_timestamp > 1_600_000_000
            assert message.data["image"].timestamp == message.global_timestamp
    finally:
        simulator.stop()


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
@pytest.mark.parametrize("encoding", ["little", "big"])
def test_our_encoder_into_bsread_source(make_socket, bsread_source, compression: str, encoding: str) -> None:
    """Every type and shape our Encoder writes, decoded by bsread."""
    order = "<" if encoding == "little" else ">"
    rng = np.random.default_rng(8)
    channels: dict[str, Any] = {}
    for type_name, code in [("int8", "i1"), ("uint8", "u1"), ("int16", "i2"), ("uint16", "u2"), ("int32", "i4"),
                            ("uint32", "u4"), ("int64", "i8"), ("uint64", "u8"), ("float32", "f4"),
                            ("float64", "f8"), ("bool", "?")]:
        dtype = np.dtype(code).newbyteorder(order)
        channels[f"{type_name}_scalar"] = np.array(rng.integers(0, 100), dtype=dtype)[()]
        channels[f"{type_name}_1d"] = rng.integers(0, 100, size=17).astype(dtype)
        channels[f"{type_name}_2d"] = rng.integers(0, 100, size=(9, 13)).astype(dtype)
    channels["text"] = "ümlaut ✓"
    channels["missing"] = None

    sender = make_socket(zmq.PUSH)
    port = sender.bind_to_random_port(f"tcp://{LOCALHOST}")
    source = bsread_source(port)
    send_multipart(sender, Encoder().encode(77, 1_700_000_000.5, channels, compression=compression, encoding=encoding))
    message = receive(source)
    assert message.pulse_id == 77
    assert message.global_timestamp == 1_700_000_000 and message.global_timestamp_offset == 500_000_000
    assert list(message.data) == list(channels)
    for name, sent in channels.items():
        got = message.data[name].value
        if sent is None or isinstance(sent, str):
            assert got == sent, name
        elif np.ndim(sent) == 0:
            assert got == sent, name
        else:
            assert got.shape == sent.shape, name
            np.testing.assert_array_equal(got, sent, err_msg=name)
