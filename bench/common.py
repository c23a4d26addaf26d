"""Helpers shared by the benchmarks: ports, percentiles, CPU accounting, the app in a subprocess,
machine description, and results written as JSON beside a printed table.

Every benchmark is a small script that imports from here (`from bench.common import ...`, run as
`python bench/NAME.py` from the repository root or anywhere: the root is put on sys.path).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU seconds of these processes (ones that are gone count as 0)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def with_children(process: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [process, *process.children(recursive=True)]
    return []


def machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + getattr(times, "steal", 0.0)


def thread_cpu_seconds(tid: int) -> float:
    """CPU seconds of one thread of this process, from /proc (Linux)."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.1) -> T:
    """Poll until `predicate` is truthy (returned) or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {message}")
        time.sleep(interval)


def renders_between(before: dict | None, after: dict | None, seconds: float) -> dict[str, float | None]:
    """Renders per second and ms per render between two /api/diagnostics answers (None: not served)."""
    if not before or not after:
        return {"renders_per_s": None, "render_ms": None, "render_cpu_pct": None}
    renders = after["renders"] - before["renders"]
    busy = after["render_seconds"] - before["render_seconds"]
    return {"renders_per_s": renders / seconds, "render_ms": 1000 * busy / renders if renders else None,
            "render_cpu_pct": 100 * busy / seconds}


class App:
    """`python app.py ARGS --port <free>` in a subprocess, output to a log file, stopped by SIGTERM."""

    def __init__(self, args: Sequence[str], log_path: Path, script: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "w")
        command = [sys.executable, str(script or ROOT / "app.py"), *args, "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[1]} exited with {self.process.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(up, 60, f"{command[1]} did not answer")

    def status(self) -> dict:
        return get_json(self.url + "/api/status")

    def diagnostics(self) -> dict | None:
        """/api/diagnostics (the app with --diagnostics), or None."""
        try:
            return get_json(self.url + "/api/diagnostics")
        except (OSError, ValueError):
            return None

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / MIB

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


@contextlib.contextmanager
def running_app(args: Sequence[str], log_path: Path, script: Path | None = None) -> Iterator[App]:
    app = App(args, log_path, script)
    try:
        yield app
    finally:
        app.stop()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import numpy
    import zmq

    info = {"date": dt.datetime.now().isoformat(timespec="minutes"), "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30), "python": platform.python_version(),
            "numpy": numpy.__version__, "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(),
            "load_average": [round(v, 1) for v in os.getloadavg()]}
    with contextlib.suppress(ImportError):
        import dash
        import plotly

        info.update(dash=dash.__version__, plotly=plotly.__version__)
    return info


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable on a terminal too)."""
    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, results: dict[str, Any]) -> Path:
    """Write `results` (with the machine description) to bench/results/NAME-<time>.json; its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=1, default=str))
    return path
