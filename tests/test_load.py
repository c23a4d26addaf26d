"""Load, short version of bench/soak.py: 50 polling browsers for 20 s against the real app at 100 Hz input.

The 10-minute soak (`python bench/soak.py`) runs the same code; its figures are in docs/hardening.md.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _soak_module():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fifty_browsers_at_100_hz_for_20_s() -> None:
    soak = _soak_module()
    args = argparse.Namespace(minutes=20 / 60, clients=50, rate=100.0, threads=16, image_period=0.1,
                              slow_period=1.0, sndhwm=10, max_growth_mb=100.0, verbose=False)
    result = soak.run(args)
    assert result["http_errors"] == 0, result["http_error_examples"]
    assert result["http_requests"] > 1000
    # Every message the sender handed to ZeroMQ arrived.
    assert result["lost_messages"] == 0, (result["sender"], result["app_status"])
    # The sender's queue holds 10 messages (psi-bsread's default), so a receiver more than ~0.7 s
    # behind makes the sender drop. On a quiet machine that is 0; other processes on this shared
    # 2-core machine alone cost a few (7 of 4000 with no browser at all, load 10), while a receiver
    # starved by the web threads loses more than half (2385 of 4000 before the priority gate).
    # Measured on a quiet machine: 0-27 of 4000 (<= 0.7 %); 3 % leaves room for CI's shared 2 cores
    # while still failing hard on a starved receiver (50-64 % without the priority gate).
    dropped = result["sender"]["dropped"]
    assert dropped <= 0.03 * result["sender"]["attempts"], (result["sender"], result["app_status"])
    # Drops show as missed pulses, except at the very end (no later pulse reveals that gap).
    assert dropped - 5 <= result["app_status"]["missed_pulses"] <= dropped
    assert result["app_status"]["invalid"] == 0
    assert result["app_status"]["receiver_restarts"] == 0
    assert result["rss_mb"]["growth"] < 100, result["rss_mb"]
    assert result["threads"]["end"] == result["threads"]["start"]
    assert result["sigterm_exit"]["code"] == 0 and result["sigterm_exit"]["seconds"] < 2.0
    # Every browser saw new frames (the image loop is not starved), at least one a second.
    assert result["distinct_frames_per_client_per_s"] >= 1.0, result["latency"]
