"""Secure defaults: loopback only, warnings, basic auth everywhere, no debug surface, no disk writes per
message, stream-supplied strings shown as text, HTTP limits, clean and quick shutdown.

Most checks run `python app.py` as a subprocess (the real main(): waitress limits, signal handling,
logging); the stream is fed by a PUSH bound on 127.0.0.1 in this process.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
import pytest
import zmq

import app as app_module
from components import ids
from stream.encoder import Encoder
from tests.dash_client import DashClient, dependencies, text_of
from tests.helpers import LOCALHOST, free_port, send_multipart, wait_until
from tests.live_app import app_process, get

ROOT = Path(__file__).resolve().parent.parent
XSS = "<img src=x onerror=alert(1)>"
LINK = '<a href="https://example.invalid/x">click</a>'
FORMULA = "=HYPERLINK(\"https://example.invalid\")"
USER, PASSWORD = "operator", "Tr1cky:pa55-word"

pytestmark = pytest.mark.slow


@pytest.fixture
def push() -> Iterator[tuple[zmq.Socket, str]]:
    context = zmq.Context()
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port(f"tcp://{LOCALHOST}")
    yield sock, f"tcp://{LOCALHOST}:{port}"
    sock.close(0)
    context.term()


def status(url: str, headers: dict | None = None) -> dict:
    return json.loads(request(url, "/api/status", headers=headers)[1])


def request(url: str, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, timeout: float = 15.0) -> tuple[int, bytes, dict]:
    host, port = url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out


# ------------------------------------------------------------------------------------ binding


def test_default_bind_is_loopback_only() -> None:
    assert app_module.parse_args([]).host == "127.0.0.1"
    with app_process([]) as (url, process):
        port = int(url.rsplit(":", 1)[1])
        listening = [c.laddr for c in psutil.Process(process.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        out = stop(process)
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    assert "without --auth" not in out


def test_public_interface_without_auth_warns_and_with_auth_does_not() -> None:
    with app_process(["--host", "0.0.0.0"]) as (_url, process):
        out = stop(process)
    assert re.search(r"WARNING .*serving on 0\.0\.0\.0 without --auth", out), out
    with app_process(["--host", "0.0.0.0"], env={"SOV_AUTH": f"{USER}:{PASSWORD}"}) as (_url, process):
        out = stop(process)
    assert "without --auth" not in out


# ------------------------------------------------------------------------------------ basic auth

PROTECTED = ["/", "/_dash-layout", "/_dash-dependencies", "/api/status", "/api/readings.csv", "/assets/viewer.js",
             "/vendor/bootstrap.min.css", "/_dash-component-suites/dash/dcc/async-graph.js", "/no-such-page"]


@pytest.mark.parametrize("how", ["--auth", "SOV_AUTH"])
def test_basic_auth_is_enforced_on_pages_callbacks_and_api(how: str) -> None:
    args, env = (["--auth", f"{USER}:{PASSWORD}"], None) if how == "--auth" else ([], {"SOV_AUTH": f"{USER}:{PASSWORD}"})
    good, wrong = basic(USER, PASSWORD), basic(USER, PASSWORD + "x")
    with app_process(args, env=env) as (url, process):
        for path in PROTECTED:
            assert request(url, path)[0] == 401, path
            assert request(url, path, headers=wrong)[0] == 401, path
            assert request(url, path, headers=basic(PASSWORD, USER))[0] == 401, path
            code, body, headers = request(url, path)
            challenge = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
            assert challenge.startswith("Basic"), path
            assert PASSWORD.encode() not in body
            assert request(url, path, headers=good)[0] == 200, path  # Dash answers any page path with the app
        deps = dependencies(url, headers=good)
        client = DashClient(url, deps)
        assert client.health().status == 401
        assert client.image().status == 401  # the image callback's fast path sits behind the check too
        client.auth = (USER, PASSWORD)
        wait_until(lambda: status(url, good)["received"] > 0, 30)
        assert client.health().status == 200 and client.image().status == 200
        out = stop(process)
    assert PASSWORD not in out and base64.b64encode(PASSWORD.encode()).decode() not in out


# ------------------------------------------------------------------------------------ debug surface


def test_debug_and_dev_tools_are_off() -> None:
    with app_process([]) as (url, process):
        assert request(url, "/_reload-hash")[0] == 404
        page = request(url, "/")[1].decode()
        config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page,
                                      re.S).group(1))
        assert config.get("ui") is False and config.get("props_check") is False, config
        assert "hot_reload" not in config or not config["hot_reload"]
        # A broken callback request is answered without a traceback or source paths.
        code, body, _ = request(url, "/_dash-update-component", "POST", b'{"output": "nope.x", "inputs": []}',
                                {"Content-Type": "application/json"})
        assert code >= 400 and b"Traceback" not in body and str(ROOT).encode() not in body
        code, body, _ = request(url, "/_dash-update-component", "POST", b"{not json",
                                {"Content-Type": "application/json"})
        assert code >= 400 and b"Traceback" not in body
        stop(process)


# ------------------------------------------------------------------------------------ HTTP limits


def test_http_limits() -> None:
    with app_process([]) as (url, process):
        host, port = LOCALHOST, int(url.rsplit(":", 1)[1])

        def first_line(raw: bytes) -> bytes:
            with socket.create_connection((host, port), timeout=15) as sock:
                sock.sendall(raw)
                try:
                    return sock.recv(200).split(b"\r\n")[0]
                except ConnectionResetError:  # answered and closed while we were still sending
                    return b"reset"

        # A body that claims to be huge is refused before it is sent (5 MB and 10 GB).
        for length in (5 * 1024 * 1024, 10**10):
            line = first_line(b"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                              b"\r\nContent-Length: %d\r\n\r\n{" % length)
            assert line.split()[1] == b"413", line
        # So is a chunked one that grows past the limit.
        chunk = b" " * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
        line = first_line(b"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + body)
        assert line == b"reset" or line.split()[1] == b"413", line
        assert request(url, "/", headers={"X-Big": "y" * 300_000})[0] in (400, 413, 431)
        assert request(url, "/api/readings.csv?seconds=1e999")[0] == 400
        assert request(url, "/api/readings.csv?seconds=../../etc/passwd")[0] == 400
        # 300 half-sent requests (slow loris) do not lock the next browser out.
        loris = []
        try:
            for _ in range(300):
                sock = socket.create_connection((host, port), timeout=15)
                sock.sendall(b"GET / HTTP/1.1\r\n")
                loris.append(sock)
            assert request(url, "/api/status", timeout=20)[0] == 200
        finally:
            for sock in loris:
                sock.close()
        # Security headers on every answer.
        headers = request(url, "/")[2]
        assert headers.get("X-Content-Type-Options") == "nosniff" and headers.get("X-Frame-Options") == "DENY"
        stop(process)


# ------------------------------------------------------------------------------------ no disk writes


def camera_message(encoder: Encoder, pulse_id: int, **extra: Any) -> list[bytes]:
    image = np.zeros((48, 64), np.uint16)
    image[20:28, 30:38] = 1000
    values = {"image": image, "beam_energy": np.float64(5.2), "repetition_rate": np.float64(100.0), **extra}
    return encoder.encode(pulse_id, 1.8e9 + pulse_id * 0.01, values)


def test_receiving_writes_nothing_to_disk_and_logs_once_per_kind(push, tmp_path: Path) -> None:
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        proc = psutil.Process(process.pid)
        for pulse in range(1, 51):  # warm-up (imports, first render paths)
            send_multipart(sock, camera_message(encoder, pulse))
        wait_until(lambda: status(url)["received"] == 50, 30)
        io0 = proc.io_counters()
        files0 = {f.path for f in proc.open_files()}
        for pulse in range(51, 2051):
            send_multipart(sock, camera_message(encoder, pulse))
            if pulse % 4 == 0:  # and bad ones, of two kinds
                send_multipart(sock, [b"not json", b"{}"])
            if pulse % 5 == 0:
                send_multipart(sock, [b"x"])
        wait_until(lambda: status(url)["received"] == 2050, 60)
        now = status(url)
        io1 = proc.io_counters()
        files1 = {(f.path, f.mode) for f in proc.open_files()}
        out = stop(process)
    assert now["invalid_by_reason"] == {"bad-main-header": 500, "part-count": 400}
    assert io1.write_bytes - io0.write_bytes == 0, "the app wrote to disk while receiving"
    assert not [f for f in files1 if f[0] not in files0 and f[1] != "r"], files1
    warnings = [line for line in out.splitlines() if "invalid bsread message" in line]
    assert len(warnings) == 2, warnings  # once per kind, not 900 lines


def test_csv_and_status_come_from_the_ring_buffer_only(push) -> None:
    """The endpoints serve what was received, nothing else (no files, no parameters reaching a path)."""
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        for pulse in range(1, 11):
            send_multipart(sock, encoder.encode(pulse, 1.8e9 + pulse, {"beam_energy": np.float64(pulse / 10)}))
        wait_until(lambda: status(url)["received"] == 10, 30)
        code, body, headers = request(url, "/api/readings.csv")
        stop(process)
    assert code == 200 and headers["Content-Type"].startswith("text/csv")
    rows = body.decode().strip().split("\r\n")
    assert rows[0].split(",")[:4] == ["pulse_id", "timestamp", "timestamp_epoch", "beam_energy"]
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 11))
    assert [float(r.split(",")[3]) for r in rows[1:]] == [p / 10 for p in range(1, 11)]


# ------------------------------------------------------------------------------------ stream strings


def test_stream_strings_are_plain_text_in_panel_dropdown_and_csv(push) -> None:
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        for pulse in range(1, 21):
            send_multipart(sock, camera_message(encoder, pulse, **{
                XSS: np.float64(1.0), LINK: np.float64(2.0), FORMULA: np.float64(3.0),
                "processing_parameters": f'{{"note": "{XSS}</script><script>alert(2)</script>"}}'}))
        wait_until(lambda: status(url)["received"] == 20, 30)
        client = DashClient(url, dependencies(url))
        health = client.health().body
        history = client.history(channel=XSS).body
        csv_header = request(url, "/api/readings.csv")[1].decode().split("\r\n")[0]
        raw_health = json.dumps(health)
        stop(process)
    options = health[ids.CHANNEL_SELECT]["options"]
    assert {"label": XSS, "value": XSS} in options and {"label": LINK, "value": LINK} in options
    # Dash renders strings as text nodes; the panel holds only Th/Td components with string children.
    assert "dangerously" not in raw_health and '"type": "Img"' not in raw_health and "Markdown" not in raw_health
    # In the history chart the name is plotly text: escaped so plotly's pseudo-HTML makes no link of it.
    title = history[ids.CHANNEL_HISTORY]["figure"]["layout"]["title"]["text"]
    assert "<" not in title and "&lt;img" in title, title
    # CSV: names verbatim, except a formula is defused for spreadsheets.
    assert XSS in csv_header and "'" + FORMULA in csv_header.replace('""', '"')


# ------------------------------------------------------------------------------------ shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_exit_cleanly_within_2_s_while_receiving(push, sig: int) -> None:
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        for pulse in range(1, 101):
            send_multipart(sock, camera_message(encoder, pulse))
        wait_until(lambda: status(url)["received"] == 100, 30)
        client = DashClient(url, dependencies(url))
        assert client.image().status == 200  # a kept-alive browser connection is open
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(10)
        seconds = time.monotonic() - started
        out = process.stdout.read()
        client.close()
    assert code == 0 and "Traceback" not in out, out[-2000:]
    assert seconds < 2.0, f"{signal.Signals(sig).name} took {seconds:.2f} s"
    assert out.rstrip().splitlines()[-1].endswith("stopped")


# ------------------------------------------------------------------------------------ in a browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

FIND_INJECTED_JS = """
return {
    imgs: Array.from(document.querySelectorAll('img')).map(e => e.outerHTML),
    links: Array.from(document.querySelectorAll('a')).map(e => e.getAttribute('href') || e.getAttribute('xlink:href'))
        .filter(h => h && h.includes('example.invalid')),
    alerted: window.__alerted || 0,
    text: document.body.innerText,
    titles: Array.from(document.querySelectorAll('#channel-history-graph .gtitle, #channel-history-graph .legendtext'))
        .map(e => e.textContent),
};
"""


@pytest.mark.browser
def test_stream_strings_never_become_elements_in_the_page(push) -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By

    from tests.live_app import running_app

    sock, address = push
    encoder = Encoder()
    stop_sending = threading.Event()

    def feed() -> None:
        pulse = 0
        while not stop_sending.wait(0.05):
            pulse += 1
            sock.send_multipart(camera_message(encoder, pulse, **{XSS: np.float64(pulse % 7), LINK: np.float64(2.0)}))

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
        options.add_argument(flag)
    feeder = threading.Thread(target=feed, daemon=True)
    with running_app(["--stream", address]) as (url, _app, _source):
        feeder.start()
        browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            browser.set_page_load_timeout(90)
            browser.get(url)
            browser.execute_script("window.alert = () => { window.__alerted = (window.__alerted || 0) + 1; };")
            # Pick the channels for the fourth chart, as an operator would: open the list, click the name.
            button = wait_until(lambda: browser.find_elements(By.ID, "history-channel-select"), 90, interval=0.2,
                                message="channel dropdown not rendered")[0]
            states = []

            def click(element: Any, block: str) -> bool:
                # The page is still growing (first figures, panels) and the theme scrolls smoothly: a
                # click that lands on something else is retried once the element is in view again.
                browser.execute_script(f"arguments[0].scrollIntoView({{block: '{block}'}})", element)
                try:
                    element.click()
                    return True
                except ElementClickInterceptedException:
                    return False

            def shown_option(name: str) -> list[Any]:
                options = browser.find_elements(By.CSS_SELECTOR, '[role="option"]')
                if not options:  # the list is closed (or was opened before the channels arrived): open it
                    click(button, "center")
                return [o for o in options if o.text == name]

            for name in (XSS, LINK):
                wait_until(lambda: click(button, "center"), 30, interval=0.3, message="channel dropdown not clickable")
                option = wait_until(lambda: shown_option(name), 60, interval=0.5,
                                    message=f"{name!r} is not an option shown as text")[0]
                wait_until(lambda: click(option, "nearest"), 30, interval=0.3, message=f"option {name!r} not clickable")
                states.append(wait_until(lambda: (lambda f: f if name in f["titles"] else None)(
                    browser.execute_script(FIND_INJECTED_JS)), 60, interval=0.2,
                    message=f"the chart never showed {name!r} as its title"))
        finally:
            stop_sending.set()
            feeder.join(5)
            browser.quit()
    for state in states:
        assert state["imgs"] == [] and state["links"] == [] and state["alerted"] == 0, state
