"""Agents' routes: the stage's agents, their documents (presigned uploads, status, deletion, reprocessing) and
semantic search over their knowledge. Every route is one service call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from functions.agents import service
from functions.agents.models import (
    AgentCreate,
    AgentPublic,
    AgentUpdate,
    DocumentCreate,
    DocumentPublic,
    DocumentUpload,
    SearchRequest,
    SearchResult,
)
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
AgentId = Annotated[str, Path(alias="agentId", max_length=26)]
DocumentId = Annotated[str, Path(alias="documentId", max_length=26)]

_AGENT = {422: "Not valid: `validation_error` (`mcpServers` naming a server the stage does not have, among others)"}
_UPLOAD = {
    413: "`sizeBytes` is over the 25 MB a document may have (`payload_too_large`)",
    422: "Not valid: `validation_error`, or `unsupported_type` (not PDF, DOCX, Markdown, HTML or plain text)",
}
_PROCESS = {409: "The file was never uploaded (`document_not_uploaded`), or another request changed it meanwhile"}
_SEARCH = {409: "The agent's documents were indexed with another embedding model (`reprocess_required`)"}

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=AgentPublic, responses=refusals(403, 422, meaning=_AGENT)
)
def create_agent(principal: CurrentPrincipal, body: AgentCreate) -> AgentPublic:
    return service.create_agent(principal, body)


@router.get("", response_model=Page[AgentPublic], responses=refusals(400))
def list_agents(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[AgentPublic]:
    items, next_cursor = service.list_agents(principal, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{agentId}", response_model=AgentPublic, responses=refusals(404))
def get_agent(principal: CurrentPrincipal, agent_id: AgentId) -> AgentPublic:
    return service.get_agent(principal, agent_id)


@router.put("/{agentId}", response_model=AgentPublic, responses=refusals(403, 404, 422, meaning=_AGENT))
def update_agent(principal: CurrentPrincipal, agent_id: AgentId, body: AgentUpdate) -> AgentPublic:
    return service.update_agent(principal, agent_id, body)


@router.delete(
    "/{agentId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_agent(principal: CurrentPrincipal, agent_id: AgentId) -> Response:
    service.delete_agent(principal, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{agentId}/documents", status_code=status.HTTP_201_CREATED, response_model=DocumentUpload,
    responses=refusals(403, 404, 413, 422, meaning=_UPLOAD),
)  # fmt: skip
def create_document(principal: CurrentPrincipal, agent_id: AgentId, body: DocumentCreate) -> DocumentUpload:
    return service.create_document(principal, agent_id, body)


@router.get("/{agentId}/documents", response_model=Page[DocumentPublic], responses=refusals(400, 404))
def list_documents(
    principal: CurrentPrincipal, agent_id: AgentId, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[DocumentPublic]:
    items, next_cursor = service.list_documents(principal, agent_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{agentId}/documents/{documentId}", response_model=DocumentPublic, responses=refusals(404))
def get_document(principal: CurrentPrincipal, agent_id: AgentId, document_id: DocumentId) -> DocumentPublic:
    return service.get_document(principal, agent_id, document_id)


@router.delete(
    "/{agentId}/documents/{documentId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
    responses=refusals(403, 404),
)  # fmt: skip
def delete_document(principal: CurrentPrincipal, agent_id: AgentId, document_id: DocumentId) -> Response:
    service.delete_document(principal, agent_id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{agentId}/documents/{documentId}/process", status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentPublic, responses=refusals(403, 404, 409, meaning=_PROCESS),
)  # fmt: skip
def reprocess_document(principal: CurrentPrincipal, agent_id: AgentId, document_id: DocumentId) -> DocumentPublic:
    return service.reprocess_document(principal, agent_id, document_id)


@router.post("/{agentId}/search", response_model=SearchResult, responses=refusals(403, 404, 409, 422, meaning=_SEARCH))
def search(principal: CurrentPrincipal, agent_id: AgentId, body: SearchRequest) -> SearchResult:
    return service.search(principal, agent_id, body)


app = create_app(title="Stratus agents", protected=[router])
