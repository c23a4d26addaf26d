"""The cam_server REST client against the stand-in and against broken servers; the stand-in's streams
decoded by our own decoder through a real ZeroMQ SUB socket.

The real cam_server is not used here (docs/camserver-standin.md says how the stand-in was checked
against it). Servers bind 127.0.0.1 on free ports; every wait has a deadline.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import zmq

pytest.importorskip("bsread")  # the stand-in's instances are psi-bsread Senders
pytest.importorskip("flask")

from stream.camserver import MAX_REPLY_BYTES, CamServerClient, CamServerError, StreamChoice  # noqa: E402
from stream.protocol import Decoder, Message  # noqa: E402
from tests.camserver_standin import (ERROR_CHANNEL_NAMES, PIPELINE_CHANNEL_NAMES, CamServerStandIn,  # noqa: E402
                                     pipeline_channels)
from tests.helpers import LOCALHOST, free_port, recv_multipart, wait_until  # noqa: E402

RATE_HZ = 20.0


def expected_layout(width: int, height: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Header order, type and numpy shape of the pipeline channels for a uint16 image, as the real
    cam_server sends them (docs/camserver-standin.md); written out, not derived from the stand-in."""
    scalar: tuple[int, ...] = ()
    return {
        "x_axis": ("float32", (width,)), "y_axis": ("float32", (height,)), "image": ("uint16", (height, width)),
        "width": ("int64", scalar), "height": ("int64", scalar), "processing_parameters": ("string", scalar),
        "timestamp": ("float64", scalar), "min_value": ("uint16", scalar), "max_value": ("uint16", scalar),
        "x_profile": ("int64", (width,)), "y_profile": ("int64", (height,)), "intensity": ("int64", scalar),
        "x_fwhm": ("float64", scalar), "y_fwhm": ("float64", scalar),
        "x_center_of_mass": ("float64", scalar), "x_rms": ("float64", scalar),
        "y_center_of_mass": ("float64", scalar), "y_rms": ("float64", scalar),
        "x_fit_gauss_function": ("float32", (width,)), "x_fit_offset": ("float64", scalar),
        "x_fit_amplitude": ("float64", scalar), "x_fit_standard_deviation": ("float64", scalar),
        "x_fit_mean": ("float64", scalar),
        "y_fit_gauss_function": ("float32", (height,)), "y_fit_offset": ("float64", scalar),
        "y_fit_amplitude": ("float64", scalar), "y_fit_standard_deviation": ("float64", scalar),
        "y_fit_mean": ("float64", scalar),
    }


@pytest.fixture(scope="module")
def standin() -> Iterator[CamServerStandIn]:
    with CamServerStandIn(rate_hz=RATE_HZ) as server:
        yield server


@pytest.fixture
def client(standin: CamServerStandIn) -> CamServerClient:
    return CamServerClient(standin.url, timeout_s=5.0)


@pytest.fixture
def subscribe(zctx: zmq.Context) -> Iterator[Callable[[str], zmq.Socket]]:
    sockets: list[zmq.Socket] = []

    def connect(address: str) -> zmq.Socket:
        sock = zctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(address)
        sockets.append(sock)
        return sock

    yield connect
    for sock in sockets:
        sock.close(0)


def receive(sock: zmq.Socket, count: int = 1) -> list[Message]:
    decoder = Decoder()
    return [decoder.decode(recv_multipart(sock)) for _ in range(count)]


# ------------------------------------------------------------------------------ client vs stand-in


def test_cameras_and_pipelines(client: CamServerClient) -> None:
    assert client.cameras() == ["simulation", "simulation2", "broken", "dead"]
    assert client.pipelines() == ["simulation_sp", "simulation2_sp", "broken_sp"]


def test_stream_for_uses_the_shared_saved_pipeline(client: CamServerClient, standin: CamServerStandIn) -> None:
    choice = client.stream_for("simulation")
    assert choice == StreamChoice("simulation", "simulation_sp", standin.stream_address("simulation_sp"),
                                  "saved pipeline")
    assert choice.address.startswith(f"tcp://{LOCALHOST}:")
    assert client.stream_for("simulation") == choice  # the same shared instance, not a second one
    info = client.instance_info("simulation_sp")
    assert info["stream_address"] == choice.address and info["camera_name"] == "simulation"
    assert info["is_stream_active"] is True and info["config"]["name"] == "simulation_sp"


def test_stream_for_creates_a_processing_instance_without_saved_pipeline(subscribe) -> None:
    with CamServerStandIn(rate_hz=RATE_HZ, saved_pipelines=("simulation_sp",)) as server:
        client = CamServerClient(server.url)
        choice = client.stream_for("simulation2")
        assert choice.how == "processing instance" and choice.instance_id == "simulation2_sov"
        assert server.instances() == ["simulation2_sov"]
        # cam_server refuses to create an id twice; the client then takes the running instance.
        assert client.stream_for("simulation2") == choice
        assert server.instances() == ["simulation2_sov"]
        info = client.instance_info("simulation2_sov")
        assert info["camera_name"] == "simulation2" and info["config"]["camera_name"] == "simulation2"
        message = receive(subscribe(choice.address))[0]
        assert list(message.channels) == list(PIPELINE_CHANNEL_NAMES)
        assert json.loads(message.value("processing_parameters"))["camera_name"] == "simulation2"


def test_dead_camera_is_refused_in_one_sentence(client: CamServerClient, standin: CamServerStandIn, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CamServerError) as error:
        client.stream_for("dead")
    assert str(error.value) == "cam_server refused camera 'dead': Camera dead is not online. Cannot start pipeline."
    assert error.value.kind == "refused"
    assert error.value.__cause__ is None and (error.value.__context__ is None or error.value.__suppress_context__)
    assert "dead_sov" not in standin.instances()
    assert not any(record.exc_info for record in caplog.records)


def test_unknown_camera_and_instance_are_refused(client: CamServerClient) -> None:
    with pytest.raises(CamServerError, match=r"^cam_server refused camera 'nosuch': Unable to load config 'nosuch'"):
        client.stream_for("nosuch")
    with pytest.raises(CamServerError, match=r"^cam_server refused instance 'nosuch': Instance 'nosuch' does not exist\.$"):
        client.instance_info("nosuch")


def test_names_reach_the_server_quoted(client: CamServerClient) -> None:
    name = "a b?c#d&e=ü%20"
    with pytest.raises(CamServerError) as error:
        client.stream_for(name)
    assert f"Unable to load config '{name}'" in str(error.value)
    with pytest.raises(CamServerError, match="Instance 'x y' does not exist"):
        client.instance_info("x y")


@pytest.mark.parametrize("name", ["", "a/b", "tab\there", "x" * 300, None, 7])
def test_invalid_names_are_rejected_before_any_request(name: Any) -> None:
    client = CamServerClient(f"http://{LOCALHOST}:{free_port()}")  # nothing listens: a request would say so
    with pytest.raises(CamServerError, match="is not a valid cam_server camera name") as error:
        client.stream_for(name)
    assert error.value.kind == "usage"
    with pytest.raises(CamServerError, match="is not a valid cam_server instance id name"):
        client.instance_info(name)


@pytest.mark.parametrize("url", ["", "localhost:8889", "ftp://host:8889", "http://", "http://host:99999",
                                 "http://host:port", "http://host:8889/?x=1", "http://ho st:8889", None, 8889])
def test_bad_base_url(url: Any) -> None:
    with pytest.raises(CamServerError, match="is not of the form http://host:port"):
        CamServerClient(url)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "3", True])
def test_bad_timeout(timeout: Any) -> None:
    with pytest.raises(CamServerError, match="timeout"):
        CamServerClient("http://host:8889", timeout_s=timeout)


def test_base_url_is_normalised() -> None:
    assert CamServerClient(" http://host:8889/ ").base_url == "http://host:8889"
    assert CamServerClient("https://host/camserver").base_url == "https://host/camserver"


def test_unreachable_server() -> None:
    port = free_port()
    client = CamServerClient(f"http://{LOCALHOST}:{port}", timeout_s=2.0)
    with pytest.raises(CamServerError) as error:
        client.cameras()
    assert str(error.value) == f"cam_server at http://{LOCALHOST}:{port} is unreachable: connection refused"
    assert error.value.kind == "unreachable"


def test_unknown_host(monkeypatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(CamServerError, match=r"^cam_server at http://camserver\.invalid:8889 is unreachable: "
                                             r"host name not found$"):
        CamServerClient("http://camserver.invalid:8889").pipelines()


def test_stand_in_stops_cleanly_and_frees_its_ports(zctx: zmq.Context) -> None:
    with CamServerStandIn(rate_hz=RATE_HZ) as server:
        client = CamServerClient(server.url)
        address = client.stream_for("simulation").address
        url = server.url
        threads = server.threads()
        assert len(threads) == 2
    assert not [thread.name for thread in threads if thread.is_alive()]
    with pytest.raises(CamServerError, match="unreachable: connection refused"):
        CamServerClient(url).cameras()
    sock = zctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(address)  # the instance's port is free again
    finally:
        sock.close(0)


# ------------------------------------------------------------------------------ broken servers


class CannedServer:
    """An HTTP server on 127.0.0.1 whose reply to each path is a function of the request handler."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}  # "path" or "POST path"
        self.release = threading.Event()  # ends replies that stall on purpose
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                reply = routes.get(f"{self.command} {path}", routes.get(path))
                try:
                    if reply is None:
                        self.send_error(404)
                    else:
                        reply(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{LOCALHOST}:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


def reply(body: bytes | str, status: int = 200, content_type: str = "application/json",
          length: int | None = None) -> Callable[[BaseHTTPRequestHandler], None]:
    data = body.encode() if isinstance(body, str) else body

    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        handler.wfile.write(data)

    return send


CAMERAS = "/api/v1/pipeline/camera"
PIPELINES = "/api/v1/pipeline"


def test_error_reply_as_http_500_json(canned: CannedServer) -> None:
    canned.routes[CAMERAS] = reply(json.dumps({"state": "error", "status": "boom:\n  Traceback (most recent)\x07"}), 500)
    with pytest.raises(CamServerError) as error:
        CamServerClient(canned.url).cameras()
    assert str(error.value) == "cam_server refused the camera list: boom: Traceback (most recent)"


def test_error_reply_without_status(canned: CannedServer) -> None:
    canned.routes[CAMERAS] = reply('{"state": "error"}')
    with pytest.raises(CamServerError, match=r"^cam_server refused the camera list: no reason given \(HTTP 200\)$"):
        CamServerClient(canned.url).cameras()


def test_long_status_text_is_capped(canned: CannedServer) -> None:
    canned.routes[CAMERAS] = reply(json.dumps({"state": "error", "status": "x" * 10_000}))
    with pytest.raises(CamServerError) as error:
        CamServerClient(canned.url).cameras()
    assert len(str(error.value)) < 400 and str(error.value).endswith("…")


def test_http_error_page_is_not_quoted(canned: CannedServer) -> None:
    client = CamServerClient(canned.url)
    with pytest.raises(CamServerError) as error:
        client.cameras()  # no route: the server's HTML 404 page
    assert str(error.value) == f"cam_server at {canned.url} answered HTTP 404 Not Found to GET {CAMERAS}"


@pytest.mark.parametrize(("body", "detail"), [
    ("<html><body>Welcome</body></html>", "not a JSON object with a state"),
    ("[1, 2]", "not a JSON object with a state"),
    ('{"cameras": ["a"]}', "not a JSON object with a state"),
    ('{"state": "maybe", "cameras": ["a"]}', "not a JSON object with a state"),
    ("[" * 100_000, "not a JSON object with a state"),
    (b"\xff\xfe{}", "not a JSON object with a state"),
    ('{"state": "ok", "status": "x"}', "'cameras' is not a list of names"),
    ('{"state": "ok", "cameras": "simulation"}', "'cameras' is not a list of names"),
    ('{"state": "ok", "cameras": ["a", 1]}', "'cameras' is not a list of names"),
])
def test_wrong_shaped_replies(canned: CannedServer, body: str | bytes, detail: str) -> None:
    canned.routes[CAMERAS] = reply(body)
    with pytest.raises(CamServerError) as error:
        CamServerClient(canned.url).cameras()
    assert str(error.value) == f"cam_server at {canned.url} sent an unexpected reply for the camera list: {detail}"
    assert error.value.kind == "reply"


@pytest.mark.parametrize("address", [None, 11100, "", "http://host:11100", "tcp://*:11100", "tcp://host",
                                     "tcp://host:0", "tcp://host:65536", "tcp://host:11100/x", "tcp://ho st:1",
                                     "tcp://host:11100\n"])
def test_bad_stream_address(canned: CannedServer, address: Any) -> None:
    canned.routes[PIPELINES] = reply('{"state": "ok", "pipelines": ["cam_sp"]}')
    canned.routes["/api/v1/pipeline/instance/cam_sp"] = reply(json.dumps({"state": "ok", "stream": address}))
    with pytest.raises(CamServerError, match=r"sent an unexpected reply for camera 'cam': stream address .* is not "
                                             r"tcp://host:port$"):
        CamServerClient(canned.url).stream_for("cam")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:11100", "tcp://sf-daqsync-01.psi.ch:65535", "tcp://[::1]:9999"])
def test_good_stream_address(canned: CannedServer, address: str) -> None:
    canned.routes[PIPELINES] = reply('{"state": "ok", "pipelines": ["cam_sp"]}')
    canned.routes["/api/v1/pipeline/instance/cam_sp"] = reply(json.dumps({"state": "ok", "stream": address}))
    assert CamServerClient(canned.url).stream_for("cam").address == address


def test_info_must_be_an_object(canned: CannedServer) -> None:
    canned.routes["/api/v1/pipeline/instance/x/info"] = reply('{"state": "ok", "info": "running"}')
    with pytest.raises(CamServerError, match=r"unexpected reply for instance 'x': no 'info' object$"):
        CamServerClient(canned.url).instance_info("x")


def test_post_refusal_is_reported_when_no_instance_exists(canned: CannedServer) -> None:
    canned.routes[PIPELINES] = reply('{"state": "ok", "pipelines": ["other_sp"]}')
    canned.routes["POST " + PIPELINES] = reply('{"state": "error", "status": "Camera cam is not online."}')
    # GET /api/v1/pipeline/instance/cam_sov has no route here: HTTP 404, and the POST's refusal is what counts.
    with pytest.raises(CamServerError) as error:
        CamServerClient(canned.url).stream_for("cam")
    assert str(error.value) == "cam_server refused camera 'cam': Camera cam is not online."


def test_post_reply_without_stream(canned: CannedServer) -> None:
    canned.routes[PIPELINES] = reply('{"state": "ok", "pipelines": []}')
    canned.routes["POST " + PIPELINES] = reply('{"state": "ok", "instance_id": "cam_sov"}')
    with pytest.raises(CamServerError, match=r"unexpected reply for camera 'cam': stream address None is not"):
        CamServerClient(canned.url).stream_for("cam")


def test_declared_huge_reply_is_not_read(canned: CannedServer) -> None:
    canned.routes[CAMERAS] = reply(b"{}", length=MAX_REPLY_BYTES + 1)
    with pytest.raises(CamServerError, match=r"sent a reply larger than 4 MiB$"):
        CamServerClient(canned.url).cameras()


def test_undeclared_huge_reply_is_cut_off(canned: CannedServer) -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # no Content-Length: the body ends when the connection closes
        chunk = b" " * 65536
        for _ in range(2 * MAX_REPLY_BYTES // len(chunk)):
            handler.wfile.write(chunk)

    canned.routes[CAMERAS] = endless
    with pytest.raises(CamServerError, match=r"sent a reply larger than 4 MiB$"):
        CamServerClient(canned.url).cameras()


def test_silent_server_times_out(canned: CannedServer) -> None:
    canned.routes[CAMERAS] = lambda handler: canned.release.wait(10)
    client = CamServerClient(canned.url, timeout_s=0.2)
    start = time.monotonic()
    with pytest.raises(CamServerError) as error:
        client.cameras()
    assert time.monotonic() - start < 2.0
    assert str(error.value) == f"cam_server at {canned.url} is unreachable: no answer within 0.2 s"
    assert error.value.kind == "unreachable"


def test_unanswered_post_is_not_followed_by_a_get(canned: CannedServer) -> None:
    calls: list[str] = []
    canned.routes[PIPELINES] = reply('{"state": "ok", "pipelines": []}')
    canned.routes["POST " + PIPELINES] = lambda handler: canned.release.wait(10)
    canned.routes["/api/v1/pipeline/instance/cam_sov"] = lambda handler: calls.append(handler.path)
    with pytest.raises(CamServerError, match=r"is unreachable: no answer within 0\.2 s$"):
        CamServerClient(canned.url, timeout_s=0.2).stream_for("cam")
    assert calls == []


def test_dripping_reply_is_bounded_by_the_timeout(canned: CannedServer) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):  # one byte per 20 ms: each read is quick, the whole reply is not
            handler.wfile.write(b" ")
            handler.wfile.flush()
            if canned.release.wait(0.02):
                return

    canned.routes[CAMERAS] = drip
    start = time.monotonic()
    with pytest.raises(CamServerError, match=r"is too slow: its reply took longer than 0\.3 s$"):
        CamServerClient(canned.url, timeout_s=0.3).cameras()
    assert time.monotonic() - start < 3.0


def raw_server(answer: bytes) -> tuple[socket.socket, threading.Thread]:
    """A TCP server that answers one connection with `answer` and closes it."""
    listener = socket.create_server((LOCALHOST, 0))

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)
                conn.sendall(answer)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(("answer", "reason"), [
    (b"", "it closed the connection without answering"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "its reply is not HTTP"),
])
def test_not_an_http_server(answer: bytes, reason: str) -> None:
    listener, thread = raw_server(answer)
    url = f"http://{LOCALHOST}:{listener.getsockname()[1]}"
    try:
        with pytest.raises(CamServerError) as error:
            CamServerClient(url, timeout_s=2.0).cameras()
    finally:
        thread.join(10)
        listener.close()
    assert str(error.value) == f"cam_server at {url} is unreachable: {reason}"


# ------------------------------------------------------------------------------ the stand-in's streams


def test_simulation_stream_has_the_28_pipeline_channels(client: CamServerClient, standin: CamServerStandIn,
                                                       subscribe) -> None:
    sock = subscribe(client.stream_for("simulation").address)
    messages = receive(sock, 3)
    camera = standin.cameras["simulation"]
    layout = expected_layout(camera.width, camera.height)
    for message in messages:
        assert list(message.channels) == list(PIPELINE_CHANNEL_NAMES) == list(layout)
        for name, channel in message.channels.items():
            assert (channel.spec.type, channel.spec.shape) == layout[name], name
            assert channel.spec.compression == "none" and channel.timestamp == pytest.approx(message.global_timestamp)
    assert [m.pulse_id for m in messages] == sorted({m.pulse_id for m in messages})  # increasing
    message = messages[-1]
    # Exactly what the pure builder makes of the frame that was sent.
    rebuilt = pipeline_channels(message.value("image"), message.value("x_axis"), message.value("y_axis"),
                                message.value("processing_parameters"), float(message.value("timestamp")))
    for name, value, type_name in rebuilt:
        assert message.channels[name].spec.type == type_name, name
        np.testing.assert_array_equal(message.value(name), value, err_msg=name)
    parameters = json.loads(message.value("processing_parameters"))
    assert parameters["camera_name"] == "simulation" and parameters["name"] == "simulation_sp"
    assert "processing_error" not in parameters


def test_simulation_axes_are_calibrated_and_descending(client: CamServerClient, standin: CamServerStandIn,
                                                       subscribe) -> None:
    message = receive(subscribe(client.stream_for("simulation").address))[0]
    x_axis, y_axis = message.value("x_axis"), message.value("y_axis")
    assert np.all(np.diff(x_axis) < 0) and np.all(np.diff(y_axis) < 0)
    assert np.diff(x_axis) == pytest.approx(-35.2113, rel=1e-4)  # µm per pixel, as the real simulation
    assert np.diff(y_axis) == pytest.approx(-48.3871, rel=1e-4)
    assert x_axis[0] > 0 > x_axis[-1] and y_axis[0] > 0 > y_axis[-1]
    assert message.value("width") == x_axis.size and message.value("height") == y_axis.size


def test_simulation_fits_match_the_spot(client: CamServerClient, standin: CamServerStandIn, subscribe) -> None:
    message = receive(subscribe(client.stream_for("simulation").address))[0]
    spot = standin.spot("simulation")
    image = message.value("image")
    pixel_x, pixel_y = 35.2113, 48.3871
    assert spot.x < 0 < spot.y  # right of and above the origin: the signs of the descending axes matter
    assert message.value("x_fit_mean") == pytest.approx(spot.x, abs=0.2 * pixel_x)
    assert message.value("y_fit_mean") == pytest.approx(spot.y, abs=0.2 * pixel_y)
    assert message.value("x_fit_standard_deviation") == pytest.approx(spot.sigma_x, rel=0.05)
    assert message.value("y_fit_standard_deviation") == pytest.approx(spot.sigma_y, rel=0.05)
    assert message.value("x_center_of_mass") == pytest.approx(spot.x, abs=0.5 * pixel_x)
    assert message.value("x_rms") == pytest.approx(spot.sigma_x, rel=0.1)
    assert message.value("x_fwhm") == pytest.approx(2.3548 * spot.sigma_x, rel=0.1)
    assert message.value("y_fwhm") == pytest.approx(2.3548 * spot.sigma_y, rel=0.15)
    assert message.value("x_fit_amplitude") == pytest.approx(spot.amplitude * spot.sigma_y_px * np.sqrt(2 * np.pi),
                                                             rel=0.05)
    row, column = np.unravel_index(np.argmax(image), image.shape)
    assert abs(column - spot.x_px) <= 2 and abs(row - spot.y_px) <= 2
    np.testing.assert_array_equal(message.value("x_profile"), image.sum(axis=0, dtype=np.int64))
    np.testing.assert_array_equal(message.value("y_profile"), image.sum(axis=1, dtype=np.int64))
    assert message.value("intensity") == image.sum(dtype=np.int64)
    assert (message.value("min_value"), message.value("max_value")) == (image.min(), image.max())
    assert 0 < image.min() < 2500 < 15000 < image.max()  # a spot on a noisy pedestal
    fit = message.value("x_fit_gauss_function")
    assert int(np.argmax(fit)) == pytest.approx(spot.x_px, abs=1)


def test_simulation2_has_pixel_axes(client: CamServerClient, standin: CamServerStandIn, subscribe) -> None:
    message = receive(subscribe(client.stream_for("simulation2").address))[0]
    camera = standin.cameras["simulation2"]
    assert list(message.channels) == list(PIPELINE_CHANNEL_NAMES)
    np.testing.assert_array_equal(message.value("x_axis"), np.arange(camera.width, dtype=np.float32))
    np.testing.assert_array_equal(message.value("y_axis"), np.arange(camera.height, dtype=np.float32))
    assert message.value("image").shape == (camera.height, camera.width)
    spot = standin.spot("simulation2")
    assert message.value("x_fit_mean") == pytest.approx(spot.x_px, abs=0.2)
    assert message.value("y_fit_mean") == pytest.approx(spot.y_px, abs=0.2)


def test_pulse_ids_start_where_asked(subscribe) -> None:
    first = 15_000_000_000  # SwissFEL's range: must survive the whole way as an exact integer
    with CamServerStandIn(rate_hz=RATE_HZ, first_pulse_id=first) as server:
        messages = receive(subscribe(CamServerClient(server.url).stream_for("simulation").address), 2)
    assert first <= messages[0].pulse_id < messages[1].pulse_id < first + 10 * RATE_HZ


def test_broken_pipeline_reports_a_processing_error(client: CamServerClient, subscribe) -> None:
    choice = client.stream_for("broken")
    assert choice.how == "saved pipeline"
    message = receive(subscribe(choice.address))[0]
    assert list(message.channels) == list(ERROR_CHANNEL_NAMES)
    assert message.channels["image"].spec.type == "uint16" and not message.value("image").any()
    parameters = json.loads(message.value("processing_parameters"))
    assert parameters["processing_error"] == "Invalid background image file: broken_background"


def test_subscribers_are_counted_and_idle_instances_stop(subscribe) -> None:
    with CamServerStandIn(rate_hz=RATE_HZ, no_client_timeout_s=0.3) as server:
        client = CamServerClient(server.url)
        first = client.stream_for("simulation2")
        sock = subscribe(first.address)
        wait_until(lambda: server.subscribers("simulation2_sp") == 1, message="one subscriber")
        second = subscribe(first.address)
        wait_until(lambda: server.subscribers("simulation2_sp") == 2, message="two subscribers")
        assert client.instance_info("simulation2_sp")["statistics"]["clients"] == 2
        receive(sock)
        second.close(0)
        wait_until(lambda: server.subscribers("simulation2_sp") == 1, message="second subscriber left")
        receive(sock)  # the instance outlives a departing viewer while another one watches
        sock.close(0)
        wait_until(lambda: server.subscribers("simulation2_sp") == 0, message="last subscriber left")
        wait_until(lambda: "simulation2_sp" not in server.instances(), message="idle instance stopped")
        with pytest.raises(CamServerError, match="does not exist"):
            client.instance_info("simulation2_sp")
        again = client.stream_for("simulation2")  # starts it afresh, like cam_server
        assert again.instance_id == "simulation2_sp" and server.instances() == ["simulation2_sp"]
        # Started without a viewer, it stops by itself too.
        wait_until(lambda: not server.instances(), message="unwatched instance stopped")


# ------------------------------------------------------------------------------ pipeline_channels


def gaussian_image(width: int = 100, height: int = 80, dtype: Any = np.uint16) -> np.ndarray:
    x, y = np.arange(width), np.arange(height)
    spot = np.outer(np.exp(-((y - 30.0) ** 2) / (2 * 3.0**2)), np.exp(-((x - 60.0) ** 2) / (2 * 5.0**2)))
    return (100 + 10000 * spot).astype(dtype)


def test_pipeline_channels_fit_a_noiseless_spot_exactly() -> None:
    image = gaussian_image(dtype=np.float64)
    x_axis = ((np.arange(100) - 50) * -10.0).astype(np.float32)  # 10 µm per pixel, descending
    y_axis = np.arange(80, dtype=np.float32)
    values = {name: (value, kind) for name, value, kind in pipeline_channels(image, x_axis, y_axis, {"a": 1}, 5.0)}
    assert list(values) == list(PIPELINE_CHANNEL_NAMES)
    assert values["x_fit_mean"][0] == pytest.approx(-100.0, abs=1e-6)  # pixel 60 -> (60 - 50) * -10 µm
    assert values["x_fit_standard_deviation"][0] == pytest.approx(50.0, rel=1e-5)
    assert values["y_fit_mean"][0] == pytest.approx(30.0, abs=1e-6)
    assert values["y_fit_standard_deviation"][0] == pytest.approx(3.0, rel=1e-5)
    assert values["x_fit_offset"][0] == pytest.approx(100 * 80, rel=1e-4)  # the median: tails of the spot add a bit
    assert values["x_center_of_mass"][0] == pytest.approx(-100.0, abs=1e-3)
    assert values["x_fwhm"][0] == pytest.approx(2.3548 * 50.0, rel=0.01)
    np.testing.assert_allclose(values["x_fit_gauss_function"][0], image.sum(axis=0), rtol=1e-4)
    assert values["x_profile"][1] == "float64" and values["image"][1] == "float64"  # float image, float profiles
    assert values["processing_parameters"] == ('{"a": 1}', "string")
    assert values["timestamp"] == (5.0, "float64")


def test_pipeline_channels_types_for_a_uint16_image() -> None:
    image = gaussian_image()
    channels = pipeline_channels(image, np.arange(100), np.arange(80), "{}", 1.0)
    layout = expected_layout(100, 80)
    assert [(name, kind, np.shape(value)) for name, value, kind in channels] == [
        (name, kind, shape) for name, (kind, shape) in layout.items()]


def test_pipeline_channels_error_layout_and_flat_image() -> None:
    image = gaussian_image()
    channels = pipeline_channels(image, np.arange(100), np.arange(80), {"processing_error": "bad"}, 1.0)
    assert [name for name, _, _ in channels] == list(ERROR_CHANNEL_NAMES)
    assert not dict((n, v) for n, v, _ in channels)["image"].any() and image.any()
    flat = {n: v for n, v, _ in pipeline_channels(np.full((8, 10), 7, np.uint16), np.arange(10), np.arange(8), "{}", 1.0)}
    assert np.isnan(flat["x_fit_mean"]) and flat["x_fit_offset"] == 56.0  # no spot: no fit, but no failure
    with pytest.raises(ValueError, match="do not fit"):
        pipeline_channels(image, np.arange(80), np.arange(100), "{}", 1.0)
