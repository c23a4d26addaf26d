"""bsread encoding: `Encoder` builds the multipart messages the simulator sends and tests use.

The decoder (`stream.protocol`) is tested against hand-built messages, never only against this.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .compression import COMPRESSIONS, compress
from .protocol import DATA_HTYPE, MAIN_HTYPE, TYPES, ChannelSpec, channel_spec

_NUMPY_TO_BSREAD = {np.dtype(code).kind + str(np.dtype(code).itemsize): name for name, code in TYPES.items() if name != "string"}
_NUMPY_TO_BSREAD["b1"] = "bool"


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
            self._specs = tuple(channel_spec(e) for e in entries)
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
