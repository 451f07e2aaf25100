"""What every context's pynamodb store shares: table metadata from the table spec, string lists, and telling a
failed condition from a real storage error. Imported only by `store` modules, which load lazily."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pynamodb.attributes import ListAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.errors import Conflict
from shared.settings import get_settings
from shared.tables import Index, TableSpec


def table_meta(spec: TableSpec) -> Any:
    """A pynamodb `Meta` naming the context's table (from its environment variable) and region.

    Typed `Any`: pynamodb declares `Model.Meta` as a protocol instance, though it is a class.
    """
    return type("Meta", (), {"table_name": spec.name_from_env(), "region": get_settings().region})


def secondary_index(index: Index) -> Any:
    """A pynamodb index for one of the spec's GSIs, to assign as a model attribute (`by_owner = ...`).

    Built from the spec, so the store queries exactly the index CDK and local mode create. Typed `Any`, as
    pynamodb's index generics do not survive a class made at run time.
    """
    meta = type("Meta", (), {"index_name": index.name, "projection": AllProjection()})
    keys = {
        index.partition_key: UnicodeAttribute(hash_key=True),
        index.sort_key: UnicodeAttribute(range_key=True),
    }
    index_class = type(f"{index.name.capitalize()}Index", (GlobalSecondaryIndex,), {"Meta": meta, **keys})
    return index_class()


def update_existing(record: Model, changes: Mapping[str, Any], *, updated_at: datetime) -> None:
    """Set each attribute in `changes` (None removes it) and `updated_at`, on a record that must still exist:
    pynamodb's `UpdateError` with a failed condition means it was deleted meanwhile."""
    model = type(record)
    actions = [
        getattr(model, name).remove() if value is None else getattr(model, name).set(value)
        for name, value in {**changes, "updated_at": updated_at}.items()
    ]
    # Every Stratus table is keyed on `pk` (shared.tables).
    record.update(actions=actions, condition=getattr(model, "pk").exists())  # noqa: B009 - not on `Model`


def string_list() -> ListAttribute[str]:
    # pynamodb types `of=` as the element's Python type, though it takes the attribute class.
    return ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]


def condition_failed(error: Exception) -> bool:
    """True when a write was refused by its condition expression, the expected outcome of a lost race."""
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


def transaction_cancellations(error: Any) -> list[str | None]:
    """The cancellation reason of each item of a failed transaction, in order (None where it was not at fault)."""
    return [reason.code if reason else None for reason in (getattr(error, "cancellation_reasons", None) or [])]


def transact(
    write: Callable[[TransactWrite], None], *, model: type[Model], conflict: Conflict, attempts: int = 4
) -> None:
    """Run the transaction `write` builds on `model`'s table, again after a short random pause when DynamoDB
    cancelled it for a conflict with a concurrent transaction on the same items; `conflict` when that persists.
    A failed condition is the caller's to read (`transaction_cancellations`)."""
    for attempt in range(attempts):
        if attempt:
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not a secret
        try:
            with TransactWrite(connection=model._get_connection().connection) as transaction:
                write(transaction)
            return
        except TransactWriteError as error:
            if "TransactionConflict" not in transaction_cancellations(error):
                raise
    raise conflict
