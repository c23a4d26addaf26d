"""Mutated, truncated and odd bsread messages for the fuzz campaign (tests/test_fuzz_campaign.py, bench/fuzz.py).

`Fuzzer(seed).case()` returns one `Case`: the frames to send and what the decoder must make of them
(`expect`: the set of acceptable BsreadError reasons, "ok" for an accepted message, None when a
random mutation may land either way). Every family is built on a valid message from our Encoder, so
each case breaks exactly what it claims to break; data-header mutations recompute the md5 so they
reach the parser instead of stopping at the hash check.

`Oracle` replays the same sequence through a local Decoder and the camera's per-message work
(`stream.ingest.Ingest`: same stateful header cache and the same values decoded on arrival as the
app's camera) to know how many messages the app must accept and how many bad values it must count
when recording them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import struct
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from stream.compression import compress

from stream.encoder import Encoder

from stream.background import Background
from stream.ingest import Ingest
from stream.layout import ChannelNames
from stream.protocol import BsreadError, Decoder
from stream.rois import RoiSet

OK = "ok"
XSS_NAME = "<img src=x onerror=alert(1)>"
CHANNEL_POOL = ("beam_energy", "repetition_rate", "image_size_x", "image_size_y", "camera_gain", "x_rms",
                "intensity", "processing_parameters", XSS_NAME, "unicode_π_µ", "n" * 300)
BASE_TIME = 1_800_000_000.0


@dataclass
class Case:
    kind: str
    frames: list[bytes]
    expect: frozenset[str] | None  # acceptable outcomes: reasons and/or OK; None = anything accounted for
    pulse_id: int | None = None  # for accepted messages


def _reasons(*names: str) -> frozenset[str]:
    return frozenset(names)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def main_header(pulse_id: Any, digest: str, sec: Any = None, ns: Any = 0, **extra: Any) -> bytes:
    header = {"htype": "bsr_m-1.1", "pulse_id": pulse_id,
              "global_timestamp": {"sec": int(BASE_TIME) if sec is None else sec, "ns": ns}, "hash": digest}
    header.update(extra)
    return json.dumps(header, separators=(",", ":")).encode()


def _lz4_garbage_block(rng: random.Random, limit: int) -> bytes:
    """One LZ4 block that a trusting decoder (LZ4_decompress_fast) could be fooled by."""
    choice = rng.randrange(6)
    if choice == 0:  # match before the start of the output (offset far back)
        return bytes([0x0F, 0xFF, 0xFF]) + bytes([255] * rng.randrange(1, 8)) + bytes(8)
    if choice == 1:  # literal length running past the end of the input
        return bytes([0xF0]) + bytes([255] * rng.randrange(1, 40)) + bytes(rng.randrange(0, 16))
    if choice == 2:  # offset 0 (invalid) after some literals
        return bytes([0x4F, 1, 2, 3, 4, 0, 0]) + bytes([255] * 4)
    if choice == 3:  # a valid-looking literal run, then a long match from far back
        return bytes([0x8F]) + bytes(8) + struct.pack("<H", rng.randrange(9, 65536)) + bytes([255] * rng.randrange(0, 64))
    if choice == 4:  # empty
        return b""
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, max(2, min(limit, 512)))))


class Fuzzer:
    """Deterministic (per seed) stream of fuzz cases on top of valid simulated-camera messages."""

    def __init__(self, seed: int = 0, image_shape: tuple[int, int] = (96, 128)) -> None:
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.encoder = Encoder()
        self.pulse_id = 10_000
        self.image_shape = image_shape
        self._image = (self.nprng.uniform(0, 1000, image_shape)).astype(np.uint16)
        self.families: list[tuple[str, float, Callable[[], Case]]] = [
            ("valid", 12, self.valid),
            ("bitflip", 10, self.bitflip),
            ("truncate", 6, self.truncate),
            ("part-count", 5, self.part_count),
            ("bad-main-header", 6, self.bad_main_header),
            ("bad-data-header", 8, self.bad_data_header),
            ("wrong-hash", 3, self.wrong_hash),
            ("size-mismatch", 4, self.size_mismatch),
            ("bad-timestamp", 2, self.bad_timestamp),
            ("absurd-shape", 3, self.absurd_shape),
            ("corrupt-lz4-image", 4, self.corrupt_lz4_image),
            ("corrupt-bitshuffle-image", 8, self.corrupt_bitshuffle_image),
            ("corrupt-scalar", 3, self.corrupt_scalar),
            ("corrupt-profile", 3, self.corrupt_profile),
            ("corrupt-data-header-compression", 2, self.corrupt_dh_compression),
            ("nan-inf", 4, self.nan_inf),
            ("huge-string", 2, self.huge_string),
            ("odd-shape", 3, self.odd_shape),
            ("missing-channel", 3, self.missing_channel),
            ("channel-churn", 3, self.channel_churn),
            ("pulse-backwards", 2, self.pulse_backwards),
            ("odd-types", 3, self.odd_types),
        ]
        self._weights = [w for _, w, _ in self.families]

    # ------------------------------------------------------------------ building blocks

    def next_pulse(self) -> int:
        self.pulse_id += 1
        return self.pulse_id

    def values(self, image: Any = None, nan: bool = False) -> dict[str, Any]:
        img = self._image if image is None else image
        prof_x = img.sum(axis=0).astype(np.float64) if img.ndim == 2 else np.zeros(4)
        prof_y = img.sum(axis=1).astype(np.float64) if img.ndim == 2 else np.zeros(4)
        return {
            "image": img,
            "image_profile_x": prof_x,
            "image_profile_y": prof_y,
            "beam_energy": np.float64(5.0 + self.rng.random() * 0.5),
            "repetition_rate": np.float64(100.0),
            "processing_parameters": '{"roi": [0, 10]}',
        }

    def encode(self, values: dict[str, Any], compression: Any = None, pulse_id: int | None = None,
               encoder: Encoder | None = None, **kwargs: Any) -> list[bytes]:
        if compression is None:
            comp = self.rng.choice(("none", "lz4", "bitshuffle_lz4"))
            compression = {"image": comp, "image_profile_x": comp, "image_profile_y": comp}
        pid = self.next_pulse() if pulse_id is None else pulse_id
        return (encoder or self.encoder).encode(pid, BASE_TIME + pid * 0.01, values, compression=compression, **kwargs)

    def base(self, compression: Any = None) -> list[bytes]:
        return self.encode(self.values(), compression)

    def with_data_header(self, frames: list[bytes], header: Any, raw: bytes | None = None) -> list[bytes]:
        """Replace the data header (JSON object or raw bytes) and fix the main header's hash."""
        data = raw if raw is not None else json.dumps(header, separators=(",", ":")).encode()
        main = json.loads(frames[0])
        main["hash"] = md5(data)
        return [json.dumps(main, separators=(",", ":")).encode(), data, *frames[2:]]

    def channel_index(self, frames: list[bytes], name: str) -> int:
        header = json.loads(frames[1])
        names = [c["name"] for c in header["channels"]]
        return 2 + 2 * names.index(name)

    def case(self) -> Case:
        _, _, make = self.rng.choices(self.families, weights=self._weights)[0]
        return make()

    # ------------------------------------------------------------------ families

    def valid(self) -> Case:
        return Case("valid", self.base(), _reasons(OK), self.pulse_id)

    def bitflip(self) -> Case:
        frames = [bytearray(f) for f in self.base()]
        for _ in range(self.rng.randrange(1, 9)):
            candidates = [i for i, f in enumerate(frames) if f]
            i = self.rng.choice(candidates)
            pos = self.rng.randrange(len(frames[i]))
            frames[i][pos] ^= 1 << self.rng.randrange(8)
        return Case("bitflip", [bytes(f) for f in frames], None)

    def truncate(self) -> Case:
        frames = self.base()
        candidates = [i for i, f in enumerate(frames) if f]
        i = self.rng.choice(candidates)
        frames[i] = frames[i][: self.rng.randrange(len(frames[i]))]
        return Case("truncate", frames, None)

    def part_count(self) -> Case:
        frames = self.base()
        how = self.rng.randrange(4)
        if how == 0:
            frames = frames[:1]
        elif how == 1:
            del frames[self.rng.randrange(2, len(frames))]
        elif how == 2:
            frames.append(b"extra")
        else:
            frames = frames[: 2 + 2 * self.rng.randrange(0, (len(frames) - 2) // 2)] + [frames[-1]]
        return Case("part-count", frames, _reasons("part-count"))

    def bad_main_header(self) -> Case:
        frames = self.base()
        digest = json.loads(frames[0])["hash"]
        pid = self.pulse_id
        options: list[tuple[bytes, str]] = [
            (b"", "bad-main-header"), (b"{", "bad-main-header"), (b"null", "bad-main-header"),
            (b"[]", "bad-main-header"), (b"\xff\xfe\x00garbage", "bad-main-header"), (b"1e999", "bad-main-header"),
            (b'{"htype":"bsr_m-1.1"}', "bad-main-header"),
            (main_header("123", digest), "bad-main-header"), (main_header(1.5, digest), "bad-main-header"),
            (main_header(True, digest), "bad-main-header"), (main_header(2**64, digest), "bad-main-header"),
            (main_header(-(2**63) - 1, digest), "bad-main-header"), (main_header(None, digest), "bad-main-header"),
            (main_header(pid, ""), "bad-main-header"), (main_header(pid, 123), "bad-main-header"),
            (main_header(pid, digest).replace(b"bsr_m-1.1", b"bsr_x-9"), "bad-main-header"),
            (main_header(pid, digest, sec="now"), "bad-main-header"),
            (main_header(pid, digest, sec=True), "bad-main-header"),
            (main_header(pid, digest).replace(b'"sec":1800000000', b'"sec":1e999'), "bad-main-header"),
            (json.dumps({"htype": "bsr_m-1.1", "pulse_id": pid, "hash": digest, "global_timestamp": 5}).encode(),
             "bad-main-header"),
            (main_header(pid, digest, dh_compression="zip"), "bad-compression"),
            (main_header(pid, digest, dh_compression=7), "bad-compression"),
            (b"{" + b'"a":' * 1 + b"[" * 100_000 + b"]" * 100_000 + b"}", "bad-main-header"),
        ]
        raw, reason = self.rng.choice(options)
        return Case("bad-main-header", [raw, *frames[1:]], _reasons(reason))

    def bad_data_header(self) -> Case:
        frames = self.base()
        header = json.loads(frames[1]) if frames[1][:1] == b"{" else None
        if header is None:  # compressed data header: use a plain one
            frames = self.base()
            header = json.loads(frames[1])
        channels = header["channels"]
        image = next(c for c in channels if c["name"] == "image")
        mutations: list[tuple[Callable[[], Any], str]] = [
            (lambda: None, "bad-data-header"),  # raw garbage below
            (lambda: [], "bad-data-header"),
            (lambda: {"htype": "bsr_x-1.1", "channels": channels}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": {"a": 1}}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [1, 2]}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{"type": "float64"}] + channels[1:]}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "name": ""}] + channels[1:]}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "name": 5}] + channels[1:]}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "type": "complex128"}] + channels[1:]},
             "unknown-type"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "type": ["float64"]}] + channels[1:]},
             "unknown-type"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "encoding": "middle"}] + channels[1:]},
             "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "compression": "zstd"}] + channels[1:]},
             "bad-compression"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": "640x480"}] + channels[1:]}, "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": []}] + channels[1:]}, "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": [1, 2, 3, 4]}] + channels[1:]},
             "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": [-128, 96]}] + channels[1:]}, "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": [128.0, 96]}] + channels[1:]},
             "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{**image, "shape": [True, 96]}] + channels[1:]}, "bad-shape"),
            (lambda: {"htype": "bsr_d-1.1", "channels": channels + [channels[-1]]}, "bad-data-header"),
            (lambda: {"htype": "bsr_d-1.1", "channels": [{"name": f"c{i}"} for i in range(10_001)]},
             "bad-data-header"),
        ]
        make, reason = self.rng.choice(mutations)
        value = make()
        if value is None:
            raw = self.rng.choice((b"", b"{", b"\x00\x01\x02", b"not json at all", b'{"htype":'))
            return Case("bad-data-header", self.with_data_header(frames, None, raw), _reasons("bad-data-header"))
        return Case("bad-data-header", self.with_data_header(frames, value), _reasons(reason))

    def wrong_hash(self) -> Case:
        frames = self.base()
        main = json.loads(frames[0])
        main["hash"] = self.rng.choice(("0" * 32, main["hash"][::-1], "x", md5(b"other")))
        if main["hash"] == json.loads(frames[0])["hash"]:
            main["hash"] = "f" * 32
        return Case("wrong-hash", [json.dumps(main).encode(), *frames[1:]], _reasons("bad-hash"))

    def size_mismatch(self) -> Case:
        frames = self.base({"image": "none", "image_profile_x": "none", "image_profile_y": "none"})
        name = self.rng.choice(("image", "image_profile_x", "beam_energy"))
        i = self.channel_index(frames, name)
        value = frames[i]
        frames[i] = value[:-1] if self.rng.random() < 0.5 else value + b"\x00" * self.rng.choice((1, 8, 4096))
        return Case("size-mismatch", frames, _reasons("size-mismatch"))

    def bad_timestamp(self) -> Case:
        frames = self.base()
        i = self.channel_index(frames, self.rng.choice(("image", "beam_energy"))) + 1
        frames[i] = frames[i][: self.rng.choice((1, 8, 15))] if self.rng.random() < 0.7 else frames[i] + b"\x00"
        return Case("bad-timestamp", frames, _reasons("bad-timestamp"))

    def absurd_shape(self) -> Case:
        frames = self.base()
        header = json.loads(frames[1]) if frames[1][:1] == b"{" else None
        if header is None:
            return self.valid()
        shape = self.rng.choice(([2**31, 2**31], [10**9, 10**9], [2**62, 4], [10**6, 10**4, 10**3], [2**63, 1]))
        for channel in header["channels"]:
            if channel["name"] == "image":
                channel["shape"] = shape
        return Case("absurd-shape", self.with_data_header(frames, header), _reasons("absurd-shape"))

    def corrupt_lz4_image(self) -> Case:
        frames = self.base({"image": "lz4", "image_profile_x": "none", "image_profile_y": "none"})
        i = self.channel_index(frames, "image")
        prefix = frames[i][:4]
        body = bytearray(frames[i][4:])
        how = self.rng.randrange(3)
        if how == 0:
            body = bytearray(self.rng.getrandbits(8) for _ in range(self.rng.randrange(40, 400)))
        elif how == 1:
            for _ in range(16):
                body[self.rng.randrange(len(body))] = self.rng.getrandbits(8)
        else:
            body = bytearray(_lz4_garbage_block(self.rng, 4096)) + bytes(64)
        frames[i] = prefix + bytes(body)
        # Accepted on arrival (sizes are plausible); found when the image is decoded.
        return Case("corrupt-lz4-image", frames, _reasons(OK, "bad-compression"), self.pulse_id)

    def corrupt_bitshuffle_image(self) -> Case:
        shape = self.rng.choice(((96, 128), (33, 17), (256, 64)))
        image = self.nprng.integers(0, 4000, shape).astype(np.uint16)
        frames = self.encode(self.values(image), {"image": "bitshuffle_lz4", "image_profile_x": "none",
                                                  "image_profile_y": "none"})
        i = self.channel_index(frames, "image")
        value = frames[i]
        head, payload = value[:12], value[12:]
        nbytes, block_bytes = struct.unpack(">qi", head)
        itemsize = 2
        n = nbytes // itemsize
        how = self.rng.randrange(5)
        if how == 0:  # framing intact, LZ4 bodies replaced by hostile blocks
            block = block_bytes // itemsize
            full, rest = divmod(n, block)
            last = rest - rest % 8
            leftover = (rest % 8) * itemsize
            sizes = [block * itemsize] * full + ([last * itemsize] if last else [])
            body = b""
            for limit in sizes:
                blk = _lz4_garbage_block(self.rng, limit)[: limit * 2 + 64]
                body += struct.pack(">I", len(blk)) + blk
            body += payload[len(payload) - leftover:] if leftover else b""
            frames[i] = head + body
        elif how == 1:  # block-size field
            bad = self.rng.choice((0, 7, 2, -2, 2**31 - 1, 6))
            frames[i] = struct.pack(">qi", nbytes, bad) + payload
        elif how == 2:  # a block's length prefix
            body = bytearray(payload)
            if len(body) >= 4:
                struct.pack_into(">I", body, 0, self.rng.choice((0, 1, len(body), len(body) + 100, 2**32 - 1)))
            frames[i] = head + bytes(body)
        elif how == 3:  # random bytes inside the compressed data
            body = bytearray(payload)
            for _ in range(self.rng.randrange(1, 32)):
                body[self.rng.randrange(4, max(5, len(body)))] = self.rng.getrandbits(8)
            frames[i] = head + bytes(body)
        else:  # truncated payload with the original sizes
            frames[i] = head + payload[: self.rng.randrange(len(payload))]
        return Case("corrupt-bitshuffle-image", frames, _reasons(OK, "bad-compression", "size-mismatch"), self.pulse_id)

    def corrupt_scalar(self) -> Case:
        values = self.values()
        pid = self.next_pulse()
        parts = self.encode(values, {"image": "none", "image_profile_x": "none", "image_profile_y": "none"},
                            pulse_id=pid)
        # Scalars are never compressed by our encoder; declare beam_energy lz4 and send a broken block.
        header = json.loads(parts[1])
        for channel in header["channels"]:
            if channel["name"] == "beam_energy":
                channel["compression"] = "lz4"
        frames = self.with_data_header(parts, header)
        i = self.channel_index(frames, "beam_energy")
        frames[i] = struct.pack("<I", 8) + bytes([0xF0, 255, 255]) + bytes(3)
        return Case("corrupt-scalar", frames, _reasons(OK), pid)

    def corrupt_profile(self) -> Case:
        frames = self.base({"image": "none", "image_profile_x": "bitshuffle_lz4", "image_profile_y": "none"})
        i = self.channel_index(frames, "image_profile_x")
        value = bytearray(frames[i])
        struct.pack_into(">I", value, 12, 3)  # first block claims 3 bytes: framing no longer adds up
        frames[i] = bytes(value)
        return Case("corrupt-profile", frames, _reasons(OK), self.pulse_id)

    def corrupt_dh_compression(self) -> Case:
        frames = self.base()
        comp = self.rng.choice(("lz4", "bitshuffle_lz4"))
        text = frames[1] if frames[1][:1] == b"{" else json.dumps({"htype": "bsr_d-1.1", "channels": []}).encode()
        packed = bytearray(compress(np.frombuffer(text, dtype=np.uint8), comp))
        for _ in range(self.rng.randrange(1, 6)):
            packed[self.rng.randrange(len(packed))] ^= 0xFF
        main = json.loads(frames[0])
        main["hash"] = md5(bytes(packed))
        main["dh_compression"] = comp
        return Case("corrupt-data-header-compression", [json.dumps(main).encode(), bytes(packed), *frames[2:]], None)

    def nan_inf(self) -> Case:
        image = self.nprng.uniform(0, 10, self.image_shape)
        image[self.rng.randrange(image.shape[0]), :] = np.nan
        image[0, 0] = np.inf
        values = self.values(image)
        values["beam_energy"] = np.float64(self.rng.choice((np.nan, np.inf, -np.inf)))
        values["image_profile_x"] = values["image_profile_x"].copy()
        values["image_profile_x"][::3] = np.nan
        return Case("nan-inf", self.encode(values), _reasons(OK), self.pulse_id)

    def huge_string(self) -> Case:
        encoder = Encoder()
        how = self.rng.randrange(4)
        values = self.values()
        if how == 0:
            values["processing_parameters"] = "x" * (1024 * 1024)
            return Case("huge-string", self.encode(values, encoder=encoder), _reasons(OK), self.pulse_id)
        if how == 1:
            values["processing_parameters"] = "y" * (1024 * 1024 + 1)
            return Case("huge-string", self.encode(values, encoder=encoder), _reasons("size-mismatch"))
        if how == 2:  # lz4 string claiming 64 MiB when decompressed
            frames = self.encode(values, encoder=encoder)
            header = json.loads(frames[1]) if frames[1][:1] == b"{" else None
            if header is None:
                return self.valid()
            for channel in header["channels"]:
                if channel["name"] == "processing_parameters":
                    channel["compression"] = "lz4"
            frames = self.with_data_header(frames, header)
            i = self.channel_index(frames, "processing_parameters")
            frames[i] = struct.pack("<I", 64 * 1024 * 1024) + bytes([0x1F, 0x61, 1, 0]) + bytes([255] * 40)
            # Read in the other byte order the prefix says 4 bytes (some senders get it wrong, see
            # compression.lz4_size), so this may be accepted; strings are never decoded on arrival.
            return Case("huge-string", frames, _reasons(OK, "size-mismatch", "bad-compression"), self.pulse_id)
        frames = self.encode(values, encoder=encoder)  # invalid UTF-8 is shown with replacement characters
        i = self.channel_index(frames, "processing_parameters")
        frames[i] = b"\xff\xfe<script>\xc3(" * 100
        return Case("huge-string", frames, _reasons(OK), self.pulse_id)

    def odd_shape(self) -> Case:
        shape = self.rng.choice(((1, 1), (10000, 10), (10, 10000), (1, 2000), (0, 5), (2, 3, 4)))
        image = self.nprng.uniform(0, 100, shape).astype(np.float32)
        values = self.values(image)
        if image.ndim != 2 or image.size == 0:
            values.pop("image_profile_x")
            values.pop("image_profile_y")
        return Case("odd-shape", self.encode(values, encoder=Encoder()), _reasons(OK), self.pulse_id)

    def missing_channel(self) -> Case:
        values: dict[str, Any] = self.values()
        name = self.rng.choice(("image", "beam_energy", "image_profile_x", "processing_parameters"))
        values[name] = None
        return Case("missing-channel", self.encode(values), _reasons(OK), self.pulse_id)

    def channel_churn(self) -> Case:
        values = self.values()
        for name in self.rng.sample(CHANNEL_POOL, self.rng.randrange(0, 4)):
            values[name] = np.float64(self.rng.random()) if name != "processing_parameters" else "text"
        for name in self.rng.sample(("beam_energy", "repetition_rate", "image_profile_y"), self.rng.randrange(0, 2)):
            values.pop(name, None)
        return Case("channel-churn", self.encode(values, encoder=Encoder()), _reasons(OK), self.pulse_id)

    def pulse_backwards(self) -> Case:
        self.pulse_id = max(1, self.pulse_id - self.rng.choice((1, 100, 10_000)))  # a sender restart
        return Case("pulse-backwards", self.base(), _reasons(OK), self.pulse_id)

    def odd_types(self) -> Case:
        values = self.values()
        values["flag"] = np.bool_(True)
        values["counter"] = np.uint64(2**64 - 1)
        values["small"] = np.int8(-128)
        values["image"] = self._image.astype(np.dtype(">u2"))
        frames = self.encode(values, encoder=Encoder(), encoding=self.rng.choice(("little", "big")))
        return Case("odd-types", frames, _reasons(OK), self.pulse_id)


class Oracle:
    """What the app must make of a sequence of cases (same decoder state, same recording rules)."""

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.ingest = Ingest(ChannelNames(), RoiSet(), Background("oracle"), self._record_bad)
        self.accepted = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.record_bad: collections.Counter[str] = collections.Counter()
        self.by_kind: collections.Counter[str] = collections.Counter()
        self.mismatches: list[str] = []
        self.last_accepted_pulse: int | None = None

    def _record_bad(self, exc: BsreadError) -> None:
        self.record_bad[exc.reason] += 1

    def feed(self, case: Case) -> str:
        """Outcome of one case: OK or the rejection reason; records expectation mismatches."""
        self.by_kind[case.kind] += 1
        try:
            message = self.decoder.decode(case.frames)
        except BsreadError as exc:
            outcome = exc.reason
            self.rejected[outcome] += 1
        else:
            outcome = OK
            self.accepted += 1
            self.ingest.pulse(message)
            self.last_accepted_pulse = message.pulse_id
        if case.expect is not None and outcome not in case.expect:
            self.mismatches.append(f"{case.kind}: got {outcome}, expected one of {sorted(case.expect)}")
        return outcome
