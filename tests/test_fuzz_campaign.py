"""Fuzz campaign, short version: 1500 mutated/odd bsread messages over real ZeroMQ into the running app.

The long version (10 000 messages, figures in docs/hardening.md) is `python bench/fuzz.py`; both
run tests/fuzz_runner.py. The app runs as a subprocess, so a crash in C code (bitshuffle, lz4)
shows up as a failed assertion with its exit code instead of taking pytest down.
"""

from __future__ import annotations

import pytest

from tests.fuzz_messages import OK, Fuzzer, Oracle
from tests.fuzz_runner import run_campaign

pytestmark = pytest.mark.slow


def test_every_family_breaks_what_it_claims():
    """The generator itself: each family's claim holds for the decoder (otherwise the campaign tests little)."""
    fuzzer, oracle = Fuzzer(seed=7), Oracle()
    outcomes: dict[str, set[str]] = {}
    for _ in range(2000):
        case = fuzzer.case()
        outcomes.setdefault(case.kind, set()).add(oracle.feed(case))
    assert not oracle.mismatches, oracle.mismatches[:5]
    assert {name for name, _, _ in fuzzer.families} <= set(outcomes)
    rejected = set().union(*outcomes.values()) - {OK}
    # Every rejection reason of the codec is exercised.
    assert {"part-count", "bad-main-header", "bad-data-header", "bad-hash", "unknown-type", "bad-shape",
            "absurd-shape", "bad-compression", "size-mismatch", "bad-timestamp"} <= rejected
    assert outcomes["bitflip"] > {OK}  # random flips both pass and fail
    assert oracle.record_bad["bad-compression"] > 0  # corrupt scalars/profiles found when recorded


def test_fuzz_campaign_against_running_app():
    result = run_campaign(messages=1500, seed=1, lockstep_rounds=12)
    a = result["figures"]["phase_a"]
    status = result["final_status"]
    assert result["failures"] == []
    assert result["app_exit_code"] == 0, "app crashed or did not stop cleanly"
    assert status["state"] == "live" and status["receiver_restarts"] == 0
    # Every message accounted for: accepted ones received, bad ones counted by reason.
    assert a["accepted"] + sum(a["rejected_on_arrival"].values()) == 1500
    for reason, count in a["rejected_on_arrival"].items():
        assert a["app_invalid_by_reason"][reason] >= count
    # Both lazy paths counted: image when rendered, scalar/profile when recorded.
    b = result["figures"]["phase_b"]
    assert b["bitshuffle-image:bad-compression"] == 3 and b["lz4-image:bad-compression"] == 3
    assert b["scalar:bad-compression"] == 3 and b["profile:bad-compression"] == 3
    # Valid-but-odd data displayed.
    c = result["figures"]["phase_c"]
    assert c["nan_energy_shown_as"] == "—"
    assert "1 × 1 px" in c["image_1x1"] and "10 × 10000 px" in c["image_10000x10"]
    assert "<img src=x onerror=alert(1)>" in c["channels_after_churn"]
    # Memory bounded: a normal stream's frames plus a dozen new scalar columns of 360 000 rows (2.9 MB each).
    assert result["rss_mb"]["growth"] < 150, result["rss_mb"]
    assert result["threads"]["end"] <= result["threads"]["after_warmup"] + 2


def test_zero_size_image_is_not_a_frame():
    """Found by the campaign: a compressed 0x5 image became the latest frame and every image request
    failed with ZeroDivisionError in the renderer (HTTP 500) until the next frame."""
    import numpy as np

    from tests.web_fixtures import FedCamera

    camera = FedCamera()
    camera.feed({"image": np.ones((4, 4))})
    for compression in ("none", "lz4", "bitshuffle_lz4"):
        camera.feed({"image": np.ones((0, 5), np.float32)}, compression=compression)
        assert camera.frames.latest().pulse_id == 1
    assert camera.buffer.count == 4 and camera.health().invalid == 0  # the pulses are recorded, not shown


@pytest.mark.parametrize("compression", ["lz4", "bitshuffle_lz4"])
def test_corrupt_image_without_profiles_is_counted_once_and_not_shown(compression):
    """Found by the campaign: without profiles, the statistics decoded the image on arrival (count 1),
    it still became the latest frame, and rendering it counted it again (count 2)."""
    import struct

    import numpy as np

    from stream.encoder import Encoder
    from tests.web_fixtures import FedCamera
    from web.frame_service import FrameService
    from web.render import View

    camera = FedCamera()
    image = np.random.default_rng(1).integers(0, 4000, (96, 128)).astype(np.uint16)
    camera.feed({"image": image})
    parts = Encoder().encode(2, 1.8e9, {"image": image}, compression={"image": compression})
    value = bytearray(parts[2])
    if compression == "lz4":
        value[4:] = bytes([0xF0]) + bytes([255] * 200)
    else:
        struct.pack_into(">I", value, 12, 5)
    parts[2] = bytes(value)
    camera.feed_parts(parts)
    service = FrameService(0.0)
    entry = service.frame(camera, View())
    assert service.frame(camera, View()).pulse_id == entry.pulse_id == 1
    assert camera.health().invalid_by_reason == {"bad-compression": 1}
    assert camera.frames.latest().pulse_id == 1
    assert camera.buffer.count == 2  # the pulse itself is recorded (readings, history), only its image is not shown
