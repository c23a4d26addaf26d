"""The camera registry: fixed cameras, cam_server cameras started on demand in the background (through the
stand-in's saved pipelines), errors in one sentence, the camera limit, grace-period disconnects seen as
the stand-in's subscriber count dropping to 0, reconnecting when a silent camera's instance moved, and
the cam_server camera list refreshed (camserver_error while unreachable).

Module constants (maintenance period, watch window, retry and refresh intervals) are made small, so
every wait is short; each wait has a deadline.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import zmq

pytest.importorskip("bsread")  # the stand-in's instances are psi-bsread Senders
pytest.importorskip("flask")

import stream.camera as camera_module  # noqa: E402
import stream.cameras as cameras_module  # noqa: E402
from stream.camera import Camera, CameraSpec, Limits  # noqa: E402
from stream.cameras import CameraRegistry, CameraUnavailable  # noqa: E402
from stream.camserver import CamServerClient  # noqa: E402
from stream.rois import Roi  # noqa: E402
from stream.simulator import SimulatorConfig  # noqa: E402
from tests.camserver_standin import CamServerStandIn  # noqa: E402
from tests.helpers import LOCALHOST, free_port, wait_until  # noqa: E402

RATE_HZ = 20.0
CAMSERVER_CAMERAS = ["simulation", "simulation2", "broken", "dead"]
DEAD = "cam_server refused camera 'dead': Camera dead is not online. Cannot start pipeline."


@pytest.fixture(autouse=True)
def fast_maintenance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cameras_module, "MAINTENANCE_S", 0.05)


@pytest.fixture(scope="module")
def standin() -> Iterator[CamServerStandIn]:
    """Shared by the tests that neither stop instances nor count subscribers."""
    with CamServerStandIn(rate_hz=RATE_HZ) as server:
        yield server


@pytest.fixture
def fresh_standin() -> Iterator[CamServerStandIn]:
    with CamServerStandIn(rate_hz=RATE_HZ) as server:
        yield server


class ObservedClient:
    """A CamServerClient whose calls are counted; its camera list can be replaced or made to fail, and
    `stream_for` can be held at a gate (a slow cam_server)."""

    def __init__(self, client: CamServerClient) -> None:
        self.client = client
        self.calls: collections.Counter[str] = collections.Counter()
        self.names: list[str] | None = None
        self.failure: Exception | None = None
        self.gate: threading.Event | None = None

    def cameras(self) -> list[str]:
        self.calls["cameras"] += 1
        if self.failure is not None:
            raise self.failure
        return self.client.cameras() if self.names is None else list(self.names)

    def stream_for(self, camera: str) -> Any:
        self.calls[camera] += 1
        if self.gate is not None:
            assert self.gate.wait(30), "gate never opened"
        return self.client.stream_for(camera)


@pytest.fixture
def make_registry(zctx: zmq.Context) -> Iterator[Callable[..., CameraRegistry]]:
    registries: list[CameraRegistry] = []

    def make(fixed: list[CameraSpec] | None = None, camserver: Any = None, **kwargs: Any) -> CameraRegistry:
        kwargs.setdefault("limits", Limits(history=1000, frames=4))
        registry = CameraRegistry(fixed or [], camserver, context=zctx, **kwargs)
        registries.append(registry)
        return registry.start()

    yield make
    for registry in registries:
        cameras = [entry.camera for entry in registry._entries.values()]
        registry.stop()
        assert registry._thread is None or not registry._thread.is_alive(), "maintenance thread did not stop"
        for camera in cameras:
            assert not camera.running, f"camera {camera.name} still running"


def simulated(name: str = "simulated", **config: Any) -> CameraSpec:
    settings = dict(port=0, host=LOCALHOST, delay_s=0.02, width=32, height=24, seed=1)
    settings.update(config)
    return CameraSpec(name, simulator=SimulatorConfig(**settings), source="built-in simulated camera")


def state(registry: CameraRegistry, name: str) -> dict[str, Any]:
    return next(row for row in registry.listing() if row["name"] == name)


def receiving(camera: Camera) -> bool:
    return camera.running and camera.buffer.count > 0


# ----------------------------------------------------------------------------------------- fixed


def test_fixed_cameras_are_connected_from_the_start(make_registry, make_socket) -> None:
    sender = make_socket(zmq.PUSH)
    address = f"tcp://{LOCALHOST}:{sender.bind_to_random_port(f'tcp://{LOCALHOST}')}"
    registry = make_registry([simulated("sim"), CameraSpec("line", address=address, source=address)])
    assert registry.camera_names() == ["sim", "line"] and registry.default == "sim"
    assert registry.known("line") and not registry.known("other")
    sim, line = registry.get("sim"), registry.get("line")
    assert sim.running and line.running and registry.get(None) is sim
    wait_until(lambda: receiving(sim), message="simulated pulses")
    assert registry.watch(None) is sim and registry.watch("line") is line
    listing = registry.listing()
    assert [row["name"] for row in listing] == ["sim", "line"]
    assert state(registry, "sim") == {"name": "sim", "watched": True, "state": "live", "error": "",
                                      "source": "built-in simulated camera"}
    assert state(registry, "line") == {"name": "line", "watched": True, "state": "waiting", "error": "",
                                       "source": address}
    assert sorted(map(id, registry.caught_up_events())) == sorted([id(sim.caught_up), id(line.caught_up)])
    with pytest.raises(CameraUnavailable, match=r"^there is no camera 'nope'$"):
        registry.watch("nope")
    assert registry.get("nope") is None


def test_fixed_cameras_stay_connected_while_nobody_watches(make_registry, monkeypatch) -> None:
    monkeypatch.setattr(camera_module, "WATCH_S", 0.3)
    registry = make_registry([simulated("sim")], grace_s=0.1)
    sim = registry.get("sim")
    wait_until(lambda: (sim.touch(), len(sim.frames.recent()) == 4)[1], message="4 recent frames while watched")
    wait_until(lambda: not sim.watched and len(sim.frames.recent()) == 1, message="only the newest when not")
    before = sim.buffer.count
    wait_until(lambda: sim.buffer.count > before + 10, message="still receiving well past the grace period")
    assert registry.get("sim") is sim and sim.running and state(registry, "sim")["watched"] is False


def test_a_fixed_camera_that_cannot_start_stops_the_program(zctx) -> None:
    registry = CameraRegistry([CameraSpec("bad", address="tcp://no-such-host.invalid:x")], context=zctx)
    with pytest.raises(zmq.ZMQError):
        registry.start()
    registry.stop()


def test_names_must_be_unique_and_no_camera_at_all() -> None:
    with pytest.raises(ValueError, match="unique"):
        CameraRegistry([CameraSpec("a", address="tcp://127.0.0.1:1"), CameraSpec("a", address="tcp://127.0.0.1:2")])
    registry = CameraRegistry([])
    assert registry.camera_names() == [] and registry.default is None and registry.get(None) is None
    with pytest.raises(CameraUnavailable, match="^no camera is configured$"):
        registry.watch(None)
    assert registry.listing() == []


# -------------------------------------------------------------------------------------- cam_server


def test_a_cam_server_camera_starts_on_demand_through_its_saved_pipeline(make_registry, standin) -> None:
    registry = make_registry(camserver=CamServerClient(standin.url))
    assert registry.camera_names() == CAMSERVER_CAMERAS and registry.default == "simulation"
    assert registry.camserver_error == ""
    assert registry.get("simulation") is None
    assert state(registry, "simulation") == {"name": "simulation", "watched": False, "state": "disconnected",
                                             "error": "", "source": "cam_server"}
    camera = registry.watch("simulation")
    assert registry.get("simulation") is camera and camera.spec.source == "cam_server" and not camera.spec.pinned
    wait_until(lambda: receiving(camera), message="pipeline messages")
    assert camera.address == standin.stream_address("simulation_sp")
    wait_until(lambda: state(registry, "simulation")["state"] == "live")
    assert state(registry, "simulation")["watched"] is True and state(registry, "simulation")["error"] == ""
    assert camera.layout.is_pipeline and camera.axes[0].calibrated
    assert registry.watch("simulation") is camera  # the same connection for every browser


def test_watch_returns_at_once_while_a_slow_cam_server_starts_the_camera(make_registry, standin) -> None:
    client = ObservedClient(CamServerClient(standin.url))
    client.gate = threading.Event()
    registry = make_registry(camserver=client)
    started = time.monotonic()
    camera = registry.watch("simulation2")
    assert time.monotonic() - started < 1.0 and not camera.running
    assert state(registry, "simulation2")["state"] == "connecting" and camera.state_note == "connecting"
    assert registry.watch("simulation2") is camera
    client.gate.set()
    wait_until(lambda: receiving(camera), message="started once cam_server answered")
    assert client.calls["simulation2"] == 1  # one start, however often it was asked for meanwhile
    assert camera.state_note == "" and not camera.axes[0].calibrated  # simulation2: pixel axes


def test_a_camera_that_cannot_start_is_an_error_in_one_sentence_and_retried_later(make_registry, standin,
                                                                                  monkeypatch) -> None:
    monkeypatch.setattr(cameras_module, "RETRY_S", 0.3)
    client = ObservedClient(CamServerClient(standin.url))
    registry = make_registry(camserver=client)
    camera = registry.watch("dead")
    wait_until(lambda: state(registry, "dead")["state"] == "error", message="error state")
    assert state(registry, "dead")["error"] == DEAD and camera.state_note == DEAD
    assert registry.watch("dead") is camera and client.calls["dead"] == 1  # not retried at once
    wait_until(lambda: registry.watch("dead") is camera and client.calls["dead"] == 2, message="retried")
    wait_until(lambda: state(registry, "dead")["error"] == DEAD and not camera.running)


def test_processing_error_camera_connects_and_its_frames_carry_the_error(make_registry, standin) -> None:
    registry = make_registry(camserver=CamServerClient(standin.url))
    camera = registry.watch("broken")
    wait_until(lambda: camera.frames.latest() is not None, message="a frame")
    frame = camera.frames.latest()
    assert frame.processing_error == "Invalid background image file: broken_background"
    assert np.isnan(camera.buffer.read().column("beam_intensity")).all()
    assert state(registry, "broken")["error"] == ""


def test_unknown_cameras_and_too_many(make_registry, standin) -> None:
    registry = make_registry([simulated("sim")], camserver=CamServerClient(standin.url), max_cameras=2)
    assert registry.camera_names() == ["sim", *CAMSERVER_CAMERAS]
    assert state(registry, "sim")["source"] == "built-in simulated camera"
    with pytest.raises(CameraUnavailable, match=r"^there is no camera 'nosuch'$"):
        registry.watch("nosuch")
    registry.watch("simulation2")
    with pytest.raises(CameraUnavailable) as error:
        registry.watch("simulation")
    assert str(error.value) == ("at most 2 cameras can be watched at once; one is released 60 s after nobody "
                                "watches it")
    assert registry.get("simulation") is None


def test_an_unreachable_cam_server(make_registry) -> None:
    url = f"http://{LOCALHOST}:{free_port()}"
    unreachable = f"cam_server at {url} is unreachable: connection refused"
    registry = make_registry(camserver=CamServerClient(url, timeout_s=2.0))
    assert registry.camserver_error == unreachable
    assert registry.camera_names() == [] and registry.default is None
    with pytest.raises(CameraUnavailable) as error:
        registry.watch(None)
    assert str(error.value) == unreachable
    with pytest.raises(CameraUnavailable) as error:
        registry.watch("simulation")
    assert str(error.value) == f"camera 'simulation' is not known: {unreachable}"


def test_fixed_cameras_work_beside_an_unreachable_cam_server(make_registry) -> None:
    url = f"http://{LOCALHOST}:{free_port()}"
    registry = make_registry([simulated("sim")], camserver=CamServerClient(url, timeout_s=2.0))
    assert registry.camserver_error.startswith(f"cam_server at {url} is unreachable")
    assert registry.camera_names() == ["sim"] and registry.watch(None) is registry.get("sim")
    wait_until(lambda: receiving(registry.get("sim")))


def test_the_camera_list_is_refreshed(make_registry, standin, monkeypatch) -> None:
    monkeypatch.setattr(cameras_module, "CAMSERVER_REFRESH_S", 0.1)
    client = ObservedClient(CamServerClient(standin.url))
    client.names = ["simulation"]
    registry = make_registry(camserver=client)
    assert registry.camera_names() == ["simulation"]
    client.names = ["simulation", "simulation2"]
    wait_until(lambda: registry.camera_names() == ["simulation", "simulation2"], message="new camera listed")
    client.failure = RuntimeError("cam_server at http://x is unreachable: connection refused\nsecond line")
    wait_until(lambda: registry.camserver_error == "cam_server at http://x is unreachable: connection refused",
               message="camserver_error")
    assert registry.camera_names() == ["simulation", "simulation2"]  # the last list is kept meanwhile
    client.failure = None
    wait_until(lambda: registry.camserver_error == "", message="error cleared")
    calls = client.calls["cameras"]
    assert calls >= 4
    wait_until(lambda: client.calls["cameras"] > calls, message="refreshed periodically")


# ------------------------------------------------------------------------------ grace and reconnect


def test_nobody_watching_for_the_grace_period_disconnects(make_registry, fresh_standin, monkeypatch) -> None:
    monkeypatch.setattr(camera_module, "WATCH_S", 0.1)
    registry = make_registry(camserver=CamServerClient(fresh_standin.url), grace_s=0.4)
    camera = registry.watch("simulation")
    camera.rois.replace((Roi("spot", 0, 10, 0, 10),))
    wait_until(lambda: receiving(camera) and fresh_standin.subscribers("simulation_sp") == 1, message="subscribed")
    # Watched (a browser asks every 50 ms): it stays, for several grace periods.
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert registry.watch("simulation") is camera and camera.running
        time.sleep(0.05)  # a browser's request period, not a synchronisation
    assert fresh_standin.subscribers("simulation_sp") == 1
    # Nobody asks any more: disconnected after the grace period.
    wait_until(lambda: fresh_standin.subscribers("simulation_sp") == 0, message="subscriber gone")
    wait_until(lambda: registry.get("simulation") is None and not camera.running, message="disconnected")
    assert state(registry, "simulation")["state"] == "disconnected"
    assert registry.caught_up_events() == []
    # Watched again: a new connection, with the regions of interest kept for the camera name.
    again = registry.watch("simulation")
    assert again is not camera and again.rois is camera.rois and again.background is camera.background
    wait_until(lambda: receiving(again) and fresh_standin.subscribers("simulation_sp") == 1, message="again")
    assert "roi_spot_sum" in again.buffer.computed


def test_a_silent_camera_whose_instance_moved_is_reconnected(make_registry, fresh_standin, monkeypatch) -> None:
    monkeypatch.setattr(cameras_module, "RESOLVE_STALLED_S", 0.5)
    registry = make_registry(camserver=CamServerClient(fresh_standin.url))
    camera = registry.watch("simulation")
    wait_until(lambda: receiving(camera), message="first connection")
    old_address = camera.address
    assert fresh_standin.stop_instance("simulation_sp")  # cam_server restarted it, say

    def moved() -> bool:
        registry.watch("simulation")  # a browser keeps asking
        current = registry.get("simulation")
        return current is not None and current is not camera and receiving(current)

    wait_until(moved, timeout=20, message="reconnected to the new instance")
    replacement = registry.get("simulation")
    assert replacement.address == fresh_standin.stream_address("simulation_sp") != old_address
    assert replacement.rois is camera.rois
    # the new connection continues the camera's history and frames (a browser's cursor stays valid)
    assert replacement.buffer is camera.buffer and replacement.frames is camera.frames
    wait_until(lambda: not camera.running, message="the old connection closed")
    wait_until(lambda: state(registry, "simulation")["state"] == "live", message="live on the new instance")


def test_a_silent_camera_that_did_not_move_stays(make_registry, make_socket, monkeypatch) -> None:
    """Looked up again while silent (once per RESOLVE_STALLED_S, not every maintenance round: cam_server
    is a shared service), the same address: the connection is kept."""
    stalled_s = 0.3
    monkeypatch.setattr(cameras_module, "RESOLVE_STALLED_S", stalled_s)
    publisher = make_socket(zmq.PUB)
    address = f"tcp://{LOCALHOST}:{publisher.bind_to_random_port(f'tcp://{LOCALHOST}')}"
    lookups: list[float] = []

    class SameAddress:
        def cameras(self) -> list[str]:
            return ["quiet"]

        def stream_for(self, name: str) -> Any:
            lookups.append(time.monotonic())
            return type("Choice", (), {"address": address, "how": "saved pipeline", "instance_id": "quiet_sp"})

    registry = make_registry(camserver=SameAddress())
    camera = registry.watch("quiet")
    wait_until(lambda: len(lookups) >= 4, message="looked up again while silent")
    assert registry.get("quiet") is camera and camera.running
    intervals = np.diff(lookups[1:])  # the first one is the start
    assert (intervals >= stalled_s * 0.9).all(), intervals


def test_stop_while_a_camera_is_still_being_started_leaves_nothing_running(make_registry, standin,
                                                                          monkeypatch) -> None:
    gate, entered = threading.Event(), threading.Event()
    start = Camera.start

    def slow_start(self: Camera) -> Camera:  # the background thread, not yet at the camera's lock
        entered.set()
        assert gate.wait(30)
        return start(self)

    monkeypatch.setattr(Camera, "start", slow_start)
    registry = make_registry(camserver=CamServerClient(standin.url))
    camera = registry.watch("simulation2")
    assert entered.wait(10)
    registry.stop()
    gate.set()
    wait_until(lambda: camera.state_note != "connecting", message="the background start ended")
    assert not camera.running and camera.health() is None


def test_stop_ends_every_camera_and_the_maintenance(make_registry, standin) -> None:
    registry = make_registry([simulated("sim")], camserver=CamServerClient(standin.url))
    cameras = [registry.get("sim"), registry.watch("simulation2")]
    wait_until(lambda: all(receiving(camera) for camera in cameras))
    started = time.monotonic()
    registry.stop()
    assert time.monotonic() - started < 5
    assert not any(camera.running for camera in cameras) and not registry._thread.is_alive()
