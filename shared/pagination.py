"""Opaque cursors for DynamoDB pagination: a page's LastEvaluatedKey in, the next page out.

A cursor is base64url JSON of string key attributes. Decoding checks it names the partition the caller is
listing, so a crafted cursor can never start a query inside another user's items.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
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


def decode_cursor(
    cursor: str | None, *, partition: Mapping[str, str], sort_prefixes: Mapping[str, str]
) -> dict[str, Any] | None:
    """The ExclusiveStartKey for `cursor`, in DynamoDB's attribute-value form, or None for the first page.

    A cursor must name exactly the key attributes of the query it continues: `partition` maps each partition
    key to the value the caller may list (matched in full), `sort_prefixes` maps every other key attribute to
    the prefix its value must have. So a crafted cursor can neither start inside another user's items nor make
    DynamoDB refuse the query.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _not_ours() from None
    if (
        not isinstance(decoded, dict)
        or set(decoded) != set(partition) | set(sort_prefixes)
        or not all(isinstance(value, str) for value in decoded.values())
        or any(decoded[name] != value for name, value in partition.items())
        or any(not decoded[name].startswith(prefix) for name, prefix in sort_prefixes.items())
    ):
        raise _not_ours()
    return {name: {"S": value} for name, value in decoded.items()}


def _not_ours() -> BadRequest:
    return BadRequest("The cursor is not one this API issued", code="invalid_cursor")


def _plain_string(value: Any) -> str:
    if isinstance(value, dict) and "S" in value:
        return str(value["S"])
    if isinstance(value, str):
        return value
    raise TypeError(f"only string key attributes can go into a cursor, got {value!r}")
