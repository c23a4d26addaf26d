"""Shared fixtures: a private ZeroMQ context per test and factories that clean up after themselves."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import zmq

from stream.receiver import Receiver
from stream.ring_buffer import RingBuffer


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def make_socket(zctx: zmq.Context) -> Iterator[Callable[[int], zmq.Socket]]:
    """Create sockets (LINGER 0) that are closed at teardown."""
    sockets: list[zmq.Socket] = []

    def make(kind: int) -> zmq.Socket:
        sock = zctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close(0)


@pytest.fixture
def start_receiver(zctx: zmq.Context) -> Iterator[Callable[..., Receiver]]:
    """Start a Receiver (with its own RingBuffer) that is stopped at teardown."""
    receivers: list[Receiver] = []

    def start(address: str, capacity: int = 1000, **kwargs: Any) -> Receiver:
        receiver = Receiver(address, RingBuffer(capacity), context=zctx, **kwargs)
        receivers.append(receiver)
        return receiver.start()

    yield start
    for receiver in receivers:
        receiver.stop()
    for receiver in receivers:
        assert not receiver.running, "receiver thread did not stop"
