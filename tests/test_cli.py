"""Command line (config.py, app.main): documented defaults, every option, errors that end with one
sentence (exit 2 for a bad option, 1 for a runtime failure: port in use, an interface that is not
this machine's, an address ZeroMQ refuses), `--help`, and SIGTERM/SIGINT stopping the real process
with exit 0 in under 2 s, also while browsers are being served and the stream is received."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config import DEFAULT_STREAM_NAME, SIMULATED_NAME, StreamOption, parse_args
from tests.dash_client import DashClient
from tests.helpers import LOCALHOST, free_port, wait_until
from tests.live_app import app_process, get

ROOT = Path(__file__).resolve().parent.parent
STOP_LIMIT_S = 2.0  # README: "SIGINT/SIGTERM stop everything in under 2 s"


def run_app(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr and lines[0].startswith("app.py: ")
    return lines[0]


# ------------------------------------------------------------------------------------------ parse_args


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOV_AUTH", raising=False)
    config = parse_args([])
    assert config.streams == () and config.camserver is None and config.simulated is True  # built-in camera
    assert config.mode == "pull" and config.period_s == 0.1
    assert config.host == "127.0.0.1" and config.port == 5000  # loopback unless asked otherwise
    assert config.history == 360_000 and config.threads == 16 and config.auth is None
    assert (config.names.image, config.names.energy, config.names.rate) == ("image", "beam_energy", "repetition_rate")
    assert (config.names.profile_x, config.names.profile_y, config.names.axis_x, config.names.axis_y) == (None,) * 4
    assert config.max_cameras == 8 and config.grace_s == 60.0
    assert config.frames == 100 and config.frame_memory == 512 * 1024 * 1024
    assert config.data_dir is None and config.diagnostics is False
    assert SIMULATED_NAME == "simulated"


def test_one_stream_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOV_AUTH", raising=False)
    one = (DEFAULT_STREAM_NAME,)
    assert parse_args(["-o", "8888"]).streams == (StreamOption("stream", "tcp://127.0.0.1:8888"),)
    assert parse_args(["-o", "8888", "-s", "sf-cam-01.psi.ch"]).streams[0].address == "tcp://sf-cam-01.psi.ch:8888"
    assert parse_args(["--stream-port", "1", "--stream-host", "10.0.0.7"]).streams[0].address == "tcp://10.0.0.7:1"
    assert parse_args(["--stream", "tcp://camera:9999"]).streams == (StreamOption("stream", "tcp://camera:9999"),)
    assert parse_args(["--stream", "tcp://[::1]:9999"]).streams[0].address == "tcp://[::1]:9999"
    assert tuple(s.name for s in parse_args(["-o", "1"]).streams) == one
    assert parse_args(["-o", "1"]).simulated is False


def test_several_named_streams() -> None:
    config = parse_args(["--stream", "SLG-LCAM-C102=tcp://sf-cam-1:9000", "--stream", "cam.2:x=tcp://10.0.0.8:9001"])
    assert config.streams == (StreamOption("SLG-LCAM-C102", "tcp://sf-cam-1:9000"),
                              StreamOption("cam.2:x", "tcp://10.0.0.8:9001"))
    mixed = parse_args(["-o", "8888", "--stream", "b=tcp://h:1"])  # -o is the first (default) camera
    assert [s.name for s in mixed.streams] == ["stream", "b"]
    assert [s.name for s in parse_args(["--stream", "tcp://a:1", "--stream", "b=tcp://b:2"]).streams] == ["stream", "b"]


def test_every_other_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOV_AUTH", "env:secret")
    config = parse_args(["--mode", "sub", "-d", "0.5", "--host", "0.0.0.0", "--port", "8050", "--history", "1000",
                         "--image-channel", "cam:FPICTURE", "--energy-channel", "SARBD01:ENERGY",
                         "--rate-channel", "SIN:REP_RATE", "--threads", "4", "--x-profile-channel", "px",
                         "--y-profile-channel", "py", "--x-axis-channel", "ax", "--y-axis-channel", "ay",
                         "--camserver", "http://sf-daqsync-01:8889/", "--max-cameras", "3", "--grace", "5",
                         "--frames", "20", "--frame-memory", "64", "--data-dir", str(tmp_path), "--diagnostics"])
    assert config.mode == "sub" and config.period_s == 0.5 and config.host == "0.0.0.0" and config.port == 8050
    assert config.history == 1000 and config.threads == 4
    names = config.names
    assert (names.image, names.energy, names.rate) == ("cam:FPICTURE", "SARBD01:ENERGY", "SIN:REP_RATE")
    assert (names.profile_x, names.profile_y, names.axis_x, names.axis_y) == ("px", "py", "ax", "ay")
    assert config.camserver == "http://sf-daqsync-01:8889" and config.simulated is False
    assert (config.max_cameras, config.grace_s, config.frames) == (3, 5.0, 20)
    assert config.frame_memory == 64 * 1024 * 1024 and config.data_dir == tmp_path and config.diagnostics is True
    assert config.auth == "env:secret"  # from $SOV_AUTH
    assert parse_args(["--auth", "u:p:with:colons"]).auth == "u:p:with:colons"


BAD_ARGUMENTS = [
    ["--bogus"], ["-o"], ["-o", "abc"], ["-o", "0"], ["-o", "65536"], ["--port", "-1"], ["--port", "70000"],
    ["--stream", "foo"], ["--stream", "http://camera:9999"], ["--stream", "tcp://camera"],
    ["--stream", "tcp://camera:99999"], ["--stream", "tcp://cam era:9999"], ["--stream", "tcp://a:1", "-o", "2"],
    ["--stream", "tcp://a:1", "--stream", "tcp://b:2"], ["--stream", "a=tcp://a:1", "--stream", "a=tcp://b:2"],
    ["--stream", "bad name!=tcp://a:1"], ["--stream", "=tcp://a:1"],
    [arg for i in range(9) for arg in ("--stream", f"c{i}=tcp://h:{i + 1}")],  # 9 streams, --max-cameras 8
    ["--max-cameras", "1", "--stream", "a=tcp://h:1", "--stream", "b=tcp://h:2"],
    ["-o", "9999", "-s", "bad host!"], ["--mode", "push"], ["-d", "0"], ["-d", "-1"], ["-d", "abc"], ["-d", "nan"],
    ["-d", "61"], ["--history", "1"], ["--history", "x"], ["--history", "100000000"], ["--threads", "0"],
    ["--threads", "300"], ["--auth", "no-colon"], ["--camserver", "ftp://cam:8889"], ["--camserver", "cam:8889"],
    ["--camserver", "http://"], ["--max-cameras", "0"], ["--max-cameras", "65"], ["--grace", "0"],
    ["--grace", "abc"], ["--frames", "0"], ["--frames", "10001"], ["--frame-memory", "1"],
    ["--frame-memory", "x"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=lambda argv: " ".join(argv)[:60])
def test_bad_arguments_end_with_one_sentence(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in assert_one_sentence(captured.err)


def test_help_lists_every_option_with_its_default() -> None:
    result = run_app("--help")
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert text.startswith("usage: app.py")
    for option in ("-o", "--stream-port", "-s", "--stream-host", "--stream", "--mode", "--camserver", "--max-cameras",
                   "--grace", "--image-channel", "--energy-channel", "--rate-channel", "--x-profile-channel",
                   "--y-profile-channel", "--x-axis-channel", "--y-axis-channel", "--history", "--frames",
                   "--frame-memory", "--data-dir", "-d", "--delay", "--host", "--port", "--threads", "--auth",
                   "--diagnostics"):
        assert f"{option} " in text or f"{option}," in text, option
    for default in ("(default: 0.1)", "(default: 127.0.0.1)", "(default: 5000)", "(default: pull)",
                    "(default: 360000)", "(default: image)", "(default: beam_energy)", "(default: repetition_rate)",
                    "(default: 8)", "(default: 60.0)", "(default: 100)", "(default: 512)", "(default: 16)"):
        assert default in text, default


# ------------------------------------------------------------------------------------------ failing starts


@pytest.mark.parametrize("argv", [["--bogus"], ["--stream", "foo"], ["--stream", "tcp://camera:99999"],
                                  ["-o", "9999", "-s", "bad host!"], ["--camserver", "nope"]],
                         ids=lambda argv: " ".join(argv))
def test_bad_option_or_address_exits_2_without_traceback(argv: list[str]) -> None:
    result = run_app(*argv)
    assert result.returncode == 2 and result.stdout == ""
    assert_one_sentence(result.stderr)


def test_address_zeromq_refuses_exits_1_without_traceback() -> None:
    """Syntactically fine for argparse, refused by ZeroMQ's connect (a wildcard is no peer)."""
    result = run_app("--stream", "tcp://*:9999", "--port", str(free_port()))
    assert result.returncode == 1
    line = assert_one_sentence("\n".join(l for l in result.stderr.splitlines() if " INFO " not in l))
    assert "tcp://*:9999" in line or "cannot connect" in line


def test_port_in_use_exits_1_without_traceback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((LOCALHOST, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run_app("--port", str(port), "--stream", "tcp://127.0.0.1:9")
    assert result.returncode == 1
    assert str(port) in assert_one_sentence(result.stderr)


def test_an_interface_that_is_not_this_machines_exits_1_without_traceback() -> None:
    result = run_app("--host", "192.0.2.1", "--port", str(free_port()), "--stream", "tcp://127.0.0.1:9")
    assert result.returncode == 1
    assert "192.0.2.1" in assert_one_sentence(result.stderr)


# ------------------------------------------------------------------------------------------ signals


def stop_and_time(process: subprocess.Popen, sig: int, repeat_s: float = 0.0) -> float:
    """Send `sig`; seconds until the process is gone. With repeat_s, keep sending it every 20 ms for
    that long (as `timeout` or an impatient operator would)."""
    started = time.monotonic()
    process.send_signal(sig)
    while repeat_s and process.poll() is None and time.monotonic() - started < repeat_s:
        time.sleep(0.02)
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            break
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        raise AssertionError("app.py ignored the signal for 30 s")
    return time.monotonic() - started


class Browser(threading.Thread):
    """A page being served while the signal arrives: frames, readings and health, as fast as answered."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = DashClient.http(url, timeout=10)
        self.client.load()
        self.stop = threading.Event()
        self.answers = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.frame()
                self.client.readings()
                self.answers += 1
            except Exception:  # the server went away: what this test is about
                return


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_dashboard_quickly_while_serving_and_receiving(sig: int) -> None:
    with app_process([]) as (url, process):
        wait_until(lambda: json.loads(get(url + "/api/status")[1])["state"] == "live", 60,
                   message="stream never went live")
        idle = http.client.HTTPConnection(LOCALHOST, int(url.rsplit(":", 1)[1]), timeout=10)
        idle.request("GET", "/api/status")  # a browser tab keeps a connection open
        assert idle.getresponse().read()
        browser = Browser(url)
        browser.start()
        wait_until(lambda: browser.answers >= 3, 30, message="the page was not served")
        seconds = stop_and_time(process, sig)
        browser.stop.set()
        browser.join(10)
        idle.close()
        output = process.stdout.read()
    assert process.returncode == 0, output[-2000:]
    assert "Traceback" not in output
    assert seconds < STOP_LIMIT_S, f"took {seconds:.2f} s to stop"
    assert "stopped" in output.splitlines()[-1]


@pytest.mark.slow
def test_repeated_signals_during_shutdown_do_not_break_it() -> None:
    with app_process(["--stream", f"tcp://127.0.0.1:{free_port()}"]) as (_url, process):
        seconds = stop_and_time(process, signal.SIGTERM, repeat_s=3.0)
        output = process.stdout.read()
    assert "Traceback" not in output, output
    assert process.returncode == 0 and seconds < STOP_LIMIT_S
