"""Opaque cursors for DynamoDB pagination: a page's LastEvaluatedKey in, the next page out.

A cursor is base64url JSON of string key attributes. Decoding checks it names the partition the caller is
listing, so a crafted cursor can never start a query inside another user's items.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.errors import BadRequest

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    if not last_evaluated_key:
        return None
    plain = {name: _plain_string(value) for name, value in last_evaluated_key.items()}
    raw = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, *, partition: dict[str, str], allowed: tuple[str, ...]) -> dict[str, Any] | None:
    """The ExclusiveStartKey for `cursor`, in DynamoDB's attribute-value form, or None for the first page.

    `partition` maps the queried partition key attribute to the value the caller is allowed to list;
    `allowed` names every attribute a key of this query may carry.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("The cursor is not one this API issued", code="invalid_cursor") from None
    if (
        not isinstance(decoded, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.items())
        or not set(decoded) <= set(allowed)
        or any(decoded.get(name) != value for name, value in partition.items())
    ):
        raise BadRequest("The cursor is not one this API issued", code="invalid_cursor")
    return {name: {"S": value} for name, value in decoded.items()}


def _plain_string(value: Any) -> str:
    if isinstance(value, dict) and "S" in value:
        return str(value["S"])
    if isinstance(value, str):
        return value
    raise TypeError(f"only string key attributes can go into a cursor, got {value!r}")


def page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE_SIZE
    return max(1, min(MAX_PAGE_SIZE, limit))
