"""Request and response bodies of conversations, messages, projects, members and saved prompts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from shared.http.models import ApiModel, Page

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
SystemPrompt = Annotated[str, StringConstraints(max_length=20_000)]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]
# A pasted document of a megabyte or so must survive; the request body limit bounds it in bytes.
MessageContent = Annotated[str, StringConstraints(min_length=1, max_length=1_500_000)]
MessageRole = Literal["user", "assistant", "system"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Access = Literal["owner", "editor", "viewer"]


class ConversationCreate(ApiModel):
    title: Title | None = None
    project_id: Id | None = None
    model: ModelName | None = None
    system_prompt: SystemPrompt | None = None


class ConversationUpdate(ApiModel):
    """Fields to change; an explicit null clears `projectId`, `model` or `systemPrompt`."""

    title: Title | None = None
    project_id: Id | None = None
    model: ModelName | None = None
    system_prompt: SystemPrompt | None = None


class ConversationSource(ApiModel):
    """The channel and contact a conversation's messages come from."""

    channel_id: str
    type: str
    contact_id: str
    contact_name: str | None = None


class ConversationPublic(ApiModel):
    id: str
    title: str
    project_id: str | None
    model: str | None
    system_prompt: str | None
    agent_id: str | None = Field(None, description="The agent its replies answer as, fixed when it starts")
    archived: bool
    message_count: int
    owner_id: str
    access: Access
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    # A messaging channel's conversation: {channelId, type, contactId, contactName?}; absent otherwise.
    source: ConversationSource | None = None


class MessageCreate(ApiModel):
    role: MessageRole = "user"
    content: MessageContent


class MessagePublic(ApiModel):
    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    author_id: str
    metadata: dict[str, Any] | None = None
    created_at: datetime


class ConversationWithMessages(ConversationPublic):
    messages: Page[MessagePublic]


class ConversationStats(ApiModel):
    conversations: int
    archived: int
    messages: int
    by_model: dict[str, int]


class SearchHit(ApiModel):
    conversation_id: str
    title: str
    matched_in: Literal["title", "message"]
    message_id: str | None = None
    snippet: str


class ProjectCreate(ApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=2_000)] | None = None


class ProjectUpdate(ApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=2_000)] | None = None


class ProjectPublic(ApiModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    access: Access
    created_at: datetime
    updated_at: datetime


class MemberCreate(ApiModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=254)]
    role: Literal["viewer", "editor"]


class MemberPublic(ApiModel):
    user_id: str
    email: str | None
    role: Access
    added_at: datetime | None


class PromptCreate(ApiModel):
    title: Title
    content: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]
    tags: Annotated[list[Tag], Field(max_length=20)] = []


class PromptUpdate(ApiModel):
    title: Title | None = None
    content: Annotated[str, StringConstraints(min_length=1, max_length=50_000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=20)] | None = None


class PromptPublic(ApiModel):
    id: str
    title: str
    content: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
