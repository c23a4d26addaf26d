"""Serial numbers that are never reused in this process, for keying caches by object.

An `id()` is reused as soon as its object is gone, so a cache keyed by ids can answer a new frame
with an old frame's result. `next_serial()` is thread-safe (itertools.count under the GIL).
"""

from __future__ import annotations

import itertools

_SERIALS = itertools.count()


def next_serial() -> int:
    return next(_SERIALS)
