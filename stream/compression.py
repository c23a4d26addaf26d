"""bsread value compression: `lz4` and `bitshuffle_lz4` framing, validated before anything is allocated.

Framing: `lz4` is a 4-byte uncompressed size (channel byte order) and one raw LZ4 block;
`bitshuffle_lz4` is an 8-byte big-endian size, a 4-byte big-endian block size in bytes and
bitshuffle's own blocks. A frame's claims are checked against its length first, so a corrupt or
hostile sender costs microseconds, never memory. `bitshuffle_take_rows` decodes only the blocks that
hold some rows of an image, for cheap per-message statistics.

bitshuffle runs each call in an OpenMP parallel region. On a small shared server one thread is
better: an idle team member spins after each region (doubling the CPU per message) and a call stalls
whenever a member is descheduled. `limit_openmp_threads()` sets OpenMP's documented OMP_NUM_THREADS
(unless the user did) before the runtime loads; the entry points (app.py, start_stream.py) call it.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BsreadError

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "lz4", "bitshuffle_lz4")
# LZ4 cannot expand input by more than ~255x; a larger claimed ratio is corrupt or hostile.
LZ4_MAX_RATIO = 255
_BSHUF_MIN_BLOCK_ELEMENTS = 8
_U32_BE = struct.Struct(">I")


def limit_openmp_threads(threads: int = 1) -> None:
    """Ask bitshuffle's OpenMP runtime for `threads` threads, unless OMP_NUM_THREADS is already set.

    Must run before bitshuffle is first imported: OpenMP reads the variable once, when it loads.
    """
    if "bitshuffle" in sys.modules:
        log.debug("bitshuffle already loaded; OMP_NUM_THREADS=%s stays", os.environ.get("OMP_NUM_THREADS"))
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


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



def decompress(view: memoryview, compression: str, dtype: np.dtype, expected: int | None, limit: int) -> Any:
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
    size = lz4_size(view, encoding, expected)
    if size > limit or (expected is not None and size != expected):
        raise BsreadError("size-mismatch", f"lz4 claims {size} bytes")
    if size > (len(view) - 4) * LZ4_MAX_RATIO + 64:
        raise BsreadError("bad-compression", "impossible lz4 ratio")
    try:
        out = lz4.block.decompress(view[4:], uncompressed_size=size)
    except Exception as exc:  # lz4.block.LZ4BlockError and friends
        raise BsreadError("bad-compression", f"lz4: {exc}") from None
    if len(out) != size:
        raise BsreadError("bad-compression", "lz4 produced the wrong size")
    return out


def _bitshuffle() -> Any:
    import bitshuffle  # lazily: its OpenMP runtime reads OMP_NUM_THREADS when it loads (see limit_openmp_threads)

    return bitshuffle


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
        block = default_block(itemsize)
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
    _bitshuffle_block_offsets(payload, n_elements, block, itemsize)  # validates the framing
    # No block holds more than the whole value: the (sender-chosen) block size must not size the padding.
    padded = _padded(payload, min(block, n_elements) * itemsize + 64)
    try:
        out = bitshuffle.decompress_lz4(padded, (n_elements,), np.dtype(f"u{itemsize}"), block)
    except Exception as exc:
        raise BsreadError("bad-compression", f"bitshuffle: {exc}") from None
    return out


@dataclass(frozen=True)
class BitshuffleBlocks:
    """A bitshuffle_lz4 value whose framing was walked and checked: where each block lies.

    Pseudo-block b < `full` is a whole block; pseudo-block `full` is the short tail (the last, partial
    block and the raw leftover elements), empty when the elements fill whole blocks.
    """

    n_elements: int
    block: int  # elements per block
    payload: memoryview
    bounds: list[int]  # pseudo-block b spans payload[bounds[b]:bounds[b + 1]]

    @property
    def full(self) -> int:
        return self.n_elements // self.block if self.block else 0


def bitshuffle_blocks(view: memoryview, dtype: np.dtype, nbytes: int) -> BitshuffleBlocks:
    """Validate the framing of a bitshuffle_lz4 value of exactly `nbytes` decoded bytes (BsreadError if bad)."""
    n_elements, block, payload = _bitshuffle_layout(view, dtype, nbytes, nbytes)
    if n_elements == 0:
        return BitshuffleBlocks(0, 0, payload, [0])
    offsets = _bitshuffle_block_offsets(payload, n_elements, block, dtype.itemsize)
    return BitshuffleBlocks(n_elements, block, payload, offsets[:n_elements // block + 1] + [len(payload)])


def bitshuffle_take_rows(blocks: BitshuffleBlocks, shape: tuple[int, int], dtype: np.dtype,
                         rows: np.ndarray) -> np.ndarray:
    """`image[rows]` of a bitshuffle_lz4 image (read-only), decompressing only the blocks holding those rows.

    `blocks`: the value's validated framing (`bitshuffle_blocks`); `rows`: int64 indices in
    [0, height), any order, repeats allowed (the caller checks the range). The wanted blocks are
    decoded from a zero-padded copy; the short tail is decoded like the others when a row reaches it.
    """
    width = shape[1]
    if blocks.n_elements == 0 or len(rows) == 0:
        return _read_only(np.empty((len(rows), width), dtype=dtype))
    block, full, bounds, itemsize = blocks.block, blocks.full, blocks.bounds, dtype.itemsize
    first = rows * width // block  # pseudo-block holding each row's first element ...
    last = np.minimum(((rows + 1) * width - 1) // block, full)  # ... and its last
    # Mark every pseudo-block in [first, last] of some row: +1 at first, -1 after last, running sum.
    marks = np.bincount(first, minlength=full + 2) - np.bincount(last + 1, minlength=full + 2)
    wanted = np.cumsum(marks[:full + 1]) > 0
    wanted_blocks = np.flatnonzero(wanted)
    # Copy runs of consecutive wanted blocks (size prefixes included) into one zero-padded buffer.
    breaks = np.flatnonzero(np.diff(wanted_blocks) != 1) + 1
    run_starts = wanted_blocks[np.concatenate(([0], breaks))].tolist()
    run_ends = (wanted_blocks[np.concatenate((breaks - 1, [len(wanted_blocks) - 1]))] + 1).tolist()
    packed = b"".join([blocks.payload[bounds[a]:bounds[z]] for a, z in zip(run_starts, run_ends)])
    compact = _padded(packed, min(block, blocks.n_elements) * itemsize + 64)
    count = len(wanted_blocks) * block
    if wanted[full]:
        count += blocks.n_elements - (full + 1) * block  # the tail holds fewer than `block` elements
    try:
        out = _bitshuffle().decompress_lz4(compact, (count,), np.dtype(f"u{itemsize}"), block).view(dtype)
    except Exception as exc:
        raise BsreadError("bad-compression", f"bitshuffle: {exc}") from None
    # A row's blocks are consecutive among the wanted ones, so the row is contiguous in `out`.
    starts = (np.cumsum(wanted) - 1)[first] * block + (rows * width - first * block)
    stride = int(starts[1] - starts[0]) if len(starts) > 1 else width
    if stride > 0 and (np.diff(starts) == stride).all():  # evenly spaced rows: a view, no copy
        begin = int(starts[0])
        if stride == width:
            return _read_only(out[begin:begin + len(starts) * width].reshape(len(starts), width))
        return np.lib.stride_tricks.as_strided(out[begin:], (len(starts), width), (stride * itemsize, itemsize),
                                               writeable=False)
    return _read_only(np.lib.stride_tricks.sliding_window_view(out, width)[starts])


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def default_block(itemsize: int) -> int:
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
        block = default_block(itemsize)
        # bitshuffle transposes bytes of a given width; byte order does not matter to it.
        payload = bitshuffle.compress_lz4(data.view(np.dtype(f"u{itemsize}")), block)
        return struct.pack(">qi", data.nbytes, block * itemsize) + payload.tobytes()
    raise ValueError(f"unknown compression {compression!r}")
