"""ULIDs: 128-bit ids that sort by creation time, rendered as 26 Crockford base-32 characters."""

from __future__ import annotations

import os
import re
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_id(now_ms: int | None = None) -> str:
    """A new ULID; ids made in the same millisecond by this process still sort in the order they were made."""
    global _last_ms, _last_random
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        same_ms = ms == _last_ms
        random_part = (_last_random + 1) & ((1 << 80) - 1) if same_ms else int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_random = ms, random_part
    value = (ms << 80) | random_part
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(value: str) -> bool:
    return bool(ULID_PATTERN.match(value))


def id_time_ms(value: str) -> int:
    """The millisecond a ULID was made in (its first 48 bits)."""
    if not is_id(value):
        raise ValueError(f"{value!r} is not a ULID")
    milliseconds = 0
    for char in value[:10]:
        milliseconds = milliseconds * 32 + _ALPHABET.index(char)
    return milliseconds
