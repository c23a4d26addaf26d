"""Shared fixtures: a private ZeroMQ context per test and factories that clean up after themselves."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import zmq

from stream.receiver import Receiver
from tests.helpers import CameraSink


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
    """Start a Receiver that is stopped at teardown. Its sink (`receiver.sink`) is a `CameraSink`:
    the camera's per-message work into a history of `capacity` rows and `frames` recent frames,
    calling `on_message(message)` first for each message."""
    receivers: list[Receiver] = []

    def start(address: str, capacity: int = 1000, frames: int = 10,
              on_message: Callable[[Any], None] | None = None, **kwargs: Any) -> Receiver:
        sink = CameraSink(capacity, frames, on_message=on_message)
        receiver = Receiver(address, sink, context=zctx, **kwargs)
        sink.attach(receiver)
        receivers.append(receiver)
        return receiver.start()

    yield start
    for receiver in receivers:
        receiver.stop()
    for receiver in receivers:
        assert not receiver.running, "receiver thread did not stop"
