"""start_stream.py, the simulated camera's command line: run as a real subprocess on a free loopback port."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import zmq

import start_stream
from stream.protocol import Decoder, Message
from tests.helpers import LOCALHOST, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "start_stream.py"
CHANNELS = {"image", "image_size_x", "image_size_y", "image_profile_x", "image_profile_y", "beam_energy",
            "repetition_rate"}


def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


class Camera:
    """start_stream.py as a child process whose log lines are collected as they arrive."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "-o", str(self.port), "--bind-host", LOCALHOST, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def logged(self, text: str) -> bool:
        while not self.lines.empty():
            self.log.append(self.lines.get_nowait())
        return any(text in line for line in self.log)

    @property
    def address(self) -> str:
        return f"tcp://{LOCALHOST}:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def camera() -> Iterator[Callable[..., Camera]]:
    cameras: list[Camera] = []

    def start(*args: str) -> Camera:
        cam = Camera(*args)
        cameras.append(cam)
        # Connect only once it has bound (it logs that): its PUSH waits for a peer, so nothing is lost.
        wait_until(lambda: cam.logged("sending") or cam.process.poll() is not None, timeout=30,
                   message="start_stream.py to bind")
        assert cam.process.poll() is None, "".join(cam.log)
        return cam

    yield start
    for cam in cameras:
        cam.kill()


def receive_until_exit(pull: zmq.Socket, camera: Camera, expected: int, timeout: float = 60.0) -> list[Message]:
    """What the camera sends until it has exited and `expected` messages arrived (or the deadline)."""
    decoder = Decoder()
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while camera.process.poll() is None or len(messages) < expected:
        if time.monotonic() > deadline:
            break
        if pull.poll(100):
            messages.append(decoder.decode(pull.recv_multipart(copy=False)))
    assert camera.process.poll() is not None, "start_stream.py did not exit"
    if pull.poll(200):  # nothing more than expected
        messages.append(decoder.decode(pull.recv_multipart(copy=False)))
    return messages


def test_n_5_sends_exactly_5_messages_and_exits_0(camera, make_socket) -> None:
    # 5 x 8 MB without delay, to a reader that starts reading only once the sender has finished: the
    # messages still queued in ZeroMQ (more than the kernel's socket buffers hold) must survive the end.
    cam = camera("-n", "5", "-d", "0", "--size", "1024x1024")
    pull = make_socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    pull.connect(cam.address)
    wait_until(lambda: cam.logged("sent 5 messages") or cam.process.poll() is not None, timeout=60,
               message="start_stream.py to finish sending")
    messages = receive_until_exit(pull, cam, expected=5)
    assert cam.process.returncode == 0, "".join(cam.log)
    assert [m.pulse_id for m in messages] == [1, 2, 3, 4, 5]
    for message in messages:
        assert set(message.channels) == CHANNELS
        image = message.value("image")
        assert image.shape == (1024, 1024) and image.dtype == np.float64
        assert message.value("image_size_x") == 1024 and message.value("image_size_y") == 1024
        assert 5.0 <= message.value("beam_energy") <= 5.5 and message.value("repetition_rate") == 100.0


def test_options_reach_the_stream(camera, make_socket) -> None:
    cam = camera("-n", "3", "-d", "0.01", "--size", "64x48", "--dtype", "uint16", "--compression", "bitshuffle_lz4")
    pull = make_socket(zmq.PULL)
    pull.connect(cam.address)
    messages = receive_until_exit(pull, cam, expected=3)
    assert cam.process.returncode == 0
    assert len(messages) == 3
    image = messages[-1].channels["image"]
    assert image.spec.compression == "bitshuffle_lz4" and image.spec.type == "uint16"
    assert image.value.shape == (48, 64)
    assert messages[-1].value("image_profile_x").shape == (64,)


def test_sigterm_stops_an_endless_stream(camera, make_socket) -> None:
    cam = camera("-n", "-1", "-d", "0.02", "--size", "64x48")
    pull = make_socket(zmq.PULL)
    pull.connect(cam.address)
    assert pull.poll(30_000), "no message from an endless stream"
    cam.process.send_signal(signal.SIGTERM)
    assert cam.process.wait(timeout=30) == 0


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("-o", "-d", "-n", "--mode", "--compression", "--size", "--dtype"):
        assert option in result.stdout
    assert "default: 8888" in result.stdout  # defaults are shown


@pytest.mark.parametrize(("size", "complaint"), [("abc", "must look like 640x480"),
                                               ("99999x10", "between 1 and 16384")])
def test_bad_size_is_a_clear_error(size: str, complaint: str) -> None:
    result = run("--size", size, "-n", "1")
    assert result.returncode == 2
    assert "--size" in result.stderr and complaint in result.stderr and "usage:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("size", ["640", "0x480", "640x480x3", "-5x10", "640x", "x480", "1e3x10", "16385x1"])
def test_parse_args_rejects_bad_sizes(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        start_stream.parse_args(["--size", size])
    assert info.value.code == 2
    assert "--size" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(make_socket) -> None:
    taken = make_socket(zmq.PUSH)
    port = taken.bind_to_random_port(f"tcp://{LOCALHOST}")
    result = run("-o", str(port), "--bind-host", LOCALHOST, "-n", "1")
    assert result.returncode == 2
    assert "cannot bind" in result.stderr and "Traceback" not in result.stderr


def test_parse_args_defaults_and_options() -> None:
    config = start_stream.parse_args([])
    assert (config.port, config.delay_s, config.count, config.mode) == (8888, 0.1, -1, "push")
    assert (config.width, config.height, config.dtype, config.compression) == (640, 480, "float64", "none")
    config = start_stream.parse_args(["-o", "9999", "-d", "0.01", "-n", "5", "--size", "2048X1024", "--mode", "pub"])
    assert (config.port, config.delay_s, config.count, config.mode) == (9999, 0.01, 5, "pub")
    assert (config.width, config.height) == (2048, 1024)


@pytest.mark.parametrize("argv", [["-o", "70000"], ["-d", "-1"], ["--mode", "pull"], ["--compression", "zip"],
                                  ["--dtype", "int8"], ["-n", "five"]])
def test_parse_args_rejects_bad_values(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        start_stream.parse_args(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err
