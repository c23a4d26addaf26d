"""A camera's background: grabbing the mean of N frames as they arrive, clearing, the state it reports, and
persistence in <data-dir>/<camera>/background.npz (written only when a grab completes, loaded by the
next Background of that camera; a wrong or corrupt file is an error text, never a crash)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stream.background import MAX_GRAB_FRAMES, Background

SHAPE = (6, 8)


def frames(count: int, dtype: str = "uint16", seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4000, SHAPE).astype(dtype) for _ in range(count)]


def path_of(data_dir: Path, camera: str) -> Path:
    return data_dir / camera / "background.npz"


# ------------------------------------------------------------------------------------------- grab


def test_grab_averages_the_next_frames() -> None:
    background = Background("cam")
    assert background.state() == {"state": "none", "grab": None, "background": None, "error": ""}
    assert not background.grabbing and background.current is None
    images = frames(4)
    background.add(images[0])  # no grab running: ignored
    background.grab(3)
    assert background.grabbing
    assert background.state()["state"] == "grabbing" and background.state()["grab"] == {"frames": 3, "done": 0}
    before = time.time()
    for done, image in enumerate(images[1:], start=1):
        background.add(image)
        if done < 3:
            assert background.state()["grab"] == {"frames": 3, "done": done} and background.current is None
    current = background.current
    assert current is not None and not background.grabbing
    expected = np.mean(np.stack(images[1:]).astype(np.float64), axis=0).astype(np.float32)
    np.testing.assert_array_equal(current.image, expected)
    assert current.image.dtype == np.float32 and not current.image.flags.writeable
    assert current.frames == 3 and current.camera == "cam" and before <= current.taken_at <= time.time()
    state = background.state()
    assert state["state"] == "ready" and state["grab"] is None and state["error"] == ""
    assert state["background"] == {"frames": 3, "taken_at": current.taken_at, "camera": "cam", "width": 8,
                                   "height": 6}
    background.add(images[0])  # after the grab: ignored
    assert background.current is current


@pytest.mark.parametrize("count", [0, -1, MAX_GRAB_FRAMES + 1])
def test_grab_size_is_bounded(count: int) -> None:
    with pytest.raises(ValueError):
        Background("cam").grab(count)


def test_a_frame_of_another_shape_restarts_the_grab() -> None:
    background = Background("cam")
    background.grab(2)
    background.add(np.zeros(SHAPE))
    bigger = [np.full((7, 9), 2.0), np.full((7, 9), 4.0)]
    background.add(bigger[0])
    assert background.current is None and background.state()["grab"]["done"] == 1
    background.add(bigger[1])
    np.testing.assert_array_equal(background.current.image, np.full((7, 9), 3.0))


def test_grabbing_again_restarts_and_keeps_the_old_background_until_done() -> None:
    background = Background("cam")
    background.grab(1)
    background.add(np.ones(SHAPE))
    old = background.current
    background.grab(2)
    background.add(np.full(SHAPE, 10.0))
    background.grab(2)  # restarted: the frame above is not counted
    assert background.current is old and background.state()["grab"] == {"frames": 2, "done": 0}
    background.add(np.full(SHAPE, 2.0))
    background.add(np.full(SHAPE, 4.0))
    np.testing.assert_array_equal(background.current.image, np.full(SHAPE, 3.0))


def test_clear_ends_a_grab_and_forgets_the_background() -> None:
    background = Background("cam")
    background.grab(1)
    background.add(np.ones(SHAPE))
    background.grab(5)
    background.clear()
    assert background.current is None and not background.grabbing and background.state()["state"] == "none"


def test_float_and_integer_frames_average_in_float64() -> None:
    background = Background("cam")
    background.grab(2)
    background.add(np.full(SHAPE, 65535, np.uint16))
    background.add(np.full(SHAPE, 65534, np.uint16))
    np.testing.assert_array_equal(background.current.image, np.full(SHAPE, 65534.5, np.float32))


def test_grab_from_a_web_thread_while_the_receiver_thread_adds() -> None:
    background = Background("cam")
    stop = threading.Event()

    def receiver() -> None:
        while not stop.is_set():
            background.add(np.ones(SHAPE))

    thread = threading.Thread(target=receiver)
    thread.start()
    try:
        for count in (1, 5, 20):
            background.grab(count)
            deadline = time.monotonic() + 10
            while background.grabbing and time.monotonic() < deadline:
                time.sleep(0.001)
            assert background.current is not None and background.current.frames == count
            np.testing.assert_array_equal(background.current.image, np.ones(SHAPE))
    finally:
        stop.set()
        thread.join(10)


# ------------------------------------------------------------------------------------ persistence


def test_saved_when_a_grab_completes_and_loaded_after_a_restart(tmp_path: Path) -> None:
    background = Background("SLG-LCAM-C102", tmp_path)
    background.grab(3)
    images = frames(3)
    for image in images[:2]:
        background.add(image)
    assert not path_of(tmp_path, "SLG-LCAM-C102").exists()  # nothing is written per message
    background.add(images[2])
    assert path_of(tmp_path, "SLG-LCAM-C102").is_file()
    assert list(path_of(tmp_path, "SLG-LCAM-C102").parent.iterdir()) == [path_of(tmp_path, "SLG-LCAM-C102")]

    restarted = Background("SLG-LCAM-C102", tmp_path)
    assert restarted.error == "" and restarted.current is not None
    np.testing.assert_array_equal(restarted.current.image, background.current.image)
    assert not restarted.current.image.flags.writeable
    assert restarted.current.describe() == background.current.describe()
    assert restarted.state()["state"] == "ready"


def test_clear_removes_the_saved_file(tmp_path: Path) -> None:
    background = Background("cam", tmp_path)
    background.grab(1)
    background.add(np.ones(SHAPE))
    background.clear()
    assert not path_of(tmp_path, "cam").exists()
    assert Background("cam", tmp_path).current is None
    background.clear()  # nothing to remove: fine


def test_camera_names_become_safe_directory_names(tmp_path: Path) -> None:
    for name in ("SAR/CAM:01 x", "..", ".", "../../etc"):
        background = Background(name, tmp_path / "data")
        background.grab(1)
        background.add(np.ones(SHAPE))
        assert background.error == ""
        assert Background(name, tmp_path / "data").current is not None, name
    saved = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.npz"))
    assert all(p.parts[0] == "data" and len(p.parts) == 3 for p in saved), saved
    assert len(saved) == 4


def test_no_data_dir_means_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    background = Background("cam")
    background.grab(1)
    background.add(np.ones(SHAPE))
    assert list(tmp_path.iterdir()) == []


def test_a_background_of_another_camera_is_not_loaded(tmp_path: Path) -> None:
    other = Background("other", tmp_path)
    other.grab(1)
    other.add(np.ones(SHAPE))
    path_of(tmp_path, "cam").parent.mkdir()
    path_of(tmp_path, "other").rename(path_of(tmp_path, "cam"))
    background = Background("cam", tmp_path)
    assert background.current is None
    assert background.error.startswith("could not load the saved background")
    assert background.state()["error"] == background.error and background.state()["state"] == "none"
    background.grab(1)  # and it can grab a new one, which replaces the file
    assert background.error == ""
    background.add(np.ones(SHAPE))
    assert Background("cam", tmp_path).current.camera == "cam"


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _valid() -> bytes:
    return _npz(image=np.ones(SHAPE, np.float32), meta=np.array(json.dumps(
        {"frames": 1, "taken_at": 1.0, "camera": "cam", "width": 8, "height": 6})))


CORRUPT = {
    "empty file": b"",
    "random bytes": bytes(range(256)) * 4,
    "truncated": _valid()[: len(_valid()) // 2],
    "zip header then garbage": b"PK\x03\x04" + b"\x00\xff" * 100,
    "plain .npy": (lambda b: (np.save(b, np.ones(SHAPE)), b.getvalue())[1])(io.BytesIO()),
    "no meta": _npz(image=np.ones(SHAPE)),
    "no image": _npz(meta=np.array(json.dumps({"frames": 1, "taken_at": 1.0, "camera": "cam"}))),
    "meta not JSON": _npz(image=np.ones(SHAPE), meta=np.array("{")),
    "meta a list": _npz(image=np.ones(SHAPE), meta=np.array("[1, 2]")),
    "meta without frames": _npz(image=np.ones(SHAPE), meta=np.array(json.dumps({"camera": "cam"}))),
    "frames not a number": _npz(image=np.ones(SHAPE), meta=np.array(json.dumps(
        {"frames": "x", "taken_at": 1.0, "camera": "cam"}))),
    "1-D image": _npz(image=np.ones(8), meta=np.array(json.dumps({"frames": 1, "taken_at": 1.0, "camera": "cam"}))),
    "text image": _npz(image=np.array([["a"]]), meta=np.array(json.dumps(
        {"frames": 1, "taken_at": 1.0, "camera": "cam"}))),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_corrupt_file_is_an_error_text_not_a_crash(tmp_path: Path, case: str) -> None:
    path_of(tmp_path, "cam").parent.mkdir()
    path_of(tmp_path, "cam").write_bytes(CORRUPT[case])
    background = Background("cam", tmp_path)
    assert background.current is None
    assert background.error.startswith("could not load the saved background"), background.error
    assert "\n" not in background.error


def test_a_valid_hand_written_file_loads(tmp_path: Path) -> None:
    path_of(tmp_path, "cam").parent.mkdir()
    path_of(tmp_path, "cam").write_bytes(_valid())
    background = Background("cam", tmp_path)
    assert background.error == "" and background.current.frames == 1


def test_a_failed_save_is_an_error_text_and_the_background_is_still_used(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the data directory should be")
    background = Background("cam", blocked)
    background.grab(1)
    background.add(np.ones(SHAPE))
    assert background.current is not None
    assert background.error.startswith("could not save the background")
    assert background.state()["error"] == background.error
