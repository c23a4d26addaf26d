"""Compare a cam_server (the real one, by hand) with the stand-in: REST replies and pipeline streams.

    bash ../shared/tools/camserver/camserver_up.sh && . /tmp/camserver.env
    python -m tests.camserver_fidelity $PIPE_URL          # prints where the stand-in differs from it

Not a test (CI has no cam_server). For each server it records the shape of the REST replies (also of
errors) and, for cameras simulation and simulation2, a few messages of the stream `stream_for` picks,
decoded by stream.protocol.Decoder: header keys, channel names/types/shapes (sizes as W and H), axis
direction, which channels are consistent with the image. Sizes, values and texts are not compared,
only their form. See docs/camserver-standin.md for what was found.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zmq  # noqa: E402

from stream.camserver import CamServerClient, CamServerError  # noqa: E402
from stream.protocol import Decoder  # noqa: E402


def rest(url: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    """Status code, content type and JSON keys (with value types) of one raw reply."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            code, ctype, raw = response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        code, ctype, raw = exc.code, exc.headers.get_content_type(), exc.read()
    try:
        reply = json.loads(raw)
        shape = {key: type(value).__name__ for key, value in reply.items()}
        state = reply.get("state")
    except ValueError:
        shape, state = "not JSON", None
    return {"http": code, "type": ctype, "keys": shape, "state": state}


def rest_summary(base: str) -> dict[str, Any]:
    pipe = base + "/api/v1/pipeline"
    return {
        "cameras": rest(pipe + "/camera"),
        "pipelines": rest(pipe),
        "saved instance": rest(pipe + "/instance/simulation_sp"),
        "info": rest(pipe + "/instance/simulation_sp/info"),
        "unknown instance": rest(pipe + "/instance/nosuch_sp"),
        "unknown info": rest(pipe + "/instance/nosuch_sp/info"),
        "POST unknown camera": rest(pipe + "?instance_id=nosuch_sov", "POST", {"camera_name": "nosuch"}),
        "POST no body": rest(pipe + "?instance_id=nosuch_sov", "POST", b""),
        "POST bad JSON": rest(pipe + "?instance_id=nosuch_sov", "POST", b"{bad"),
        "unknown route": rest(base + "/api/v1/nothing"),
        "slash in id": rest(pipe + "/instance/a%2Fb"),
    }


def stream_summary(address: str, count: int = 4) -> dict[str, Any]:
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    decoder, messages, raw = Decoder(), [], []
    try:
        for _ in range(count):
            if not sock.poll(15_000):
                return {"error": f"no message from {address} within 15 s"}
            parts = sock.recv_multipart()
            raw.append(parts)
            messages.append(decoder.decode(parts))
    finally:
        sock.close(0)
        context.term()
    last = messages[-1]
    width, height = int(last.value("width")), int(last.value("height"))

    def symbolic(shape: tuple[int, ...]) -> str:
        return "x".join({width: "W", height: "H"}.get(d, str(d)) for d in shape) or "scalar"

    image = np.asarray(last.value("image"))
    x_axis, y_axis = np.asarray(last.value("x_axis"), float), np.asarray(last.value("y_axis"), float)
    summary: dict[str, Any] = {
        "main header keys": list(json.loads(raw[-1][0])),
        "data header entry keys": sorted({tuple(e) for e in json.loads(raw[-1][1])["channels"]}),
        "channels": [f"{c.spec.name} {c.spec.type} {symbolic(c.spec.shape)} {c.spec.compression} {c.spec.encoding}"
                     for c in last.channels.values()],
        "pulse id steps": sorted({b.pulse_id - a.pulse_id for a, b in zip(messages, messages[1:])}),
        "channel timestamps = global": all(c.timestamp == m.global_timestamp for m in messages
                                           for c in m.channels.values() if c.timestamp is not None),
        "x_axis": "descending" if np.all(np.diff(x_axis) < 0) else "ascending" if np.all(np.diff(x_axis) > 0) else "?",
        "y_axis": "descending" if np.all(np.diff(y_axis) < 0) else "ascending" if np.all(np.diff(y_axis) > 0) else "?",
        "axis step": [round(float(np.mean(np.diff(x_axis))), 3), round(float(np.mean(np.diff(y_axis))), 3)],
        "axis starts": "0 (pixels)" if x_axis[0] == 0 and y_axis[0] == 0 else "offset (calibrated)",
        "parameters keys": list(json.loads(last.value("processing_parameters"))),
    }
    if "x_profile" in last.channels:
        summary["profiles = image sums"] = bool(np.array_equal(last.value("x_profile"), image.sum(axis=0))
                                                and np.array_equal(last.value("y_profile"), image.sum(axis=1)))
        summary["intensity = sum"] = bool(last.value("intensity") == image.sum())
        summary["min/max = image"] = bool(last.value("min_value") == image.min() and last.value("max_value") == image.max())
        fit_x, fit_y = (float(last.value(f"{a}_fit_mean")) for a in "xy")
        summary["fit mean inside axes"] = bool(min(x_axis) <= fit_x <= max(x_axis) and min(y_axis) <= fit_y <= max(y_axis))
        summary["fit curve = offset + gauss"] = bool(np.allclose(last.value("x_fit_gauss_function"), last.value("x_fit_offset")
            + last.value("x_fit_amplitude") * np.exp(-(x_axis - fit_x) ** 2
                                                    / (2 * last.value("x_fit_standard_deviation") ** 2)), rtol=1e-4))
    return summary


def server_summary(base: str) -> dict[str, Any]:
    client = CamServerClient(base, timeout_s=10.0)
    summary: dict[str, Any] = {"rest": rest_summary(base), "streams": {}}
    for camera in ("simulation", "simulation2"):
        try:
            choice = client.stream_for(camera)
        except CamServerError as exc:
            summary["streams"][camera] = {"error": str(exc)}
            continue
        summary["streams"][camera] = {"how": choice.how, **stream_summary(choice.address)}
    return summary


def differences(real: Any, standin: Any, path: str = "") -> list[str]:
    if isinstance(real, dict) and isinstance(standin, dict):
        return [line for key in dict.fromkeys([*real, *standin])
                for line in differences(real.get(key, "<absent>"), standin.get(key, "<absent>"), f"{path}/{key}")]
    return [] if real == standin else [f"{path}:\n    real:     {real}\n    stand-in: {standin}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the real pipeline server, e.g. $PIPE_URL")
    parser.add_argument("--json", action="store_true", help="print both summaries instead of the differences")
    args = parser.parse_args(argv)
    from tests.camserver_standin import CamServerStandIn

    real = server_summary(args.url.rstrip("/"))
    with CamServerStandIn() as standin:
        fake = server_summary(standin.url)
    if args.json:
        print(json.dumps({"real": real, "stand-in": fake}, indent=1, default=str))
        return 0
    found = differences(real, fake)
    print("\n".join(found) if found else "no differences in form")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
