"""Make moto's DynamoDB behave as the real service does where local mode and the tests depend on it.

- One request at a time, as atomically as DynamoDB: moto copies a table's state while running a transaction, and
  a write from another thread during that copy fails with "dictionary changed size during iteration". Each
  request takes well under a millisecond in memory, so serializing them costs little.
- A Query of the base table reads its one partition: moto 5.1 sorts every item of the table for every Query (a
  conversation's 20 messages took 2 s to read out of a table of 20,000 items, measured here), where DynamoDB reads
  only the partition asked for. Queries of an index still visit the whole table, as moto keeps no index.
- A transaction costs what its items cost: moto 5.1 deep-copies every table a transaction names, once per item,
  to roll back a failure, so each one took longer as the table grew (the reply logs' flushes slowed every later
  request of a run). The items the transaction touches are kept instead, and put back if it fails.
"""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace
from typing import Any

_lock = threading.RLock()
_installed = False
# The partition the Query being answered reads (requests are answered one at a time, under `_lock`).
_querying: dict[str, Any] = {}
_INDEX_NAME = 6


def make_moto_dynamodb_atomic() -> None:
    """Idempotent: wraps moto's DynamoDB request dispatch in one process-wide lock, and answers a base-table Query
    from its partition alone."""
    global _installed  # noqa: PLW0603 - patching a library is process-wide by nature
    if _installed:
        return
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    dispatch = DynamoHandler.call_action
    query, all_items = Table.query, Table.all_items

    def atomic_call_action(self: Any) -> Any:
        with _lock:
            return dispatch(self)

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # Table.query(hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
        # projection_expressions, index_name, ...)
        index_name = kwargs.get("index_name", args[_INDEX_NAME] if len(args) > _INDEX_NAME else None)
        if index_name is not None or hash_key is None or not self.range_key_attr:
            return query(self, hash_key, *args, **kwargs)
        _querying.update(table=self, hash_key=hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _querying.clear()

    def items_to_query(self: Any) -> Any:
        table: Any = _querying.get("table")
        if table is not self:
            return all_items(self)
        partition = table.items.get(_querying["hash_key"]) or {}
        return sorted(partition.values(), key=lambda item: item.range_key)

    transact_write_items = DynamoDBBackend.transact_write_items

    def item_snapshot_transaction(self: Any, transact_items: list[dict[str, Any]]) -> None:
        kept = [_kept_item(self, item) for item in transact_items]
        try:
            transact_write_items(self, transact_items)
        except Exception:
            for table_name, key, before in reversed([entry for entry in kept if entry is not None]):
                if before is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before)
            raise

    # moto's transaction copies tables through its module's `copy.deepcopy`: tables are now kept by item above.
    dynamodb_models.copy = SimpleNamespace(  # type: ignore[attr-defined,assignment]
        deepcopy=lambda value, *args: value if isinstance(value, Table) else copy.deepcopy(value, *args),
        copy=copy.copy,
    )
    DynamoDBBackend.transact_write_items = item_snapshot_transaction  # type: ignore[method-assign]
    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]
    Table.all_items = items_to_query  # type: ignore[method-assign]
    _installed = True


def _kept_item(backend: Any, item: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(table, key, the item's attributes before the transaction, or None if it did not exist) for an item a
    transaction writes; None for a condition check or a malformed item (moto's own checks refuse it)."""
    try:
        op_type, op = next(iter(item.items()))
        if op_type not in ("Put", "Delete", "Update"):
            return None
        table_name = op["TableName"]
        table = backend.get_table(table_name)
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        current = backend.get_item(table_name, key)
    except Exception:
        return None
    return table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
