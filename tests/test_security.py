"""Secure defaults: loopback only, a warning on a public interface without --auth, basic auth on
everything (pages, Dash callbacks, every API endpoint, writes included), writes only from this
server's own pages, no debug surface, HTTP limits and security headers, no disk writes per message,
stream-supplied strings shown as text, clean and quick shutdown.

Most checks run `python app.py` as a subprocess (the real main(): waitress limits, signal handling,
logging); the stream is fed by a PUSH bound on 127.0.0.1 in this process.
"""

from __future__ import annotations

import logging

import base64
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
import pytest
import zmq

from components import ids
from config import parse_args
from stream.encoder import Encoder
from tests.dash_client import DashClient
from tests.helpers import LOCALHOST, send_multipart, wait_until
from tests.live_app import app_process, request

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


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out


def camera_message(encoder: Encoder, pulse_id: int, **extra: Any) -> list[bytes]:
    image = np.zeros((48, 64), np.uint16)
    image[20:28, 30:38] = 1000
    values = {"image": image, "beam_energy": np.float64(5.2), "repetition_rate": np.float64(100.0), **extra}
    return encoder.encode(pulse_id, 1.8e9 + pulse_id * 0.01, values)


# ------------------------------------------------------------------------------------ binding


def test_default_bind_is_loopback_only() -> None:
    assert parse_args([]).host == "127.0.0.1"
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

PROTECTED = [("GET", "/"), ("GET", "/_dash-layout"), ("GET", "/_dash-dependencies"), ("GET", "/api/status"),
             ("GET", "/api/cameras"), ("GET", "/api/frame"), ("GET", "/api/pixel?col=0&row=0"),
             ("GET", "/api/readings.csv"), ("GET", "/api/rois"), ("GET", "/api/background"),
             ("GET", "/api/snapshot.h5"), ("PUT", "/api/rois"), ("POST", "/api/background?frames=1"),
             ("DELETE", "/api/background"), ("POST", "/api/hold?client=p"), ("DELETE", "/api/hold?client=p"),
             ("GET", "/assets/painter.js"), ("GET", "/vendor/bootstrap.min.css"),
             ("GET", "/_dash-component-suites/dash/dcc/async-graph.js"), ("GET", "/no-such-page"),
             ("POST", "/_dash-update-component")]


@pytest.mark.parametrize("how", ["--auth", "SOV_AUTH"])
def test_basic_auth_is_enforced_on_pages_callbacks_api_and_writes(how: str) -> None:
    args, env = (["--auth", f"{USER}:{PASSWORD}"], None) if how == "--auth" else ([], {"SOV_AUTH": f"{USER}:{PASSWORD}"})
    good, wrong = basic(USER, PASSWORD), basic(USER, PASSWORD + "x")
    with app_process(args, env=env) as (url, process):
        for method, path in PROTECTED:
            body = b'{"rois": []}' if method == "PUT" else None
            for headers in ({}, wrong, basic(PASSWORD, USER), {"Authorization": "Bearer " + PASSWORD}):
                code, answer, response_headers = request(url, path, method, body, headers)
                assert code == 401, (method, path, headers)
                assert PASSWORD.encode() not in answer
                challenge = {k.lower(): v for k, v in response_headers.items()}.get("www-authenticate", "")
                assert challenge.startswith("Basic"), path
        wait_until(lambda: status(url, good)["received"] > 0, 30)
        rois_before = json.loads(request(url, "/api/rois", headers=good)[1])
        assert rois_before == {"rois": []}  # no unauthenticated write went through
        assert json.loads(request(url, "/api/background", headers=good)[1])["state"] == "none"
        for method, path in PROTECTED:
            if path == "/_dash-update-component":
                continue  # a callback without a body: below
            body = b'{"rois": []}' if method == "PUT" else None
            code = request(url, path, method, body, {**good, "Content-Type": "application/json"})[0]
            assert code in (200, 204), (method, path, code)
        page = DashClient.http(url)
        with pytest.raises(AssertionError):  # /_dash-layout and every callback need the password
            page.load()
        page = DashClient.http(url, auth=(USER, PASSWORD))
        loaded = page.load()
        assert loaded[ids.STREAM_STATE]["children"] in ("live", "waiting")
        assert page.frame().status == 200
        page.close()
        out = stop(process)
    assert PASSWORD not in out and base64.b64encode(PASSWORD.encode()).decode() not in out


# ------------------------------------------------------------------------------------ writes from other sites


def test_writes_only_from_this_servers_own_pages() -> None:
    with app_process([]) as (url, process):
        wait_until(lambda: status(url)["received"] > 0, 30)
        own = url.split("//", 1)[1]
        body = json.dumps({"rois": [{"name": "spot", "x0": 1, "x1": 2, "y0": 1, "y1": 2}]}).encode()
        for headers in ({"Origin": "https://evil.example"}, {"Origin": f"http://{own}.evil.example"},
                        {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site", "Origin": f"http://{own}"}):
            assert request(url, "/api/rois", "PUT", body, headers)[0] == 403, headers
            assert request(url, "/api/background?frames=1", "POST", None, headers)[0] == 403, headers
        assert json.loads(request(url, "/api/rois")[1]) == {"rois": []}
        for headers in ({}, {"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"}):  # a script; our page
            assert request(url, "/api/rois", "PUT", body, headers)[0] == 200, headers
        assert [r["name"] for r in json.loads(request(url, "/api/rois")[1])["rois"]] == ["spot"]
        stop(process)


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
        for body in (b'{"output": "nope.x", "inputs": []}', b"{not json", b'{"output": "pulse-id-value.children"}'):
            code, answer, _ = request(url, "/_dash-update-component", "POST", body, {"Content-Type": "application/json"})
            assert code >= 400 and b"Traceback" not in answer and str(ROOT).encode() not in answer
        code, answer, _ = request(url, "/api/frame?cmap=%3Cscript%3E")
        assert code == 400 and b"<script>" not in answer and b"Traceback" not in answer
        stop(process)


# ------------------------------------------------------------------------------------ HTTP limits


def test_http_limits_and_headers() -> None:
    with app_process([]) as (url, process):
        host, port = LOCALHOST, int(url.rsplit(":", 1)[1])
        wait_until(lambda: status(url)["received"] > 0, 30)

        def first_line(raw: bytes) -> bytes:
            with socket.create_connection((host, port), timeout=15) as sock:
                sock.sendall(raw)
                try:
                    return sock.recv(200).split(b"\r\n")[0]
                except ConnectionResetError:  # answered and closed while we were still sending
                    return b"reset"

        # A body that claims to be huge is refused before it is sent (5 MB and 10 GB).
        for path in (b"/_dash-update-component", b"/api/rois"):
            for length in (5 * 1024 * 1024, 10**10):
                line = first_line(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                  b"\r\nContent-Length: %d\r\n\r\n{" % (b"POST" if b"dash" in path else b"PUT",
                                                                       path, length))
                assert line.split()[1] == b"413", (path, line)
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
        # Security headers on every answer: page, JSON, binary frame, CSV, refusals.
        for path in ("/", "/api/status", "/api/frame", "/api/readings.csv", "/api/frame?w=x", "/api/nothing",
                     "/assets/painter.js"):
            headers = request(url, path)[2]
            assert headers.get("X-Content-Type-Options") == "nosniff", path
            assert headers.get("X-Frame-Options") == "DENY" and headers.get("Referrer-Policy") == "no-referrer", path
        stop(process)


# ------------------------------------------------------------------------------------ no disk writes


def test_receiving_writes_nothing_to_disk_and_logs_once_per_kind(push) -> None:
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        proc = psutil.Process(process.pid)
        for pulse in range(1, 51):  # warm-up (imports, first render paths)
            send_multipart(sock, camera_message(encoder, pulse))
        wait_until(lambda: status(url)["received"] == 50, 30)
        page = DashClient.http(url)
        page.load()
        page.frame()
        io0 = proc.io_counters()
        files0 = {f.path for f in proc.open_files()}
        for pulse in range(51, 2051):
            send_multipart(sock, camera_message(encoder, pulse))
            if pulse % 4 == 0:  # and bad ones, of two kinds
                send_multipart(sock, [b"not json", b"{}"])
            if pulse % 5 == 0:
                send_multipart(sock, [b"x"])
            if pulse % 100 == 0:  # a browser watching meanwhile
                page.frame()
                page.readings()
        wait_until(lambda: status(url)["received"] == 2050, 60)
        now = status(url)
        io1 = proc.io_counters()
        files1 = {(f.path, f.mode) for f in proc.open_files()}
        page.close()
        out = stop(process)
    assert now["invalid_by_reason"] == {"bad-main-header": 500, "part-count": 400}
    assert io1.write_bytes - io0.write_bytes == 0, "the app wrote to disk while receiving"
    assert not [f for f in files1 if f[0] not in files0 and f[1] != "r"], files1
    warnings = [line for line in out.splitlines() if "invalid bsread message" in line]
    assert len(warnings) == 2, warnings  # once per kind, not 900 lines


# ------------------------------------------------------------------------------------ stream strings


def test_stream_strings_are_plain_text_in_panels_dropdown_charts_and_csv(push) -> None:
    sock, address = push
    encoder = Encoder()
    with app_process(["--stream", address]) as (url, process):
        for pulse in range(1, 21):
            send_multipart(sock, camera_message(encoder, pulse, **{
                XSS: np.float64(1.0), LINK: np.float64(2.0), FORMULA: np.float64(3.0),
                "processing_parameters": f'{{"note": "{XSS}</script><script>alert(2)</script>"}}'}))
        wait_until(lambda: status(url)["received"] == 20, 30)
        page = DashClient.http(url)
        loaded = page.load()
        history = page.set(ids.CHANNEL_SELECT, "value", XSS)
        csv_header = request(url, "/api/readings.csv")[1].decode().split("\r\n")[0]
        page.close()
        stop(process)
    options = page.value(ids.CHANNEL_SELECT, "options")
    assert {"label": XSS, "value": XSS} in options and {"label": LINK, "value": LINK} in options
    # Dash renders strings as text nodes; the panels hold only plain components with string children.
    raw = json.dumps(loaded)
    assert "dangerously" not in raw and '"type": "Img"' not in raw and "Markdown" not in raw
    assert loaded[ids.PARAMETERS]["children"].startswith('{"note": "<img')  # a string: React shows it as text
    # In the history chart the name is plotly text: escaped so plotly's pseudo-HTML makes no link of it.
    title = history[ids.CHANNEL_HISTORY]["figure"]["layout"]["title"]["text"]
    assert "<" not in title and "&lt;img" in title, title
    assert XSS in csv_header and "'" + FORMULA in csv_header.replace('""', '"')


# ------------------------------------------------------------------------------------ shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_exit_cleanly_within_2_s_while_receiving(push, sig: int) -> None:
    sock, address = push
    encoder = Encoder()
    sending = threading.Event()

    def feed() -> None:
        pulse = 100
        while not sending.wait(0.01):
            pulse += 1
            try:
                sock.send_multipart(camera_message(encoder, pulse), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass

    with app_process(["--stream", address]) as (url, process):
        for pulse in range(1, 101):
            send_multipart(sock, camera_message(encoder, pulse))
        wait_until(lambda: status(url)["received"] == 100, 30)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        page = DashClient.http(url)
        page.load()
        assert page.frame().status == 200  # a kept-alive browser connection is open
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(10)
        seconds = time.monotonic() - started
        sending.set()
        feeder.join(5)
        out = process.stdout.read()
        page.close()
    assert code == 0 and "Traceback" not in out, out[-2000:]
    assert seconds < 2.0, f"{signal.Signals(sig).name} took {seconds:.2f} s"
    assert " stopped in " in out.rstrip().splitlines()[-1]


# ------------------------------------------------------------------------------------ in a browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

FIND_INJECTED_JS = """
return {
    imgs: Array.from(document.querySelectorAll('img')).map(e => e.outerHTML),
    links: Array.from(document.querySelectorAll('a')).map(e => e.getAttribute('href') || e.getAttribute('xlink:href'))
        .filter(h => h && h.includes('example.invalid')),
    alerted: window.__alerted || 0,
    titles: Array.from(document.querySelectorAll('#channel-history-graph .gtitle')).map(e => e.textContent),
    parameters: (document.getElementById('processing-parameters') || {}).textContent || '',
};
"""


PICK_CHANNEL_JS = """
if (!document.getElementById('history-channel-select') || !window.dash_clientside
        || !window.dash_clientside.set_props) { return false; }
try { window.dash_clientside.set_props('history-channel-select', {value: arguments[0]}); return true; }
catch (error) { return false; }
"""


@pytest.mark.browser
def test_stream_strings_never_become_elements_in_the_page(push) -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        if os.environ.get("SOV_REQUIRE_BROWSER"):
            pytest.fail("the browser tests need Debian's chromium and chromium-driver")
        pytest.skip("needs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    from tests.live_app import running_app

    sock, address = push
    encoder = Encoder()
    stop_sending = threading.Event()
    parameters = f'{{"note": "{XSS}"}}'

    def feed() -> None:
        pulse = 0
        while not stop_sending.wait(0.05):
            pulse += 1
            sock.send_multipart(camera_message(encoder, pulse, **{XSS: np.float64(pulse % 7), LINK: np.float64(2.0),
                                                                   "processing_parameters": parameters}))

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1366,768"):
        options.add_argument(flag)
    feeder = threading.Thread(target=feed, daemon=True)
    states = []
    with running_app(["--stream", address]) as live:
        feeder.start()
        browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            browser.set_page_load_timeout(90)
            browser.get(live.url)
            browser.execute_script("window.alert = () => { window.__alerted = (window.__alerted || 0) + 1; };")
            for name in (XSS, LINK):
                # The operator picks the channel for the fourth chart, through Dash's public set_props.
                # Picked again until the chart shows it: set_props is refused until the page is laid
                # out, and the dropdown drops a value its options (arriving with the history) lack.
                def shown() -> dict | None:
                    state = browser.execute_script(FIND_INJECTED_JS)
                    if name in state["titles"]:
                        return state
                    browser.execute_script(PICK_CHANNEL_JS, name)
                    return None

                states.append(wait_until(shown, 90, interval=0.5,
                                         message=f"the chart never showed {name!r} as its title"))
        finally:
            stop_sending.set()
            feeder.join(5)
            browser.quit()
    for state in states:
        assert state["imgs"] == [] and state["links"] == [] and state["alerted"] == 0, state
    assert states[-1]["parameters"] == parameters or states[-1]["parameters"] == ""


def test_failing_requests_log_one_traceback_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    """Malformed Dash callback requests from any client must not fill the log with tracebacks."""
    from tests.web_fixtures import FedCamera, fed_app

    app = fed_app(FedCamera("cam"))
    client = app.server.test_client()
    caplog.set_level(logging.ERROR)
    for _ in range(20):
        reply = client.post("/_dash-update-component", data='{"output": 1}', content_type="application/json")
        assert reply.status_code >= 400
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]


def test_another_sites_page_cannot_read_the_api_but_its_links_open() -> None:
    from tests.web_fixtures import FedCamera, camera_values, designed_image, fed_app

    camera = FedCamera("cam")
    camera.feed(camera_values(designed_image(8, 8)))
    client = fed_app(camera).server.test_client()
    embedded = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    assert client.get("/api/frame", headers=embedded).status_code == 403
    assert client.get("/api/status", headers=embedded).status_code == 403
    followed = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert client.get("/api/readings.csv?seconds=60", headers=followed).status_code == 200
    assert client.get("/", headers=followed).status_code == 200
    own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert client.get("/api/frame", headers=own).status_code == 200
    assert client.get("/api/status").status_code == 200  # a script sends none of these headers
