"""bsread messages built by hand for the codec tests: from json/struct/hashlib, numpy byte order and the
lz4/bitshuffle libraries directly, never through stream.encoder.Encoder, so the decoder is checked
against the protocol itself."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import bitshuffle
import lz4.block
import numpy as np

from stream.protocol import Decoder

SEC, NS = 1_700_000_000, 250_000_000
STAMP = SEC + NS * 1e-9

# bsread type -> numpy type char and values that probe the extremes of the type.
TYPE_SAMPLES: dict[str, tuple[str, list[Any]]] = {
    "int8": ("i1", [-128, 127, -1, 0, 5, 100]),
    "uint8": ("u1", [0, 255, 1, 128, 7, 9]),
    "int16": ("i2", [-32768, 32767, -2, 0, 300, 1234]),
    "uint16": ("u2", [0, 65535, 1, 4095, 256, 513]),
    "int32": ("i4", [-(2**31), 2**31 - 1, -3, 0, 70000, 12]),
    "uint32": ("u4", [0, 2**32 - 1, 2**31, 65536, 4, 99]),
    "int64": ("i8", [-(2**63), 2**63 - 1, -4, 0, 2**40, 77]),
    "uint64": ("u8", [0, 2**64 - 1, 2**63, 2**40 + 1, 8, 123]),
    "float32": ("f4", [-1.5, 3.25, 0.0, 1e30, -2.0**-20, 7.0]),
    "float64": ("f8", [-1.5e300, 2.0**-1074, 0.1, np.pi, -0.0, 5.0]),
    "bool": ("?", [True, False, True, True, False, False]),
}
SHAPES = {"scalar": (), "1d": (6,), "2d": (2, 3)}


def sample_array(type_name: str, shape: tuple[int, ...], order: str = "<") -> np.ndarray:
    code, values = TYPE_SAMPLES[type_name]
    count = int(np.prod(shape)) if shape else 1
    return np.array(values[:count], dtype=np.dtype(code).newbyteorder(order)).reshape(shape)


def stamp_bytes(sec: int = SEC, ns: int = NS, encoding: str = "little") -> bytes:
    return struct.pack("<qq" if encoding == "little" else ">qq", sec, ns)


def lz4_frame(raw: bytes, size_order: str = "<") -> bytes:
    return struct.pack(size_order + "I", len(raw)) + lz4.block.compress(raw, store_size=False)


def bitshuffle_frame(array: np.ndarray, block_elements: int = 128, header_block: int | None = None) -> bytes:
    flat = np.ascontiguousarray(array).reshape(-1)
    itemsize = flat.dtype.itemsize
    payload = bitshuffle.compress_lz4(flat.view(f"u{itemsize}"), block_elements).tobytes()
    block_bytes = block_elements * itemsize if header_block is None else header_block
    return struct.pack(">qi", flat.nbytes, block_bytes) + payload


def hand_message(
    channels: list[dict[str, Any]],
    parts: list[bytes],
    pulse_id: int = 42,
    global_timestamp: dict[str, Any] | None = None,
    dh_compression: str | None = None,
    main_override: dict[str, Any] | None = None,
) -> list[bytes]:
    """A bsread message from a channel list and the value/timestamp parts (two per channel)."""
    data_header = json.dumps({"htype": "bsr_d-1.1", "channels": channels}).encode()
    if dh_compression == "lz4":
        data_header = lz4_frame(data_header)
    elif dh_compression == "bitshuffle_lz4":
        data_header = bitshuffle_frame(np.frombuffer(data_header, dtype=np.uint8), block_elements=8192)
    main: dict[str, Any] = {
        "htype": "bsr_m-1.1",
        "pulse_id": pulse_id,
        "global_timestamp": {"sec": SEC, "ns": NS} if global_timestamp is None else global_timestamp,
        "hash": hashlib.md5(data_header).hexdigest(),
    }
    if dh_compression is not None:
        main["dh_compression"] = dh_compression
    main.update(main_override or {})
    return [json.dumps(main).encode(), data_header, *parts]


def decode_everything(parts: list[Any], decoder: Decoder | None = None) -> dict[str, Any]:
    """Decode a message and every channel value (lazy decoding errors surface here too)."""
    message = (decoder or Decoder()).decode(parts)
    return {name: channel.value for name, channel in message.channels.items()}
