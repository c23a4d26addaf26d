"""web/processing.py: a view's mean of the last N frames and its background subtraction, on real frames.

Frames come from a FedCamera (the real decode and ingest path). Frame k of a test holds
designed_image + 100 * k, so the mean of frames a..b is designed_image + 100 * (a + b) / 2.
"""

from __future__ import annotations

import numpy as np
import pytest

from stream.background import BackgroundImage
from tests.web_fixtures import FedCamera, camera_values, designed_image
from web.processing import MAX_AVERAGE, Processor

BASE = designed_image(24, 32, dtype=np.float64)


def fed(count: int, shape: tuple[int, int] = (24, 32)) -> FedCamera:
    camera = FedCamera()
    camera.frames.keep_recent(True)
    base = designed_image(*shape, dtype=np.float64)
    for k in range(count):
        camera.feed(camera_values(base + 100 * k))
    return camera


def background(image: np.ndarray) -> BackgroundImage:
    image = image.astype(np.float32)
    image.flags.writeable = False
    return BackgroundImage(image, 10, 1.8e9, "cam")


def test_one_frame_unprocessed_is_the_raw_image_itself() -> None:
    camera = fed(3)
    frame = camera.frames.latest()
    result = Processor().process(frame, camera.frames.recent(), 1, None)
    assert result.image is frame.image()  # no copy
    assert result.averaged == 1 and result.background is False and result.note == ""


@pytest.mark.parametrize("average", [2, 5, 10])
def test_mean_of_the_last_n_frames_is_exact(average: int) -> None:
    camera = fed(12)
    frames = camera.frames.recent()
    result = Processor().process(frames[-1], frames, average, None)
    first = 12 - average
    expected = BASE + 100 * (first + 11) / 2
    assert result.averaged == average and result.note == ""
    assert np.array_equal(result.image, expected.astype(np.float32))
    assert result.image.dtype == np.float32 and not result.image.flags.writeable


def test_running_sum_follows_the_stream_and_stays_exact() -> None:
    """The mean is kept as a running sum; as frames arrive it must equal a fresh mean every time."""
    camera = fed(6)
    processor = Processor()
    for k in range(6, 30):
        camera.feed(camera_values(BASE + 100 * k))
        frames = camera.frames.recent()
        result = processor.process(frames[-1], frames, 5, None)
        assert np.array_equal(result.image, (BASE + 100 * (k - 2)).astype(np.float32)), k


def test_a_paused_frame_averages_the_frames_before_it() -> None:
    camera = fed(10)
    frames = camera.frames.recent()
    older = frames[4]
    result = Processor().process(older, frames, 3, None)
    assert np.array_equal(result.image, (BASE + 100 * 3).astype(np.float32))  # frames 2, 3, 4


def test_fewer_frames_kept_than_asked_says_so() -> None:
    camera = fed(3)
    frames = camera.frames.recent()
    result = Processor().process(frames[-1], frames, 10, None)
    assert result.averaged == 3 and "3 frames" in result.note and "10 asked" in result.note
    assert np.array_equal(result.image, (BASE + 100).astype(np.float32))


def test_frames_of_another_shape_are_not_averaged_in() -> None:
    camera = fed(3)
    camera.feed(camera_values(designed_image(10, 10, dtype=np.float64)))
    camera.feed(camera_values(designed_image(10, 10, dtype=np.float64) + 100))
    frames = camera.frames.recent()
    result = Processor().process(frames[-1], frames, 4, None)
    assert result.averaged == 2 and result.image.shape == (10, 10)


def test_average_is_clamped_to_the_documented_bounds() -> None:
    camera = fed(3)
    frames = camera.frames.recent()
    assert Processor().process(frames[-1], frames, 0, None).averaged == 1
    assert Processor().process(frames[-1], frames, 10**6, None).note.endswith(f"{MAX_AVERAGE} asked")


def test_background_is_subtracted_exactly() -> None:
    camera = fed(1)
    frame = camera.frames.latest()
    dark = np.full((24, 32), 7.0)
    dark[0, 0] = 1000.0
    result = Processor().process(frame, camera.frames.recent(), 1, background(dark))
    assert result.background is True
    expected = (BASE - dark).astype(np.float32)
    assert np.array_equal(result.image, expected) and result.image[0, 0] == -1000.0


def test_background_with_averaging() -> None:
    camera = fed(4)
    frames = camera.frames.recent()
    result = Processor().process(frames[-1], frames, 4, background(np.full((24, 32), 50.0)))
    assert result.averaged == 4 and result.background is True
    assert np.array_equal(result.image, (BASE + 150 - 50).astype(np.float32))


def test_background_of_another_size_is_not_subtracted_and_says_why() -> None:
    camera = fed(1)
    frame = camera.frames.latest()
    result = Processor().process(frame, camera.frames.recent(), 1, background(np.zeros((10, 20))))
    assert result.background is False and result.image is frame.image()
    assert "20 × 10" in result.note and "32 × 24" in result.note


def test_processed_images_are_cached_per_frame_average_and_background() -> None:
    camera = fed(5)
    frames = camera.frames.recent()
    processor = Processor()
    first = processor.process(frames[-1], frames, 3, None)
    assert processor.process(frames[-1], frames, 3, None) is first
    assert processor.process(frames[-1], frames, 2, None) is not first
    dark = background(np.zeros((24, 32)))
    with_bg = processor.process(frames[-1], frames, 3, dark)
    assert with_bg is not first and processor.process(frames[-1], frames, 3, dark) is with_bg


def _stream_of(images: list[np.ndarray], average: int) -> list[np.ndarray]:
    """The processed image after each frame of `images`, averaging the last `average` (a live view)."""
    camera, processor, shown = FedCamera(), Processor(), []
    camera.frames.keep_recent(True)
    for image in images:
        camera.feed(camera_values(image))
        frames = camera.frames.recent()
        shown.append(processor.process(frames[-1], frames, average, None).image)
    return shown


def test_a_nan_pixel_leaves_the_mean_when_its_frame_does() -> None:
    images = [np.full((4, 4), 1.0) for _ in range(12)]
    images[3][0, 0] = np.nan
    shown = _stream_of(images, 4)
    assert [float(s[0, 0]) for s in shown[3:8]] == [1.0] * 5  # the other frames' mean, then no trace of it
    assert all(np.array_equal(s, np.ones((4, 4))) for s in shown[7:])


def test_a_huge_value_leaves_the_mean_without_taking_the_small_ones_with_it() -> None:
    images = [np.full((4, 4), 1.0) for _ in range(12)]
    images[5][1, 1] = 1e20
    shown = _stream_of(images, 4)
    assert float(shown[5][1, 1]) == pytest.approx((3 + 1e20) / 4)
    assert [float(s[1, 1]) for s in shown[9:]] == [1.0] * 3


def test_integer_cameras_are_averaged_exactly_over_a_long_stream() -> None:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 65535, (8, 8), dtype=np.uint16) for _ in range(200)]
    shown = _stream_of(images, 7)
    for k in (50, 123, 199):
        expected = np.mean(np.stack(images[k - 6:k + 1]).astype(np.float64), axis=0).astype(np.float32)
        assert np.array_equal(shown[k], expected)
