"""The fuzz campaign against the running app: shared by tests/test_fuzz_campaign.py (short) and bench/fuzz.py (long).

`run_campaign(messages, seed)` starts `python app.py --stream tcp://127.0.0.1:P` as a subprocess
(a segfault kills the app, not the test runner), binds a PUSH on P and runs three phases:

  A  `messages` fuzz cases (tests/fuzz_messages.py) sent as fast as the app takes them, while one
     simulated page runs its frame loop continuously and another polls the readings and health;
     every case is fed to the Oracle too, so the app must have accepted exactly as many messages
     and counted at least the oracle's rejections and record-time bad values, by reason.
  B  lockstep checks of the lazy paths: a corrupt compressed image is counted when a page asks for it
     (and the previous frame stays up), a corrupt scalar or profile when it is recorded; the next
     good frame is displayed each time.
  C  valid-but-odd data is displayed, not rejected: NaN readings, 1x1 and 10000x10 images, a missing
     channel, channels appearing and disappearing (one named like an XSS payload), pulse ids going back.

Pages are tests/dash_client.py (the page's Dash callbacks and the painter's /api/frame loop).
Returns a JSON-ready dict of figures and a list of `failures` (empty = pass).
"""

from __future__ import annotations

import collections
import json
import struct
import threading
import time
import urllib.request
from typing import Any

import numpy as np
import psutil
import zmq

from components import ids
from stream.encoder import Encoder

from .dash_client import DashClient, text_of
from .fuzz_messages import BASE_TIME, XSS_NAME, Fuzzer, Oracle
from .helpers import free_port, send_multipart, wait_until
from .live_app import app_process


def status(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/status", timeout=10) as response:
        return json.loads(response.read())


def _has_image(shown: tuple[dict, dict] | None) -> bool:
    """A frame answer that carries its picture (levels for every bin)."""
    if not shown:
        return False
    meta, parts = shown
    return parts["levels"].size == meta["rows"] * meta["cols"] > 0


class Browser(threading.Thread):
    """One page calling one of its loops until stopped; keeps status codes and exceptions."""

    def __init__(self, page: DashClient, call: str, period_s: float) -> None:
        super().__init__(daemon=True)
        self.page, self.call, self.period_s = page, call, period_s
        self.stop = threading.Event()
        self.codes: collections.Counter[int] = collections.Counter()
        self.exceptions: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.call == "frame":
                    self.codes[self.page.frame().status] += 1
                else:
                    getattr(self.page, self.call)()  # raises on an HTTP error
                    self.codes[200] += 1
            except Exception as exc:  # any failure to answer is a finding
                self.exceptions.append(f"{exc.__class__.__name__}: {exc}")
            self.stop.wait(self.period_s)


class Campaign:
    def __init__(self, url: str, push: zmq.Socket, process: Any, seed: int) -> None:
        self.url, self.push, self.process = url, push, process
        self.client = self.page()
        self.fuzzer = Fuzzer(seed)
        self.encoder = Encoder()
        self.failures: list[str] = []
        self.figures: dict[str, Any] = {}
        self.pulse = 50_000_000

    def page(self) -> DashClient:
        page = DashClient.http(self.url)
        page.load()
        return page

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
        return ok

    def send(self, frames: list[bytes]) -> None:
        send_multipart(self.push, frames, timeout=30)

    def good(self, pulse_id: int | None = None, **channels: Any) -> int:
        """Send one valid camera message (plus `channels`); returns its pulse id."""
        if pulse_id is None:
            self.pulse += 1
            pulse_id = self.pulse
        values = self.fuzzer.values()
        values.update(channels)
        values = {k: v for k, v in values.items() if v is not ...}
        self.send(self.encoder.encode(pulse_id, BASE_TIME + pulse_id * 0.01, values))
        return pulse_id

    def wait_received(self, count: int, timeout: float = 30.0) -> dict:
        return wait_until(lambda: (lambda s: s if s["received"] >= count else None)(status(self.url)), timeout,
                          message=f"app did not receive {count} messages")

    def displayed(self, pulse_id: int, timeout: float = 15.0) -> tuple[dict, dict] | None:
        """Run the frame loop until the page shows `pulse_id`; returns that answer's (meta, parts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.client.frame()
            if reply.status not in (200, 204):
                self.failures.append(f"/api/frame answered HTTP {reply.status}: {reply.raw[:200]!r}")
                return None
            if reply.status == 200 and reply.body[0]["pulse_id"] == pulse_id:
                return reply.body
            time.sleep(0.02)
        return None

    def reading(self, reading_id: str) -> str | None:
        return self.client.readings().get(reading_id, {}).get("children", self.client.value(reading_id, "children"))

    # ------------------------------------------------------------------ phase A

    def phase_a(self, messages: int) -> None:
        oracle = Oracle()
        before = status(self.url)
        renderer = Browser(self.page(), "frame", 0.005)
        health = Browser(self.page(), "health", 0.2)
        readings = Browser(self.page(), "readings", 0.25)
        browsers = (renderer, health, readings)
        for browser in browsers:
            browser.start()
        kinds: collections.Counter[str] = collections.Counter()
        started = time.monotonic()
        try:
            for _ in range(messages):
                case = self.fuzzer.case()
                kinds[case.kind] += 1
                oracle.feed(case)
                self.send(case.frames)
            expected_received = before["received"] + oracle.accepted
            after = self.wait_received(expected_received, timeout=60 + messages / 50)
        finally:
            elapsed = time.monotonic() - started
            for browser in browsers:
                browser.stop.set()
            for browser in browsers:
                browser.join(30)
                browser.page.close()
        # Every case is accounted for: accepted ones received, the rest counted by reason.
        self.check(after["received"] == expected_received,
                   f"received {after['received'] - before['received']} of {oracle.accepted} acceptable messages")
        expected = oracle.rejected + oracle.record_bad
        app_counts = collections.Counter(after["invalid_by_reason"]) - collections.Counter(before["invalid_by_reason"])
        for reason, count in expected.items():
            self.check(app_counts[reason] >= count, f"{reason}: app counted {app_counts[reason]}, expected >= {count}")
        render_time = sum(app_counts.values()) - sum(expected.values())
        self.check(render_time >= 0, f"app counted {render_time} fewer invalid values than the oracle")
        self.check(not oracle.mismatches, f"decoder outcome differs from the case's claim: {oracle.mismatches[:5]}")
        for browser in browsers:
            bad = {code: n for code, n in browser.codes.items() if code not in (200, 204)}
            self.check(not bad and not browser.exceptions,
                       f"{browser.call} callback during the fuzz: {bad} {browser.exceptions[:3]}")
        self.figures["phase_a"] = {
            "messages": messages,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(messages / elapsed, 1),
            "accepted": oracle.accepted,
            "rejected_on_arrival": dict(oracle.rejected),
            "bad_values_when_recorded": dict(oracle.record_bad),
            "bad_images_when_rendered": render_time,
            "app_invalid_by_reason": dict(app_counts),
            "cases_by_family": dict(sorted(kinds.items())),
            "frames_requested": sum(renderer.codes.values()),
            "health_polls": sum(health.codes.values()),
            "readings_polls": sum(readings.codes.values()),
        }

    # ------------------------------------------------------------------ phase B

    def corrupt_image(self, compression: str) -> list[bytes]:
        self.pulse += 1
        values = self.fuzzer.values()  # with profiles: statistics do not touch the image on arrival
        frames = self.encoder.encode(self.pulse, BASE_TIME + self.pulse * 0.01, values,
                                     compression={"image": compression})
        header = json.loads(frames[1])
        index = 2 + 2 * [c["name"] for c in header["channels"]].index("image")
        value = bytearray(frames[index])
        if compression == "lz4":
            value[4:] = bytes([0xF0]) + bytes([255] * 200)  # literal run far past the end
        else:
            struct.pack_into(">I", value, 12, 5)  # first block's length: framing no longer adds up
        frames[index] = bytes(value)
        return frames

    def corrupt_scalar(self) -> list[bytes]:
        self.pulse += 1
        case = self.fuzzer.corrupt_scalar()
        return case.frames

    def phase_b(self, rounds: int) -> None:
        results: collections.Counter[str] = collections.Counter()
        for round_ in range(rounds):
            kind = ("bitshuffle-image", "lz4-image", "scalar", "profile")[round_ % 4]
            shown = self.good()
            self.check(self.displayed(shown) is not None, f"good frame {shown} not displayed before {kind}")
            before = status(self.url)
            if kind.endswith("image"):
                frames = self.corrupt_image("bitshuffle_lz4" if kind.startswith("bitshuffle") else "lz4")
            elif kind == "scalar":
                frames = self.fuzzer.corrupt_scalar().frames
            else:
                frames = self.fuzzer.corrupt_profile().frames
            self.send(frames)
            self.wait_received(before["received"] + 1)
            if kind.endswith("image"):
                # Counted on arrival (the statistics read the image) or once a browser asks for it.
                deadline = time.monotonic() + 15
                while status(self.url)["invalid"] == before["invalid"] and time.monotonic() < deadline:
                    reply = self.client.frame()
                    self.check(reply.status in (200, 204), f"/api/frame HTTP {reply.status} on a corrupt frame")
                    time.sleep(0.02)
                # The page keeps the previous frame: nothing new was rendered.
                reply = self.client.frame()
                still = (self.client.frame_meta or {}).get("pulse_id")
                self.check(reply.status == 204 and still == shown,
                           f"after a corrupt {kind} the page shows pulse {still} (HTTP {reply.status}), not {shown}")
            final = wait_until(lambda: (lambda s: s if s["invalid"] > before["invalid"] else None)(status(self.url)),
                               15, message=f"corrupt {kind} never counted")
            delta = collections.Counter(final["invalid_by_reason"]) - collections.Counter(before["invalid_by_reason"])
            self.check(sum(delta.values()) == 1, f"corrupt {kind} counted {dict(delta)} (want exactly one)")
            # A second look must not count the same frame again.
            if kind.endswith("image"):
                self.client.frame()
                self.check(status(self.url)["invalid"] == final["invalid"], f"corrupt {kind} counted twice")
            results[f"{kind}:{','.join(delta)}"] += 1
            nxt = self.good()
            shown_next = self.displayed(nxt)
            self.check(_has_image(shown_next),
                       f"next good frame {nxt} after a corrupt {kind} was not displayed with its image")
            if kind == "scalar":
                energy = self.reading(ids.BEAM_ENERGY)
                self.check(energy not in (None, "—"), f"energy after a corrupt scalar reads {energy!r}")
        self.figures["phase_b"] = dict(results)

    # ------------------------------------------------------------------ phase C

    def phase_c(self) -> None:
        seen: dict[str, Any] = {}
        before = status(self.url)

        pid = self.good(beam_energy=np.float64(np.nan))
        self.displayed(pid)
        energy = self.reading(ids.BEAM_ENERGY)
        self.check(energy == "—", f"NaN energy shown as {energy!r}")
        seen["nan_energy_shown_as"] = energy

        for shape in ((1, 1), (10000, 10)):
            image = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
            pid = self.good(image=image, image_profile_x=image.sum(axis=0).astype(np.float64),
                            image_profile_y=image.sum(axis=1).astype(np.float64))
            shown = self.displayed(pid)
            size = self.reading(ids.IMAGE_SIZE) or ""
            self.check(_has_image(shown) and shown[0]["shape"] == list(shape) and f"{shape[1]} × {shape[0]} px" in size,
                       f"{shape} image not displayed (reading {size!r})")
            seen[f"image_{shape[0]}x{shape[1]}"] = size

        shown_pid = self.good()
        self.displayed(shown_pid)
        pid = self.good(image=None)  # this pulse has no image: the previous frame stays, readings move on
        deadline = time.monotonic() + 10
        pulse_text = None
        while time.monotonic() < deadline:
            pulse_text = self.reading(ids.PULSE_ID)
            if pulse_text == str(pid):
                break
            time.sleep(0.02)
        self.check(pulse_text == str(pid), f"pulse id reading {pulse_text!r} after a pulse without image, want {pid}")
        self.client.frame()
        frame = (self.client.frame_meta or {}).get("pulse_id")
        self.check(frame == shown_pid, f"a pulse without image replaced the frame ({frame} instead of {shown_pid})")
        seen["missing_image"] = {"reading": pulse_text, "frame_shown": frame}

        pid = self.good(**{"camera_gain": np.float64(2.5), XSS_NAME: np.float64(1.0)})
        self.wait_received(status(self.url)["received"])
        self.client.history()  # the fourth chart's channel list comes with the history
        options = self.client.value(ids.CHANNEL_SELECT, "options") or []
        labels = [o.get("label") for o in options]
        self.check("camera_gain" in labels and XSS_NAME in labels, f"new channels missing from the list: {labels}")
        pid = self.good(beam_energy=...)  # channels disappear again
        self.check(self.displayed(pid) is not None, "message without beam_energy/camera_gain not displayed")
        seen["channels_after_churn"] = labels

        now = status(self.url)
        back = self.good(pulse_id=now["last_pulse_id"] - 1000)  # sender restarted with older ids
        shown = self.displayed(back)
        after = status(self.url)
        self.check(shown is not None, f"pulse {back} (id going backwards) not displayed")
        self.check(after["reverted_pulses"] > now["reverted_pulses"], "reverted pulse id not counted")
        self.check(after["invalid"] == before["invalid"], f"valid-but-odd data was rejected: "
                   f"{collections.Counter(after['invalid_by_reason']) - collections.Counter(before['invalid_by_reason'])}")
        self.check(after["nonfinite_values"] > before["nonfinite_values"], "NaN reading not counted as non-finite")
        self.figures["phase_c"] = seen


def _error_blocks(lines: list[str]) -> list[str]:
    """ERROR records of the app's log, each with its traceback."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if line[:4].isdigit() and line[4:5] == "-":  # a new log record
            if current:
                blocks.append("".join(current))
            current = [line] if " ERROR " in line or " CRITICAL " in line else None
        elif current is not None:
            current.append(line)
    if current:
        blocks.append("".join(current))
    return blocks


def run_campaign(messages: int = 1500, seed: int = 1, lockstep_rounds: int = 20) -> dict:
    port = free_port()
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 100)
    push.bind(f"tcp://127.0.0.1:{port}")
    try:
        with app_process(["--stream", f"tcp://127.0.0.1:{port}", "-d", "0.01"]) as (url, process):
            log_lines: list[str] = []  # drained continuously: a full pipe would block the app's logging
            drain = threading.Thread(target=lambda: log_lines.extend(iter(process.stdout.readline, "")), daemon=True)
            drain.start()
            campaign = Campaign(url, push, process, seed)
            proc = psutil.Process(process.pid)
            for _ in range(50):  # warm-up: allocations of a normal stream, one rendered frame
                campaign.good()
            wait_until(lambda: campaign.displayed(campaign.pulse, timeout=1), 20, message="warm-up frame")
            rss0, threads0 = proc.memory_info().rss, proc.num_threads()
            campaign.phase_a(messages)
            rss1 = proc.memory_info().rss
            campaign.phase_b(lockstep_rounds)
            campaign.phase_c()
            final = status(url)
            rss2, threads2 = proc.memory_info().rss, proc.num_threads()
            campaign.client.click(ids.HEALTH_TOGGLE)  # the full table is built while unfolded
            campaign.client.health()
            text = text_of(campaign.client.value(ids.HEALTH_PANEL, "children"))
            campaign.check(process.poll() is None, f"app exited with {process.returncode}")
            campaign.check(final["state"] == "live", f"receiver state {final['state']} after the campaign")
            campaign.check(final["receiver_restarts"] == 0,
                           f"receiver loop raised {final['receiver_restarts']} times: {final['last_error']}")
            campaign.check(f"invalid messages|{final['invalid']}" in text,
                           f"health panel does not show {final['invalid']} invalid messages: {text[:300]}")
            missing = [r for r, n in final["invalid_by_reason"].items() if f"{r}|{n}" not in text]
            campaign.check(not missing, f"health panel lacks reasons {missing}")
            campaign.check(threads2 <= threads0 + 2, f"app threads {threads0} -> {threads2}")
            result = {
                "messages": messages,
                "seed": seed,
                "figures": campaign.figures,
                "final_status": {k: final[k] for k in ("received", "invalid", "invalid_by_reason", "reverted_pulses",
                                                      "nonfinite_values", "receiver_restarts", "state")},
                "rss_mb": {"after_warmup": round(rss0 / 1e6, 1), "after_fuzz": round(rss1 / 1e6, 1),
                           "end": round(rss2 / 1e6, 1), "growth": round((rss2 - rss0) / 1e6, 1)},
                "threads": {"after_warmup": threads0, "end": threads2},
                "health_panel_text": text,
                "failures": campaign.failures,
            }
            campaign.client.close()
        # app_process sent SIGTERM on exit; a crash would have shown as a non-zero/-11 code.
        drain.join(10)
        result["app_exit_code"] = process.returncode
        result["app_log_errors"] = _error_blocks(log_lines)[:5]
        result["app_log_lines"] = len(log_lines)
        if any("Traceback" in line for line in log_lines):
            result["failures"].append("the app logged a traceback")
        if process.returncode not in (0, None):
            result["failures"].append(f"app exited with {process.returncode}")
        return result
    finally:
        push.close(0)
        context.term()
