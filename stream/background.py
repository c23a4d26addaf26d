"""A camera's background: the mean of N frames grabbed on request, shared by its viewers.

"Grab" averages the next N frames as they arrive (in the receiver thread, so none is missed or
counted twice). The result is kept in memory and, with a data directory, in
`<data-dir>/<camera>/background.npz` with its time and camera, so it survives a restart. Nothing
is written per message: only when a grab completes or the background is cleared.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .serial import next_serial

log = logging.getLogger(__name__)

MAX_GRAB_FRAMES = 1000
DEFAULT_GRAB_FRAMES = 10


@dataclass(frozen=True)
class BackgroundImage:
    image: np.ndarray  # float32 (H, W), read-only
    frames: int
    taken_at: float  # epoch seconds, when the grab completed
    camera: str
    serial: int = field(default_factory=next_serial, repr=False, compare=False)  # what caches key it by

    def describe(self) -> dict[str, Any]:
        height, width = self.image.shape
        return {"frames": self.frames, "taken_at": self.taken_at, "camera": self.camera,
                "width": int(width), "height": int(height)}


class Background:
    def __init__(self, camera: str, data_dir: Path | None = None) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._current: BackgroundImage | None = None
        self._want = 0  # frames the running grab still needs (0: no grab)
        self._total = 0
        self._sum: np.ndarray | None = None
        self._count = 0
        self.error = ""
        self._path = data_dir / _safe(camera) / "background.npz" if data_dir is not None else None
        self._file_lock = threading.Lock()
        if self._path is not None:
            self._load()

    # ------------------------------------------------------------------ requests (web threads)

    @property
    def current(self) -> BackgroundImage | None:
        return self._current

    def grab(self, frames: int = DEFAULT_GRAB_FRAMES) -> None:
        if not 1 <= frames <= MAX_GRAB_FRAMES:
            raise ValueError(f"frames must be between 1 and {MAX_GRAB_FRAMES}")
        with self._lock:
            self._want, self._total, self._sum, self._count = frames, frames, None, 0
            self.error = ""

    def clear(self) -> None:
        with self._lock:
            self._current = None
            self._want = 0
            self._sum = None
        self._persist(None)

    def state(self) -> dict[str, Any]:
        with self._lock:
            grabbing = {"frames": self._total, "done": self._count} if self._want else None
            current = self._current
        return {"state": "grabbing" if grabbing else ("ready" if current else "none"),
                "grab": grabbing, "background": current.describe() if current else None, "error": self.error}

    # ------------------------------------------------------------------ receiver thread

    @property
    def grabbing(self) -> bool:
        return self._want > 0

    def add(self, image: np.ndarray) -> None:
        """One more frame for a running grab (a frame of another shape restarts it)."""
        with self._lock:
            if not self._want:
                return
            if self._sum is not None and self._sum.shape != image.shape:
                self._sum, self._count = None, 0
            if self._sum is None:
                self._sum = np.zeros(image.shape, dtype=np.float64)
            np.add(self._sum, image, out=self._sum, casting="unsafe")
            self._count += 1
            if self._count < self._want:
                return
            with np.errstate(over="ignore"):  # beyond float32 (a 1e308 camera) is inf, as in a float32 frame
                mean = (self._sum / self._count).astype(np.float32)
            mean.flags.writeable = False
            self._current = BackgroundImage(mean, self._count, time.time(), self.camera)
            self._want, self._sum = 0, None
            done = self._current
        self._persist(done)

    # ------------------------------------------------------------------ persistence

    def _persist(self, background: BackgroundImage | None) -> None:
        """Write (None: remove) the saved background. A grab completes in the receiver thread: a
        2048x2048 background takes it ~50 ms once, which its queue absorbs (64 messages). The file
        lock keeps a clear from racing a save still under way (which would bring the background
        back after a restart)."""
        if self._path is None:
            return
        with self._file_lock:
            try:
                if background is None:
                    self._path.unlink(missing_ok=True)
                    return
                if self._current is not background:
                    return  # cleared (or replaced) meanwhile
                self._path.parent.mkdir(parents=True, exist_ok=True)
                partial = self._path.with_suffix(".tmp.npz")
                np.savez(partial, image=background.image, meta=np.array(json.dumps(background.describe())))
                partial.replace(self._path)
            except OSError as exc:
                self.error = f"could not save the background: {exc.strerror or exc}"
                log.warning("%s (%s)", self.error, self._path)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until no save is under way (before a shutdown)."""
        if self._file_lock.acquire(timeout=timeout):
            self._file_lock.release()

    def _load(self) -> None:
        assert self._path is not None
        if not self._path.exists():
            return
        try:
            with np.load(self._path, allow_pickle=False) as saved:
                meta = json.loads(str(saved["meta"]))
                image = np.asarray(saved["image"], dtype=np.float32)
            if image.ndim != 2 or meta.get("camera") != self.camera:
                raise ValueError("not a background of this camera")
            image.flags.writeable = False
            self._current = BackgroundImage(image, int(meta["frames"]), float(meta["taken_at"]), self.camera)
            log.info("background of %s loaded from %s", self.camera, self._path)
        except Exception as exc:  # any unreadable file (empty, truncated zip, odd meta): the camera still starts
            self.error = f"could not load the saved background: {exc}"
            log.warning("%s (%s)", self.error, self._path)


def _safe(name: str) -> str:
    """A camera name as a directory name (cam_server names are like SLG-LCAM-C102); never . or .."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "_"
    return safe if safe.strip(".") else safe.replace(".", "_")
