"""Faults the dashboard must survive: senders dying and coming back, no sender, late joiners, bad host
names, browsers that stop reading, its own per-message work raising, and an unreachable cam_server.

Senders are real processes (tests/sender.py) killed with SIGKILL, so the receiver sees what it sees
when a camera server crashes: a TCP reset, nothing polite. Timings are measured from the moment
the new sender is bound, on this (loaded, 2-core) machine; bounds are the operator's requirement
(live again within 2 s) or generous multiples of the measured baseline.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from components import ids
from tests.dash_client import DashClient, text_of
from tests.helpers import LOCALHOST, free_port, wait_until
from tests.live_app import get, running_app

ROOT = Path(__file__).resolve().parent.parent
RECOVERY_LIMIT_S = 2.0
log = logging.getLogger(__name__)  # figures for docs/hardening.md (pytest --log-cli-level=INFO)

pytestmark = pytest.mark.slow


def status(url: str) -> dict:
    return json.loads(get(url + "/api/status")[1])


class Sender:
    """`python -m tests.sender` in its own process; `bound_at` is when it reported its socket bound."""

    def __init__(self, port: int, mode: str = "push", start_pulse: int = 1, rate: float = 100.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sender", "--port", str(port), "--mode", mode, "--rate", str(rate),
             "--start-pulse", str(start_pulse), "--width", "64", "--height", "48"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        assert ready, "sender did not start within 60 s"
        line = self.process.stdout.readline()
        self.bound_at = time.monotonic()
        assert json.loads(line)["event"] == "bound", line

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()


@contextmanager
def senders() -> Iterator[list[Sender]]:
    started: list[Sender] = []
    try:
        yield started
    finally:
        for sender in started:
            sender.stop()


def received_after(url: str, count: int, since: float, timeout: float = 15.0) -> float:
    """Seconds from `since` until the app has received more than `count` messages."""
    wait_until(lambda: status(url)["received"] > count, timeout, message=f"no message after {count}")
    return time.monotonic() - since


def shown_pulse(page: DashClient) -> int | None:
    """The pulse id of the frame on the page after one request of its frame loop."""
    reply = page.frame(128, 96)
    assert reply.status in (200, 204), reply.status
    return (page.frame_meta or {}).get("pulse_id")


def page_of(url: str) -> DashClient:
    page = DashClient.http(url)
    page.load()
    return page


@pytest.mark.parametrize("mode", ["pull", "sub"])
def test_sender_killed_and_restarted_is_live_again_within_2_s(mode: str) -> None:
    port = free_port()
    sender_mode = "push" if mode == "pull" else "pub"
    with senders() as started, running_app(["--stream", f"tcp://{LOCALHOST}:{port}", "--mode", mode,
                                            "-d", "0.05"]) as live:
        url = live.url
        first = Sender(port, sender_mode, start_pulse=5_000_000)
        started.append(first)
        received_after(url, 0, first.bound_at, timeout=30)
        wait_until(lambda: status(url)["state"] == "live", 10)
        client = page_of(url)
        wait_until(lambda: (shown_pulse(client) or 0) >= 5_000_000, 15, message="first sender's frames not shown")

        first.kill()  # SIGKILL: no goodbye on the wire
        wait_until(lambda: status(url)["state"] == "stalled", 15, message="dead sender never shown as stalled")
        assert client.health()[ids.STREAM_STATE]["children"] == "stalled"
        client.frame(128, 96)  # the last frames the dead sender sent, if the page had not shown them yet
        quiet = client.frame(128, 96)
        assert quiet.status == 204 and client.stream_header(quiet)["state"] == "stalled"

        before = status(url)
        second = Sender(port, sender_mode, start_pulse=1)  # a restarted camera server counts from the start
        started.append(second)
        seconds = received_after(url, before["received"], second.bound_at)
        log.info("%s: first message %.3f s after the restarted sender bound its socket", mode, seconds)
        assert seconds < RECOVERY_LIMIT_S, f"{mode}: first message {seconds:.2f} s after the sender came back"
        wait_until(lambda: status(url)["state"] == "live", RECOVERY_LIMIT_S * 3)
        # The new (lower) pulse ids are displayed, not rejected; the jump back is counted.
        wait_until(lambda: (shown_pulse(client) or 10**9) < 5_000_000, 15, message="restarted sender not shown")
        after = status(url)
        assert after["reverted_pulses"] >= 1 and after["invalid"] == 0 and after["receiver_restarts"] == 0
        client.close()


def test_no_sender_at_start_is_waiting_then_live() -> None:
    port = free_port()
    with senders() as started, running_app(["--stream", f"tcp://{LOCALHOST}:{port}"]) as live:
        url = live.url
        assert status(url)["state"] == "waiting"
        client = page_of(url)
        client.click(ids.HEALTH_TOGGLE)
        health = client.health()
        assert health[ids.STREAM_STATE]["children"] == "waiting"
        assert "last message|never" in text_of(health[ids.HEALTH_PANEL]["children"])
        nothing = client.frame()
        assert nothing.status == 204 and client.stream_header(nothing)["state"] == "waiting"

        sender = Sender(port)
        started.append(sender)
        seconds = received_after(url, 0, sender.bound_at)
        log.info("no sender at start: first message %.3f s after the sender bound its socket", seconds)
        assert seconds < RECOVERY_LIMIT_S, f"first message {seconds:.2f} s after the sender appeared"
        wait_until(lambda: client.health()[ids.STREAM_STATE]["children"] == "live", 10)
        wait_until(lambda: client.frame().status == 200, 10, message="the first frame was not shown")
        client.close()


def test_slow_joining_sub_starts_mid_stream_without_counting_the_past() -> None:
    port = free_port()
    with senders() as started:
        sender = Sender(port, "pub", start_pulse=1)  # publishing into the void before anyone subscribes
        started.append(sender)
        with running_app(["--stream", f"tcp://{LOCALHOST}:{port}", "--mode", "sub"]) as live:
            url = live.url
            wait_until(lambda: status(url)["received"] >= 50, 30, message="SUB never received")
            now = status(url)
    assert now["state"] == "live"
    assert now["invalid"] == 0, now["invalid_by_reason"]
    # It joined late (the first pulses went to nobody), and those are not "missed".
    assert now["last_pulse_id"] > now["received"]
    assert now["missed_pulses"] == 0


@pytest.mark.parametrize("argv", [["--stream", "tcp://no-such-camera.invalid:9999"],
                                  ["-o", "9999", "-s", "300.1.1.1"]], ids=["name", "bad-ip"])
def test_unresolvable_stream_host_is_one_clear_sentence(argv: list[str]) -> None:
    """ZeroMQ would accept the name and retry silently forever; the app says so and exits."""
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), *argv, "--port", str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1 and "cannot resolve the stream host" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# ------------------------------------------------------------------------------------ slow browsers

BIG_ASSET = "/_dash-component-suites/plotly/package_data/plotly.min.js"  # 4.8 MB


def _latencies(url: str, client: DashClient, seconds: float) -> tuple[list[float], list[str]]:
    """Round trips of /api/status, the frame loop and the readings for `seconds`; (latencies, errors)."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for call in ("status", "frame", "readings"):
            started = time.perf_counter()
            try:
                if call == "status":
                    code = get(url + "/api/status", timeout=10)[0]
                elif call == "frame":
                    code = client.frame().status
                    code = 200 if code == 204 else code
                else:
                    client.readings()  # raises on an HTTP error
                    code = 200
            except Exception as exc:
                errors.append(f"{call}: {exc!r}")
                continue
            latencies.append(time.perf_counter() - started)
            if code != 200:
                errors.append(f"{call}: HTTP {code}")
    return latencies, errors


class BadClients:
    """Clients that stop reading: requests for big responses never read, half-sent requests (slow
    loris), and readers that take 1 KiB every half second."""

    def __init__(self, port: int, stuck: int = 12, loris: int = 6, slow: int = 4) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        paths = [BIG_ASSET, "/api/readings.csv", "/api/snapshot.h5", BIG_ASSET]
        for i in range(stuck):
            self._open().sendall(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.loris = [self._open() for _ in range(loris)]
        self.slow = [self._open() for _ in range(slow)]
        for sock in self.slow:
            sock.sendall(f"GET {BIG_ASSET} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()

    def _open(self) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few KiB
        sock.connect((LOCALHOST, self.port))
        self.sockets.append(sock)
        return sock

    def _dribble(self) -> None:
        request = b"PUT /api/rois HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
        i = 0
        while not self.stop.wait(0.5):
            for sock in self.loris:
                if i < len(request):
                    sock.send(request[i:i + 1])
            for sock in self.slow:
                sock.setblocking(False)
                try:
                    sock.recv(1024)
                except BlockingIOError:
                    pass
            i += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def test_browsers_that_stop_reading_do_not_slow_the_others() -> None:
    with running_app(["-d", "0.05"]) as live:
        url = live.url
        wait_until(lambda: live.camera().frames.latest() is not None, 30)
        client = page_of(url)
        baseline, errors = _latencies(url, client, 3.0)
        assert not errors
        bad = BadClients(int(url.rsplit(":", 1)[1]))
        try:
            before = status(url)["received"]
            during, errors = _latencies(url, client, 6.0)
            received = status(url)["received"]
            assert received - before > 100, (before, received)  # ~600 at 100 Hz: the stream kept flowing
        finally:
            bad.close()
        assert not errors, errors[:5]
        p95 = lambda values: statistics.quantiles(values, n=20)[-1]  # noqa: E731
        log.info("other clients with 22 stuck/slow ones: p95 %.1f ms (baseline %.1f ms), max %.1f ms, %d requests",
                 p95(during) * 1e3, p95(baseline) * 1e3, max(during) * 1e3, len(during))
        # Generous: a loaded 2-core machine; a stuck worker would show as a 10 s timeout, not a few ms.
        assert p95(during) < max(1.0, 5 * p95(baseline)), (p95(baseline), p95(during))
        assert max(during) < 5.0
        wait_until(lambda: status(url)["received"] > received, 5,  # the stream kept flowing
                   message="the stream stopped while bad clients were connected")


# ------------------------------------------------------------------------------------ our own bugs


def test_a_bug_in_the_per_message_work_costs_that_message_only(caplog: pytest.LogCaptureFixture) -> None:
    """A bug of ours (here: the ingest raising once) loses that message, never the connection: counted
    as internal-error, logged once, shown in the health panel; no receiver restart."""
    caplog.set_level(logging.ERROR, logger="stream.camera")
    with running_app([]) as live:
        url = live.url
        wait_until(lambda: status(url)["state"] == "live", 30)
        camera = live.camera()
        pulse = camera.ingest.pulse
        fired = threading.Event()

        def explode_once(message, *args):
            if not fired.is_set():
                fired.set()
                raise RuntimeError("injected fault in the per-message work")
            return pulse(message, *args)

        camera.ingest.pulse = explode_once  # instance attribute: this camera only
        wait_until(lambda: status(url)["invalid_by_reason"].get("internal-error") == 1, 10,
                   message="the lost message is not counted")
        before = status(url)["received"]
        wait_until(lambda: status(url)["received"] > before + 10, 10, message="stream did not go on")
        now = status(url)
        page = page_of(url)
        page.click(ids.HEALTH_TOGGLE)
        panel = text_of(page.health()[ids.HEALTH_PANEL]["children"])
        assert camera.running
        page.close()
    assert now["state"] == "live" and now["receiver_restarts"] == 0
    assert "internal-error|1" in panel
    logged = [r for r in caplog.records if r.name == "stream.camera" and r.exc_info]
    assert len(logged) == 1 and "injected fault" in str(logged[0].exc_info[1])



def test_an_unreachable_camserver_is_one_clear_message_and_the_other_cameras_go_on() -> None:
    port = free_port()
    with senders() as started, running_app(["--camserver", f"http://{LOCALHOST}:{free_port()}",
                                            "--stream", f"fixed=tcp://{LOCALHOST}:{port}"]) as live:
        url = live.url
        started.append(Sender(port))
        wait_until(lambda: status(url)["state"] == "live", 30, message="the fixed camera did not go live")
        cameras = json.loads(get(url + "/api/cameras")[1])
        assert [c["name"] for c in cameras["cameras"]] == ["fixed"]
        reason = cameras["camserver_error"]
        assert reason and "Traceback" not in reason and "\n" not in reason
        assert status(url)["camserver_error"] == reason
        code, body = get(url + "/api/status?camera=simulation")
        assert code == 404 and reason in json.loads(body)["error"]
        page = page_of(url)
        page.health()
        assert page.value(ids.CAMERA_MESSAGE, "children") == f"cam_server: {reason}"
        page.set(ids.CAMERA_SELECT, "value", "simulation")
        assert reason in page.value(ids.CAMERA_MESSAGE, "children")
        page.set(ids.CAMERA_SELECT, "value", "fixed")
        assert page.frame().status == 200
        page.close()
