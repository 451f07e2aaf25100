"""Local DynamoDB: moto, made to behave as DynamoDB where the code depends on it (infra.local.atomic_dynamodb)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from shared.aws import client
from shared.tables import CHAT

pytestmark = pytest.mark.usefixtures("aws")


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "TEST#transactions"}, "sk": {"S": sk}}


def _item(sk: str) -> dict[str, Any] | None:
    return client("dynamodb").get_item(TableName=CHAT.name_from_env(), Key=_key(sk)).get("Item")


def test_a_failed_transaction_changes_no_item_and_a_good_one_changes_every_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rolled back from the items it wrote, never from a copy of the table: a copy costs what the table holds."""
    from moto.dynamodb.models.table import Table

    def no_copy(self: Table, memo: Any) -> Table:
        raise AssertionError("a transaction copied a whole table")

    monkeypatch.setattr(Table, "__deepcopy__", no_copy, raising=False)
    dynamodb, table = client("dynamodb"), CHAT.name_from_env()
    dynamodb.put_item(TableName=table, Item={**_key("A"), "n": {"N": "1"}})
    writes = [
        {"Put": {"TableName": table, "Item": {**_key("B"), "n": {"N": "2"}}}},
        {"Update": {"TableName": table, "Key": _key("A"), "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "5"}}}},
        {"Delete": {"TableName": table, "Key": _key("D")}},
    ]  # fmt: skip
    failing = {"ConditionCheck": {"TableName": table, "Key": _key("C"), "ConditionExpression": "attribute_exists(pk)"}}

    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=[*writes, failing])
    assert _item("A") == {**_key("A"), "n": {"N": "1"}}
    assert _item("B") is None

    dynamodb.transact_write_items(TransactItems=writes)
    assert _item("A") == {**_key("A"), "n": {"N": "5"}}
    assert _item("B") == {**_key("B"), "n": {"N": "2"}}
