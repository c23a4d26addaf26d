"""The `big` part of bench/display.py: start_stream.py sending COUNT 2048x2048 uint16 frames at
100 Hz (800 MB/s) into `app.py -o PORT` with one page open: was every pulse received
(received == sent, no missed pulse ids)?
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import display_pages
from bench.common import ROOT, cpu_seconds, free_port, running_app, with_children


def run(count: int, log_dir: Path) -> dict[str, Any]:
    port = free_port()
    with running_app(["-o", str(port), "-d", "0.1"], log_dir / "big.log") as app, \
            display_pages.page(app.url + "/") as driver:
        server = with_children(app.ps)
        command = [sys.executable, str(ROOT / "start_stream.py"), "-o", str(port), "--size", "2048x2048",
                   "--dtype", "uint16", "-d", "0.01", "-n", str(count)]
        c0, t0 = cpu_seconds(server), time.monotonic()
        with open(log_dir / "big-sender.log", "w") as log:
            sender = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=count / 10 + 60)
        sent_s = time.monotonic() - t0
        time.sleep(2.0)  # the receiver drains its queue
        elapsed = time.monotonic() - t0
        status = app.status()
        probe = display_pages.take(driver) or {}
        server_cpu = 100 * (cpu_seconds(server) - c0) / elapsed
    received = status.get("received")
    return {"sent": count, "sender_exit": sender.returncode, "send_s": sent_s, "send_rate_hz": count / sent_s,
            "received": received, "missed_pulses": status.get("missed_pulses"), "invalid": status.get("invalid"),
            "all_received": received == count and not status.get("missed_pulses"),
            "page_drawn_fps": probe.get("drawn", 0) / (probe["ms"] / 1000) if probe.get("ms") else None,
            "server_cpu_pct": server_cpu, "load_average": [round(v, 2) for v in os.getloadavg()]}
