"""Agents' request and response bodies. Stored records never leave the service: these are built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.http.models import ApiModel, JsonBool

AgentStatus = Literal["active", "inactive"]
DocumentStatus = Literal["uploading", "processing", "ready", "failed"]

MAX_TOP_K = 20
DEFAULT_TOP_K = 5
MAX_MCP_SERVERS = 20
MAX_INSTRUCTIONS_CHARS = 20_000

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
Instructions = Annotated[str, StringConstraints(max_length=MAX_INSTRUCTIONS_CHARS)]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ProviderName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
ServerId = Annotated[str, StringConstraints(min_length=1, max_length=26)]
Temperature = Annotated[float, Field(ge=0, le=2, strict=True)]
MaxTokens = Annotated[int, Field(ge=1, le=200_000, strict=True)]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, strict=True)]
MinScore = Annotated[float, Field(ge=0, le=1, strict=True)]
FileName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ContentType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
SizeBytes = Annotated[int, Field(ge=1, strict=True)]
Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Knowledge(ApiModel):
    enabled: JsonBool = True
    top_k: TopK = DEFAULT_TOP_K
    min_score: MinScore | None = None


class AgentCreate(ApiModel):
    name: Name
    description: Description | None = None
    instructions: Instructions = ""
    model: ModelName | None = None
    provider: ProviderName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    mcp_servers: Annotated[list[ServerId], Field(max_length=MAX_MCP_SERVERS)] = []
    knowledge: Knowledge = Knowledge()
    status: AgentStatus = "active"


class AgentUpdate(ApiModel):
    """Fields to change; those left out keep their value. The optional settings may be null, which clears them."""

    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    model: ModelName | None = None
    provider: ProviderName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    mcp_servers: Annotated[list[ServerId], Field(max_length=MAX_MCP_SERVERS)] | None = None
    knowledge: Knowledge | None = None
    status: AgentStatus | None = None


class AgentIndex(ApiModel):
    """What built the agent's index: its documents are searched with this embedder alone."""

    embedder: str
    dimension: int
    offline: bool
    generation: int


class AgentPublic(ApiModel):
    agent_id: str
    name: str
    description: str | None = None
    instructions: str
    model: str | None = None
    provider: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    mcp_servers: list[str]
    knowledge: Knowledge
    status: AgentStatus
    index: AgentIndex | None = None
    created_at: datetime
    updated_at: datetime


class DocumentCreate(ApiModel):
    file_name: FileName
    content_type: ContentType
    size_bytes: SizeBytes


class DocumentUpload(ApiModel):
    document_id: str
    upload_url: str
    upload_method: Literal["PUT"] = "PUT"
    max_bytes: int
    expires_at: datetime


class DocumentError(ApiModel):
    code: str
    message: str


class DocumentPublic(ApiModel):
    document_id: str
    file_name: str
    content_type: str
    size_bytes: int
    status: DocumentStatus
    pages: int | None = None
    chunks: int | None = None
    error: DocumentError | None = None
    created_at: datetime
    processed_at: datetime | None = None


class SearchRequest(ApiModel):
    query: Query
    top_k: TopK | None = None


class SearchHit(ApiModel):
    document_id: str
    file_name: str
    chunk_id: str
    snippet: str
    score: float
    page: int | None = None


class SearchResult(ApiModel):
    items: list[SearchHit]
