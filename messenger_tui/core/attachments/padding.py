"""Size padding: the relay sees a size bucket, not the file's exact size.

Signal pads an attachment's plaintext to the next bucket of
``max(541, floor(1.05 ** ceil(log(size) / log(1.05))))`` (libsignal-service's
``PaddingInputStream.getPaddedSize``): buckets grow by 5 %, so padding costs at most 5 % and a
size is known only to within 5 %. Signal computes it in floating point; we define the buckets
exactly, ``floor(21**k / 20**k)`` in integers, so sender and receiver (and any other
implementation) agree on every size. The two definitions give the same bucket for every size
below 305,210,939,625 bytes (about 284 GiB; bucket 542, where ``1.05 ** k`` in doubles first
lands on the other side of an integer); the tests check every bucket edge up to 256 GiB.
"""

from __future__ import annotations

import math
from typing import Final

#: The smallest padded size (Signal's floor): every file under it looks the same.
MIN_PADDED_SIZE: Final = 541
#: The largest attachment size the format allows (1 TiB); relays cap far lower (100 MiB).
MAX_ATTACHMENT_SIZE: Final = 1 << 40


def bucket(k: int) -> int:
    """The ``k``-th size bucket, ``floor(1.05 ** k)`` computed exactly."""
    if k < 0:
        raise ValueError("bucket index must be non-negative")
    value: int = 21**k // 20**k  # (int ** int is Any to mypy: a negative power is a float)
    return value


def padded_size(size: int) -> int:
    """The padded plaintext size of a ``size``-byte file: the smallest bucket at least
    ``size`` and at least :data:`MIN_PADDED_SIZE`."""
    if size < 0:
        raise ValueError("size must be non-negative")
    if size > MAX_ATTACHMENT_SIZE:
        raise ValueError(f"attachments are at most {MAX_ATTACHMENT_SIZE} bytes")
    if size <= MIN_PADDED_SIZE:
        return MIN_PADDED_SIZE
    # the float estimate is off by at most one bucket; the integer loops settle it exactly
    k = math.ceil(math.log(size) / math.log(1.05))
    while k > 0 and bucket(k - 1) >= size:
        k -= 1
    while bucket(k) < size:
        k += 1
    return bucket(k)
