"""Cursors: round trip, and refusal of anything this API did not issue for this listing."""

from __future__ import annotations

import base64
import json

import pytest

from shared.errors import BadRequest
from shared.pagination import decode_cursor, encode_cursor

SORTS = {"sk": "CONV#"}


def test_cursor_round_trips_a_last_evaluated_key() -> None:
    key = {"pk": {"S": "USER#1"}, "sk": {"S": "CONV#2"}}
    cursor = encode_cursor(key)
    assert cursor is not None
    assert "USER" not in cursor
    assert decode_cursor(cursor, partition={"pk": "USER#1"}, sort_prefixes=SORTS) == key


def test_no_more_pages_means_no_cursor() -> None:
    assert encode_cursor(None) is None
    assert decode_cursor(None, partition={"pk": "x"}, sort_prefixes=SORTS) is None


def test_cursor_naming_another_users_partition_is_refused() -> None:
    cursor = encode_cursor({"pk": {"S": "USER#victim"}, "sk": {"S": "CONV#1"}})
    with pytest.raises(BadRequest) as refusal:
        decode_cursor(cursor, partition={"pk": "USER#attacker"}, sort_prefixes=SORTS)
    assert refusal.value.error_code == "invalid_cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90IGpzb24",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": "USER#1", "other": "x"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": 5}).encode()).decode(),
        # The right partition, but a key DynamoDB would refuse: sort key missing, or outside the listed range.
        base64.urlsafe_b64encode(json.dumps({"pk": "USER#1"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": "USER#1", "sk": "PROMPT#1"}).encode()).decode(),
        # A partition that merely starts like the caller's.
        base64.urlsafe_b64encode(json.dumps({"pk": "USER#10", "sk": "CONV#1"}).encode()).decode(),
    ],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(cursor, partition={"pk": "USER#1"}, sort_prefixes=SORTS)
