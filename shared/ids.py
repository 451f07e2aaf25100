"""ULIDs: 128-bit ids that sort by creation time, rendered as 26 Crockford base-32 characters."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from datetime import datetime

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
    return _encode(ms, random_part)


def derived_id(moment: datetime, *parts: str) -> str:
    """A ULID whose time is `moment` and whose random part is a hash of `parts`: the same item imported again gets
    the same id (a retried page or a second import duplicates nothing), and it still sorts by the item's time."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    ms = max(0, min(int(moment.timestamp() * 1000), (1 << 48) - 1))
    return _encode(ms, int.from_bytes(digest[:10], "big"))


def _encode(ms: int, random_part: int) -> str:
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
