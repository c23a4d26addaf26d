"""One camera's ZeroMQ connection: a thread that receives bsread messages and hands them to a sink.

The socket lives and dies inside the thread (ZeroMQ sockets are not thread-safe). The loop polls
with a timeout so `stop()` is honoured within a second, survives malformed messages (counted by
reason), sender restarts (ZeroMQ reconnects; where ZeroMQ gives up, after a protocol error, the loop
connects afresh) and even unexpected exceptions in its own code (logged, counted, socket recreated). Health is published as an immutable `Health` snapshot.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import threading
import time
from typing import Protocol

import zmq
from zmq.utils import monitor as zmq_monitor

from .health import Health, PulseCounter
from .protocol import BsreadError, Decoder, Message

log = logging.getLogger(__name__)

POLL_MS = 200
RATE_WINDOW_S = 2.0
STALL_MIN_S = 2.0
STALL_INTERVALS = 5
DEFAULT_RCVHWM = 64  # messages; a stalled consumer drops instead of growing memory
BEHIND_MESSAGES = 2  # queued messages found in one drain that mean "falling behind" (see `caught_up`)
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024  # per ZeroMQ frame; larger peers are disconnected
RECONNECT_AFTER_S = 1.0  # connect mode: re-make a connection ZeroMQ dropped and gave up on (see _loop)
_CONNECTION_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECT_RETRIED
                      | zmq.EVENT_DISCONNECTED)


class Sink(Protocol):
    """Where decoded messages go (the camera's per-message work), in the receiver thread."""

    def __call__(self, message: Message, received: float) -> None: ...  # received: wall clock, epoch s


class Receiver:
    """Receives one bsread stream in a background thread and hands each message to `sink`."""

    def __init__(
        self,
        address: str,
        sink: Sink,
        mode: str = "pull",
        bind: bool = False,
        rcvhwm: int = DEFAULT_RCVHWM,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        context: zmq.Context | None = None,
    ) -> None:
        if mode not in ("pull", "sub"):
            raise ValueError(f"mode must be 'pull' or 'sub', not {mode!r}")
        self.address = address
        self.sink = sink
        self.mode = mode
        self.bind = bind
        self.rcvhwm = rcvhwm
        self.max_message_bytes = max_message_bytes
        self._context = context or zmq.Context.instance()
        self._stop = threading.Event()
        # Cleared while messages queue up faster than this thread handles them. The web server holds
        # new callbacks back meanwhile: every thread computing for a browser competes for the GIL,
        # which this thread needs back after each ZeroMQ frame (app.py, docs/hardening.md).
        self.caught_up = threading.Event()
        self.caught_up.set()
        # How long this thread waited for the message the sink is handling, from the end of the
        # previous one (read by the sink, in this thread: the beam statistics keep to a budget when
        # there was less slack than they cost, stream/budget.py).
        self.waited_s = math.inf
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._decoder = Decoder()
        self._pulses = PulseCounter()
        self._received = 0
        self._bytes = 0
        self._invalid: collections.Counter[str] = collections.Counter()
        self._logged_reasons: set[str] = set()
        self._times: collections.deque[tuple[float, int]] = collections.deque(maxlen=20_000)
        self._last_time: float | None = None  # monotonic
        self._last_wall: float | None = None
        self._restarts = 0
        self._reconnects = 0
        self._reconnect_logged = 0.0
        self._last_error = ""
        self._ready = threading.Event()
        self._setup_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 5.0) -> "Receiver":
        """Start the thread; raises the socket's error (bad address, port in use) synchronously."""
        if self._thread is not None:
            raise RuntimeError("receiver already started")
        self._thread = threading.Thread(target=self._run, name="bsread-receiver", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._setup_error is not None:
            self._thread.join(timeout)
            raise self._setup_error
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ thread

    def _open(self) -> tuple[zmq.Socket, zmq.Socket | None]:
        """The data socket, and in connect mode a monitor of its connection (see _loop)."""
        socket = self._context.socket(zmq.PULL if self.mode == "pull" else zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, self.rcvhwm)
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self.mode == "sub":
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        # Watching starts before connecting, so not even the first connection's events are missed.
        monitor = None if self.bind else socket.get_monitor_socket(_CONNECTION_EVENTS)
        try:
            if self.bind:
                socket.bind(self.address)
            else:
                socket.connect(self.address)
        except zmq.ZMQError:
            self._close(socket, monitor)
            raise
        return socket, monitor

    @staticmethod
    def _close(socket: zmq.Socket, monitor: zmq.Socket | None) -> None:
        if monitor is not None:
            if not socket.closed:
                with contextlib.suppress(zmq.ZMQError):
                    socket.disable_monitor()
            monitor.close(0)
        socket.close(0)

    def _run(self) -> None:
        try:
            socket, monitor = self._open()
        except BaseException as exc:  # reported to start()'s caller
            self._setup_error = exc
            self._ready.set()
            return
        self._ready.set()
        while not self._stop.is_set():
            try:
                self._loop(socket, monitor)
            except Exception as exc:  # a bug of ours must not kill the stream: log, count, go on
                with self._lock:
                    self._restarts += 1
                    self._last_error = f"{exc.__class__.__name__}: {exc}"[:300]
                log.exception("receiver loop failed; recreating the socket")
                self.caught_up.set()
                self._close(socket, monitor)
                self._decoder = Decoder()
                self._stop.wait(0.1)
                try:
                    socket, monitor = self._open()
                except zmq.ZMQError:
                    log.exception("could not reopen the socket")
                    self._stop.wait(1.0)
                    continue
        self.caught_up.set()
        self._close(socket, monitor)

    def _loop(self, socket: zmq.Socket, monitor: zmq.Socket | None) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        dropped_at: float | None = None  # monotonic time of a disconnect not followed by a retry
        done_at = -math.inf  # perf_counter when the previous message was handled
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            # Drain what is queued without re-polling; stop is checked between messages.
            for drained in range(1000 if socket in ready else 0):
                try:
                    frame = socket.recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    self.caught_up.set()
                    break
                if drained == BEHIND_MESSAGES:
                    self.caught_up.clear()
                # The rest of a multipart message is already here (ZeroMQ delivers it whole).
                # Frame.more instead of recv_multipart's getsockopt(RCVMORE) per part: a 7-channel
                # message has 16 parts, and this loop runs up to ~1000 times a second.
                frames = [frame]
                while frame.more:
                    frame = socket.recv(copy=False)
                    frames.append(frame)
                self.waited_s = 0.0 if drained else time.perf_counter() - done_at
                self.handle(frames)
                done_at = time.perf_counter()
                if self._stop.is_set():
                    return
            if monitor is None:
                continue
            # After a protocol error (a frame above MAXMSGSIZE, a failed handshake) ZeroMQ drops the
            # connection and never retries it: connect afresh when a disconnect is not followed by a retry.
            while monitor in ready and monitor.poll(0):
                event = zmq_monitor.recv_monitor_message(monitor)["event"]
                dropped_at = time.monotonic() if event == zmq.EVENT_DISCONNECTED else None
            if dropped_at is not None and time.monotonic() - dropped_at > RECONNECT_AFTER_S:
                self._reconnects += 1
                if self._reconnects == 1 or time.monotonic() - self._reconnect_logged > 60:
                    # a peer that keeps breaking the handshake would otherwise log a line a second
                    self._reconnect_logged = time.monotonic()
                    log.warning("connection to %s dropped and not retried; reconnecting (%d times so far)",
                                self.address, self._reconnects)
                with contextlib.suppress(zmq.ZMQError):
                    socket.disconnect(self.address)
                socket.connect(self.address)
                dropped_at = time.monotonic()  # tried again a second later if this fails too

    def handle(self, frames: list) -> Message | None:
        """Decode one multipart message and record it; never raises for bad input."""
        now = time.monotonic()
        wall = time.time()
        size = sum(len(frame) for frame in frames)
        try:
            message = self._decoder.decode(frames)
        except BsreadError as exc:
            with self._lock:
                self._bytes += size
            self.count_invalid(exc)
            return None
        self.sink(message, wall)
        with self._lock:
            self._received += 1
            self._bytes += size
            self._times.append((now, size))
            self._last_time = now
            self._last_wall = wall
            self._pulses.observe(message.pulse_id)
        return message

    def count_invalid(self, exc: BsreadError) -> None:
        with self._lock:
            self._invalid[exc.reason] += 1
            first = exc.reason not in self._logged_reasons
            self._logged_reasons.add(exc.reason)
        if first:  # once per kind: a broken sender at 100 Hz must not flood the log
            log.warning("invalid bsread message (%s); further ones of this kind are only counted", exc)

    # ------------------------------------------------------------------ health

    def health(self) -> Health:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0][0] > RATE_WINDOW_S:
                self._times.popleft()
            times = list(self._times)
            received, nbytes = self._received, self._bytes
            last, wall = self._last_time, self._last_wall
            invalid = dict(self._invalid)
            pulses = self._pulses
            missed, duplicated, reverted, jumps = pulses.missed, pulses.duplicated, pulses.reverted, pulses.jumps
            step, last_pulse = pulses.step, pulses.last
            restarts, last_error = self._restarts, self._last_error
        rate = 0.0
        data_rate = 0.0
        interval = 0.0
        if len(times) >= 2:
            span = times[-1][0] - times[0][0]
            if span > 0:
                rate = (len(times) - 1) / span
                data_rate = sum(size for _, size in times[1:]) * 8 / span / 1e6
                interval = span / (len(times) - 1)
        stall_limit = max(STALL_MIN_S, STALL_INTERVALS * interval)
        age = None if last is None else now - last
        if not self.running and self._thread is not None:
            state = "stopped"
        elif age is None:
            state = "waiting"
        elif age > stall_limit:
            state = "stalled"
        else:
            state = "live"
        if state != "live":
            rate = 0.0 if age is None or age > RATE_WINDOW_S else rate
        return Health(
            state=state,
            address=self.address,
            received=received,
            bytes_received=nbytes,
            rate_hz=rate,
            data_rate_mbps=data_rate,
            invalid=sum(invalid.values()),
            invalid_by_reason=invalid,
            missed_pulses=missed,
            duplicated_pulses=duplicated,
            reverted_pulses=reverted,
            pulse_id_jumps=jumps,
            pulse_step=step,
            last_pulse_id=last_pulse,
            last_message_time=wall,
            last_message_age_s=age,
            stall_limit_s=stall_limit,
            receiver_restarts=restarts,
            last_error=last_error,
        )
