"""bsread channel values: what one data-header entry declares (`ChannelSpec`) and one value frame
holds (`ChannelValue`), decoded lazily.

Uncompressed numeric values are zero-copy read-only numpy views of the received frame; compressed
ones are kept as received and decompressed when first read (`stream.compression`). Every size a
frame claims is checked against its length before anything is allocated.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compression import LZ4_MAX_RATIO, BitshuffleBlocks, bitshuffle_blocks, bitshuffle_take_rows, decompress, lz4_size
from .errors import BsreadError

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

MAX_VALUE_BYTES = 512 * 1024 * 1024  # one channel's decoded value
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


def _buffer(frame: Any) -> memoryview:
    """A flat, read-only byte view of a zmq.Frame, bytes or memoryview (no copy)."""
    buf = getattr(frame, "buffer", frame)
    view = memoryview(buf)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view.toreadonly()


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
