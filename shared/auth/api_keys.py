"""API keys: how they look, how they are stored (hashed), and how a presented key resolves to its principal.

The identity context writes these items; verification reads them here so the authorizer and every function
check keys with the same code. A key is 256 random bits, so one SHA-256 (not a slow KDF) is the right hash:
the lookup is a single GetItem by that hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from shared.auth.principal import Principal, permissions_of
from shared.errors import Unauthorized
from shared.tables import IDENTITY

API_KEY_PREFIX = "sk-stratus-"
# What resolving a key reads of the identity table, and nothing more: functions that re-resolve a key (its owner
# changed since the authorizer's cached answer) are granted exactly these partitions and attributes, so they can
# never read a password hash or a session.
API_KEY_RESOLUTION_PARTITIONS = ("APIKEY#*", "USER#*", "ROLE#*")
_KEY_ATTRIBUTES = ("userId", "keyId", "permissions", "expiresAt")
_USER_ATTRIBUTES = ("status", "roles")
_ROLE_ATTRIBUTES = ("permissions",)
API_KEY_RESOLUTION_ATTRIBUTES = tuple(
    dict.fromkeys(("pk", "sk", *_KEY_ATTRIBUTES, *_USER_ATTRIBUTES, *_ROLE_ATTRIBUTES))
)


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_item_key(key_hash: str) -> tuple[str, str]:
    return f"APIKEY#{key_hash}", "APIKEY"


def user_item_key(user_id: str) -> tuple[str, str]:
    return f"USER#{user_id}", "PROFILE"


def role_item_key(role: str) -> tuple[str, str]:
    return f"ROLE#{role}", "ROLE"


def resolve_api_key(raw_key: str) -> Principal:
    """The principal behind a presented key: its own permissions, cut to what its owner's roles still grant."""
    resolved_at_ms = int(time.time() * 1000)
    key_item = _get_item(api_key_item_key(hash_api_key(raw_key)), _KEY_ATTRIBUTES)
    if key_item is None:
        raise Unauthorized("The API key is not valid", code="invalid_api_key")
    expires_at = _number(key_item.get("expiresAt"))
    if expires_at is not None and expires_at <= time.time():
        raise Unauthorized("The API key has expired", code="invalid_api_key")
    user_id = _string(key_item["userId"])
    user = _get_item(user_item_key(user_id), _USER_ATTRIBUTES)
    if user is None or _string(user.get("status", {"S": "active"})) != "active":
        raise Unauthorized("The API key is not valid", code="invalid_api_key")
    roles = tuple(_strings(user.get("roles")))
    custom: dict[str, list[str]] = {}
    for role in roles:
        role_item = _get_item(role_item_key(role), _ROLE_ATTRIBUTES)
        if role_item is not None:
            custom[role] = _strings(role_item.get("permissions"))
    allowed = permissions_of(roles, custom)
    key_permissions = frozenset(_strings(key_item.get("permissions")))
    # "*" on a key means "whatever my roles grant"; a role granting "*" admits any listed permission.
    if "*" in key_permissions:
        effective = allowed
    elif "*" in allowed:
        effective = key_permissions
    else:
        effective = key_permissions & allowed
    return Principal(
        user_id=user_id,
        roles=roles,
        permissions=effective,
        auth_type="api_key",
        expires_at=expires_at,
        api_key_id=_string(key_item["keyId"]),
        verified_at_ms=resolved_at_ms,
    )


def _get_item(key: tuple[str, str], attributes: tuple[str, ...]) -> dict[str, Any] | None:
    from shared.aws import client

    pk, sk = key
    names = {f"#a{index}": name for index, name in enumerate(attributes)}
    response = client("dynamodb").get_item(
        TableName=IDENTITY.name_from_env(),
        Key={"pk": {"S": pk}, "sk": {"S": sk}},
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


def _string(value: dict[str, Any]) -> str:
    return str(value["S"])


def _strings(value: dict[str, Any] | None) -> list[str]:
    if not value:
        return []
    if "L" in value:
        return [str(v["S"]) for v in value["L"]]
    if "SS" in value:
        return [str(v) for v in value["SS"]]
    return []


def _number(value: dict[str, Any] | None) -> int | None:
    if not value or "N" not in value:
        return None
    return int(float(value["N"]))
