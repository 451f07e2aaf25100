"""The one secret store: small secrets (MCP headers, channel tokens, webhook secrets) sealed with the stage's KMS key.

A secret is a JSON-able value of a few KB, encrypted with KMS `Encrypt` under the key `SECRETS_KEY_ID` names and an
encryption context naming its owning context and record (`{"context": "mcp", "record": <server id>}`). KMS refuses
to decrypt under any other context, so a ciphertext copied onto another record, or into another context's table,
does not open; and each function's role may use the key only for its own contexts (infra/functions.py). The sealed
form is base64 text, to store as a plain string attribute. Values never leave through responses: `masked` shows
what is set (names) without what it is.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from shared.aws import client
from shared.errors import ValidationFailed
from shared.settings import get_settings

# What a response shows in place of a secret value.
MASK = "••••••"
# KMS Encrypt takes at most 4 KB of plaintext.
MAX_SECRET_BYTES = 4096
# Secrets opened by this container, by (context, record, ciphertext): a ciphertext never changes what it holds, so
# a chat that uses a server's headers on every reply asks KMS once, not once a reply. Bounded; least recent goes.
_OPENED_MAX = 256
_opened: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()


class SecretUnreadable(RuntimeError):
    """A sealed secret did not open: another record's or context's ciphertext, a damaged one, or another key's."""


def _encryption_context(context: str, record: str) -> dict[str, str]:
    if not context or not record:
        raise ValueError("a secret is sealed for a context and a record")
    return {"context": context, "record": record}


def _key_id() -> str:
    key_id = get_settings().secrets_key_id
    if not key_id:
        raise RuntimeError("SECRETS_KEY_ID is not set: the function was deployed without the secrets key")
    return key_id


def seal(value: Any, *, context: str, record: str) -> str:
    """`value` (JSON-able) encrypted for `record` of `context`, as base64 text."""
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if len(plaintext) > MAX_SECRET_BYTES:
        raise ValueError(f"a secret holds at most {MAX_SECRET_BYTES} bytes of JSON")
    answer = client("kms").encrypt(
        KeyId=_key_id(), Plaintext=plaintext, EncryptionContext=_encryption_context(context, record)
    )
    return base64.b64encode(answer["CiphertextBlob"]).decode()


def unseal(sealed: str, *, context: str, record: str) -> Any:
    """The value `seal` was given for this `record` of `context`; `SecretUnreadable` if the ciphertext is not one.
    KMS is asked once per ciphertext and container (see `_opened`)."""
    key = (context, record, sealed)
    if (plaintext := _opened.get(key)) is not None:
        _opened.move_to_end(key)
        return json.loads(plaintext)
    plaintext = _decrypted(sealed, context=context, record=record)
    _opened[key] = plaintext
    while len(_opened) > _OPENED_MAX:
        _opened.popitem(last=False)
    return json.loads(plaintext)


def forget_opened_secrets() -> None:
    """Drop what this container opened (tests start each from a fresh stage)."""
    _opened.clear()


def _decrypted(sealed: str, *, context: str, record: str) -> bytes:
    from botocore.exceptions import ClientError

    try:
        ciphertext = base64.b64decode(sealed, validate=True)
        answer = client("kms").decrypt(
            KeyId=_key_id(), CiphertextBlob=ciphertext, EncryptionContext=_encryption_context(context, record)
        )
    except binascii.Error:
        raise SecretUnreadable(f"the sealed secret of {context} record {record} is not base64") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
            raise SecretUnreadable(f"the sealed secret of {context} record {record} does not open ({code})") from None
        raise
    plaintext: bytes = answer["Plaintext"]
    return plaintext


def masked(names: Iterable[str]) -> dict[str, str]:
    """`{name: "••••••"}` for each name: what a response shows of a secret mapping (headers, env)."""
    return dict.fromkeys(names, MASK)


def merged_secrets(stored: Mapping[str, str], sent: Mapping[str, str]) -> dict[str, str]:
    """The secret mapping after an update that sent `sent`: a value sent as the mask keeps the stored one (a client
    sending back what it was shown changes nothing); a name left out is removed; any other value replaces."""
    unknown = sorted(name for name, value in sent.items() if value == MASK and name not in stored)
    if unknown:
        raise ValidationFailed("a masked value can only keep a secret that is already stored", code="unknown_secret")
    return {name: stored[name] if value == MASK else value for name, value in sent.items()}
