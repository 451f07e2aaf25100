"""Agents' storage: pynamodb records in the agents table.

Items (pk / sk):
  AGENTS / AGENT#<agentId>            an agent of the stage: its settings, and what built its vector index (the
                                      embedder's id and dimension and the index generation; none before its first
                                      document is processed). gsi1 (sparse): CREATOR#<userId> / AGENT#<agentId>, the
                                      agents a user created, for their export; cleared when the user is deleted.
  AGENT#<agentId> / DOCUMENT#<docId>  one of its documents: what was declared at upload, its status and, once
                                      processed, its page and chunk counts. `attempt` counts processing runs: only
                                      the latest run may finish the document, so a repeated event never reports a
                                      stale outcome.

The chunks themselves live in the stage's vector bucket (functions.agents.vectors), keyed `<docId>:<ordinal>`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError
from pynamodb.models import Model

from functions.agents import DOCUMENTS_PREFIX
from shared.aws import delete_partition
from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, string_list, table_meta, update_existing
from shared.tables import AGENTS

STAGE_PARTITION = "AGENTS"
AGENT_PREFIX = "AGENT#"
DOCUMENT_PREFIX = "DOCUMENT#"
CREATOR_PREFIX = "CREATOR#"

_Meta = table_meta(AGENTS)


def now() -> datetime:
    return datetime.now(UTC)


class AgentRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    agent_id = UnicodeAttribute(attr_name="agentId")
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    instructions = UnicodeAttribute(default="")
    model = UnicodeAttribute(null=True)
    provider = UnicodeAttribute(null=True)
    temperature = NumberAttribute(null=True)
    max_tokens = NumberAttribute(attr_name="maxTokens", null=True)
    mcp_servers = string_list()
    knowledge_enabled = BooleanAttribute(attr_name="knowledgeEnabled", default=True)
    top_k = NumberAttribute(attr_name="topK", default=5)
    min_score = NumberAttribute(attr_name="minScore", null=True)
    status = UnicodeAttribute(default="active")
    # The user who created it; cleared when that user's account is deleted (the agent stays with the stage).
    created_by = UnicodeAttribute(attr_name="createdBy", null=True)
    embedder_id = UnicodeAttribute(attr_name="embedderId", null=True)
    embedder_dimension = NumberAttribute(attr_name="embedderDimension", null=True)
    embedder_offline = BooleanAttribute(attr_name="embedderOffline", null=True)
    # 0 until an index exists; each embedder change builds the next generation's index.
    index_generation = NumberAttribute(attr_name="indexGeneration", default=0)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)

    by_creator = secondary_index(AGENTS.index("gsi1"))


class DocumentRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    document_id = UnicodeAttribute(attr_name="documentId")
    agent_id = UnicodeAttribute(attr_name="agentId")
    file_name = UnicodeAttribute(attr_name="fileName")
    content_type = UnicodeAttribute(attr_name="contentType")
    size_bytes = NumberAttribute(attr_name="sizeBytes")
    status = UnicodeAttribute()
    pages = NumberAttribute(null=True)
    chunks = NumberAttribute(null=True)
    error_code = UnicodeAttribute(attr_name="errorCode", null=True)
    error_message = UnicodeAttribute(attr_name="errorMessage", null=True)
    created_by = UnicodeAttribute(attr_name="createdBy", null=True)
    upload_expires_at = UTCDateTimeAttribute(attr_name="uploadExpiresAt")
    processing_deadline = UTCDateTimeAttribute(attr_name="processingDeadline", null=True)
    attempt = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    processed_at = UTCDateTimeAttribute(attr_name="processedAt", null=True)


# Keys -------------------------------------------------------------------------------------------------------


def agent_partition(agent_id: str) -> str:
    return AGENT_PREFIX + agent_id


def creator_partition(user_id: str) -> str:
    return CREATOR_PREFIX + user_id


def agent_not_found() -> NotFound:
    return NotFound("Agent not found", code="not_found")


def document_not_found() -> NotFound:
    return NotFound("Document not found", code="not_found")


# Agents -----------------------------------------------------------------------------------------------------


def new_agent(agent_id: str, created_by: str, settings: dict[str, Any]) -> AgentRecord:
    return AgentRecord(
        STAGE_PARTITION, AGENT_PREFIX + agent_id, agent_id=agent_id, created_by=created_by,
        gsi1pk=creator_partition(created_by), gsi1sk=AGENT_PREFIX + agent_id, **settings,
    )  # fmt: skip


def add_agent(record: AgentRecord) -> None:
    record.save(condition=AgentRecord.pk.does_not_exist())


def get_agent(agent_id: str) -> AgentRecord:
    try:
        return AgentRecord.get(STAGE_PARTITION, AGENT_PREFIX + agent_id, consistent_read=True)
    except DoesNotExist:
        raise agent_not_found() from None


def find_agent(agent_id: str) -> AgentRecord | None:
    try:
        return get_agent(agent_id)
    except NotFound:
        return None


def update_agent(record: AgentRecord, changes: dict[str, Any]) -> AgentRecord:
    """Set each attribute in `changes` (None removes it) on an agent that must still exist."""
    try:
        update_existing(record, changes, updated_at=now())
    except UpdateError as error:
        if condition_failed(error):
            raise agent_not_found() from None
        raise
    return record


def switch_index(record: AgentRecord, *, embedder_id: str, dimension: int, offline: bool) -> bool:
    """Move the agent to the next index generation, built by this embedder; False if another run moved it first
    (the caller reads the agent again)."""
    generation = int(record.index_generation or 0)
    try:
        record.update(
            actions=[
                AgentRecord.embedder_id.set(embedder_id), AgentRecord.embedder_dimension.set(dimension),
                AgentRecord.embedder_offline.set(offline), AgentRecord.index_generation.set(generation + 1),
            ],
            condition=AgentRecord.pk.exists() & (AgentRecord.index_generation == generation),
        )  # fmt: skip
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def delete_agent(record: AgentRecord) -> None:
    try:
        record.delete(condition=AgentRecord.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            raise agent_not_found() from None
        raise


def agents_page(*, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
    """The stage's agents in creation order: one Query."""
    start = decode_cursor(cursor, partition={"pk": STAGE_PARTITION}, sort_prefixes={"sk": AGENT_PREFIX})
    results = AgentRecord.query(
        STAGE_PARTITION, AgentRecord.sk.startswith(AGENT_PREFIX), limit=limit, last_evaluated_key=start
    )
    page = next(results.page_iter)
    items = [AgentRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, encode_cursor(page.get("LastEvaluatedKey"))


def created_agents_page(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
    """The agents `user_id` created (gsi1), in creation order."""
    partition = creator_partition(user_id)
    start = decode_cursor(
        cursor,
        partition={"gsi1pk": partition},
        sort_prefixes={"gsi1sk": AGENT_PREFIX, "pk": STAGE_PARTITION, "sk": AGENT_PREFIX},
    )
    results = AgentRecord.by_creator.query(partition, limit=limit, last_evaluated_key=start)
    page = next(results.page_iter)
    items = [AgentRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, encode_cursor(page.get("LastEvaluatedKey"))


def forget_creator(record: AgentRecord) -> None:
    """The agent no longer names who created it, and leaves that user's index."""
    record.update(
        actions=[AgentRecord.created_by.remove(), AgentRecord.gsi1pk.remove(), AgentRecord.gsi1sk.remove()],
        condition=AgentRecord.pk.exists(),
    )


# Documents --------------------------------------------------------------------------------------------------


def new_document(
    *, agent_id: str, document_id: str, file_name: str, content_type: str, size_bytes: int, created_by: str,
    upload_expires_at: datetime,
) -> DocumentRecord:  # fmt: skip
    return DocumentRecord(
        agent_partition(agent_id), DOCUMENT_PREFIX + document_id, document_id=document_id, agent_id=agent_id,
        file_name=file_name, content_type=content_type, size_bytes=size_bytes, status="uploading",
        created_by=created_by, upload_expires_at=upload_expires_at,
    )  # fmt: skip


def add_document(record: DocumentRecord) -> None:
    record.save(condition=DocumentRecord.pk.does_not_exist())


def get_document(agent_id: str, document_id: str) -> DocumentRecord:
    try:
        return DocumentRecord.get(agent_partition(agent_id), DOCUMENT_PREFIX + document_id, consistent_read=True)
    except DoesNotExist:
        raise document_not_found() from None


def find_document(agent_id: str, document_id: str) -> DocumentRecord | None:
    try:
        return get_document(agent_id, document_id)
    except NotFound:
        return None


def documents_page(agent_id: str, *, limit: int, cursor: str | None) -> tuple[list[DocumentRecord], str | None]:
    partition = agent_partition(agent_id)
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": DOCUMENT_PREFIX})
    results = DocumentRecord.query(
        partition, DocumentRecord.sk.startswith(DOCUMENT_PREFIX), limit=limit, last_evaluated_key=start
    )
    page = next(results.page_iter)
    items = [DocumentRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, encode_cursor(page.get("LastEvaluatedKey"))


def all_documents(agent_id: str) -> Iterator[DocumentRecord]:
    documents: Iterator[DocumentRecord] = DocumentRecord.query(
        agent_partition(agent_id), DocumentRecord.sk.startswith(DOCUMENT_PREFIX), consistent_read=True
    )
    return documents


def documents_of(agent_ids: Sequence[str]) -> dict[str, list[DocumentRecord]]:
    """Every document of each agent (their export)."""
    return {agent_id: list(all_documents(agent_id)) for agent_id in agent_ids}


def begin_processing(record: DocumentRecord, deadline: datetime) -> int | None:
    """Mark the document `processing` under a new attempt, which only that run may finish; None if it is gone."""
    attempt = int(record.attempt or 0) + 1
    try:
        record.update(
            actions=[
                DocumentRecord.status.set("processing"), DocumentRecord.attempt.set(attempt),
                DocumentRecord.processing_deadline.set(deadline), DocumentRecord.error_code.remove(),
                DocumentRecord.error_message.remove(),
            ],
            condition=DocumentRecord.pk.exists() & (DocumentRecord.attempt == record.attempt),
        )  # fmt: skip
    except UpdateError as error:
        if condition_failed(error):
            return None
        raise
    return attempt


def finish_document(record: DocumentRecord, attempt: int, changes: dict[str, Any]) -> bool:
    """Record a run's outcome, if the document still exists and no later run began; False otherwise."""
    actions = [
        getattr(DocumentRecord, name).remove() if value is None else getattr(DocumentRecord, name).set(value)
        for name, value in changes.items()
    ]
    try:
        record.update(actions=actions, condition=DocumentRecord.pk.exists() & (DocumentRecord.attempt == attempt))
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def delete_document(record: DocumentRecord) -> None:
    try:
        record.delete(condition=DocumentRecord.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            raise document_not_found() from None
        raise


def delete_documents(agent_id: str) -> int:
    """Every document item of the agent; returns how many went."""
    return delete_partition(AGENTS.name_from_env(), agent_partition(agent_id))


# The documents bucket -----------------------------------------------------------------------------------------

_DELETE_BATCH = 1000  # DeleteObjects' limit


def documents_bucket() -> str:
    import os

    name = os.environ.get("DOCUMENTS_BUCKET")
    if not name:
        raise RuntimeError("DOCUMENTS_BUCKET is not set: the function was deployed without the documents bucket")
    return name


def object_key(agent_id: str, document_id: str) -> str:
    return f"{DOCUMENTS_PREFIX}{agent_id}/{document_id}"


def upload_link(key: str, *, content_type: str, size_bytes: int, expires_in: int) -> str:
    """A presigned PUT that signs in the declared content type and length: S3 refuses any other."""
    from shared.aws import client

    params = {"Bucket": documents_bucket(), "Key": key, "ContentType": content_type, "ContentLength": size_bytes}
    url: str = client("s3", signature_version="s3v4").generate_presigned_url(
        "put_object", Params=params, ExpiresIn=expires_in
    )
    return url


def object_head(key: str) -> tuple[int, str] | None:
    """The object's size and content type, None when it is not there."""
    from shared.aws import client

    s3 = client("s3")
    try:
        head = s3.head_object(Bucket=documents_bucket(), Key=key)
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return int(head["ContentLength"]), str(head.get("ContentType") or "")


def read_object(key: str) -> bytes:
    from shared.aws import client

    body: bytes = client("s3").get_object(Bucket=documents_bucket(), Key=key)["Body"].read()
    return body


def delete_object(key: str) -> None:
    from shared.aws import client

    client("s3").delete_object(Bucket=documents_bucket(), Key=key)


def delete_objects_under(prefix: str) -> int:
    """Every object under `prefix`; returns how many went."""
    from shared.aws import client

    s3 = client("s3")
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=documents_bucket(), Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            s3.delete_objects(Bucket=documents_bucket(), Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted
