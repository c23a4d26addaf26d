"""bsread messages: the wire protocol between ZeroMQ multipart frames and `Message` objects (decoding).

No sockets here. The decoder validates every claim a header makes against the bytes actually
received before it allocates anything, so a hostile or broken sender costs microseconds, not memory.
Values that need no decompression are zero-copy numpy views of the received frames; compressed
values are kept as received and decompressed on demand (`ChannelValue.value`, `stream.compression`).
Encoding lives in `stream.encoder`.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .compression import (COMPRESSIONS, LZ4_MAX_RATIO, BitshuffleBlocks, bitshuffle_blocks, bitshuffle_take_rows,
                          decompress, lz4_size)
from .errors import BsreadError

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

# bsread type name -> numpy type character code (byte order added per channel).
TYPES: dict[str, str] = {
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "int64": "i8",
    "uint64": "u8",
    "float32": "f4",
    "float64": "f8",
    "bool": "?",
    "string": "u1",
}

# Hard limits: anything beyond them is rejected as absurd before any allocation.
MAX_VALUE_BYTES = 512 * 1024 * 1024  # one channel's decoded value
MAX_DIMENSIONS = 3
MAX_CHANNELS = 10_000
MAX_HEADER_BYTES = 4 * 1024 * 1024  # decompressed data header
MAX_STRING_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ChannelSpec:
    """One entry of the data header, validated and resolved to numpy terms."""

    name: str
    type: str  # bsread type name
    shape: tuple[int, ...]  # numpy order (slowest first); () for scalars
    encoding: str  # "little" | "big"
    compression: str  # "none" | "lz4" | "bitshuffle_lz4"
    dtype: np.dtype = field(compare=False)
    nbytes: int = field(compare=False)  # decoded size of one value in bytes (0 for string)

    @property
    def is_string(self) -> bool:
        return self.type == "string"

    @property
    def is_scalar(self) -> bool:
        return self.shape == () and not self.is_string

    @property
    def size(self) -> int:
        return math.prod(self.shape) if self.shape else 1


@dataclass(frozen=True)
class DataHeader:
    """Parsed channel table, reused while the header hash is unchanged."""

    hash: str
    channels: tuple[ChannelSpec, ...]
    raw: bytes  # the data-header frame exactly as received (possibly compressed)


class ChannelValue:
    """The value of one channel in one message; decodes lazily and caches the result.

    `raw` is the value frame as received (a memoryview or bytes); nothing is copied until `.value`
    is read, and for uncompressed numeric data not even then (zero-copy read-only view).
    """

    __slots__ = ("spec", "raw", "timestamp", "_value", "_decoded", "_blocks")

    def __init__(self, spec: ChannelSpec, raw: Any, timestamp: float | None) -> None:
        self.spec = spec
        self.raw = raw
        self.timestamp = timestamp  # seconds since epoch, or None for an empty value
        self._value: Any = None
        self._decoded = False
        self._blocks: BitshuffleBlocks | None = None  # validated bitshuffle framing, for take_rows

    @property
    def is_empty(self) -> bool:
        return len(self.raw) == 0

    @property
    def value(self) -> Any:
        """numpy array (arrays), numpy scalar (scalars), str (string) or None (empty).

        Raises BsreadError('bad-compression' / 'size-mismatch') if the payload turns out corrupt.
        """
        if not self._decoded:
            self._value = decode_value(self.spec, self.raw)
            self._decoded = True
        return self._value

    def take_rows(self, rows: Any) -> np.ndarray | None:
        """`value[rows]` of a 2-D value as a read-only array (None for an empty value).

        `rows`: integer row indices (numpy semantics: any order, repeats, negative from the end).
        A bitshuffle_lz4 image that was not decoded yet is only partly decompressed: just the blocks
        holding those rows (cheap per-message statistics of big frames; the rows are not cached, the
        checked framing is).
        Uncompressed values are indexed in place (a view when the rows are evenly spaced), lz4 ones
        decoded once (cached) and indexed. Raises BsreadError like `.value` on a corrupt payload,
        'not-an-image' for a channel that is not 2-D, IndexError for rows out of range.
        """
        spec = self.spec
        if len(spec.shape) != 2 or spec.is_string:
            raise BsreadError("not-an-image", f"channel {spec.name[:80]!r} is not 2-D")
        if self.is_empty:
            return None
        index = _row_indices(rows, spec.shape[0])
        if self._decoded or spec.compression != "bitshuffle_lz4":
            return _take(self.value, index)
        if self._blocks is None:
            view = _buffer(self.raw)
            _check_value_size(spec, view)
            self._blocks = bitshuffle_blocks(view, spec.dtype, spec.nbytes)
        return bitshuffle_take_rows(self._blocks, spec.shape, spec.dtype, index)

    def __repr__(self) -> str:
        return f"ChannelValue({self.spec.name!r}, {self.spec.type}, shape={self.spec.shape}, {len(self.raw)} B)"


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


def _buffer(frame: Any) -> memoryview:
    """A flat, read-only byte view of a zmq.Frame, bytes or memoryview (no copy)."""
    buf = getattr(frame, "buffer", frame)
    view = memoryview(buf)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view.toreadonly()


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


def _check_value_size(spec: ChannelSpec, raw: memoryview) -> None:
    """Check a value frame against its spec without decompressing it (cheap, O(1))."""
    n = len(raw)
    if n == 0:
        return
    if spec.compression == "none":
        if spec.is_string:
            if n > MAX_STRING_BYTES:
                raise BsreadError("size-mismatch", f"string {spec.name[:80]!r} of {n} bytes")
        elif n != spec.nbytes:
            raise BsreadError("size-mismatch", f"{spec.name[:80]!r}: {n} bytes for {spec.nbytes}")
        return
    if spec.compression == "lz4":
        if n < 4:
            raise BsreadError("bad-compression", f"lz4 value of {spec.name[:80]!r} too short")
        claimed = lz4_size(raw, spec.encoding, None if spec.is_string else spec.nbytes)
    else:
        if n < 12:
            raise BsreadError("bad-compression", f"bitshuffle value of {spec.name[:80]!r} too short")
        claimed = struct.unpack_from(">q", raw, 0)[0]
    expected = MAX_STRING_BYTES if spec.is_string else spec.nbytes
    if claimed < 0 or (claimed != spec.nbytes and not spec.is_string) or claimed > expected:
        raise BsreadError("size-mismatch", f"{spec.name[:80]!r}: compressed value claims {claimed} bytes")
    if claimed > n * LZ4_MAX_RATIO + 64:
        raise BsreadError("bad-compression", f"{spec.name[:80]!r}: impossible compression ratio")


def lz4_size(raw: memoryview, encoding: str, expected: int | None) -> int:
    """The 4-byte uncompressed-size prefix of an lz4 value.

    The protocol says channel byte order, but some senders always write little endian; accept the
    other order when only it matches the size the shape implies.
    """
    first, other = ("<I", ">I") if encoding == "little" else (">I", "<I")
    size = struct.unpack_from(first, raw, 0)[0]
    alt = struct.unpack_from(other, raw, 0)[0]
    if expected is not None:
        return alt if size != expected and alt == expected else size
    plausible = (len(raw) - 4) * LZ4_MAX_RATIO + 64
    return alt if size > plausible >= alt else size


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


# ---------------------------------------------------------------------------------- value decoding


def decode_value(spec: ChannelSpec, raw: Any) -> Any:
    """Turn one value frame into a Python/numpy value according to `spec`."""
    view = _buffer(raw)
    if len(view) == 0:
        return None
    _check_value_size(spec, view)
    if spec.compression == "none":
        data = view
    else:
        limit = MAX_STRING_BYTES if spec.is_string else spec.nbytes
        data = decompress(view, spec.compression, spec.dtype, spec.nbytes if not spec.is_string else None, limit)
    if spec.is_string:
        return bytes(data).decode("utf-8", errors="replace")
    if isinstance(data, np.ndarray):
        array = data.view(spec.dtype) if data.dtype != spec.dtype else data
        array = array.reshape(-1)
    else:
        array = np.frombuffer(data, dtype=spec.dtype)
    if array.size != spec.size:
        raise BsreadError("size-mismatch", f"{spec.name[:80]!r}: {array.size} elements for {spec.size}")
    if spec.is_scalar:
        return array[0]
    array = array.reshape(spec.shape)
    array.flags.writeable = False
    return array


def _row_indices(rows: Any, height: int) -> np.ndarray:
    """Row indices as int64 in [0, height), negative ones counted from the end as numpy does."""
    index = np.asarray(rows).reshape(-1)
    if index.size == 0:
        return np.empty(0, dtype=np.int64)
    if index.dtype.kind not in "iu":
        raise IndexError("row indices must be integers")
    if int(index.min()) < -height or int(index.max()) >= height:  # Python ints: no wrap-around of uint64
        raise IndexError(f"row index out of range for {height} rows")
    index = index.astype(np.int64, copy=False)
    return np.where(index < 0, index + height, index)


def _take(value: np.ndarray, index: np.ndarray) -> np.ndarray:
    """value[index] (read-only): a view when the rows are evenly spaced, else numpy's copy."""
    if len(index) > 1:
        step = int(index[1] - index[0])
        if step > 0 and (np.diff(index) == step).all():
            return value[int(index[0]):int(index[-1]) + 1:step]
    elif len(index) == 1:
        return value[int(index[0]):int(index[0]) + 1]
    taken = value[index]
    taken.flags.writeable = False
    return taken
