"""Agents' logic: who may create, change and use the stage's agents; their documents' uploads, reads and deletion;
semantic search over their knowledge; and what chat asks of an agent (`agent_for_chat`, `retrieve`).

Agents belong to the stage: any principal of the stage reads them, `agents.manage` changes them and their
documents, `ai.chat` uses them (search, chat). A document's status as read is never stuck: an upload past its
link's expiry reads as failed `upload_expired`, a run past the processor's time limit as failed
`processing_timeout`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.agents.models import (
    AgentCreate,
    AgentIndex,
    AgentPublic,
    AgentUpdate,
    DocumentCreate,
    DocumentError,
    DocumentPublic,
    DocumentUpload,
    Knowledge,
    SearchHit,
    SearchRequest,
    SearchResult,
)
from shared import audit
from shared.audit import Target
from shared.auth.principal import Principal
from shared.errors import Conflict, DomainError, ValidationFailed
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.agents import store, vectors
    from functions.agents.store import AgentRecord, DocumentRecord
    from shared.llm import embeddings
else:
    store = LazyModule("functions.agents.store")
    vectors = LazyModule("functions.agents.vectors")
    embeddings = LazyModule("shared.llm.embeddings")

MANAGE, CHAT = "agents.manage", "ai.chat"
# The presigned upload's lifetime.
UPLOAD_LINK_SECONDS = 15 * 60
# The processor's time limit (infra.catalog) and a margin for its start and last writes: a run not finished by
# then has been cut off and reads as failed.
PROCESSING_TIMEOUT_SECONDS = 300
PROCESSING_MARGIN_SECONDS = 60
SNIPPET_CHARS = 240


class DocumentTooLarge(DomainError):
    status, code = 413, "payload_too_large"


# What chat asks of an agent -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatAgent:
    id: str
    name: str
    instructions: str
    model: str | None
    provider: str | None
    temperature: float | None
    max_tokens: int | None
    mcp_servers: tuple[str, ...]
    knowledge_enabled: bool
    top_k: int
    min_score: float | None


@dataclass(frozen=True)
class Citation:
    document_id: str
    file_name: str
    chunk_id: str
    page: int | None
    score: float
    snippet: str


@dataclass(frozen=True)
class RetrievedChunk:
    citation: Citation
    text: str


def agent_for_chat(principal: Principal, agent_id: str) -> ChatAgent:
    """Needs `ai.chat`. An unknown or deleted agent is 404 `not_found`; an inactive one 409 `agent_inactive`."""
    principal.require(CHAT)
    record = _agent(agent_id)
    if record.status != "active":
        raise Conflict("This agent is inactive", code="agent_inactive")
    return chat_agent(record)


def chat_agent(record: AgentRecord) -> ChatAgent:
    return ChatAgent(
        id=record.agent_id, name=record.name, instructions=record.instructions or "", model=record.model,
        provider=record.provider, temperature=None if record.temperature is None else float(record.temperature),
        max_tokens=None if record.max_tokens is None else int(record.max_tokens),
        mcp_servers=tuple(record.mcp_servers or ()), knowledge_enabled=bool(record.knowledge_enabled),
        top_k=int(record.top_k), min_score=None if record.min_score is None else float(record.min_score),
    )  # fmt: skip


def retrieve(agent: ChatAgent, query: str, *, top_k: int | None = None) -> list[RetrievedChunk]:
    """Best first; [] when knowledge is off or the agent has no ready document. Embeds `query` with the stage's
    embedder; if the agent's index was built by another embedder, [] (logged): its documents need reprocessing."""
    if not agent.knowledge_enabled or not query.strip():
        return []
    record = store.find_agent(agent.id)
    if record is None or not record.index_generation:
        return []
    embedder = embeddings.stage_embedder()
    if record.embedder_id != embedder.info.id:
        logger.warning(
            "Agent's index was built by another embedder: its documents need reprocessing",
            extra={"agentId": agent.id, "indexEmbedder": record.embedder_id, "stageEmbedder": embedder.info.id},
        )
        return []
    vector = embedder.embed_query(query)
    hits = vectors.query(vectors.index_name(agent.id, int(record.index_generation)), vector, top_k or agent.top_k)
    return [chunk for hit in hits if (chunk := _retrieved(hit, agent.min_score)) is not None]


def _retrieved(hit: Any, min_score: float | None) -> RetrievedChunk | None:
    if min_score is not None and hit.score < min_score:
        return None
    metadata = hit.metadata
    text = str(metadata.get("text", ""))
    page = metadata.get("page")
    citation = Citation(
        document_id=str(metadata.get("documentId", hit.key.split(":", 1)[0])),
        file_name=str(metadata.get("fileName", "")),
        chunk_id=hit.key,
        page=None if page is None else int(page),
        score=float(hit.score),
        snippet=snippet_of(text),
    )
    return RetrievedChunk(citation=citation, text=text)


def snippet_of(text: str) -> str:
    """The chunk's first ~240 characters, cut at a word where one is near."""
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    cut = flat.rfind(" ", 0, SNIPPET_CHARS)
    return flat[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS].rstrip() + "…"


# Agents -------------------------------------------------------------------------------------------------------


def create_agent(principal: Principal, request: AgentCreate) -> AgentPublic:
    with audit.recorded("agent.created", actor=principal, details={"name": request.name}) as entry:
        created = _create_agent(principal, request)
        entry.target = Target("agent", created.agent_id)
    return created


def _create_agent(principal: Principal, request: AgentCreate) -> AgentPublic:
    principal.require(MANAGE)
    _check_mcp_servers(principal, request.mcp_servers)
    settings = {
        "name": request.name, "description": request.description, "instructions": request.instructions,
        "model": request.model, "provider": request.provider, "temperature": request.temperature,
        "max_tokens": request.max_tokens, "mcp_servers": list(dict.fromkeys(request.mcp_servers)),
        "knowledge_enabled": request.knowledge.enabled, "top_k": request.knowledge.top_k,
        "min_score": request.knowledge.min_score, "status": request.status,
    }  # fmt: skip
    record = store.new_agent(new_id(), principal.user_id, settings)
    store.add_agent(record)
    logger.info("Agent created", extra={"agentId": record.agent_id})
    return public_agent(record)


def list_agents(principal: Principal, limit: int, cursor: str | None) -> tuple[list[AgentPublic], str | None]:
    del principal  # any principal of the stage
    records, next_cursor = store.agents_page(limit=limit, cursor=cursor)
    return [public_agent(record) for record in records], next_cursor


def get_agent(principal: Principal, agent_id: str) -> AgentPublic:
    del principal
    return public_agent(_agent(agent_id))


def update_agent(principal: Principal, agent_id: str, update: AgentUpdate) -> AgentPublic:
    details = {"fields": " ".join(sorted(update.model_fields_set))}
    with audit.recorded("agent.updated", actor=principal, target=Target("agent", agent_id), details=details):
        return _update_agent(principal, agent_id, update)


def _update_agent(principal: Principal, agent_id: str, update: AgentUpdate) -> AgentPublic:
    principal.require(MANAGE)
    record = _agent(agent_id)
    sent = update.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("name", "instructions", "status"):
        if name in sent and getattr(update, name) is None:
            raise ValidationFailed(f"{name} cannot be null", code="validation_error")
    for name in ("name", "description", "instructions", "model", "provider", "temperature", "max_tokens", "status"):
        if name in sent:
            changes[name] = getattr(update, name)
    if "mcp_servers" in sent:
        servers = list(dict.fromkeys(update.mcp_servers or []))
        _check_mcp_servers(principal, servers)
        changes["mcp_servers"] = servers
    if "knowledge" in sent:
        knowledge = update.knowledge or Knowledge()
        changes.update(knowledge_enabled=knowledge.enabled, top_k=knowledge.top_k, min_score=knowledge.min_score)
    if changes:
        record = store.update_agent(record, changes)
        logger.info("Agent changed", extra={"agentId": agent_id, "fields": sorted(changes)})
    return public_agent(store.get_agent(agent_id))


def delete_agent(principal: Principal, agent_id: str) -> None:
    """The agent, then everything it holds: its index (one DeleteIndex per generation it had), its documents'
    objects and their items. A run processing one of them meanwhile finds the agent gone and cleans up after
    itself (functions.agents.processing)."""
    with audit.recorded("agent.deleted", actor=principal, target=Target("agent", agent_id)):
        principal.require(MANAGE)
        record = _agent(agent_id)
        store.delete_agent(record)
    for generation in range(1, int(record.index_generation or 0) + 1):
        vectors.delete_index(vectors.index_name(agent_id, generation))
    objects = store.delete_objects_under(store.object_key(agent_id, ""))
    documents = store.delete_documents(agent_id)
    logger.info("Agent deleted", extra={"agentId": agent_id, "documents": documents, "objects": objects})


def public_agent(record: AgentRecord) -> AgentPublic:
    index = None
    if record.index_generation and record.embedder_id:
        index = AgentIndex(
            embedder=record.embedder_id, dimension=int(record.embedder_dimension or 0),
            offline=bool(record.embedder_offline), generation=int(record.index_generation),
        )  # fmt: skip
    return AgentPublic(
        agent_id=record.agent_id, name=record.name, description=record.description,
        instructions=record.instructions or "", model=record.model, provider=record.provider,
        temperature=None if record.temperature is None else float(record.temperature),
        max_tokens=None if record.max_tokens is None else int(record.max_tokens),
        mcp_servers=list(record.mcp_servers or []),
        knowledge=Knowledge(
            enabled=bool(record.knowledge_enabled), top_k=int(record.top_k),
            min_score=None if record.min_score is None else float(record.min_score),
        ),
        status=record.status,
        index=index, created_at=record.created_at, updated_at=record.updated_at,
    )  # fmt: skip


def _agent(agent_id: str) -> AgentRecord:
    if not is_id(agent_id):
        raise store.agent_not_found()
    return store.get_agent(agent_id)


def _check_mcp_servers(principal: Principal, server_ids: list[str]) -> None:
    """Each id must name one of the stage's MCP servers (a user's own server is theirs alone, not an agent's)."""
    if not server_ids:
        return
    from functions.mcp import service as mcp

    ids = list(dict.fromkeys(server_ids))
    known = mcp.stage_server_ids(ids)
    unknown = [server_id for server_id in ids if server_id not in known]
    if unknown:
        raise ValidationFailed(
            "mcpServers must name MCP servers of the stage",
            code="validation_error",
            details=[{"field": "mcpServers", "unknown": unknown}],
        )


# Documents ----------------------------------------------------------------------------------------------------


def create_document(principal: Principal, agent_id: str, request: DocumentCreate) -> DocumentUpload:
    """A document `uploading`, and the presigned PUT its file goes to; its landing starts processing."""
    principal.require(MANAGE)
    _agent(agent_id)
    # The readers load with their first use: only this route of the function needs what they accept.
    from functions.agents.documents import MAX_DOCUMENT_BYTES, SUPPORTED_TYPES

    if request.size_bytes > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(f"A document may be at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
    content_type = request.content_type.split(";", 1)[0].strip().lower()
    if content_type not in SUPPORTED_TYPES:
        raise ValidationFailed(
            "This content type is not supported: PDF, DOCX, Markdown, HTML or plain text",
            code="unsupported_type",
            details=[{"field": "contentType", "supported": sorted(SUPPORTED_TYPES)}],
        )
    document_id = new_id()
    expires_at = store.now() + timedelta(seconds=UPLOAD_LINK_SECONDS)
    record = store.new_document(
        agent_id=agent_id, document_id=document_id, file_name=request.file_name, content_type=content_type,
        size_bytes=request.size_bytes, created_by=principal.user_id, upload_expires_at=expires_at,
    )  # fmt: skip
    store.add_document(record)
    url = store.upload_link(
        store.object_key(agent_id, document_id), content_type=content_type, size_bytes=request.size_bytes,
        expires_in=UPLOAD_LINK_SECONDS,
    )  # fmt: skip
    logger.info("Document upload started", extra={"agentId": agent_id, "documentId": document_id})
    return DocumentUpload(document_id=document_id, upload_url=url, max_bytes=MAX_DOCUMENT_BYTES, expires_at=expires_at)


def list_documents(
    principal: Principal, agent_id: str, limit: int, cursor: str | None
) -> tuple[list[DocumentPublic], str | None]:
    del principal
    _agent(agent_id)
    records, next_cursor = store.documents_page(agent_id, limit=limit, cursor=cursor)
    moment = store.now()
    return [public_document(record, moment) for record in records], next_cursor


def get_document(principal: Principal, agent_id: str, document_id: str) -> DocumentPublic:
    del principal
    return public_document(_document(agent_id, document_id), store.now())


def delete_document(principal: Principal, agent_id: str, document_id: str) -> None:
    """The item first (a run still processing it then cannot finish, and removes what it wrote), then its chunks
    from the index and its object."""
    principal.require(MANAGE)
    agent = _agent(agent_id)
    record = _document(agent_id, document_id)
    store.delete_document(record)
    if agent.index_generation and record.chunks:
        name = vectors.index_name(agent_id, int(agent.index_generation))
        vectors.delete(name, [chunk_key(document_id, ordinal) for ordinal in range(int(record.chunks))])
    store.delete_object(store.object_key(agent_id, document_id))
    logger.info("Document deleted", extra={"agentId": agent_id, "documentId": document_id})


def reprocess_document(principal: Principal, agent_id: str, document_id: str) -> DocumentPublic:
    """Process the document again (after a failure, or a new embedder), asynchronously: 202 with it `processing`."""
    principal.require(MANAGE)
    _agent(agent_id)
    record = _document(agent_id, document_id)
    if store.object_head(store.object_key(agent_id, document_id)) is None:
        raise Conflict("The document's file was never uploaded; upload it again", code="document_not_uploaded")
    attempt = store.begin_processing(record, processing_deadline(store.now()))
    if attempt is None:
        raise Conflict("The document is being changed by another request; try again", code="document_conflict")
    invoke_processor(agent_id, document_id)
    return public_document(store.get_document(agent_id, document_id), store.now())


def invoke_processor(agent_id: str, document_id: str) -> None:
    """Hand a document to the processor, asynchronously (as an S3 event would)."""
    from shared.aws import client

    name = os.environ.get("PROCESSOR_FUNCTION") or os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    payload = json.dumps({"agentId": agent_id, "documentId": document_id}).encode()
    client("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=payload)


def processing_deadline(moment: datetime) -> datetime:
    return moment + timedelta(seconds=PROCESSING_TIMEOUT_SECONDS + PROCESSING_MARGIN_SECONDS)


def chunk_key(document_id: str, ordinal: int) -> str:
    return f"{document_id}:{ordinal:05d}"


def public_document(record: DocumentRecord, moment: datetime) -> DocumentPublic:
    status, error = record.status, None
    if record.error_code:
        error = DocumentError(code=record.error_code, message=record.error_message or "")
    if status == "uploading" and moment > record.upload_expires_at:
        status = "failed"
        error = DocumentError(code="upload_expired", message="The file was not uploaded before its link expired")
    elif status == "processing" and record.processing_deadline is not None and moment > record.processing_deadline:
        status = "failed"
        error = DocumentError(code="processing_timeout", message="Processing did not finish in time; process it again")
    return DocumentPublic(
        document_id=record.document_id, file_name=record.file_name, content_type=record.content_type,
        size_bytes=int(record.size_bytes), status=status,
        pages=None if record.pages is None else int(record.pages),
        chunks=None if record.chunks is None else int(record.chunks), error=error, created_at=record.created_at,
        processed_at=record.processed_at,
    )  # fmt: skip


def _document(agent_id: str, document_id: str) -> DocumentRecord:
    if not is_id(document_id):
        raise store.document_not_found()
    return store.get_document(agent_id, document_id)


# Search -------------------------------------------------------------------------------------------------------


def search(principal: Principal, agent_id: str, request: SearchRequest) -> SearchResult:
    """The agent's best chunks for the query, best first; 409 `reprocess_required` while its index is another
    embedder's than the stage's."""
    principal.require(CHAT)
    record = _agent(agent_id)
    if record.index_generation and record.embedder_id != embeddings.stage_embedder().info.id:
        raise Conflict(
            "The agent's documents were indexed with another embedding model; process them again",
            code="reprocess_required",
        )
    agent = chat_agent(record)
    # The search shows what the index holds: knowledge settings shape chat's prompts, not this view.
    chunks = retrieve(replace(agent, knowledge_enabled=True, min_score=None), request.query, top_k=request.top_k)
    return SearchResult(
        items=[
            SearchHit(
                document_id=chunk.citation.document_id,
                file_name=chunk.citation.file_name,
                chunk_id=chunk.citation.chunk_id,
                snippet=chunk.citation.snippet,
                score=chunk.citation.score,
                page=chunk.citation.page,
            )
            for chunk in chunks
        ]
    )
