"""Routes of conversations, messages, projects, members and saved prompts: parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from functions.conversations import service
from functions.conversations.models import (
    ConversationCreate,
    ConversationPublic,
    ConversationStats,
    ConversationUpdate,
    ConversationWithMessages,
    MemberCreate,
    MemberPublic,
    MessageCreate,
    MessagePublic,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    PromptCreate,
    PromptPublic,
    PromptUpdate,
    SearchHit,
)
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
ConversationId = Annotated[str, Path(alias="conversationId", max_length=26)]
ProjectId = Annotated[str, Path(alias="projectId", max_length=26)]
PromptId = Annotated[str, Path(alias="promptId", max_length=26)]

conversations = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
projects = APIRouter(prefix="/api/v1/projects", tags=["projects"])
prompts = APIRouter(prefix="/api/v1/prompts", tags=["prompts"])


# Conversations (fixed paths before `/{conversationId}`) ---------------------------------------------------


@conversations.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ConversationPublic, responses=refusals(403, 404)
)
def create_conversation(principal: CurrentPrincipal, body: ConversationCreate) -> ConversationPublic:
    return service.create_conversation(principal, body)


@conversations.get("", response_model=Page[ConversationPublic], responses=refusals(400, 404))
def list_conversations(
    principal: CurrentPrincipal,
    archived: bool = False,
    project_id: Annotated[str | None, Query(alias="projectId", max_length=26)] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[ConversationPublic]:
    return service.list_conversations(principal, archived=archived, project_id=project_id, limit=limit, cursor=cursor)


@conversations.get("/stats", response_model=ConversationStats)
def conversation_stats(principal: CurrentPrincipal) -> ConversationStats:
    return service.conversation_stats(principal)


@conversations.get("/search", response_model=Page[SearchHit], responses=refusals(400))
def search(
    principal: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=200, pattern=r"\S")],
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[SearchHit]:
    return service.search(principal, q, limit=limit, cursor=cursor)


@conversations.get("/{conversationId}", response_model=ConversationWithMessages, responses=refusals(400, 404))
def get_conversation(
    principal: CurrentPrincipal,
    conversation_id: ConversationId,
    messages_limit: Annotated[int, Query(alias="messagesLimit", ge=1, le=MAX_PAGE_SIZE)] = 50,
    messages_cursor: Annotated[str | None, Query(alias="messagesCursor", max_length=2048)] = None,
) -> ConversationWithMessages:
    return service.get_conversation(
        principal, conversation_id, messages_limit=messages_limit, messages_cursor=messages_cursor
    )


@conversations.put("/{conversationId}", response_model=ConversationPublic, responses=refusals(403, 404))
def update_conversation(
    principal: CurrentPrincipal, conversation_id: ConversationId, body: ConversationUpdate
) -> ConversationPublic:
    return service.update_conversation(principal, conversation_id, body)


@conversations.delete(
    "/{conversationId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_conversation(principal: CurrentPrincipal, conversation_id: ConversationId) -> Response:
    service.delete_conversation(principal, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@conversations.post("/{conversationId}/archive", response_model=ConversationPublic, responses=refusals(403, 404))
def archive(principal: CurrentPrincipal, conversation_id: ConversationId) -> ConversationPublic:
    return service.set_archived(principal, conversation_id, archived=True)


@conversations.post("/{conversationId}/unarchive", response_model=ConversationPublic, responses=refusals(403, 404))
def unarchive(principal: CurrentPrincipal, conversation_id: ConversationId) -> ConversationPublic:
    return service.set_archived(principal, conversation_id, archived=False)


@conversations.get("/{conversationId}/messages", response_model=Page[MessagePublic], responses=refusals(400, 404))
def list_messages(
    principal: CurrentPrincipal, conversation_id: ConversationId, limit: Limit = 50, cursor: Cursor = None
) -> Page[MessagePublic]:
    return service.list_messages(principal, conversation_id, limit=limit, cursor=cursor)


@conversations.post(
    "/{conversationId}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessagePublic,
    responses=refusals(403, 404),
)
def append_message(principal: CurrentPrincipal, conversation_id: ConversationId, body: MessageCreate) -> MessagePublic:
    return service.append_message(principal, conversation_id, body.role, body.content)


# Projects -------------------------------------------------------------------------------------------------


@projects.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic)
def create_project(principal: CurrentPrincipal, body: ProjectCreate) -> ProjectPublic:
    return service.create_project(principal, body)


@projects.get("", response_model=Page[ProjectPublic], responses=refusals(400))
def list_projects(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[ProjectPublic]:
    return service.list_projects(principal, limit=limit, cursor=cursor)


@projects.get("/{projectId}", response_model=ProjectPublic, responses=refusals(404))
def get_project(principal: CurrentPrincipal, project_id: ProjectId) -> ProjectPublic:
    return service.get_project(principal, project_id)


@projects.put("/{projectId}", response_model=ProjectPublic, responses=refusals(403, 404))
def update_project(principal: CurrentPrincipal, project_id: ProjectId, body: ProjectUpdate) -> ProjectPublic:
    return service.update_project(principal, project_id, body)


@projects.delete(
    "/{projectId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_project(principal: CurrentPrincipal, project_id: ProjectId) -> Response:
    service.delete_project(principal, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@projects.post(
    "/{projectId}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberPublic,
    responses=refusals(403, 404, 409),
)
def add_member(principal: CurrentPrincipal, project_id: ProjectId, body: MemberCreate) -> MemberPublic:
    return service.add_member(principal, project_id, body)


@projects.get("/{projectId}/members", response_model=Page[MemberPublic], responses=refusals(404))
def list_members(principal: CurrentPrincipal, project_id: ProjectId) -> Page[MemberPublic]:
    return Page(items=service.list_members(principal, project_id))


@projects.delete(
    "/{projectId}/members/{userId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=refusals(403, 404, 409),
)
def remove_member(
    principal: CurrentPrincipal, project_id: ProjectId, user_id: Annotated[str, Path(alias="userId", max_length=26)]
) -> Response:
    service.remove_member(principal, project_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Saved prompts --------------------------------------------------------------------------------------------


@prompts.post("", status_code=status.HTTP_201_CREATED, response_model=PromptPublic)
def create_prompt(principal: CurrentPrincipal, body: PromptCreate) -> PromptPublic:
    return service.create_prompt(principal, body)


@prompts.get("", response_model=Page[PromptPublic], responses=refusals(400))
def list_prompts(
    principal: CurrentPrincipal,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[PromptPublic]:
    return service.list_prompts(principal, tag=tag, limit=limit, cursor=cursor)


@prompts.get("/{promptId}", response_model=PromptPublic, responses=refusals(404))
def get_prompt(principal: CurrentPrincipal, prompt_id: PromptId) -> PromptPublic:
    return service.get_prompt(principal, prompt_id)


@prompts.put("/{promptId}", response_model=PromptPublic, responses=refusals(404))
def update_prompt(principal: CurrentPrincipal, prompt_id: PromptId, body: PromptUpdate) -> PromptPublic:
    return service.update_prompt(principal, prompt_id, body)


@prompts.delete("/{promptId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(404))
def delete_prompt(principal: CurrentPrincipal, prompt_id: PromptId) -> Response:
    service.delete_prompt(principal, prompt_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


app = create_app(title="Stratus conversations", protected=[conversations, projects, prompts])
