"""One camera end to end over real ZeroMQ on 127.0.0.1: a fixed address, the built-in simulator, an
address resolved at start (cam_server); history, frames, health, bad values counted, watching, stop."""

from __future__ import annotations

import math
import struct
import time
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import zmq

import stream.camera as camera_module
from stream.background import Background
from stream.camera import Camera, CameraSpec, Limits
from stream.encoder import Encoder
from stream.layout import ChannelNames, pixel_axis
from stream.rois import Roi, RoiSet
from stream.simulator import SimulatorConfig
from stream.statistics import STATS_COLUMNS
from tests.hand_built import hand_message, stamp_bytes
from tests.helpers import LOCALHOST, send_multipart, wait_until

T0 = 1_700_000_000.0


@pytest.fixture
def make_camera(zctx: zmq.Context) -> Iterator[Callable[..., Camera]]:
    cameras: list[Camera] = []

    def make(spec: CameraSpec, **kwargs: Any) -> Camera:
        kwargs.setdefault("limits", Limits(history=500, frames=5))
        camera = Camera(spec, context=zctx, **kwargs)
        cameras.append(camera)
        return camera

    yield make
    for camera in cameras:
        camera.stop()
    for camera in cameras:
        assert not camera.running, f"camera {camera.name} did not stop"


def push_sender(make_socket: Callable[[int], zmq.Socket]) -> tuple[zmq.Socket, str]:
    sock = make_socket(zmq.PUSH)
    port = sock.bind_to_random_port(f"tcp://{LOCALHOST}")
    return sock, f"tcp://{LOCALHOST}:{port}"


def test_a_camera_before_it_starts(make_camera) -> None:
    camera = make_camera(CameraSpec("cam", address="tcp://127.0.0.1:1", source="the command line"))
    assert camera.health() is None and not camera.running and not camera.simulated
    assert camera.caught_up.is_set()
    assert camera.address == "tcp://127.0.0.1:1" and camera.label == "tcp://127.0.0.1:1"
    assert camera.layout is None and camera.axes == (pixel_axis(), pixel_axis())
    assert camera.nonfinite_values == 0 and camera.state_note == ""
    assert camera.buffer.count == 0 and camera.frames.latest() is None
    assert camera.buffer.computed == STATS_COLUMNS and camera.buffer.capacity == 500
    assert camera.frames.max_frames == 5
    unnamed = make_camera(CameraSpec("cam2", source="cam_server"))
    assert unnamed.label == "cam_server" and unnamed.address == ""
    with pytest.raises(ValueError, match="no stream address"):
        unnamed.start()
    assert not unnamed.running


def test_a_fixed_address_camera_fills_history_and_frames(make_camera, make_socket) -> None:
    sender, address = push_sender(make_socket)
    camera = make_camera(CameraSpec("cam", address=address))
    assert camera.start() is camera
    assert camera.start() is camera and camera.running  # idempotent
    camera.touch()  # somebody watches: recent frames are kept
    encoder = Encoder()
    for pulse_id in range(1, 11):
        image = np.full((6, 8), pulse_id, np.uint16)
        send_multipart(sender, encoder.encode(pulse_id, T0 + pulse_id, {"image": image, "beam_energy": 5.0 + pulse_id,
                                                                        "charge": math.inf if pulse_id == 3 else 1.0}))
    wait_until(lambda: camera.buffer.count == 10, message="10 rows")
    health = camera.health()
    assert health.state == "live" and health.received == 10 and health.invalid == 0
    assert camera.caught_up is not camera_module._ALWAYS and camera.caught_up.is_set()  # the receiver's, idle
    history = camera.buffer.read()
    assert history.column("pulse_id").tolist() == list(range(1, 11))
    np.testing.assert_array_equal(history.column("timestamp"), [T0 + i for i in range(1, 11)])
    np.testing.assert_array_equal(history.column("beam_energy"), [5.0 + i for i in range(1, 11)])
    assert history.channels == ("beam_energy", "charge") and set(STATS_COLUMNS) <= set(history.computed)
    assert np.isnan(history.column("charge")[2]) and camera.nonfinite_values == 1
    frames = camera.frames.recent()
    assert [frame.pulse_id for frame in frames] == [6, 7, 8, 9, 10]
    assert [frame.seq for frame in frames] == [5, 6, 7, 8, 9]  # each frame knows its history row
    assert frames[-1].channels["beam_energy"] == 15.0
    assert set(frames[-1].computed) == set(history.computed)
    np.testing.assert_array_equal(frames[-1].image(), np.full((6, 8), 10, np.uint16))
    assert abs(frames[-1].received - time.time()) < 60
    assert camera.layout.image == "image" and camera.layout.energy == "beam_energy"
    camera.stop()
    assert not camera.running and camera.health().state == "stopped"


def test_a_backlog_the_receiver_cannot_follow_skips_beam_statistics_not_pulses(make_camera, make_socket) -> None:
    """One message, then 1000 back to back, each a ~0.5 ms measurement: they queue up, the receiver's
    estimate of its slack falls below the cost (stream/budget.py), and with a 1 % budget later
    pulses are not measured. None is lost, the measured ones are right (a known spot), and the
    readings show the newest measured pulse."""
    from components.status import status_document
    from stream.budget import StatisticsBudget

    sender, address = push_sender(make_socket)
    camera = make_camera(CameraSpec("cam", address=address), limits=Limits(history=2000, frames=5))
    camera.ingest.budget = StatisticsBudget(share=0.01, burst_s=0.0)
    camera.start()
    yy, xx = np.mgrid[0:120, 0:160]
    image = (200.0 + 5000.0 * np.exp(-0.5 * (((xx - 70.3) / 6.0) ** 2 + ((yy - 52.6) / 4.0) ** 2))).astype(np.uint16)
    encoder = Encoder()
    messages = [encoder.encode(pulse_id, T0 + pulse_id * 0.01, {"image": image, "beam_energy": 5.0})
                for pulse_id in range(1, 1002)]
    send_multipart(sender, messages[0])
    wait_until(lambda: camera.buffer.count == 1, message="the first row")
    for parts in messages[1:]:
        send_multipart(sender, parts)
    wait_until(lambda: camera.buffer.count == 1001, timeout=60, message="1001 rows")
    history = camera.buffer.read()
    assert history.column("pulse_id").tolist() == list(range(1, 1002))
    centroid = history.column("beam_centroid_x")
    skipped = camera.statistics_skipped
    assert 0 < skipped < 1000 and int(np.isnan(centroid).sum()) == skipped
    assert np.isfinite(centroid[0])  # waited for: measured (how soon the rest is skipped: tests/test_budget.py)
    np.testing.assert_allclose(centroid[np.isfinite(centroid)], 70.3, atol=0.5)
    np.testing.assert_allclose(history.column("beam_rms_y")[np.isfinite(centroid)], 4.0, rtol=0.05)
    newest = camera.newest_measured()
    assert len(newest) == 1 and newest.start == int(np.flatnonzero(np.isfinite(centroid))[-1])
    assert newest.column("beam_centroid_x")[0] == pytest.approx(70.3, abs=0.5)
    assert status_document(camera)["statistics_skipped"] == skipped
    assert camera.health().missed_pulses == 0


def test_bad_values_found_after_decoding_are_counted_by_the_receiver(make_camera, make_socket) -> None:
    sender, address = push_sender(make_socket)
    camera = make_camera(CameraSpec("cam", address=address)).start()
    channels = [{"name": "good"}, {"name": "bad", "compression": "lz4"}]
    send_multipart(sender, hand_message(channels, [struct.pack("<d", 1.0), stamp_bytes(),
                                                   struct.pack("<I", 8) + b"\xff" * 5, stamp_bytes()]))
    wait_until(lambda: camera.buffer.count == 1)
    wait_until(lambda: camera.health().invalid_by_reason == {"bad-compression": 1}, message="counted")
    assert camera.health().received == 1


def test_regions_and_background_given_to_the_camera_are_used(make_camera, make_socket, tmp_path) -> None:
    rois, background = RoiSet(), Background("cam", tmp_path)
    rois.replace((Roi("all", 0, 8, 0, 6),))
    background.grab(2)
    sender, address = push_sender(make_socket)
    camera = make_camera(CameraSpec("cam", address=address), rois=rois, background=background,
                         limits=Limits(history=10, frames=2, data_dir=tmp_path)).start()
    assert camera.rois is rois and camera.background is background
    encoder = Encoder()
    for pulse_id in (1, 2):
        send_multipart(sender, encoder.encode(pulse_id, T0, {"image": np.full((6, 8), float(pulse_id))}))
    wait_until(lambda: camera.buffer.count == 2)
    np.testing.assert_array_equal(camera.buffer.read().column("roi_all_sum"), [48.0, 96.0])
    np.testing.assert_array_equal(background.current.image, np.full((6, 8), 1.5, np.float32))
    assert (tmp_path / "cam" / "background.npz").is_file()


def test_a_camera_makes_its_own_background_in_the_data_dir(make_camera, tmp_path) -> None:
    camera = make_camera(CameraSpec("SAR-CAM", address="tcp://127.0.0.1:1"), limits=Limits(data_dir=tmp_path))
    camera.background.grab(1)
    camera.background.add(np.ones((2, 2)))
    assert Background("SAR-CAM", tmp_path).current is not None


@pytest.mark.parametrize("mode", ["push", "pub"])
@pytest.mark.parametrize("compression", ["none", "bitshuffle_lz4"])
def test_the_simulated_camera(make_camera, mode: str, compression: str) -> None:
    config = SimulatorConfig(port=0, host=LOCALHOST, delay_s=0.005, width=64, height=48, dtype="uint16",
                             compression=compression, mode=mode, seed=3, start_pulse_id=500)
    camera = make_camera(CameraSpec("simulated", simulator=config, source="built-in simulated camera"))
    assert camera.simulated and camera.label == "simulated camera"
    camera.start()
    assert camera.address.startswith(f"tcp://{LOCALHOST}:")
    wait_until(lambda: camera.buffer.count >= 5, message="simulated pulses")
    history = camera.buffer.read()
    ids = history.column("pulse_id")
    assert (np.diff(ids) == 1).all() and (mode == "pub" or ids[0] == 500)
    assert {"beam_energy", "repetition_rate", "image_size_x"} <= set(history.channels)
    assert camera.layout.profile_x == "image_profile_x"
    frame = camera.frames.latest()
    assert frame.shape == (48, 64) and frame.image().dtype == np.uint16
    assert frame.channel.spec.compression == compression
    assert camera.health().state == "live" and camera.health().missed_pulses == 0
    started = time.monotonic()
    camera.stop()
    assert time.monotonic() - started < 2.5 and not camera.running


def test_an_address_resolved_at_start(make_camera, make_socket) -> None:
    publisher = make_socket(zmq.PUB)
    port = publisher.bind_to_random_port(f"tcp://{LOCALHOST}")
    resolved: list[str] = []

    def resolve() -> str:
        resolved.append("asked")
        return f"tcp://{LOCALHOST}:{port}"

    camera = make_camera(CameraSpec("cs", mode="sub", resolve=resolve, pinned=False, source="cam_server"))
    assert camera.address == "" and resolved == []
    camera.start()
    assert resolved == ["asked"] and camera.address == f"tcp://{LOCALHOST}:{port}"
    encoder = Encoder()
    pulse = [0]

    def publish() -> bool:  # PUB drops everything until the subscription has arrived
        pulse[0] += 1
        publisher.send_multipart(encoder.encode(pulse[0], T0, {"x": 1.0}))
        return camera.buffer.count > 0

    wait_until(publish, interval=0.02, message="published messages")
    assert camera.health().address == camera.address


def test_a_resolver_error_reaches_the_caller(make_camera) -> None:
    def refuse() -> str:
        raise RuntimeError("cam_server refused camera 'dead': Camera dead is not online.")

    camera = make_camera(CameraSpec("dead", resolve=refuse))
    with pytest.raises(RuntimeError, match="not online"):
        camera.start()
    assert not camera.running and camera.health() is None


def test_watching(make_camera, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(camera_module, "WATCH_S", 0.2)
    camera = make_camera(CameraSpec("cam", address="tcp://127.0.0.1:1"))
    camera.touch()
    assert camera.watched and camera.idle_s() < 0.2
    wait_until(lambda: not camera.watched, timeout=10, message="no longer watched")
    assert camera.idle_s() >= 0.2
    camera.touch()
    assert camera.watched


def test_touch_keeps_recent_frames(make_camera, make_socket) -> None:
    sender, address = push_sender(make_socket)
    camera = make_camera(CameraSpec("cam", address=address)).start()
    encoder = Encoder()
    for pulse_id in range(1, 4):
        send_multipart(sender, encoder.encode(pulse_id, T0, {"image": np.zeros((2, 2))}))
    wait_until(lambda: camera.buffer.count == 3)
    assert [frame.pulse_id for frame in camera.frames.recent()] == [3]  # nobody touched it yet
    camera.touch()
    for pulse_id in range(4, 7):
        send_multipart(sender, encoder.encode(pulse_id, T0, {"image": np.zeros((2, 2))}))
    wait_until(lambda: camera.buffer.count == 6)
    assert [frame.pulse_id for frame in camera.frames.recent()] == [3, 4, 5, 6]


def test_a_camera_of_a_cam_server_pipeline(make_camera) -> None:
    pytest.importorskip("bsread")
    pytest.importorskip("flask")
    from stream.camserver import CamServerClient
    from tests.camserver_standin import CamServerStandIn

    with CamServerStandIn(rate_hz=50.0) as server:
        client = CamServerClient(server.url)
        camera = make_camera(CameraSpec("simulation", mode="sub", resolve=lambda: client.stream_for("simulation").address,
                                        pinned=False, source="cam_server"), names=ChannelNames())
        camera.start()
        assert camera.address == server.stream_address("simulation_sp")
        wait_until(lambda: camera.buffer.count >= 3, message="pipeline messages")
        camera.stop()
    layout, (axis_x, axis_y) = camera.layout, camera.axes
    assert layout.is_pipeline and layout.profile_x == "x_profile" and layout.parameters == "processing_parameters"
    assert axis_x.calibrated and axis_y.calibrated and axis_x.step < 0
    history = camera.buffer.read()
    assert {"beam_centroid_x_um", "beam_rms_y_um"} <= set(history.computed)
    assert {"x_center_of_mass", "intensity", "width"} <= set(history.channels)
    assert camera.frames.latest().processing_error == "" and camera.frames.latest().shape == (120, 160)


def test_a_stopped_camera_does_not_start_again(make_camera, make_socket) -> None:
    """stop() is final: a start that comes later (a registry's background start still on its way when
    the registry stopped) must not leave a receiver running."""
    sender, address = push_sender(make_socket)
    never_started = make_camera(CameraSpec("cam", address=address))
    never_started.stop()
    with pytest.raises(RuntimeError, match="was stopped"):
        never_started.start()
    assert not never_started.running and never_started.health() is None
    restarted = make_camera(CameraSpec("cam2", address=address)).start()
    restarted.stop()
    with pytest.raises(RuntimeError, match="was stopped"):
        restarted.start()
    assert not restarted.running
