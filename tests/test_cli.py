"""Command line: parse_args defaults and errors, `python app.py --help`, failures that end with one
sentence and a non-zero exit (no traceback), and SIGTERM/SIGINT stopping the real process quickly.

Defaults asserted here are the documented ones (README "Command line")."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import app as app_module
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
    assert "Traceback" not in stderr
    assert lines[0].startswith("app.py: ")
    return lines[0]


# ------------------------------------------------------------------------------------------ parse_args


def test_defaults_are_the_documented_ones() -> None:
    config = app_module.parse_args([])
    assert config.stream is None  # built-in simulated camera
    assert config.mode == "pull"
    assert config.period_s == 0.1
    assert config.host == "127.0.0.1"  # loopback unless asked otherwise
    assert config.port == 5000
    assert config.history == 360_000
    assert (config.image_channel, config.energy_channel, config.rate_channel) == ("image", "beam_energy",
                                                                                 "repetition_rate")
    assert config.threads == 16


def test_stream_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOV_AUTH", raising=False)
    assert app_module.parse_args(["-o", "8888"]).stream == "tcp://127.0.0.1:8888"
    assert app_module.parse_args(["-o", "8888", "-s", "sf-cam-01.psi.ch"]).stream == "tcp://sf-cam-01.psi.ch:8888"
    assert app_module.parse_args(["--stream-port", "1", "--stream-host", "10.0.0.7"]).stream == "tcp://10.0.0.7:1"
    assert app_module.parse_args(["--stream", "tcp://camera:9999"]).stream == "tcp://camera:9999"
    assert app_module.parse_args(["--stream", "tcp://[::1]:9999"]).stream == "tcp://[::1]:9999"
    config = app_module.parse_args(["--mode", "sub", "-d", "0.5", "--host", "0.0.0.0", "--port", "8050",
                                    "--history", "1000", "--image-channel", "cam:FPICTURE", "--energy-channel",
                                    "SARBD01:ENERGY", "--rate-channel", "SIN:REP_RATE", "--threads", "4"])
    assert config.mode == "sub" and config.period_s == 0.5 and config.host == "0.0.0.0" and config.port == 8050
    assert config.history == 1000 and config.threads == 4
    assert (config.image_channel, config.energy_channel, config.rate_channel) == ("cam:FPICTURE", "SARBD01:ENERGY",
                                                                                 "SIN:REP_RATE")
    assert config.auth is None


BAD_ARGUMENTS = [
    ["--bogus"],
    ["-o"],
    ["-o", "abc"],
    ["-o", "0"],
    ["-o", "65536"],
    ["--port", "-1"],
    ["--stream", "foo"],
    ["--stream", "http://camera:9999"],
    ["--stream", "tcp://camera"],
    ["--stream", "tcp://camera:99999"],
    ["--stream", "tcp://cam era:9999"],
    ["--stream", "tcp://a:1", "-o", "2"],
    ["-o", "9999", "-s", "bad host!"],
    ["--mode", "push"],
    ["-d", "0"],
    ["-d", "-1"],
    ["-d", "abc"],
    ["-d", "nan"],
    ["--history", "1"],
    ["--history", "x"],
    ["--threads", "0"],
    ["--auth", "no-colon"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=lambda argv: " ".join(argv))
def test_bad_arguments_end_with_one_sentence(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app_module.parse_args(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = assert_one_sentence(captured.err)
    assert "error" in line


def test_help_lists_every_option_with_its_default() -> None:
    result = run_app("--help")
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert text.startswith("usage: app.py")
    for option in ("-o", "--stream-port", "-s", "--stream-host", "--stream", "--mode", "-d", "--delay", "--host",
                   "--port", "--history", "--image-channel", "--energy-channel", "--rate-channel", "--threads",
                   "--auth"):
        assert f"{option} " in text or f"{option}," in text, option
    for default in ("(default: 0.1)", "(default: 127.0.0.1)", "(default: 5000)", "(default: pull)",
                    "(default: 360000)", "(default: image)", "(default: beam_energy)", "(default: repetition_rate)"):
        assert default in text, default


# ------------------------------------------------------------------------------------------ failing starts


@pytest.mark.parametrize("argv", [["--bogus"], ["--stream", "foo"], ["--stream", "tcp://camera:99999"],
                                  ["-o", "9999", "-s", "bad host!"]], ids=lambda argv: " ".join(argv))
def test_bad_option_or_address_exits_without_traceback(argv: list[str]) -> None:
    result = run_app(*argv)
    assert result.returncode == 2
    assert_one_sentence(result.stderr)
    assert result.stdout == ""


def test_address_zeromq_refuses_exits_without_traceback() -> None:
    """Syntactically fine for argparse, refused by ZeroMQ's connect (a wildcard is no peer)."""
    result = run_app("--stream", "tcp://*:9999", "--port", str(free_port()))
    assert result.returncode == 1
    line = assert_one_sentence(result.stderr)
    assert "tcp://*:9999" in line


def test_port_in_use_exits_without_traceback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((LOCALHOST, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run_app("--port", str(port), "--stream", "tcp://127.0.0.1:9")
    assert result.returncode == 1
    line = assert_one_sentence(result.stderr)
    assert str(port) in line


def test_unusable_web_interface_exits_without_traceback() -> None:
    result = run_app("--host", "192.0.2.1", "--port", str(free_port()), "--stream", "tcp://127.0.0.1:9")
    assert result.returncode == 1
    assert "192.0.2.1" in assert_one_sentence(result.stderr)


# ------------------------------------------------------------------------------------------ signals


def stop_and_time(process: subprocess.Popen, sig: int, repeat_s: float = 0.0) -> float:
    """Send `sig` and return the seconds until the process is gone; with repeat_s, keep sending it
    (every 20 ms, as `timeout` or an impatient operator would) for that long."""
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


def wait_live(url: str) -> None:
    wait_until(lambda: json.loads(get(url + "/api/status")[1])["state"] == "live", timeout=60,
               message="stream never went live")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_simulated_dashboard_quickly(sig: int) -> None:
    with app_process([]) as (url, process):
        wait_live(url)
        # A browser tab keeps a connection open; that must not hold the shutdown up.
        idle = http.client.HTTPConnection(LOCALHOST, int(url.rsplit(":", 1)[1]), timeout=10)
        idle.request("GET", "/api/status")
        assert idle.getresponse().read()
        seconds = stop_and_time(process, sig)
        idle.close()
        output = process.stdout.read()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert seconds < STOP_LIMIT_S, f"took {seconds:.2f} s to stop"
    assert "stopped" in output.splitlines()[-1]


@pytest.mark.slow
def test_repeated_signals_during_shutdown_do_not_break_it() -> None:
    with app_process(["--stream", f"tcp://127.0.0.1:{free_port()}"]) as (url, process):
        seconds = stop_and_time(process, signal.SIGTERM, repeat_s=3.0)
        output = process.stdout.read()
    assert "Traceback" not in output, output
    assert process.returncode == 0
    assert seconds < STOP_LIMIT_S
