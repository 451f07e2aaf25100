"""The stage's token signing keys: ES256 key pairs kept in Secrets Manager (the embedded fake in local mode).

The secret holds `{"keys": [{"kid", "privateKeyPem", "createdAt"}, ...]}`, newest first: the first key signs,
every key listed still verifies, so a rotation adds a key in front and drops the oldest later.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.ids import new_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

ALGORITHM = "ES256"
# How long a container trusts the key ring it read before reading it again (picks up rotations).
KEY_RING_MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: EllipticCurvePrivateKey

    @property
    def public_key(self) -> EllipticCurvePublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        from jwt.algorithms import ECAlgorithm

        jwk: dict[str, str] = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[SigningKey, ...]

    @property
    def active(self) -> SigningKey:
        return self.keys[0]

    def find(self, kid: str) -> SigningKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.jwk() for key in self.keys]}


def new_key_entry() -> dict[str, Any]:
    """A fresh ES256 key as one entry of the secret."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"kid": new_id(), "privateKeyPem": pem, "createdAt": int(time.time())}


def parse_key_ring(secret_string: str) -> KeyRing:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    document = json.loads(secret_string)
    keys = []
    for entry in document.get("keys", []):
        private_key = serialization.load_pem_private_key(entry["privateKeyPem"].encode(), password=None)
        if not isinstance(private_key, EllipticCurvePrivateKey):
            raise ValueError(f"signing key {entry['kid']} is not an EC key")
        keys.append(SigningKey(entry["kid"], private_key))
    if not keys:
        raise ValueError("the signing key secret holds no keys")
    return KeyRing(tuple(keys))


class _KeyRingCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._read_at = 0.0

    def get(self) -> KeyRing:
        with self._lock:
            if self._ring is None or time.monotonic() - self._read_at > KEY_RING_MAX_AGE_SECONDS:
                self._ring = _read_key_ring()
                self._read_at = time.monotonic()
            return self._ring

    def is_fresh(self) -> bool:
        """True when `get` answers from memory, reading nothing."""
        with self._lock:
            return self._ring is not None and time.monotonic() - self._read_at <= KEY_RING_MAX_AGE_SECONDS

    def clear(self) -> None:
        with self._lock:
            self._ring = None


def _read_key_ring() -> KeyRing:
    from shared.aws import client
    from shared.settings import get_settings

    secret_id = get_settings().signing_keys_secret
    if not secret_id:
        raise RuntimeError("SIGNING_KEYS_SECRET is not set: the function was deployed without its signing keys")
    secret = client("secretsmanager").get_secret_value(SecretId=secret_id)
    return parse_key_ring(secret["SecretString"])


_cache = _KeyRingCache()
key_ring = _cache.get
key_ring_is_fresh = _cache.is_fresh
forget_key_ring = _cache.clear
