"""Document processing: a landed upload read, checked against what was declared, extracted, chunked, embedded and
indexed, and the document `ready` (or `failed` with a reason a person can act on).

Idempotent: chunk keys are `<documentId>:<ordinal>`, so a repeated event or a second upload to the same link
replaces the document's vectors, and keys beyond the new chunk count are deleted. Each run takes a new attempt on
the document (functions.agents.store): only the latest run may finish it, and a run that finds the document (or
its agent) deleted meanwhile removes what it wrote. An embedder change moves the agent to a new index generation:
the run builds the new index, hands every other document of the agent to the processor again and deletes the
old index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from functions.agents import DOCUMENTS_PREFIX
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.agents import documents, service, store, vectors
    from functions.agents.store import AgentRecord, DocumentRecord
    from shared.llm import embeddings
    from shared.llm.embeddings import Embedder
else:
    documents = LazyModule("functions.agents.documents")
    embeddings = LazyModule("shared.llm.embeddings")
    service = LazyModule("functions.agents.service")
    store = LazyModule("functions.agents.store")
    vectors = LazyModule("functions.agents.vectors")

OUTCOME_READY, OUTCOME_FAILED, OUTCOME_SKIPPED = "ready", "failed", "skipped"


@dataclass(frozen=True)
class DocumentRef:
    agent_id: str
    document_id: str


class DocumentFailed(Exception):
    """The document cannot be processed as it is: `code` and `message` are shown to its owner."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def documents_in(event: Mapping[str, Any]) -> list[DocumentRef]:
    """The documents an event names: an S3 notification's records (keys `documents/<agentId>/<documentId>`,
    URL-encoded as S3 sends them), or `{agentId, documentId}` (a reprocess)."""
    if "agentId" in event and "documentId" in event:
        return [DocumentRef(str(event["agentId"]), str(event["documentId"]))]
    refs = []
    for record in event.get("Records") or []:
        key = unquote_plus(str(record.get("s3", {}).get("object", {}).get("key", "")))
        prefix, _, rest = key.partition("/")
        agent_id, _, document_id = rest.partition("/")
        if prefix + "/" == DOCUMENTS_PREFIX and agent_id and document_id and "/" not in document_id:
            refs.append(DocumentRef(agent_id, document_id))
        else:
            logger.warning("Object outside the documents layout ignored", extra={"key": key[:200]})
    return refs


def handle_event(event: Mapping[str, Any]) -> dict[str, str]:
    """Process every document the event names; their outcomes by document id."""
    from shared import events

    outcomes = {ref.document_id: process_document(ref.agent_id, ref.document_id) for ref in documents_in(event)}
    # The processor is its own Lambda entry point: its `document.processed` events are on the queue before it ends.
    events.flush()
    return outcomes


def _publish_processed(document: DocumentRecord, outcome: str, error_code: str | None = None) -> None:
    """`document.processed` (a webhook event) to the document's uploader: ready, or failed with its code."""
    from shared import events

    data: dict[str, Any] = {
        "agentId": document.agent_id, "documentId": document.document_id, "fileName": document.file_name,
        "status": outcome,
    }  # fmt: skip
    if error_code:
        data["errorCode"] = error_code
    events.publish("document.processed", data, user_id=document.created_by)


def process_document(agent_id: str, document_id: str) -> str:
    """Process one document; returns `ready`, `failed`, or `skipped` (gone, or taken over by a later run)."""
    key = store.object_key(agent_id, document_id)
    document = store.find_document(agent_id, document_id)
    agent = store.find_agent(agent_id)
    if document is None or agent is None:
        # A late upload to the link of a document (or agent) deleted since: nothing may keep it.
        store.delete_object(key)
        return OUTCOME_SKIPPED
    previous_chunks = int(document.chunks or 0)
    attempt = store.begin_processing(document, service.processing_deadline(store.now()))
    if attempt is None:
        return OUTCOME_SKIPPED
    try:
        return _process(agent, document, attempt, previous_chunks)
    except DocumentFailed as failure:
        return _fail(agent, document, attempt, previous_chunks, code=failure.code, message=failure.message)
    except documents.UnreadableDocument as unreadable:
        return _fail(agent, document, attempt, previous_chunks, code=unreadable.code, message=unreadable.reason)
    except Exception:
        logger.exception("Document processing failed", extra={"agentId": agent_id, "documentId": document_id})
        return _fail(
            agent, document, attempt, previous_chunks, code="processing_error",
            message="The document could not be processed on our side; process it again later",
        )  # fmt: skip


def _process(agent: AgentRecord, document: DocumentRecord, attempt: int, previous_chunks: int) -> str:
    agent_id, document_id = agent.agent_id, document.document_id
    key = store.object_key(agent_id, document_id)
    head = store.object_head(key)
    if head is None:
        raise DocumentFailed("not_uploaded", "The file was never uploaded")
    size, content_type = head
    if size != int(document.size_bytes):
        raise DocumentFailed(
            "wrong_size", f"The uploaded file has {size} bytes, not the {int(document.size_bytes)} declared"
        )
    if content_type.split(";", 1)[0].strip().lower() != document.content_type:
        raise DocumentFailed("wrong_type", "The file was uploaded with another content type than the one declared")
    extracted = documents.extract(store.read_object(key), document.content_type)
    chunks = documents.chunk(extracted)
    if not chunks:
        raise DocumentFailed("no_text", "The document holds no text to index")
    embedder = embeddings.stage_embedder()
    agent, index = _index_for(agent, embedder, document_id)
    embedded = embedder.embed_documents([chunk.text for chunk in chunks])
    records = [
        vectors.VectorRecord(
            key=service.chunk_key(document_id, chunk.ordinal),
            vector=vector,
            metadata=_metadata(document, chunk.ordinal, chunk.page, chunk.text),
        )
        for chunk, vector in zip(chunks, embedded, strict=True)
    ]
    vectors.put(index, records)
    if previous_chunks > len(chunks):
        vectors.delete(index, [service.chunk_key(document_id, n) for n in range(len(chunks), previous_chunks)])
    finished = store.finish_document(
        document, attempt,
        {"status": "ready", "pages": extracted.pages, "chunks": len(chunks), "processed_at": store.now(),
         "processing_deadline": None, "error_code": None, "error_message": None},
    )  # fmt: skip
    if not finished:
        _clean_up_after(agent_id, document_id, index, len(chunks))
        return OUTCOME_SKIPPED
    logger.info(
        "Document ready",
        extra={"agentId": agent_id, "documentId": document_id, "chunks": len(chunks), "embedder": embedder.info.id},
    )
    _publish_processed(document, OUTCOME_READY)
    return OUTCOME_READY


def _metadata(document: DocumentRecord, ordinal: int, page: int | None, text: str) -> dict[str, str | int | float]:
    metadata: dict[str, str | int | float] = {
        "documentId": document.document_id, "ordinal": ordinal, "fileName": document.file_name, "text": text,
    }  # fmt: skip
    if page is not None:
        metadata["page"] = page
    return metadata


def _index_for(agent: AgentRecord, embedder: Embedder, document_id: str) -> tuple[AgentRecord, str]:
    """The agent's index for the stage's embedder, created if need be: a first index at the agent's first document,
    the next generation when the embedder changed (the other documents then go to the processor again)."""
    info = embedder.info
    while agent.embedder_id != info.id or not agent.index_generation:
        previous = int(agent.index_generation or 0)
        if store.switch_index(agent, embedder_id=info.id, dimension=info.dimension, offline=info.offline):
            agent = store.get_agent(agent.agent_id)
            vectors.create_index(vectors.index_name(agent.agent_id, int(agent.index_generation)), info.dimension)
            if previous:
                _reindex_others(agent, document_id)
                vectors.delete_index(vectors.index_name(agent.agent_id, previous))
                logger.info(
                    "Agent moved to a new embedder: its documents are processed again",
                    extra={"agentId": agent.agent_id, "embedder": info.id, "generation": previous + 1},
                )
        else:
            agent = store.get_agent(agent.agent_id)
    name = vectors.index_name(agent.agent_id, int(agent.index_generation))
    # Idempotent: the run that switched created it; this covers a run cut off between the two writes.
    vectors.create_index(name, info.dimension)
    return agent, name


def _reindex_others(agent: AgentRecord, document_id: str) -> None:
    deadline = service.processing_deadline(store.now())
    for other in store.all_documents(agent.agent_id):
        if other.document_id == document_id or other.status == "uploading":
            continue
        if store.begin_processing(other, deadline) is not None:
            service.invoke_processor(agent.agent_id, other.document_id)


def _fail(
    agent: AgentRecord, document: DocumentRecord, attempt: int, previous_chunks: int, *, code: str, message: str
) -> str:
    """The document `failed` with its reason; chunks an earlier upload left in the index go too."""
    if previous_chunks and agent.index_generation:
        index = vectors.index_name(agent.agent_id, int(agent.index_generation))
        vectors.delete(index, [service.chunk_key(document.document_id, n) for n in range(previous_chunks)])
    store.finish_document(
        document, attempt,
        {"status": "failed", "error_code": code, "error_message": message, "pages": None, "chunks": None,
         "processed_at": store.now(), "processing_deadline": None},
    )  # fmt: skip
    logger.info("Document failed", extra={"agentId": agent.agent_id, "documentId": document.document_id, "code": code})
    _publish_processed(document, OUTCOME_FAILED, code)
    return OUTCOME_FAILED


def _clean_up_after(agent_id: str, document_id: str, index: str, chunk_count: int) -> None:
    """A run that may not finish: if its document was deleted meanwhile, its vectors go; if its agent was, the
    whole index. A later run of a living document owns the same keys and leaves them right."""
    if store.find_agent(agent_id) is None:
        vectors.delete_index(index)
    elif store.find_document(agent_id, document_id) is None:
        vectors.delete(index, [service.chunk_key(document_id, n) for n in range(chunk_count)])
