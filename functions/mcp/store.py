"""The MCP registry's storage: pynamodb records in the mcp table.

Items (pk / sk):
  STAGE / SERVER#<id>              a stage-wide server, seen by every user with `mcp.use`.
  USER#<id> / SERVER#<id>          a user's own server, seen by that user alone.
  NAME#<name, casefolded> / STAGE or USER#<id>
                                   a server name taken, by the stage or by one user. A user's server may take a name
                                   no stage server holds; a stage server one no server at all holds, so no user ever
                                   sees two servers of one name (their tools would share a prefix toward the model).

Secret values never reach this module in clear: a record holds them sealed (shared.secrets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import BooleanAttribute, JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.errors import BadRequest, Conflict, NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import (
    condition_failed,
    string_list,
    table_meta,
    transact,
    transaction_cancellations,
    update_existing,
)
from shared.tables import MCP

STAGE_PARTITION = "STAGE"
SERVER_PREFIX = "SERVER#"
NAME_PREFIX = "NAME#"
# DynamoDB's BatchGetItem limit: two keys (stage, own) per id asked for.
MAX_BATCH_KEYS = 100
_TRANSACTION_ATTEMPTS = 4

_Meta = table_meta(MCP)


def now() -> datetime:
    return datetime.now(UTC)


class ServerRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    server_id = UnicodeAttribute(attr_name="serverId")
    name = UnicodeAttribute()
    display_name = UnicodeAttribute(attr_name="displayName")
    type = UnicodeAttribute()
    scope = UnicodeAttribute()
    # The owner of a `user` server; none for a stage server.
    owner_id = UnicodeAttribute(attr_name="ownerId", null=True)
    created_by = UnicodeAttribute(attr_name="createdBy")
    # http: {url}; stdio: {command, args}. The secret mapping (headers, env) is sealed apart.
    config = JSONAttribute()
    secret_names = string_list()
    sealed_secrets = UnicodeAttribute(attr_name="sealedSecrets", null=True)
    # true, false, or a list of tool names.
    require_approval = JSONAttribute(attr_name="requireApproval")
    enabled = BooleanAttribute()
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)


class NameRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    server_id = UnicodeAttribute(attr_name="serverId")


class NameTakenError(Exception):
    """Another server the same users would see already has this name."""


# Keys -------------------------------------------------------------------------------------------------------


def user_partition(user_id: str) -> str:
    return f"USER#{user_id}"


def owner_partition(owner_id: str | None) -> str:
    return STAGE_PARTITION if owner_id is None else user_partition(owner_id)


def name_partition(name: str) -> str:
    return NAME_PREFIX + name.casefold()


def _visible_keys(user_id: str, server_id: str) -> list[tuple[str, str]]:
    return [(STAGE_PARTITION, SERVER_PREFIX + server_id), (user_partition(user_id), SERVER_PREFIX + server_id)]


# Servers ----------------------------------------------------------------------------------------------------


def new_server(
    *,
    server_id: str,
    owner_id: str | None,
    created_by: str,
    name: str,
    display_name: str,
    server_type: str,
    config: dict[str, Any],
    secret_names: Sequence[str],
    sealed_secrets: str | None,
    require_approval: bool | list[str],
    enabled: bool,
) -> ServerRecord:
    """A server not yet stored; `add_server` stores it."""
    return ServerRecord(
        owner_partition(owner_id), SERVER_PREFIX + server_id, server_id=server_id, name=name,
        display_name=display_name, type=server_type, scope="stage" if owner_id is None else "user",
        owner_id=owner_id, created_by=created_by, config=config, secret_names=list(secret_names),
        sealed_secrets=sealed_secrets, require_approval=require_approval, enabled=enabled,
    )  # fmt: skip


def add_server(record: ServerRecord) -> None:
    """Store `record` with its name taken; `NameTakenError` if a server the same users see holds the name.

    A user's server checks the stage's claim in its transaction. A stage server takes the stage's claim first and
    then reads every claim of the name: a user's claim there was written before (their transaction saw no stage
    claim), so the stage server yields and is removed. Each side sees the other, whatever the interleaving.
    """
    claim = NameRecord(name_partition(record.name), record.pk, server_id=record.server_id)

    def write(transaction: TransactWrite) -> None:
        transaction.save(record, condition=ServerRecord.pk.does_not_exist())
        transaction.save(claim, condition=NameRecord.pk.does_not_exist())
        if record.owner_id is not None:
            transaction.condition_check(
                NameRecord, name_partition(record.name), STAGE_PARTITION, condition=NameRecord.pk.does_not_exist()
            )

    try:
        _transact(write)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" in transaction_cancellations(error):
            raise NameTakenError from None
        raise
    if record.owner_id is None:
        claims = NameRecord.query(name_partition(record.name), consistent_read=True, attributes_to_get=["sk"])
        if any(other.sk != STAGE_PARTITION for other in claims):
            delete_server(record)
            raise NameTakenError


def visible_server(user_id: str, server_id: str) -> ServerRecord:
    """The stage's server or the user's own with this id (one BatchGetItem), else 404."""
    found = visible_servers(user_id, [server_id])
    if not found:
        raise server_not_found()
    return found[0]


def visible_servers(user_id: str, server_ids: Iterable[str]) -> list[ServerRecord]:
    """The stage's servers and the user's own among `server_ids`, in the order asked; unknown ids left out.

    One BatchGetItem for up to 50 ids (pynamodb asks again only for what DynamoDB leaves unprocessed).
    """
    ids = list(dict.fromkeys(server_ids))
    keys = [key for server_id in ids for key in _visible_keys(user_id, server_id)]
    if not keys:
        return []
    found = {record.server_id: record for record in ServerRecord.batch_get(keys, consistent_read=True)}
    return [found[server_id] for server_id in ids if server_id in found]


def stage_servers(server_ids: Iterable[str]) -> list[ServerRecord]:
    """The stage's servers among `server_ids` (never a user's own); unknown ids left out. One BatchGetItem."""
    keys = [(STAGE_PARTITION, SERVER_PREFIX + server_id) for server_id in dict.fromkeys(server_ids)]
    return list(ServerRecord.batch_get(keys, consistent_read=True)) if keys else []


def servers_page(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[ServerRecord], str | None]:
    """A page of what the user sees: the stage's servers, then their own, each in registration order.

    The cursor names the partition it continues, so a page that ends the stage's servers hands over to the
    user's own from their first item.
    """
    own = user_partition(user_id)
    start = None
    partition = STAGE_PARTITION
    if cursor:
        for partition in (STAGE_PARTITION, own):
            try:
                start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": SERVER_PREFIX})
                break
            except BadRequest:  # not this partition's cursor; the last one tells the caller
                if partition == own:
                    raise
    items: list[ServerRecord] = []
    while True:
        results = ServerRecord.query(
            partition, ServerRecord.sk.startswith(SERVER_PREFIX), limit=limit - len(items), last_evaluated_key=start
        )
        page = next(results.page_iter)
        items += [ServerRecord.from_raw_data(raw) for raw in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        if last:
            return items, encode_cursor(last)
        if partition == own:
            return items, None
        partition, start = own, None
        if len(items) >= limit:
            return items, encode_cursor({"pk": own, "sk": SERVER_PREFIX})


def update_server(record: ServerRecord, changes: dict[str, Any]) -> ServerRecord:
    """Apply `changes` (attribute name to value) to a stored server; 404 if it was deleted meanwhile."""
    try:
        update_existing(record, changes, updated_at=now())
    except UpdateError as error:
        if condition_failed(error):
            raise server_not_found() from None
        raise
    return record


def delete_server(record: ServerRecord) -> None:
    """Delete the server and free its name; 404 if it is already gone."""
    claim = NameRecord(name_partition(record.name), record.pk)

    def write(transaction: TransactWrite) -> None:
        transaction.delete(record, condition=ServerRecord.pk.exists())
        transaction.delete(claim)

    try:
        _transact(write)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" in transaction_cancellations(error):
            raise server_not_found() from None
        raise


def own_servers_page(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[ServerRecord], str | None]:
    """A page of the servers the user registered for themselves, in registration order: one Query."""
    partition = user_partition(user_id)
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": SERVER_PREFIX})
    results = ServerRecord.query(
        partition, ServerRecord.sk.startswith(SERVER_PREFIX), limit=limit, last_evaluated_key=start
    )
    page = next(results.page_iter)
    return [ServerRecord.from_raw_data(raw) for raw in page.get("Items", [])], encode_cursor(
        page.get("LastEvaluatedKey")
    )


def delete_own_servers(records: Sequence[ServerRecord]) -> int:
    """Delete the user's servers and free their names, in batches; returns how many items went."""
    with ServerRecord.batch_write() as batch:
        for record in records:
            batch.delete(record)
            batch.delete(NameRecord(name_partition(record.name), record.pk))
    return 2 * len(records)


def server_not_found() -> NotFound:
    return NotFound("MCP server not found", code="mcp_server_not_found")


def _transact(write: Callable[[TransactWrite], None]) -> None:
    transact(
        write,
        model=ServerRecord,
        conflict=Conflict("MCP servers are being changed by another request; try again", code="mcp_write_conflict"),
        attempts=_TRANSACTION_ATTEMPTS,
    )
