"""bsread messages: the wire protocol between ZeroMQ multipart frames and `Message` objects (decoding).

No sockets here. The decoder validates every claim a header makes against the bytes actually
received before it allocates anything, so a hostile or broken sender costs microseconds, not memory.
The values themselves (`ChannelSpec`, `ChannelValue`, lazy decoding) are in `stream.values`,
encoding in `stream.encoder`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .compression import COMPRESSIONS, decompress
from .errors import BsreadError
from .values import MAX_VALUE_BYTES, TYPES, ChannelSpec, ChannelValue, _buffer, _check_value_size, decode_value

try:  # orjson parses headers ~5x faster; plain json is the fallback.
    import orjson

    _json_loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is in requirements.txt
    _json_loads = json.loads

__all__ = ["BsreadError", "ChannelSpec", "ChannelValue", "COMPRESSIONS", "DataHeader", "Decoder", "Message", "TYPES",
           "decode", "decode_value"]

MAIN_HTYPE_PREFIX = "bsr_m-"
DATA_HTYPE_PREFIX = "bsr_d-"
MAIN_HTYPE = "bsr_m-1.1"
DATA_HTYPE = "bsr_d-1.1"

# Hard limits: anything beyond them is rejected as absurd before any allocation.
MAX_DIMENSIONS = 3
MAX_CHANNELS = 10_000
MAX_HEADER_BYTES = 4 * 1024 * 1024  # decompressed data header


@dataclass(frozen=True)
class DataHeader:
    """Parsed channel table, reused while the header hash is unchanged."""

    hash: str
    channels: tuple[ChannelSpec, ...]
    raw: bytes  # the data-header frame exactly as received (possibly compressed)


@dataclass(frozen=True)
class Message:
    """One decoded bsread message (one pulse)."""

    pulse_id: int
    global_timestamp: float  # seconds since epoch
    channels: Mapping[str, ChannelValue]
    header: DataHeader
    format_changed: bool  # True when the data-header hash differs from the previous message
    nbytes: int  # total bytes of all frames as received

    def value(self, name: str, default: Any = None) -> Any:
        channel = self.channels.get(name)
        return default if channel is None else channel.value


# --------------------------------------------------------------------------------------------- decode


def _parse_main_header(raw: memoryview) -> tuple[int, float, str, str]:
    try:
        header = _json_loads(raw)
    except (ValueError, TypeError) as exc:
        raise BsreadError("bad-main-header", f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise BsreadError("bad-main-header", "not a JSON object")
    htype = header.get("htype")
    if not isinstance(htype, str) or not htype.startswith(MAIN_HTYPE_PREFIX):
        raise BsreadError("bad-main-header", f"htype {htype!r}")
    pulse_id = header.get("pulse_id")
    if type(pulse_id) is not int or not (-(2**63) <= pulse_id < 2**64):
        raise BsreadError("bad-main-header", "pulse_id is not an integer")
    digest = header.get("hash")
    if not isinstance(digest, str) or not digest:
        raise BsreadError("bad-main-header", "missing hash")
    dh_compression = header.get("dh_compression") or "none"
    if dh_compression not in COMPRESSIONS:
        raise BsreadError("bad-compression", f"dh_compression {dh_compression!r}")
    stamp = header.get("global_timestamp")
    timestamp = 0.0
    if stamp is not None:
        if not isinstance(stamp, dict):
            raise BsreadError("bad-main-header", "global_timestamp is not an object")
        sec = stamp.get("sec", stamp.get("epoch"))
        ns = stamp.get("ns", 0)
        if not isinstance(sec, (int, float)) or not isinstance(ns, (int, float)) or isinstance(sec, bool):
            raise BsreadError("bad-main-header", "global_timestamp sec/ns not numeric")
        timestamp = float(sec) + float(ns) * 1e-9
        if not np.isfinite(timestamp):
            raise BsreadError("bad-main-header", "global_timestamp not finite")
    return pulse_id, timestamp, digest, dh_compression


def channel_spec(entry: Any) -> ChannelSpec:
    if not isinstance(entry, dict):
        raise BsreadError("bad-data-header", "channel entry is not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BsreadError("bad-data-header", "channel without a name")
    type_name = entry.get("type") or "float64"
    if not isinstance(type_name, str) or type_name not in TYPES:
        raise BsreadError("unknown-type", f"{str(type_name)[:40]!r} of channel {name[:80]!r}")
    encoding = entry.get("encoding") or "little"
    if encoding not in ("little", "big"):
        raise BsreadError("bad-data-header", f"encoding {str(encoding)[:20]!r}")
    compression = entry.get("compression") or "none"
    if compression not in COMPRESSIONS:
        raise BsreadError("bad-compression", f"compression {str(compression)[:40]!r}")
    raw_shape = entry.get("shape")
    if raw_shape is None:
        raw_shape = [1]
    if not isinstance(raw_shape, list) or not raw_shape or len(raw_shape) > MAX_DIMENSIONS:
        raise BsreadError("bad-shape", f"shape of {name[:80]!r}")
    for dim in raw_shape:
        if type(dim) is not int or dim < 0:
            raise BsreadError("bad-shape", f"shape {raw_shape!r:.60}")
    dtype = np.dtype(TYPES[type_name]).newbyteorder("<" if encoding == "little" else ">")
    shape = () if raw_shape == [1] else tuple(reversed(raw_shape))
    count = 1
    for dim in shape:
        count *= dim
    nbytes = 0 if type_name == "string" else count * dtype.itemsize
    if nbytes > MAX_VALUE_BYTES:
        raise BsreadError("absurd-shape", f"{name[:80]!r} claims {nbytes} bytes")
    return ChannelSpec(name, type_name, shape, encoding, compression, dtype, nbytes)


def _parse_data_header(raw: memoryview, digest: str, dh_compression: str) -> DataHeader:
    if dh_compression != "none":
        text = bytes(decompress(raw, dh_compression, np.dtype("u1"), None, MAX_HEADER_BYTES))
    else:
        text = raw
    try:
        header = _json_loads(text)
    except (ValueError, TypeError):
        raise BsreadError("bad-data-header", "not JSON") from None
    if not isinstance(header, dict):
        raise BsreadError("bad-data-header", "not a JSON object")
    htype = header.get("htype")
    if not isinstance(htype, str) or not htype.startswith(DATA_HTYPE_PREFIX):
        raise BsreadError("bad-data-header", f"htype {str(htype)[:40]!r}")
    entries = header.get("channels")
    if not isinstance(entries, list) or len(entries) > MAX_CHANNELS:
        raise BsreadError("bad-data-header", "channels is not a list")
    channels = tuple(channel_spec(entry) for entry in entries)
    if len({spec.name for spec in channels}) != len(channels):
        raise BsreadError("bad-data-header", "duplicate channel names")
    return DataHeader(digest, channels, bytes(raw))


def _timestamp(raw: memoryview, spec: ChannelSpec) -> float | None:
    if len(raw) == 0:
        return None
    if len(raw) != 16:
        raise BsreadError("bad-timestamp", f"{len(raw)} bytes for {spec.name[:80]!r}")
    sec, ns = struct.unpack("<qq" if spec.encoding == "little" else ">qq", raw)
    return sec + ns * 1e-9


class Decoder:
    """Stateful decoder: remembers the last data header so it is parsed only when its hash changes."""

    def __init__(self) -> None:
        self._header: DataHeader | None = None

    def decode(self, frames: Sequence[Any]) -> Message:
        """Decode one multipart message (zmq.Frame, bytes or memoryview parts).

        Raises BsreadError with a reason code for anything malformed.
        """
        if len(frames) < 2:
            raise BsreadError("part-count", f"{len(frames)} parts")
        views = [_buffer(frame) for frame in frames]
        nbytes = sum(len(v) for v in views)
        pulse_id, timestamp, digest, dh_compression = _parse_main_header(views[0])
        header = self._header_for(views[1], digest, dh_compression)
        channels = header.channels
        if len(views) != 2 + 2 * len(channels):
            raise BsreadError("part-count", f"{len(views)} parts for {len(channels)} channels")
        values: dict[str, ChannelValue] = {}
        for index, spec in enumerate(channels):
            raw = views[2 + 2 * index]
            stamp_raw = views[3 + 2 * index]
            _check_value_size(spec, raw)
            stamp = _timestamp(stamp_raw, spec)
            values[spec.name] = ChannelValue(spec, raw, stamp)
        format_changed = self._header is None or self._header.hash != header.hash
        self._header = header
        return Message(pulse_id, timestamp, values, header, format_changed, nbytes)

    def _header_for(self, raw: memoryview, digest: str, dh_compression: str) -> DataHeader:
        cached = self._header
        if cached is not None and cached.hash == digest and cached.raw == raw:
            return cached
        actual = hashlib.md5(raw).hexdigest()
        if actual != digest:
            raise BsreadError("bad-hash", "data-header md5 does not match main header")
        return _parse_data_header(raw, digest, dh_compression)


def decode(frames: Sequence[Any]) -> Message:
    """Decode a single message with a fresh decoder (convenience for tests and tools)."""
    return Decoder().decode(frames)
