"""Small test utilities: deadline-based waiting, free ports, receives that fail instead of hanging,
messages built with the real codec, and a receiver sink doing a camera's real per-message work."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, TypeVar

import zmq

T = TypeVar("T")

LOCALHOST = "127.0.0.1"


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01,
               message: str | Callable[[], str] = "") -> T:
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` seconds.

    The timeout is a generous upper bound for a loaded machine, never the expected duration.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout} s: {said or predicate}")
        time.sleep(interval)


def all_at_once(work: Callable[[], T], count: int, timeout: float = 60.0) -> list[T]:
    """`work()` from `count` threads released together by a barrier; the results (raises the first error)."""
    start = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(10)
            results.append(work())
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    assert len(results) == count, f"{count - len(results)} of {count} threads did not finish"
    return results


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (plain OS socket: closes synchronously)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def bind_retry(sock: zmq.Socket, address: str, timeout: float = 10.0) -> None:
    """Bind, retrying while a just-closed socket still holds the port (ZeroMQ closes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.bind(address)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def recv_multipart(sock: zmq.Socket, timeout: float = 10.0, copy: bool = True) -> list[Any]:
    """Receive one multipart message or fail (AssertionError) after `timeout` seconds."""
    if not sock.poll(int(timeout * 1000), zmq.POLLIN):
        raise AssertionError(f"no message within {timeout} s")
    return sock.recv_multipart(copy=copy)


def send_multipart(sock: zmq.Socket, parts: list[Any], timeout: float = 10.0) -> None:
    """Send one multipart message or fail after `timeout` seconds (a PUSH without peer would block)."""
    if not sock.poll(int(timeout * 1000), zmq.POLLOUT):
        raise AssertionError(f"socket not writable within {timeout} s (no peer?)")
    sock.send_multipart(parts)


def make_message(pulse_id: int, channels: dict[str, Any], timestamp: float = 1_700_000_000.0, **encode_kwargs: Any):
    """A decoded `Message` built with the real codec (for ring-buffer and receiver tests)."""
    from stream.encoder import Encoder
    from stream.protocol import Decoder

    parts = Encoder().encode(pulse_id, timestamp, channels, **encode_kwargs)
    return Decoder().decode(parts)


class CameraSink:
    """A receiver's sink doing one camera's per-message work, as the product does it.

    It is `stream.camera.Camera`'s own message handler (ingest -> history row + recent frame) of a
    camera that is never started, so receiver tests see the real pipeline. `attach(receiver)` makes
    the receiver count the bad values the ingest finds, as a started camera's receiver does.
    `on_message(message)`, if given, is called first with every message (it may raise).
    """

    def __init__(self, capacity: int = 1000, frames: int = 10, names: Any = None,
                 on_message: Callable[[Any], None] | None = None) -> None:
        from stream.camera import Camera, CameraSpec, Limits
        from stream.layout import ChannelNames

        self.camera = Camera(CameraSpec("test-camera", address="tcp://127.0.0.1:1"), names or ChannelNames(),
                             Limits(history=capacity, frames=frames))
        self.camera.frames.keep_recent(True)  # as while a browser watches
        self.on_message = on_message

    @property
    def buffer(self) -> Any:
        return self.camera.buffer

    @property
    def frames(self) -> Any:
        return self.camera.frames

    def attach(self, receiver: Any) -> None:
        self.camera.ingest.report = receiver.count_invalid

    def __call__(self, message: Any, received: float) -> None:
        if self.on_message is not None:
            self.on_message(message)
        self.camera._on_message(message, received)
