"""bsread wire codec: pure functions between ZeroMQ multipart frames and `Message` objects.

No sockets here. The decoder validates every claim a header makes against the bytes actually
received before it allocates anything, so a hostile or broken sender costs microseconds, not memory.
Values that need no decompression are zero-copy numpy views of the received frames; compressed
values are kept as received and decompressed on demand (`ChannelValue.value`).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

try:  # orjson parses headers ~5x faster; plain json is the fallback.
    import orjson

    _json_loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is in requirements.txt
    _json_loads = json.loads

__all__ = [
    "BsreadError",
    "ChannelSpec",
    "ChannelValue",
    "Decoder",
    "Encoder",
    "Message",
    "TYPES",
    "decode",
]

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
_NUMPY_TO_BSREAD = {np.dtype(code).kind + str(np.dtype(code).itemsize): name for name, code in TYPES.items() if name != "string"}
_NUMPY_TO_BSREAD["b1"] = "bool"

COMPRESSIONS = ("none", "lz4", "bitshuffle_lz4")

# Hard limits: anything beyond them is rejected as absurd before any allocation.
MAX_VALUE_BYTES = 512 * 1024 * 1024  # one channel's decoded value
MAX_DIMENSIONS = 3
MAX_CHANNELS = 10_000
MAX_HEADER_BYTES = 4 * 1024 * 1024  # decompressed data header
MAX_STRING_BYTES = 1024 * 1024
# LZ4 cannot expand input by more than ~255x; a larger claimed ratio is corrupt or hostile.
_LZ4_MAX_RATIO = 255
_BSHUF_MIN_BLOCK_ELEMENTS = 8


class BsreadError(ValueError):
    """A message (or one channel value) that violates the bsread protocol.

    `reason` is a short, stable code used for health counters (`bad-main-header`, `part-count`, ...);
    the message text adds detail for the log.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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

    __slots__ = ("spec", "raw", "timestamp", "_value", "_decoded")

    def __init__(self, spec: ChannelSpec, raw: Any, timestamp: float | None) -> None:
        self.spec = spec
        self.raw = raw
        self.timestamp = timestamp  # seconds since epoch, or None for an empty value
        self._value: Any = None
        self._decoded = False

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

    def rows(self, step: int) -> Any:
        """Rows 0, step, 2*step, ... of a 2-D value as a read-only array (None for an empty value).

        Same as `value[::step]`, but a bitshuffle_lz4 image that was not decoded yet is only partly
        decompressed: just the compressed blocks holding those rows (cheap per-message statistics).
        Raises BsreadError like `.value`, or 'not-an-image' for a channel that is not 2-D.
        """
        if self._decoded:
            value = self._value
            if value is not None and (not isinstance(value, np.ndarray) or value.ndim != 2):
                raise BsreadError("not-an-image", f"channel {self.spec.name[:80]!r} is not 2-D")
            return value if value is None else value[::max(1, int(step))]
        return decode_rows(self.spec, self.raw, step)

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


def _channel_spec(entry: Any) -> ChannelSpec:
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
        text = bytes(_decompress(raw, dh_compression, np.dtype("u1"), None, MAX_HEADER_BYTES))
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
    channels = tuple(_channel_spec(entry) for entry in entries)
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
        claimed = _lz4_size(raw, spec.encoding, None if spec.is_string else spec.nbytes)
    else:
        if n < 12:
            raise BsreadError("bad-compression", f"bitshuffle value of {spec.name[:80]!r} too short")
        claimed = struct.unpack_from(">q", raw, 0)[0]
    expected = MAX_STRING_BYTES if spec.is_string else spec.nbytes
    if claimed < 0 or (claimed != spec.nbytes and not spec.is_string) or claimed > expected:
        raise BsreadError("size-mismatch", f"{spec.name[:80]!r}: compressed value claims {claimed} bytes")
    if claimed > n * _LZ4_MAX_RATIO + 64:
        raise BsreadError("bad-compression", f"{spec.name[:80]!r}: impossible compression ratio")


def _lz4_size(raw: memoryview, encoding: str, expected: int | None) -> int:
    """The 4-byte uncompressed-size prefix of an lz4 value.

    The protocol says channel byte order, but some senders always write little endian; accept the
    other order when only it matches the size the shape implies.
    """
    first, other = ("<I", ">I") if encoding == "little" else (">I", "<I")
    size = struct.unpack_from(first, raw, 0)[0]
    alt = struct.unpack_from(other, raw, 0)[0]
    if expected is not None:
        return alt if size != expected and alt == expected else size
    plausible = (len(raw) - 4) * _LZ4_MAX_RATIO + 64
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
        data = _decompress(view, spec.compression, spec.dtype, spec.nbytes if not spec.is_string else None, limit)
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


def decode_rows(spec: ChannelSpec, raw: Any, step: int) -> Any:
    """Rows 0, step, 2*step, ... of a 2-D channel value (read-only), decompressing as little as possible."""
    if len(spec.shape) != 2 or spec.is_string:
        raise BsreadError("not-an-image", f"channel {spec.name[:80]!r} is not 2-D")
    step = max(1, int(step))
    view = _buffer(raw)
    if len(view) == 0:
        return None
    if spec.compression == "bitshuffle_lz4" and step > 1:
        _check_value_size(spec, view)
        rows = _bitshuffle_rows(view, spec, step)
        if rows is not None:
            return rows
    return decode_value(spec, view)[::step]


def _decompress(view: memoryview, compression: str, dtype: np.dtype, expected: int | None, limit: int) -> Any:
    if compression == "lz4":
        return _lz4_decompress(view, dtype, expected, limit)
    if compression == "bitshuffle_lz4":
        return _bitshuffle_decompress(view, dtype, expected, limit)
    raise BsreadError("bad-compression", compression)


def _lz4_decompress(view: memoryview, dtype: np.dtype, expected: int | None, limit: int) -> bytes:
    import lz4.block

    if len(view) < 4:
        raise BsreadError("bad-compression", "lz4 frame too short")
    encoding = "big" if dtype.byteorder == ">" else "little"
    size = _lz4_size(view, encoding, expected)
    if size > limit or (expected is not None and size != expected):
        raise BsreadError("size-mismatch", f"lz4 claims {size} bytes")
    if size > (len(view) - 4) * _LZ4_MAX_RATIO + 64:
        raise BsreadError("bad-compression", "impossible lz4 ratio")
    try:
        out = lz4.block.decompress(view[4:], uncompressed_size=size)
    except Exception as exc:  # lz4.block.LZ4BlockError and friends
        raise BsreadError("bad-compression", f"lz4: {exc}") from None
    if len(out) != size:
        raise BsreadError("bad-compression", "lz4 produced the wrong size")
    return out


_openmp = threading.local()
_omp_set_num_threads: Any = None


def _bitshuffle() -> Any:
    """The bitshuffle module, with its OpenMP team limited to one thread for the calling thread.

    bitshuffle runs every call in an OpenMP parallel region. On a small, shared server (the viewer
    runs on 2 cores next to other work) that costs more than it gains: the idle team member spins
    after each region (doubling the CPU spent per message) and a call stalls whenever a team member
    is descheduled. The setting is per thread, hence applied lazily in each decoding thread.
    """
    import bitshuffle

    if not getattr(_openmp, "limited", False):
        _openmp.limited = True
        setter = _find_omp_set_num_threads() if _omp_set_num_threads is None else _omp_set_num_threads
        if setter:
            setter(1)
    return bitshuffle


def _find_omp_set_num_threads() -> Any:
    """omp_set_num_threads of the OpenMP runtime bitshuffle is linked with (Linux), or None."""
    global _omp_set_num_threads
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line or "libomp" in line}
        ranked = sorted(paths, key=lambda path: "bitshuffle" not in path)  # bitshuffle's own copy first
        if ranked:
            _omp_set_num_threads = ctypes.CDLL(ranked[0]).omp_set_num_threads
    except (OSError, AttributeError):
        _omp_set_num_threads = None
    if _omp_set_num_threads is None:
        _omp_set_num_threads = False  # looked once, found nothing
    return _omp_set_num_threads or None


def _bitshuffle_layout(view: memoryview, dtype: np.dtype, expected: int | None,
                       limit: int) -> tuple[int, int, memoryview]:
    """(elements, block size in elements, payload) of a bitshuffle_lz4 value, validated."""
    if len(view) < 12:
        raise BsreadError("bad-compression", "bitshuffle frame too short")
    size, block_bytes = struct.unpack_from(">qi", view, 0)
    itemsize = dtype.itemsize
    if size < 0 or size > limit or (expected is not None and size != expected) or size % itemsize:
        raise BsreadError("size-mismatch", f"bitshuffle claims {size} bytes")
    if size == 0:
        return 0, 0, view[12:]
    if block_bytes < 0 or block_bytes % itemsize:
        raise BsreadError("bad-compression", f"bitshuffle block size {block_bytes}")
    block = block_bytes // itemsize
    if block == 0:
        block = _bitshuffle_default_block(itemsize)
    if block % _BSHUF_MIN_BLOCK_ELEMENTS:
        raise BsreadError("bad-compression", f"bitshuffle block of {block} elements")
    return size // itemsize, block, view[12:]


def _padded(payload: Any, pad: int) -> np.ndarray:
    """A copy of `payload` followed by `pad` zero bytes (returned without them).

    bitshuffle decodes with LZ4_decompress_fast, which trusts its input and may read past the end
    of a corrupt block; decoding from such a copy keeps those reads inside our buffer.
    """
    n = len(payload)
    padded = np.empty(n + pad, dtype=np.uint8)
    padded[:n] = np.frombuffer(payload, dtype=np.uint8)
    padded[n:] = 0
    return padded[:n]


def _bitshuffle_decompress(view: memoryview, dtype: np.dtype, expected: int | None, limit: int) -> np.ndarray:
    bitshuffle = _bitshuffle()
    n_elements, block, payload = _bitshuffle_layout(view, dtype, expected, limit)
    if n_elements == 0:
        return np.empty(0, dtype=dtype)
    itemsize = dtype.itemsize
    _check_bitshuffle_framing(payload, n_elements, block, itemsize)
    # No block holds more than the whole value: the (sender-chosen) block size must not size the padding.
    padded = _padded(payload, min(block, n_elements) * itemsize + 64)
    try:
        out = bitshuffle.decompress_lz4(padded, (n_elements,), np.dtype(f"u{itemsize}"), block)
    except Exception as exc:
        raise BsreadError("bad-compression", f"bitshuffle: {exc}") from None
    return out


def _bitshuffle_rows(view: memoryview, spec: ChannelSpec, step: int) -> np.ndarray | None:
    """Rows 0, step, ... of a bitshuffle_lz4 image, decompressing only the blocks that hold them.

    Returns None when that would not save much (most blocks needed, or rows in the short tail block);
    the caller then decodes the whole value.
    """
    bitshuffle = _bitshuffle()
    n_elements, block, payload = _bitshuffle_layout(view, spec.dtype, spec.nbytes, spec.nbytes)
    height, width = spec.shape
    if n_elements == 0 or height == 0 or width == 0:
        return None
    itemsize = spec.dtype.itemsize
    full = n_elements // block
    rows = np.arange(0, height, step, dtype=np.int64)
    first = rows * width // block  # block holding each row's first element
    last = ((rows + 1) * width - 1) // block  # ... and its last
    if int(last[-1]) >= full:  # rows in the short tail block: not worth a special case
        return None
    wanted = np.zeros(full, dtype=bool)
    for k in range(int((last - first).max()) + 1):
        wanted[np.minimum(first + k, last)] = True
    blocks = np.flatnonzero(wanted)
    if 2 * len(blocks) > full:
        return None
    offsets = _bitshuffle_block_offsets(payload, n_elements, block, itemsize)  # validates the framing
    # Copy runs of consecutive wanted blocks (size prefix included) into one zero-padded buffer.
    breaks = np.flatnonzero(np.diff(blocks) != 1) + 1
    run_starts = blocks[np.concatenate(([0], breaks))].tolist()
    run_ends = (blocks[np.concatenate((breaks - 1, [len(blocks) - 1]))] + 1).tolist()
    packed = b"".join([payload[offsets[a]:offsets[z]] for a, z in zip(run_starts, run_ends)])
    compact = _padded(packed, block * itemsize + 64)
    try:
        out = bitshuffle.decompress_lz4(compact, (len(blocks) * block,), np.dtype(f"u{itemsize}"), block)
    except Exception as exc:
        raise BsreadError("bad-compression", f"bitshuffle: {exc}") from None
    out = out.view(spec.dtype)
    # Where each wanted row starts in `out`: its first block's rank among the wanted ones.
    starts = np.searchsorted(blocks, first) * block + (rows * width - first * block)
    stride = int(starts[1] - starts[0]) if len(starts) > 1 else width
    if len(starts) == 1 or (np.diff(starts) == stride).all():
        return np.lib.stride_tricks.as_strided(out[int(starts[0]):], (len(starts), width),
                                               (stride * itemsize, itemsize), writeable=False)
    result = out[starts[:, None] + np.arange(width)]
    result.flags.writeable = False
    return result


def _bitshuffle_default_block(itemsize: int) -> int:
    # Mirrors the library's choice for block_size=0: ~8 KiB per block, a multiple of 8 elements.
    block = 8192 // itemsize
    block -= block % _BSHUF_MIN_BLOCK_ELEMENTS
    return max(_BSHUF_MIN_BLOCK_ELEMENTS, block)


def _bitshuffle_block_offsets(payload: memoryview, n_elements: int, block: int, itemsize: int) -> list[int]:
    """Walk the per-block size prefixes; they must tile the payload exactly.

    Layout: for each block (full blocks, then one shorter block rounded down to 8 elements) a 4-byte
    big-endian compressed size and that many bytes; then the last n % 8 elements raw.
    Returns where each block starts in the payload, plus where the last one ends.
    """
    full, rest = divmod(n_elements, block)
    last = rest - rest % _BSHUF_MIN_BLOCK_ELEMENTS
    leftover_bytes = (rest % _BSHUF_MIN_BLOCK_ELEMENTS) * itemsize
    blocks = full + (1 if last else 0)
    end = len(payload) - leftover_bytes
    offset = 0
    offsets = [0]
    append = offsets.append
    unpack = _U32_BE.unpack_from
    try:  # hot loop (a 2048x2048 uint16 image has 1024 blocks): bounds are checked after it
        for _ in range(blocks):
            offset += 4 + unpack(payload, offset)[0]
            append(offset)
    except struct.error:
        raise BsreadError("bad-compression", f"bitshuffle blocks overrun the payload (block {len(offsets) - 1})") from None
    if offset != end:
        raise BsreadError("bad-compression", "bitshuffle payload length does not match its blocks")
    # Offsets only grow, so a final offset == end means no block overran the payload; LZ4 cannot
    # expand a block's data by more than ~2x, so longer blocks are corrupt.
    if full and max(map(int.__sub__, offsets[1:full + 1], offsets[:full])) > block * itemsize * 2 + 68:
        raise BsreadError("bad-compression", "bitshuffle block longer than its data can compress to")
    if last and offsets[-1] - offsets[-2] > last * itemsize * 2 + 68:
        raise BsreadError("bad-compression", "bitshuffle block longer than its data can compress to")
    return offsets


def _check_bitshuffle_framing(payload: memoryview, n_elements: int, block: int, itemsize: int) -> None:
    _bitshuffle_block_offsets(payload, n_elements, block, itemsize)


_U32_BE = struct.Struct(">I")


# --------------------------------------------------------------------------------------------- encode


def _value_spec(name: str, value: Any, compression: str, encoding: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": name, "type": "string", "shape": [1], "encoding": encoding, "compression": compression}
    array = np.asarray(value)
    key = array.dtype.kind + str(array.dtype.itemsize)
    type_name = _NUMPY_TO_BSREAD.get(key)
    if type_name is None:
        raise TypeError(f"channel {name!r}: numpy dtype {array.dtype} has no bsread type")
    shape = [1] if array.ndim == 0 else list(reversed(array.shape))
    return {"name": name, "type": type_name, "shape": shape, "encoding": encoding, "compression": compression}


def encode_value(spec: ChannelSpec, value: Any, copy: bool = True) -> bytes | memoryview:
    """Serialise (and compress) one value according to `spec`; None gives an empty frame.

    With copy=False an uncompressed array already in the right type and byte order is returned as a
    view of its own memory (no copy); the caller must then leave the array unchanged until it is sent.
    """
    if value is None:
        return b""
    if spec.is_string:
        data = np.frombuffer(str(value).encode("utf-8"), dtype=np.uint8)
    else:
        data = np.ascontiguousarray(np.asarray(value, dtype=spec.dtype)).reshape(-1)
        if data.size != spec.size:
            raise ValueError(f"channel {spec.name!r}: {data.size} elements for shape {spec.shape}")
        if not copy and spec.compression == "none":
            return memoryview(data).cast("B")
    return compress(data, spec.compression, spec.encoding)


def compress(data: np.ndarray, compression: str, encoding: str = "little") -> bytes:
    """Frame a flat array as a bsread value with the given compression (byte order kept)."""
    if compression == "none":
        return data.tobytes()
    if compression == "lz4":
        import lz4.block

        order = ">I" if encoding == "big" else "<I"
        return struct.pack(order, data.nbytes) + lz4.block.compress(data.tobytes(), store_size=False)
    if compression == "bitshuffle_lz4":
        bitshuffle = _bitshuffle()
        itemsize = data.dtype.itemsize
        block = _bitshuffle_default_block(itemsize)
        # bitshuffle transposes bytes of a given width; byte order does not matter to it.
        payload = bitshuffle.compress_lz4(data.view(np.dtype(f"u{itemsize}")), block)
        return struct.pack(">qi", data.nbytes, block * itemsize) + payload.tobytes()
    raise ValueError(f"unknown compression {compression!r}")


class Encoder:
    """Builds bsread messages; the data header is serialised once per distinct channel layout."""

    def __init__(self, dh_compression: str = "none") -> None:
        if dh_compression not in COMPRESSIONS:
            raise ValueError(f"unknown dh_compression {dh_compression!r}")
        self.dh_compression = dh_compression
        self._layout: tuple | None = None
        self._specs: tuple[ChannelSpec, ...] = ()
        self._header_bytes = b""
        self._hash = ""

    def specs_for(self, channels: Iterable[tuple[str, Any, str, str]]) -> tuple[ChannelSpec, ...]:
        entries = [_value_spec(name, value, compression, encoding) for name, value, compression, encoding in channels]
        layout = tuple((e["name"], e["type"], tuple(e["shape"]), e["encoding"], e["compression"]) for e in entries)
        if layout != self._layout:
            text = json.dumps({"htype": DATA_HTYPE, "channels": entries}, separators=(",", ":")).encode()
            if self.dh_compression != "none":
                text = compress(np.frombuffer(text, dtype=np.uint8), self.dh_compression)
            self._layout = layout
            self._specs = tuple(_channel_spec(e) for e in entries)
            self._header_bytes = text
            self._hash = hashlib.md5(text).hexdigest()
        return self._specs

    def encode(
        self,
        pulse_id: int,
        timestamp: float,
        channels: Mapping[str, Any] | Sequence[tuple[str, Any]],
        compression: str | Mapping[str, str] = "none",
        encoding: str = "little",
        channel_timestamps: Mapping[str, float | None] | None = None,
        copy: bool = True,
    ) -> list[bytes | memoryview]:
        """Encode one message. `channels` maps name -> value (numpy array, scalar, str or None).

        A None value is sent as an empty value (the channel keeps a float64 scalar spec unless the
        layout already knows it). `compression` is one name or a per-channel mapping.
        copy=False: uncompressed arrays become views of the caller's arrays (see `encode_value`).
        """
        items = list(channels.items()) if isinstance(channels, Mapping) else list(channels)

        def comp(name: str, value: Any) -> str:
            chosen = compression.get(name, "none") if isinstance(compression, Mapping) else compression
            # Scalars are never worth compressing; bsread senders leave them plain.
            return "none" if value is None or np.ndim(value) == 0 and not isinstance(value, str) else chosen

        known = {spec.name: spec for spec in self._specs}
        described = []
        for name, value in items:
            if value is None:
                spec = known.get(name)
                placeholder: Any = np.zeros(spec.shape, spec.dtype) if spec and not spec.is_string else (
                    "" if spec and spec.is_string else np.float64(0))
                described.append((name, placeholder, spec.compression if spec else "none", encoding))
            else:
                described.append((name, value, comp(name, value), encoding))
        specs = self.specs_for(described)
        sec = int(timestamp)
        ns = int(round((timestamp - sec) * 1e9))
        main = {
            "htype": MAIN_HTYPE,
            "pulse_id": int(pulse_id),
            "global_timestamp": {"sec": sec, "ns": ns},
            "hash": self._hash,
        }
        if self.dh_compression != "none":
            main["dh_compression"] = self.dh_compression
        parts = [json.dumps(main, separators=(",", ":")).encode(), self._header_bytes]
        stamp_format = "<qq" if encoding == "little" else ">qq"
        for spec, (name, value) in zip(specs, items):
            if value is None:
                parts += [b"", b""]
                continue
            stamp = timestamp if channel_timestamps is None else channel_timestamps.get(name, timestamp)
            parts.append(encode_value(spec, value, copy=copy))
            if stamp is None:
                parts.append(b"")
            else:
                s = int(stamp // 1)
                parts.append(struct.pack(stamp_format, s, int(round((stamp - s) * 1e9))))
        return parts
