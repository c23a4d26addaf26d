"""Every camera the server can show, and the connections to the ones being watched.

Cameras given on the command line (or the built-in simulated one) are connected from the start and
stay connected. Cameras of a cam_server (`--camserver`) are listed from its REST API and connected
on demand: the first request for one starts it (in the background: a slow cam_server never holds a
web thread), and one nobody watched for the grace period is disconnected. At most `max_cameras`
are connected at once. Regions of interest and backgrounds are kept per camera name, across
connections. One maintenance thread does the periodic work.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import zmq

from .background import Background
from .camera import Camera, CameraSpec, Limits
from .layout import ChannelNames
from .rois import RoiSet

log = logging.getLogger(__name__)

MAINTENANCE_S = 1.0
CAMSERVER_REFRESH_S = 10.0  # camera list
RETRY_S = 5.0  # a camera that failed to start is tried again this long after, while watched
RESOLVE_STALLED_S = 10.0  # a cam_server camera silent this long is looked up again (its instance may have moved)


class CameraUnavailable(Exception):
    """A camera that cannot be shown now; the text is one sentence for the operator."""


@dataclass
class _Entry:
    camera: Camera
    failed_at: float | None = None
    starting: bool = False
    looked_up_at: float = -float("inf")  # monotonic; the last lookup of a silent camera's address


class CameraRegistry:
    def __init__(self, fixed: list[CameraSpec], camserver: Any = None, names: ChannelNames = ChannelNames(),
                 limits: Limits = Limits(), max_cameras: int = 8, grace_s: float = 60.0,
                 context: zmq.Context | None = None) -> None:
        if len({spec.name for spec in fixed}) != len(fixed):
            raise ValueError("camera names must be unique")
        self.names = names
        self.limits = limits
        self.max_cameras = max_cameras
        self.grace_s = grace_s
        self._camserver = camserver  # stream.camserver.CamServerClient or a stand-in with the same methods
        self._context = context
        self._fixed = {spec.name: spec for spec in fixed}
        self._listed: list[str] = []  # cam_server's cameras
        self.camserver_error = ""
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._settings: dict[str, tuple[RoiSet, Background]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listed_at = -float("inf")
        self._tasks: set[str] = set()  # background REST tasks under way

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "CameraRegistry":
        """Connect the fixed cameras (errors raise: a bad command line ends the program) and begin."""
        for spec in self._fixed.values():
            entry = self._new_entry(spec)
            entry.camera.start()
        if self._camserver is not None:
            self._refresh_list()
        self._thread = threading.Thread(target=self._maintain, name="camera-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        with self._lock:
            cameras = [entry.camera for entry in self._entries.values()]
        for camera in cameras:
            camera.stop(timeout=0)
        for camera in cameras:
            camera.stop(timeout)
        for _rois, background in list(self._settings.values()):
            background.flush(timeout)  # a background grabbed just before the signal is kept
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ lookups (web threads)

    @property
    def default(self) -> str | None:
        names = self.camera_names()
        return names[0] if names else None

    def camera_names(self) -> list[str]:
        return list(self._fixed) + [name for name in self._listed if name not in self._fixed]

    def known(self, name: str) -> bool:
        return name in self._fixed or name in self._listed

    def get(self, name: str | None) -> Camera | None:
        """The camera if it is connected (or connecting); never starts one."""
        entry = self._entries.get(name or self.default or "")
        return entry.camera if entry is not None else None

    def watch(self, name: str | None) -> Camera:
        """The camera, started if need be (cam_server cameras start in the background, so it may
        still be connecting); marks it watched. Raises CameraUnavailable with the reason."""
        name = name or self.default
        if name is None:
            raise CameraUnavailable(self.camserver_error or "no camera is configured")
        entry = self._entries.get(name)
        if entry is None:
            entry = self._admit(name)
        camera = entry.camera
        camera.touch()
        if not camera.running and not entry.starting and (
                entry.failed_at is None or time.monotonic() - entry.failed_at > RETRY_S):
            self._start_in_background(entry)
        return camera

    def caught_up_events(self) -> list[threading.Event]:
        """Each running camera's "receiver not behind" event (the web server's computing gate waits on them)."""
        return [entry.camera.caught_up for entry in list(self._entries.values()) if entry.camera.running]

    def listing(self) -> list[dict[str, Any]]:
        """`/api/cameras`: every camera with whether somebody watches it and its state."""
        out = []
        for name in self.camera_names():
            entry = self._entries.get(name)
            camera = entry.camera if entry is not None else None
            out.append({"name": name, "watched": bool(camera and camera.watched),
                        "state": camera_state(camera) if camera is not None else "disconnected",
                        "error": camera.state_note if camera is not None and entry.failed_at is not None else "",
                        "source": self._fixed[name].source if name in self._fixed else "cam_server"})
        return out

    # ------------------------------------------------------------------ internals

    def _admit(self, name: str) -> _Entry:
        if not self.known(name):
            if self._camserver is not None and self.camserver_error:
                raise CameraUnavailable(f"camera {name!r} is not known: {self.camserver_error}")
            raise CameraUnavailable(f"there is no camera {name!r}")
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
            if len(self._entries) >= self.max_cameras:
                raise CameraUnavailable(f"at most {self.max_cameras} cameras can be watched at once; "
                                        f"one is released {self.grace_s:.0f} s after nobody watches it")
            spec = self._fixed.get(name) or self._camserver_spec(name)
            return self._new_entry(spec, locked=True)

    def _camserver_spec(self, name: str) -> CameraSpec:
        client = self._camserver

        def resolve() -> str:
            choice = client.stream_for(name)
            log.info("camera %s: cam_server %s %s at %s", name, choice.how, choice.instance_id, choice.address)
            return choice.address

        return CameraSpec(name=name, mode="sub", resolve=resolve, pinned=False, source="cam_server")

    def _new_entry(self, spec: CameraSpec, locked: bool = False, keep: Camera | None = None) -> _Entry:
        """`keep`: a camera whose history and frames the new connection continues (an instance that moved)."""
        rois, background = self._settings.setdefault(
            spec.name, (RoiSet(), Background(spec.name, self.limits.data_dir)))
        camera = Camera(spec, self.names, self.limits, self._context, rois, background,
                        history=keep.buffer if keep is not None else None,
                        frames=keep.frames if keep is not None else None)
        camera.state_note = "connecting"
        entry = _Entry(camera)
        if locked:
            self._entries[spec.name] = entry
        else:
            with self._lock:
                self._entries[spec.name] = entry
        return entry

    def _start_in_background(self, entry: _Entry) -> None:
        entry.starting = True

        def run() -> None:
            try:
                entry.camera.start()
                entry.failed_at = None
            except Exception as exc:  # a cam_server error, a refused address: shown, retried later
                entry.failed_at = time.monotonic()
                entry.camera.state_note = _sentence(exc)
                log.warning("camera %s did not start: %s", entry.camera.name, entry.camera.state_note)
            finally:
                entry.starting = False

        threading.Thread(target=run, name=f"start-{entry.camera.name}"[:40], daemon=True).start()

    def _maintain(self) -> None:
        while not self._stop.wait(MAINTENANCE_S):
            try:
                self._maintain_once()
            except Exception:  # a bug of ours must not end the maintenance
                log.exception("camera maintenance failed")

    def _in_background(self, task: str, work: Any) -> None:
        """REST calls (seconds when cam_server is down) run beside the maintenance, one per task."""
        with self._lock:
            if task in self._tasks:
                return
            self._tasks.add(task)

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._tasks.discard(task)

        threading.Thread(target=run, name=task[:40], daemon=True).start()

    def _maintain_once(self) -> None:
        if self._camserver is not None and time.monotonic() - self._listed_at > CAMSERVER_REFRESH_S:
            self._in_background("camserver-list", self._refresh_list)
        with self._lock:
            entries = list(self._entries.items())
        for name, entry in entries:
            camera = entry.camera
            if not camera.watched:
                camera.frames.keep_recent(False)
            if not camera.spec.pinned and camera.idle_s() > self.grace_s and not entry.starting:
                log.info("camera %s: nobody watched it for %.0f s; disconnecting", name, self.grace_s)
                with self._lock:
                    self._entries.pop(name, None)
                camera.stop()
            elif camera.spec.resolve is not None and camera.running and _silent_for(camera) > RESOLVE_STALLED_S \
                    and time.monotonic() - entry.looked_up_at > RESOLVE_STALLED_S:  # not every round: REST calls
                entry.looked_up_at = time.monotonic()
                self._in_background(f"lookup-{name}", lambda n=name, e=entry: self._reconnect_if_moved(n, e))

    def _reconnect_if_moved(self, name: str, entry: _Entry) -> None:
        """A silent cam_server camera: its instance may have been restarted on another port."""
        entry.looked_up_at = time.monotonic()
        try:
            address = entry.camera.spec.resolve()
        except Exception as exc:
            entry.camera.state_note = _sentence(exc)
            return
        if address != entry.camera.address:
            log.info("camera %s moved to %s; reconnecting", name, address)
            old = entry.camera
            old.stop()  # before the new connection writes to the same history
            with self._lock:
                replacement = self._new_entry(replace(old.spec, address=address), locked=True, keep=old)
            self._start_in_background(replacement)

    def _refresh_list(self) -> None:
        self._listed_at = time.monotonic()
        try:
            self._listed = list(self._camserver.cameras())
            if self.camserver_error:
                log.info("cam_server answers again")
            self.camserver_error = ""
        except Exception as exc:
            error = _sentence(exc)
            if error != self.camserver_error:  # once per change, not every refresh
                log.warning("cam_server: %s", error)
            self.camserver_error = error


def camera_state(camera: Camera) -> str:
    """waiting / live / stalled / stopped from its receiver, or connecting / error before it runs."""
    health = camera.health()
    if health is not None:
        return health.state
    return "connecting" if camera.state_note == "connecting" else "error"


def _silent_for(camera: Camera) -> float:
    health = camera.health()
    if health is None:
        return 0.0
    if health.last_message_age_s is not None:
        return health.last_message_age_s
    return time.time() - (camera.started_at or time.time())


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:300]

