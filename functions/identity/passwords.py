"""Password hashing with scrypt (memory-hard, salted, in the standard library), and the password policy.

Hashes record their own parameters (`scrypt$ln=17,r=8,p=1$salt$hash`), so raising the cost later leaves
existing passwords verifiable and `needs_rehash` tells when to upgrade one on its next successful login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from shared.errors import ValidationFailed

_BLOCK_SIZE = 8
_PARALLELISM = 1
_KEY_BYTES = 32
MIN_LENGTH = 10
MAX_LENGTH = 256
MIN_DISTINCT_CHARACTERS = 4


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"The password needs at least {MIN_LENGTH} characters", code="weak_password")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"The password may have at most {MAX_LENGTH} characters", code="weak_password")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        raise ValidationFailed("The password is too repetitive", code="weak_password")


def hash_password(password: str, cost: int) -> str:
    salt = os.urandom(16)
    derived = _derive(password, salt, cost, _BLOCK_SIZE, _PARALLELISM)
    return f"scrypt$ln={cost},r={_BLOCK_SIZE},p={_PARALLELISM}${_b64(salt)}${_b64(derived)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time comparison against a stored hash; a malformed hash never matches."""
    try:
        scheme, params, salt, expected = encoded.split("$")
        values = dict(part.split("=") for part in params.split(","))
        cost, block_size, parallelism = int(values["ln"]), int(values["r"]), int(values["p"])
    except (ValueError, KeyError):
        return False
    if scheme != "scrypt":
        return False
    derived = _derive(password, _unb64(salt), cost, block_size, parallelism)
    return hmac.compare_digest(derived, _unb64(expected))


def needs_rehash(encoded: str, cost: int) -> bool:
    return not encoded.startswith(f"scrypt$ln={cost},r={_BLOCK_SIZE},p={_PARALLELISM}$")


@lru_cache(maxsize=4)
def decoy_hash(cost: int) -> str:
    """A hash to verify against when the email is unknown, so a miss costs what a wrong password costs."""
    return hash_password(base64.b64encode(os.urandom(24)).decode(), cost)


def _derive(password: str, salt: bytes, cost: int, block_size: int, parallelism: int) -> bytes:
    n = 1 << cost
    # scrypt needs 128 * r * N bytes; allow that plus headroom.
    max_memory = 128 * block_size * n * parallelism + 4 * 1024 * 1024
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=block_size, p=parallelism, maxmem=max_memory, dklen=_KEY_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
