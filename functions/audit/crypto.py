"""Crypto-shredding of the audit log's personal fields: each user's are encrypted (AES-256-GCM) with a data key of
their own, kept sealed by the stage's secrets key (shared.secrets, context "audit") in an item of its own.

Deleting an account deletes that one item: the user's events stay, unchanged and append-only, and their personal
fields no longer open. What is personal: the actor's address and user agent, and any detail whose name says it
names a person (an email or its hash, a name, a phone number). The user ids stay in clear: random ids, which name
no one once the identity is gone.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from shared import secrets

SECRET_CONTEXT = "audit"
ACTOR_PERSONAL_FIELDS = ("ip", "userAgent")
# A detail named like this names a person (`email`, `emailHash`, `inviteeName`, `phone`, `contactName`).
PERSONAL_DETAIL = re.compile(r"email|name|phone|address|contact|userAgent|^ip$", re.I)
_KEY_BYTES = 32
_NONCE_BYTES = 12

Envelope = dict[str, str]


def new_key() -> bytes:
    return os.urandom(_KEY_BYTES)


def seal_key(user_id: str, key: bytes) -> str:
    return secrets.seal(base64.b64encode(key).decode(), context=SECRET_CONTEXT, record=user_id)


def unseal_key(user_id: str, sealed: str) -> bytes:
    return base64.b64decode(secrets.unseal(sealed, context=SECRET_CONTEXT, record=user_id))


def _aad(event_id: str, part: str, owner: str) -> bytes:
    # Bound to its event, its part and its key's owner: an envelope copied onto another event does not open.
    return f"{event_id}:{part}:{owner}".encode()


def seal_fields(key: bytes, fields: Mapping[str, Any], *, event_id: str, part: str, owner: str) -> Envelope:
    """`fields` encrypted for `owner`'s key: `{part, owner, nonce, data}` (base64)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(dict(fields), separators=(",", ":")).encode()
    data = AESGCM(key).encrypt(nonce, plaintext, _aad(event_id, part, owner))
    return {"part": part, "owner": owner, "nonce": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(data).decode()}  # fmt: skip


def open_fields(key: bytes, envelope: Envelope, *, event_id: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce, data = base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["data"])
    plaintext = AESGCM(key).decrypt(nonce, data, _aad(event_id, envelope["part"], envelope["owner"]))
    opened: dict[str, Any] = json.loads(plaintext)
    return opened


class KeyCache:
    """Keys opened by this container, by user (None: the user's account is being deleted). Bounded."""

    def __init__(self, size: int = 1024) -> None:
        self._keys: OrderedDict[str, bytes | None] = OrderedDict()
        self._size = size

    def get(self, user_id: str) -> tuple[bool, bytes | None]:
        if user_id not in self._keys:
            return False, None
        self._keys.move_to_end(user_id)
        return True, self._keys[user_id]

    def put(self, user_id: str, key: bytes | None) -> None:
        self._keys[user_id] = key
        self._keys.move_to_end(user_id)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def clear(self) -> None:
        self._keys.clear()
