"""Receiver end to end over real ZeroMQ on 127.0.0.1 (PULL/SUB, connect/bind), plus pulse-id counting.

Every wait is deadline based (`wait_until`); the timeouts are generous bounds for a loaded machine.
"""

from __future__ import annotations

import collections
import struct
import threading
import time
from typing import Any, Callable

import numpy as np
import pytest
import zmq

import stream.receiver as receiver_module
from stream.encoder import Encoder
from stream.health import PulseCounter
from stream.protocol import Message
from stream.receiver import Receiver
from stream.simulator import BeamModel, Simulator, SimulatorConfig
from tests.hand_built import hand_message, stamp_bytes
from tests.helpers import LOCALHOST, bind_retry, free_port, send_multipart, wait_until
from tests.test_codec_validation import MALFORMED

T0 = 1_700_000_000.0


def encode(pulse_id: int, encoder: Encoder | None = None, **channels: Any) -> list[bytes]:
    channels = channels or {"beam_energy": 5.0 + pulse_id * 1e-3}
    return (encoder or Encoder()).encode(pulse_id, T0 + pulse_id * 0.01, channels)


def bound_sender(make_socket: Callable[[int], zmq.Socket], kind: int = zmq.PUSH) -> tuple[zmq.Socket, str]:
    sock = make_socket(kind)
    port = sock.bind_to_random_port(f"tcp://{LOCALHOST}")
    return sock, f"tcp://{LOCALHOST}:{port}"


def pulse_ids(receiver: Receiver) -> list[int]:
    return receiver.sink.buffer.read().column("pulse_id").tolist()


def rows(receiver: Receiver) -> int:
    """History rows the receiver's camera pipeline appended (one per received message)."""
    return receiver.sink.buffer.count


def ignore(message: Message, received: float) -> None:
    pass


# ------------------------------------------------------------------------------ pulse-id counting


def observe(ids: list[int]) -> PulseCounter:
    counter = PulseCounter()
    for pulse_id in ids:
        counter.observe(pulse_id)
    return counter


def test_consecutive_pulses_have_no_gaps() -> None:
    counter = observe(list(range(1000, 1100)))
    assert (counter.missed, counter.duplicated, counter.reverted, counter.jumps) == (0, 0, 0, 0)
    assert counter.step == 1 and counter.last == 1099


def test_missed_pulses_at_step_one() -> None:
    counter = observe([1, 2, 3, 4, 8, 9, 10, 12])  # 5, 6, 7 and 11 missing
    assert counter.missed == 4 and counter.step == 1


def test_learned_step_of_a_10_hz_camera_on_a_100_hz_machine() -> None:
    counter = observe([10, 20, 30, 50])
    assert counter.step == 10
    assert counter.missed == 1  # pulse 40, not 19 pulse ids


def test_learned_step_over_a_longer_stream() -> None:
    ids = [i * 10 for i in range(1, 60) if i not in (15, 30, 31)]
    counter = observe(ids)
    assert counter.step == 10 and counter.missed == 3


def test_duplicated_and_reverted_pulses() -> None:
    counter = observe([1, 2, 2, 3, 1, 2, 3, 4])
    assert counter.duplicated == 1
    assert counter.reverted == 1
    assert counter.missed == 0


def test_huge_forward_jump_is_a_restart_not_missed_pulses() -> None:
    counter = observe([1, 2, 3, 10_000_000_000, 10_000_000_001])
    assert counter.jumps == 1 and counter.missed == 0


# ------------------------------------------------------------------------------ end to end: modes


def test_pull_connect_receives_every_message(make_socket, start_receiver) -> None:
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address, mode="pull")
    health = receiver.health()
    assert health.state == "waiting" and health.received == 0 and health.last_pulse_id is None
    encoder = Encoder()
    sizes = 0
    for pulse_id in range(1, 21):
        parts = encode(pulse_id, encoder, beam_energy=5.0 + pulse_id / 100, image=np.full((4, 6), pulse_id, np.uint8))
        sizes += sum(len(p) for p in parts)
        send_multipart(sender, parts)
    wait_until(lambda: receiver.health().received == 20, message="20 messages")
    health = receiver.health()
    assert health.state == "live"
    assert health.received == 20 and health.bytes_received == sizes
    assert health.invalid == 0 and health.invalid_by_reason == {}
    assert health.last_pulse_id == 20 and health.missed_pulses == 0
    assert health.address == address and health.receiver_restarts == 0
    assert health.last_message_age_s is not None and health.last_message_age_s >= 0
    assert health.last_message_time is not None and abs(health.last_message_time - time.time()) < 60
    assert pulse_ids(receiver) == list(range(1, 21))
    history = receiver.sink.buffer.read()
    assert history.channels == ("beam_energy",)
    np.testing.assert_allclose(history.column("beam_energy"), [5.0 + i / 100 for i in range(1, 21)])
    frame = receiver.sink.frames.latest()
    assert frame.pulse_id == 20 and frame.seq == 19
    np.testing.assert_array_equal(frame.image(), np.full((4, 6), 20, np.uint8))


def test_pull_bind_receives_from_a_connecting_sender(make_socket, start_receiver) -> None:
    address = f"tcp://{LOCALHOST}:{free_port()}"
    receiver = start_receiver(address, mode="pull", bind=True)
    sender = make_socket(zmq.PUSH)
    sender.connect(address)
    for pulse_id in range(1, 6):
        send_multipart(sender, encode(pulse_id))
    wait_until(lambda: receiver.health().received == 5)
    assert pulse_ids(receiver) == [1, 2, 3, 4, 5]
    assert receiver.health().state == "live"


def _send_until_received(sender: zmq.Socket, receiver: Receiver, first_pulse: int) -> int:
    """PUB drops messages until the subscription has arrived: send until one gets through."""
    pulse = [first_pulse]

    def one_more() -> bool:
        sender.send_multipart(encode(pulse[0]))
        pulse[0] += 1
        return rows(receiver) > 0 and receiver.health().last_pulse_id is not None

    wait_until(one_more, interval=0.05, message="first message through PUB/SUB")
    return pulse[0]


def _check_sub_delivery(sender: zmq.Socket, receiver: Receiver) -> None:
    next_pulse = _send_until_received(sender, receiver, first_pulse=1)
    wait_until(lambda: receiver.health().last_pulse_id == next_pulse - 1, message="in-flight messages")
    before = rows(receiver)
    for pulse_id in range(1000, 1010):
        sender.send_multipart(encode(pulse_id))
    wait_until(lambda: rows(receiver) == before + 10, message="10 messages after subscribing")
    assert pulse_ids(receiver)[-10:] == list(range(1000, 1010))


def test_sub_connect_receives_from_a_publisher(make_socket, start_receiver) -> None:
    sender, address = bound_sender(make_socket, zmq.PUB)
    receiver = start_receiver(address, mode="sub")
    _check_sub_delivery(sender, receiver)


def test_sub_bind_receives_from_a_connecting_publisher(make_socket, start_receiver) -> None:
    address = f"tcp://{LOCALHOST}:{free_port()}"
    receiver = start_receiver(address, mode="sub", bind=True)
    sender = make_socket(zmq.PUB)
    sender.connect(address)
    _check_sub_delivery(sender, receiver)


def test_the_sink_gets_each_message_and_its_arrival_time_in_the_receiver_thread(make_socket, zctx) -> None:
    got: list[tuple[int, float, str]] = []

    def sink(message: Message, received: float) -> None:
        got.append((message.pulse_id, received, threading.current_thread().name))

    sender, address = bound_sender(make_socket)
    receiver = Receiver(address, sink, context=zctx).start()
    try:
        before = time.time()
        for pulse_id in range(1, 6):
            send_multipart(sender, encode(pulse_id))
        wait_until(lambda: len(got) == 5, message="5 messages")
        after = time.time()
    finally:
        receiver.stop()
    assert [pulse_id for pulse_id, _, _ in got] == [1, 2, 3, 4, 5]
    stamps = [received for _, received, _ in got]
    assert before <= stamps[0] and stamps[-1] <= after and stamps == sorted(stamps)
    assert {name for _, _, name in got} == {"bsread-receiver"}
    assert receiver.health().last_message_time == stamps[-1]


def test_handle_records_good_messages_and_counts_bad_ones_without_a_socket() -> None:
    got: list[int] = []
    receiver = Receiver("tcp://127.0.0.1:1", lambda message, received: got.append(message.pulse_id))
    assert receiver.handle(encode(7)).pulse_id == 7
    assert receiver.handle([b"not a message"]) is None
    assert receiver.handle(encode(8)[:-1]) is None
    health = receiver.health()
    assert got == [7] and health.received == 1 and dict(health.invalid_by_reason) == {"part-count": 2}
    assert health.bytes_received == sum(len(p) for p in encode(7)) + len(b"not a message") + sum(
        len(p) for p in encode(8)[:-1])
    assert health.state == "live" and not receiver.running  # never started: no thread, not "stopped"


def test_invalid_mode_and_address_in_use(make_socket, zctx) -> None:
    with pytest.raises(ValueError):
        Receiver("tcp://127.0.0.1:1", ignore, mode="push")
    taken, address = bound_sender(make_socket)
    receiver = Receiver(address, ignore, bind=True, context=zctx)
    with pytest.raises(zmq.ZMQError):
        receiver.start()  # reported synchronously, not lost in the thread
    assert not receiver.running


# --------------------------------------------------------------------------------- robustness

DECODE_TIME_REASONS = ["bad-main-header", "bad-data-header", "part-count", "size-mismatch", "unknown-type",
                       "bad-compression", "bad-hash", "bad-timestamp", "bad-shape", "absurd-shape"]


def _malformed_by_reason() -> list[tuple[str, list[bytes]]]:
    """One malformed message per reason code, detected by decode() itself (not on value access)."""
    chosen = {
        "bad-main-header": "main not json",
        "bad-data-header": "data header wrong htype",
        "part-count": "timestamp missing",
        "size-mismatch": "value too short",
        "unknown-type": "unknown type",
        "bad-compression": "unknown dh_compression",
        "bad-hash": "hash mismatch",
        "bad-timestamp": "timestamp 8 bytes",
        "bad-shape": "shape negative",
        "absurd-shape": "absurd image",
    }
    cases = []
    for reason in DECODE_TIME_REASONS:
        build, expected = MALFORMED[chosen[reason]]
        assert expected == reason
        cases.append((reason, build()))
    return cases


def test_malformed_messages_are_counted_and_good_ones_still_received(make_socket, start_receiver) -> None:
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address)
    expected: collections.Counter[str] = collections.Counter()
    good = 0
    encoder = Encoder()
    for round_ in range(2):
        for reason, parts in _malformed_by_reason():
            send_multipart(sender, encode(100 * round_ + good + 1, encoder))
            good += 1
            send_multipart(sender, parts)
            expected[reason] += 1
        send_multipart(sender, [b"just one part"])
        expected["part-count"] += 1
    send_multipart(sender, encode(1000, encoder))
    good += 1
    bad = sum(expected.values())
    wait_until(lambda: receiver.health().received == good and receiver.health().invalid == bad,
               message=f"{good} good and {bad} invalid messages")
    health = receiver.health()
    assert dict(health.invalid_by_reason) == dict(expected)
    assert health.state == "live" and health.last_pulse_id == 1000
    assert rows(receiver) == good
    assert health.receiver_restarts == 0


def test_value_decoding_errors_are_counted(make_socket, start_receiver) -> None:
    """A corrupt compressed scalar passes decode() but fails when the camera's ingest reads it."""
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address)
    channels = [{"name": "good"}, {"name": "bad", "compression": "lz4"}]
    parts = hand_message(channels, [struct.pack("<d", 1.0), stamp_bytes(),
                                    struct.pack("<I", 8) + b"\xff" * 5, stamp_bytes()], pulse_id=1)
    send_multipart(sender, parts)
    send_multipart(sender, encode(2))
    wait_until(lambda: receiver.health().received == 2)
    health = receiver.health()
    assert health.received == 2 and rows(receiver) == 2
    assert dict(health.invalid_by_reason) == {"bad-compression": 1}
    first = receiver.sink.buffer.read()
    assert first.column("good")[0] == 1.0 and "bad" not in first.channels


def test_pulse_accounting_through_the_receiver(make_socket, start_receiver) -> None:
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address)
    ids = [10, 20, 30, 50, 50, 60, 40]  # 40 missed, 50 duplicated, 40 late (reverted)
    for pulse_id in ids:
        send_multipart(sender, encode(pulse_id))
    wait_until(lambda: receiver.health().received == len(ids))
    health = receiver.health()
    assert health.pulse_step == 10
    assert (health.missed_pulses, health.duplicated_pulses, health.reverted_pulses) == (1, 1, 1)
    assert health.last_pulse_id == 40


@pytest.mark.parametrize(("mode", "bind"), [("pull", False), ("pull", True), ("sub", False)])
def test_survives_sender_restart(make_socket, start_receiver, mode: str, bind: bool) -> None:
    kind = zmq.PUSH if mode == "pull" else zmq.PUB
    if bind:
        address = f"tcp://{LOCALHOST}:{free_port()}"
        receiver = start_receiver(address, mode=mode, bind=True)
    else:
        first, address = bound_sender(make_socket, kind)
        receiver = start_receiver(address, mode=mode)

    def sender() -> zmq.Socket:
        sock = make_socket(kind)
        if bind:
            sock.connect(address)
        else:
            bind_retry(sock, address)
        return sock

    for generation in range(3):
        sock = first if generation == 0 and not bind else sender()
        before = rows(receiver)
        base = 1000 * (generation + 1)
        if mode == "sub":
            _send_until_received_after(sock, receiver, before, base)
        else:
            for i in range(3):
                send_multipart(sock, encode(base + i))
            wait_until(lambda: rows(receiver) == before + 3, message=f"generation {generation}")
            assert pulse_ids(receiver)[-3:] == [base, base + 1, base + 2]
        sock.close(0)  # the sender goes away; the next generation binds/connects afresh
    health = receiver.health()
    assert health.receiver_restarts == 0 and health.invalid == 0


def _send_until_received_after(sock: zmq.Socket, receiver: Receiver, before: int, base: int) -> None:
    pulse = [base]

    def one_more() -> bool:
        sock.send_multipart(encode(pulse[0]))
        pulse[0] += 1
        # Messages of the previous publisher may still be arriving: look for this one's pulse ids.
        return bool((receiver.sink.buffer.read(since=before).column("pulse_id") >= base).any())

    wait_until(one_more, interval=0.05, message="messages after the publisher restarted")


def test_survives_an_exception_in_its_own_loop(make_socket, start_receiver) -> None:
    calls = []

    def on_message(message) -> None:
        calls.append(message.pulse_id)
        if len(calls) == 1:
            raise RuntimeError("bug in a callback")

    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address, on_message=on_message)
    send_multipart(sender, encode(1))
    wait_until(lambda: receiver.health().receiver_restarts == 1)
    assert "bug in a callback" in receiver.health().last_error
    # The socket was recreated. Messages the PUSH wrote into the dead connection are lost (ZeroMQ),
    # so keep sending, as a real stream would, until they arrive through the new one.
    pulse = [2]

    def sending() -> bool:
        send_multipart(sender, encode(pulse[0]))
        pulse[0] += 1
        return len(calls) >= 3  # the callback keeps being called after its failure

    wait_until(sending, interval=0.02, message="messages after the restart")
    assert receiver.running and receiver.health().receiver_restarts == 1 and calls[0] == 1
    # Every message but the one whose sink raised is recorded (received, and a history row).
    wait_until(lambda: receiver.health().received == len(calls) - 1 == rows(receiver), message="counts settle")


# -------------------------------------------------------------------------------- stop and state


@pytest.mark.parametrize(("mode", "bind"), [("pull", False), ("sub", True)])
def test_stop_returns_quickly_while_idle(start_receiver, mode: str, bind: bool) -> None:
    receiver = start_receiver(f"tcp://{LOCALHOST}:{free_port()}", mode=mode, bind=bind)
    assert receiver.running
    started = time.monotonic()
    receiver.stop()
    assert time.monotonic() - started < 1.5
    assert not receiver.running and receiver.health().state == "stopped"


def test_stop_returns_quickly_while_receiving(zctx, start_receiver) -> None:
    simulator = Simulator(SimulatorConfig(port=0, host=LOCALHOST, delay_s=0.01, width=320, height=240, seed=1),
                          context=zctx)
    simulator.bind()
    receiver = start_receiver(simulator.address)
    simulator.start()
    try:
        wait_until(lambda: rows(receiver) >= 10, message="stream flowing")
        started = time.monotonic()
        receiver.stop()
        assert time.monotonic() - started < 1.5
        assert not receiver.running and receiver.health().state == "stopped"
    finally:
        simulator.stop()


def test_state_waiting_live_stalled_live(make_socket, start_receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver_module, "STALL_MIN_S", 0.3)
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address)
    assert receiver.health().state == "waiting"
    assert receiver.health().rate_hz == 0.0
    pulse = [1]

    def sending_until_live() -> bool:
        send_multipart(sender, encode(pulse[0]))
        pulse[0] += 1
        return pulse[0] > 3 and receiver.health().state == "live"

    wait_until(sending_until_live, interval=0.02, message="live")
    live = receiver.health()
    assert live.stall_limit_s >= 0.3 and live.received >= 1

    stalled = wait_until(lambda: (h := receiver.health()).state == "stalled" and h, message="stalled")
    assert stalled.last_message_age_s > 0.3
    assert stalled.rate_hz == 0.0 or stalled.last_message_age_s <= receiver_module.RATE_WINDOW_S

    wait_until(sending_until_live, interval=0.02, message="live again")
    assert receiver.health().received > stalled.received


def test_rates_are_reported_while_live(make_socket, start_receiver) -> None:
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address)
    pulse = [1]

    def sending() -> bool:
        send_multipart(sender, encode(pulse[0], image=np.zeros((100, 100))))
        pulse[0] += 1
        health = receiver.health()
        return health.received >= 10 and health.rate_hz > 0 and health.data_rate_mbps > 0

    wait_until(sending, interval=0.01, message="non-zero rates")


# ------------------------------------------------------------------------------ simulator into receiver


@pytest.mark.parametrize("compression", ["none", "lz4", "bitshuffle_lz4"])
@pytest.mark.parametrize("dtype", ["float64", "uint16"])
def test_simulator_into_receiver(zctx, start_receiver, compression: str, dtype: str) -> None:
    config = SimulatorConfig(port=0, host=LOCALHOST, delay_s=0.0, count=5, compression=compression, width=160,
                             height=120, dtype=dtype, seed=5, start_pulse_id=77)
    simulator = Simulator(config, context=zctx)
    simulator.bind()
    received = []
    receiver = start_receiver(simulator.address, on_message=received.append)
    simulator.start()
    wait_until(lambda: len(received) == 5, message="5 simulated messages")
    simulator.stop()
    model = BeamModel(160, 120, dtype, seed=5)
    for offset, message in enumerate(received):
        expected = model.next()
        assert message.pulse_id == 77 + offset
        assert set(message.channels) == set(expected)
        np.testing.assert_array_equal(message.value("image"), expected["image"])
        assert message.value("image").dtype == np.dtype(dtype)
        for name in ("image_profile_x", "image_profile_y", "beam_energy", "repetition_rate", "image_size_x",
                     "image_size_y"):
            np.testing.assert_array_equal(message.value(name), expected[name])
        assert message.channels["image"].spec.compression == compression
    assert receiver.health().missed_pulses == 0


class PeerLeavesAfterPoll:
    """The simulator's socket, but its receiver disconnects right after a poll said "writable"."""

    def __init__(self, socket: zmq.Socket, leave: Callable[[], None]) -> None:
        self.socket, self.leave, self.armed = socket, leave, False

    def poll(self, timeout: int, flags: int) -> int:
        ready = self.socket.poll(timeout, flags)
        if ready and self.armed:
            self.armed = False
            self.leave()
        return ready

    def send_multipart(self, parts: list, **kwargs: Any) -> Any:
        return self.socket.send_multipart(parts, **kwargs)

    def close(self, linger: int | None = None) -> None:
        self.socket.close(linger=linger)


def test_the_simulator_stops_when_its_receiver_left_between_poll_and_send(make_socket) -> None:
    """A blocking send to a PUSH without peer never returns: stop() could not end the simulator, and
    destroying its ZeroMQ context afterwards aborted the process."""
    context = zmq.Context()  # its own: not destroyed under a stuck simulator (that would abort the test run)
    simulator = Simulator(SimulatorConfig(port=0, host=LOCALHOST, delay_s=0.0, width=16, height=8, seed=1),
                          context=context)
    simulator.bind()
    real = simulator._socket
    gone = real.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    pull = make_socket(zmq.PULL)

    def leave() -> None:  # in the simulator's thread, between its poll and its send
        pull.close(0)
        assert gone.poll(10_000), "the receiver's disconnect was not seen"
        # Until the socket itself has dropped the peer's pipe (EVENTS processes its commands).
        wait_until(lambda: not real.getsockopt(zmq.EVENTS) & zmq.POLLOUT, message="the pipe dropped")

    wrapped = PeerLeavesAfterPoll(real, leave)
    simulator._socket = wrapped
    pull.connect(simulator.address)
    simulator.start()
    try:
        assert pull.poll(10_000) and pull.recv_multipart()
        wrapped.armed = True
        wait_until(lambda: not wrapped.armed, message="the receiver left")
    finally:
        sent = simulator.sent
        simulator.stop(timeout=5.0)  # closes its socket, which ends the monitoring too
        gone.close(0)
    assert not simulator._thread.is_alive(), "the simulator is stuck in a send"
    context.term()
    assert simulator.sent >= sent


def test_oversized_messages_are_refused_and_the_stream_continues(make_socket, start_receiver) -> None:
    """A frame above max_message_bytes makes ZeroMQ drop that connection; it reconnects for the next ones."""
    sender, address = bound_sender(make_socket)
    receiver = start_receiver(address, max_message_bytes=4096)
    send_multipart(sender, encode(1, image=np.zeros((100, 100))))  # 80 kB image frame: refused
    pulse = [2]

    def sending_small() -> bool:
        send_multipart(sender, encode(pulse[0]))
        pulse[0] += 1
        return rows(receiver) >= 3

    wait_until(sending_small, interval=0.02, message="small messages after an oversized one")
    assert 1 not in pulse_ids(receiver)
    assert receiver.sink.frames.latest() is None
    assert receiver.health().receiver_restarts == 0


def test_reconnects_after_a_failed_handshake(make_socket, start_receiver) -> None:
    """Something of the wrong socket type answered first (ZeroMQ gives up); then the real sender binds."""
    wrong = make_socket(zmq.PULL)
    events = wrong.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED)
    port = wrong.bind_to_random_port(f"tcp://{LOCALHOST}")
    address = f"tcp://{LOCALHOST}:{port}"
    receiver = start_receiver(address)
    assert events.poll(10_000), "the receiver never tried the wrong peer"  # PULL cannot talk to PULL
    wrong.disable_monitor()
    events.close(0)
    wrong.close(0)
    sender = make_socket(zmq.PUSH)
    bind_retry(sender, address)
    pulse = [1]

    def sending() -> bool:
        if sender.poll(0, zmq.POLLOUT):  # only once connected: a PUSH without peer would block
            sender.send_multipart(encode(pulse[0]))
            pulse[0] += 1
        return rows(receiver) >= 3

    wait_until(sending, interval=0.02, message="messages from the real sender")
    assert receiver.health().receiver_restarts == 0
