"""The conversations context's logic: who may see and change what, and the service functions other contexts
(chat, the export and deletion workflows) call.

Access: a conversation's owner may do anything with it. In a project, members see its conversations; editors
and the project's owner may also change them and add messages; only a conversation's owner (or the project's)
may archive or delete it. Anyone else is told it does not exist.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from functions.conversations.history import HistoryCache
from functions.conversations.models import (
    Access,
    ConversationCreate,
    ConversationPublic,
    ConversationSource,
    ConversationStats,
    ConversationUpdate,
    ConversationWithMessages,
    MemberCreate,
    MemberPublic,
    MessagePublic,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    PromptCreate,
    PromptPublic,
    PromptUpdate,
    SearchHit,
)
from shared import events
from shared.auth.principal import Principal
from shared.concurrency import together
from shared.errors import Conflict, Forbidden, NotFound
from shared.http.models import Page
from shared.ids import new_id
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.conversations import store
    from functions.conversations.store import ConversationRecord, MemberRecord, MessageRecord, PromptRecord
else:
    store = LazyModule("functions.conversations.store")

DEFAULT_TITLE = "New conversation"
SNIPPET_CHARS = 160
# A message's content in its `message.created` webhook event, at most.
EVENT_CONTENT_CHARS = 16_000
_CAN_WRITE: frozenset[Access] = frozenset({"owner", "editor"})
# Histories this container has read or written, for the next reply to the same conversation.
_histories = HistoryCache()


# Access -------------------------------------------------------------------------------------------------


def _conversation_not_found() -> NotFound:
    return NotFound("Conversation not found", code="conversation_not_found")


def _project_not_found() -> NotFound:
    return NotFound("Project not found", code="project_not_found")


def _project_access(user_id: str, project_id: str) -> Access | None:
    member = store.get_member(project_id, user_id)
    return member.role if member is not None else None  # type: ignore[return-value]


def _reach(user_id: str, conversation_id: str, *, consistent: bool = False) -> tuple[ConversationRecord, Access]:
    """The conversation and what the user may do with it; NotFound when they may not even see it."""
    conversation = store.get_conversation(conversation_id, consistent=consistent)
    if conversation is None:
        raise _conversation_not_found()
    if conversation.owner_id == user_id:
        return conversation, "owner"
    access = _project_access(user_id, conversation.project_id) if conversation.project_id else None
    if access is None:
        raise _conversation_not_found()
    return conversation, access


def _writable(user_id: str, conversation_id: str, *, consistent: bool = False) -> tuple[ConversationRecord, Access]:
    conversation, access = _reach(user_id, conversation_id, consistent=consistent)
    if access not in _CAN_WRITE:
        raise Forbidden("Viewers of a project cannot change its conversations", code="read_only")
    return conversation, access


def _owned(user_id: str, conversation_id: str) -> ConversationRecord:
    conversation, access = _reach(user_id, conversation_id)
    if access != "owner":
        raise Forbidden("Only the conversation's owner can do this", code="owner_only")
    return conversation


def _require_project_write(user_id: str, project_id: str) -> None:
    access = _project_access(user_id, project_id)
    if access is None:
        raise _project_not_found()
    if access not in _CAN_WRITE:
        raise Forbidden("Viewers cannot add conversations to this project", code="read_only")


# Conversations ------------------------------------------------------------------------------------------


def create_conversation(principal: Principal, request: ConversationCreate) -> ConversationPublic:
    """A new conversation owned by the caller."""
    return _public_conversation(_create(principal, request, new_id()), "owner")


def _create(
    principal: Principal,
    request: ConversationCreate,
    conversation_id: str,
    *,
    agent_id: str | None = None,
    source: ConversationSource | None = None,
) -> ConversationRecord:
    if request.project_id:
        _require_project_write(principal.user_id, request.project_id)
    moment = store.now()
    title = request.title or DEFAULT_TITLE
    idle_pk, idle_sk = store.idle_keys(moment, conversation_id)
    conversation = store.ConversationRecord(
        store.conversation_pk(conversation_id),
        "META",
        gsi1pk=store.owner_partition(principal.user_id, archived=False),
        gsi1sk=store.activity_key(moment, conversation_id),
        gsi2pk=store.project_pk(request.project_id) if request.project_id else None,
        gsi2sk=store.activity_key(moment, conversation_id) if request.project_id else None,
        conversation_id=conversation_id,
        owner_id=principal.user_id,
        title=title,
        title_search=title.lower(),
        project_id=request.project_id,
        model=request.model,
        system_prompt=request.system_prompt,
        agent_id=agent_id,
        created_at=moment,
        updated_at=moment,
        last_activity_at=moment,
        gsi4pk=idle_pk,
        gsi4sk=idle_sk,
        source=source.model_dump(by_alias=True, exclude_none=True) if source is not None else None,
    )
    store.create_conversation(conversation)
    events.publish(
        "conversation.created",
        _public_conversation(conversation, "owner").model_dump(mode="json", by_alias=True),
        user_id=principal.user_id,
    )
    return conversation


def list_conversations(
    principal: Principal, *, archived: bool, project_id: str | None, limit: int, cursor: str | None
) -> Page[ConversationPublic]:
    """The user's conversations newest activity first; with `project_id`, that project's, everyone's."""
    if project_id is None:
        records, next_cursor = store.list_conversations(
            principal.user_id, archived=archived, limit=limit, cursor=cursor
        )
        return Page(items=[_public_conversation(r, "owner") for r in records], next_cursor=next_cursor)
    project_access = _project_access(principal.user_id, project_id)
    if project_access is None:
        raise _project_not_found()
    records, next_cursor = store.list_project_conversations(project_id, archived=archived, limit=limit, cursor=cursor)
    items = [_public_conversation(r, "owner" if r.owner_id == principal.user_id else project_access) for r in records]
    return Page(items=items, next_cursor=next_cursor)


def require_readable(principal: Principal, conversation_id: str) -> None:
    """NotFound unless the user may see the conversation (realtime rooms check this on join)."""
    _reach(principal.user_id, conversation_id)


def get_conversation(
    principal: Principal, conversation_id: str, *, messages_limit: int, messages_cursor: str | None
) -> ConversationWithMessages:
    conversation, access = _reach(principal.user_id, conversation_id)
    records, next_cursor = store.list_messages(conversation_id, limit=messages_limit, cursor=messages_cursor)
    return ConversationWithMessages(
        **_public_conversation(conversation, access).model_dump(),
        messages=Page(items=[_public_message(record) for record in records], next_cursor=next_cursor),
    )


def update_conversation(principal: Principal, conversation_id: str, request: ConversationUpdate) -> ConversationPublic:
    changes = request.model_dump(exclude_unset=True)
    conversation, access = _writable(principal.user_id, conversation_id)
    if "project_id" in changes and changes["project_id"] != conversation.project_id:
        if access != "owner" or conversation.owner_id != principal.user_id:
            raise Forbidden("Only the conversation's owner can move it between projects", code="owner_only")
        target = changes["project_id"]
        if target:
            _require_project_write(principal.user_id, target)
        sort_key = store.activity_key(conversation.last_activity_at, conversation.conversation_id)
        changes["gsi2pk"] = store.project_pk(target) if target else None
        changes["gsi2sk"] = sort_key if target else None
    if "title" in changes:
        if changes["title"] is None:
            del changes["title"]
        else:
            changes["title_search"] = changes["title"].lower()
    if changes:
        store.save_conversation(conversation, **changes)
    return _public_conversation(conversation, access)


def set_archived(principal: Principal, conversation_id: str, *, archived: bool) -> ConversationPublic:
    """Archived conversations drop out of the default list; unarchiving brings them back."""
    conversation = _owned(principal.user_id, conversation_id)
    if conversation.archived != archived:
        store.save_conversation(conversation, **store.archiving_changes(conversation, archived=archived))
    return _public_conversation(conversation, "owner")


def delete_conversation(principal: Principal, conversation_id: str) -> None:
    conversation = _owned(principal.user_id, conversation_id)
    store.delete_conversation(conversation.conversation_id)
    _histories.forget(conversation_id)


def conversation_stats(principal: Principal) -> ConversationStats:
    conversations = archived = messages = 0
    by_model: Counter[str] = Counter()
    for record in store.all_owned_conversations(principal.user_id):
        conversations += 1
        archived += int(record.archived)
        messages += int(record.message_count)
        by_model[record.model or "default"] += 1
    return ConversationStats(conversations=conversations, archived=archived, messages=messages, by_model=dict(by_model))


def search(principal: Principal, query: str, *, limit: int, cursor: str | None) -> Page[SearchHit]:
    """Titles and message text of the user's own conversations containing `query`, case-insensitively.

    Title matches lead the first page; message matches follow, newest first, page by page.
    """
    needle = query.strip().lower()
    hits: list[SearchHit] = []
    if cursor is None:
        hits += [
            SearchHit(conversation_id=r.conversation_id, title=r.title, matched_in="title", snippet=r.title)
            for r in store.all_owned_conversations(principal.user_id)
            if needle in r.title_search
        ]
    messages, next_cursor = store.search_owned_messages(principal.user_id, needle, limit=limit, cursor=cursor)
    titles = store.conversations_by_id(message.conversation_id for message in messages)
    hits += [
        SearchHit(
            conversation_id=message.conversation_id,
            title=titles[message.conversation_id].title if message.conversation_id in titles else DEFAULT_TITLE,
            matched_in="message",
            message_id=message.message_id,
            snippet=_snippet(message.content or message.search_text, needle),
        )
        for message in messages
    ]
    return Page(items=hits, next_cursor=next_cursor)


def _snippet(text: str, needle: str) -> str:
    at = max(0, text.lower().find(needle))
    start = max(0, at - SNIPPET_CHARS // 3)
    piece = text[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(text) else "")


# Messages -----------------------------------------------------------------------------------------------


def append_message(
    principal: Principal,
    conversation_id: str,
    role: str,
    content: str,
    *,
    metadata: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> MessagePublic:
    """Add a message at the end of a conversation. Concurrent appends all land, each with its own place.

    `message_id` lets a caller name the message before writing it (chat announces its reply's id up front).
    """
    conversation, _ = _writable(principal.user_id, conversation_id)
    return _append(conversation, principal.user_id, role, content, metadata=metadata, message_id=message_id)


def _append(
    conversation: ConversationRecord,
    author_id: str,
    role: str,
    content: str,
    *,
    metadata: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> MessagePublic:
    moment = store.now()
    seq = store.claim_message_slot(conversation, moment)
    author_pk, author_sk = store.author_keys(conversation, author_id, seq)
    message = store.MessageRecord(
        conversation.pk,
        store.message_sk(seq),
        gsi3pk=store.messages_partition(conversation.owner_id),
        gsi3sk=message_id or new_id(),
        conversation_id=conversation.conversation_id,
        seq=seq,
        role=role,
        author_id=author_id,
        metadata=metadata,
        created_at=moment,
        gsi4pk=author_pk,
        gsi4sk=author_sk,
    )
    message.message_id = message.gsi3sk
    store.put_message(message, content)
    public = _public_message(message, content)
    _histories.extend(conversation.conversation_id, public)
    events.publish("message.created", _message_event(public), user_id=conversation.owner_id)
    return public


def _message_event(message: MessagePublic) -> dict[str, Any]:
    """A message as its webhook event carries it: its content cut at `EVENT_CONTENT_CHARS` (an event is one SQS
    message; the whole text is one GET away)."""
    data = message.model_dump(mode="json", by_alias=True)
    content = data.get("content")
    if isinstance(content, str) and len(content) > EVENT_CONTENT_CHARS:
        data["content"] = content[:EVENT_CONTENT_CHARS]
        data["contentTruncated"] = True
    return data


def list_messages(principal: Principal, conversation_id: str, *, limit: int, cursor: str | None) -> Page[MessagePublic]:
    _reach(principal.user_id, conversation_id)
    records, next_cursor = store.list_messages(conversation_id, limit=limit, cursor=cursor)
    return Page(items=[_public_message(record) for record in records], next_cursor=next_cursor)


# Projects -----------------------------------------------------------------------------------------------


def create_project(principal: Principal, request: ProjectCreate) -> ProjectPublic:
    project_id = new_id()
    project = store.ProjectRecord(
        store.project_pk(project_id),
        "META",
        project_id=project_id,
        owner_id=principal.user_id,
        name=request.name,
        description=request.description,
    )
    store.create_project(project, store.member_record(project_id, principal.user_id, "owner", None))
    return _public_project(project, "owner")


def list_projects(principal: Principal, *, limit: int, cursor: str | None) -> Page[ProjectPublic]:
    entries, next_cursor = store.memberships(principal.user_id, limit=limit, cursor=cursor)
    projects = store.projects_by_id(entry.project_id for entry in entries)
    items = [
        _public_project(projects[entry.project_id], entry.role)  # type: ignore[arg-type]
        for entry in entries
        if entry.project_id in projects
    ]
    return Page(items=items, next_cursor=next_cursor)


def get_project(principal: Principal, project_id: str) -> ProjectPublic:
    access = _project_access(principal.user_id, project_id)
    project = store.get_project(project_id) if access else None
    if project is None or access is None:
        raise _project_not_found()
    return _public_project(project, access)


def update_project(principal: Principal, project_id: str, request: ProjectUpdate) -> ProjectPublic:
    project = _owned_project(principal.user_id, project_id)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        del changes["name"]
    if changes:
        store.save_project(project, **changes)
    return _public_project(project, "owner")


def delete_project(principal: Principal, project_id: str) -> None:
    """Delete a project; its conversations go back to their owners, out of the project."""
    _owned_project(principal.user_id, project_id)
    store.delete_project(project_id)


def add_member(principal: Principal, project_id: str, request: MemberCreate) -> MemberPublic:
    """Share the project with an account, by email, as viewer or editor (again: change their role)."""
    from functions.identity import service as identity

    _owned_project(principal.user_id, project_id)
    user_id = identity.user_id_for_email(request.email)
    if user_id is None:
        raise NotFound("No account has this email", code="user_not_found")
    if user_id == principal.user_id:
        raise Conflict("You own this project already", code="already_owner")
    member = store.member_record(project_id, user_id, request.role, request.email)
    store.put_member(member)
    return _public_member(member)


def list_members(principal: Principal, project_id: str) -> list[MemberPublic]:
    if _project_access(principal.user_id, project_id) is None:
        raise _project_not_found()
    return [_public_member(member) for member in store.members(project_id)]


def remove_member(principal: Principal, project_id: str, user_id: str) -> None:
    """The owner removes a member; a member may remove themselves (leave). The owner cannot leave."""
    access = _project_access(principal.user_id, project_id)
    if access is None:
        raise _project_not_found()
    if user_id == principal.user_id and access == "owner":
        raise Conflict("The owner cannot leave the project; delete it instead", code="owner_cannot_leave")
    if user_id != principal.user_id and access != "owner":
        raise Forbidden("Only the project's owner can remove other members", code="owner_only")
    if not store.remove_member(project_id, user_id):
        raise NotFound("Member not found", code="member_not_found")


def _owned_project(user_id: str, project_id: str) -> Any:
    access = _project_access(user_id, project_id)
    project = store.get_project(project_id) if access else None
    if project is None:
        raise _project_not_found()
    if access != "owner":
        raise Forbidden("Only the project's owner can do this", code="owner_only")
    return project


# Saved prompts ------------------------------------------------------------------------------------------


def create_prompt(principal: Principal, request: PromptCreate) -> PromptPublic:
    prompt_id = new_id()
    prompt = store.PromptRecord(
        *store.prompt_key(principal.user_id, prompt_id),
        prompt_id=prompt_id,
        title=request.title,
        content=request.content,
        tags=sorted(set(request.tags)),
    )
    store.create_prompt(prompt)
    return _public_prompt(prompt)


def list_prompts(principal: Principal, *, tag: str | None, limit: int, cursor: str | None) -> Page[PromptPublic]:
    records, next_cursor = store.list_prompts(principal.user_id, tag=tag, limit=limit, cursor=cursor)
    return Page(items=[_public_prompt(record) for record in records], next_cursor=next_cursor)


def get_prompt(principal: Principal, prompt_id: str) -> PromptPublic:
    return _public_prompt(_prompt(principal.user_id, prompt_id))


def update_prompt(principal: Principal, prompt_id: str, request: PromptUpdate) -> PromptPublic:
    prompt = _prompt(principal.user_id, prompt_id)
    changes = {name: value for name, value in request.model_dump(exclude_unset=True).items() if value is not None}
    if "tags" in changes:
        changes["tags"] = sorted(set(changes["tags"]))
    if changes:
        store.save_prompt(prompt, **changes)
    return _public_prompt(prompt)


def delete_prompt(principal: Principal, prompt_id: str) -> None:
    if not store.delete_prompt(principal.user_id, prompt_id):
        raise NotFound("Prompt not found", code="prompt_not_found")


def _prompt(user_id: str, prompt_id: str) -> PromptRecord:
    prompt = store.get_prompt(user_id, prompt_id)
    if prompt is None:
        raise NotFound("Prompt not found", code="prompt_not_found")
    return prompt


# What the jobs workflows (functions.conversations.jobs) read and forget -------------------------------


def exported_conversation(record: ConversationRecord) -> dict[str, Any]:
    """A conversation as its owner's export holds it: the API's shape."""
    return _public_conversation(record, "owner").model_dump(mode="json", by_alias=True)


def exported_message(record: MessageRecord) -> dict[str, Any]:
    """A message as an export holds it, its body read back from the payload bucket when it lives there."""
    return _public_message(record).model_dump(mode="json", by_alias=True)


def exported_project(record: Any, members: list[MemberRecord]) -> dict[str, Any]:
    """A project its owner exports, with its members."""
    entry = _public_project(record, "owner").model_dump(mode="json", by_alias=True)
    entry["members"] = [_public_member(member).model_dump(mode="json", by_alias=True) for member in members]
    return entry


def exported_prompt(record: PromptRecord) -> dict[str, Any]:
    return _public_prompt(record).model_dump(mode="json", by_alias=True)


def forget_histories(conversation_ids: list[str]) -> None:
    """Drop this container's cached histories of conversations that were deleted."""
    for conversation_id in conversation_ids:
        _histories.forget(conversation_id)


# Public shapes ------------------------------------------------------------------------------------------


def _public_conversation(record: ConversationRecord, access: Access) -> ConversationPublic:
    return ConversationPublic(
        id=record.conversation_id,
        title=record.title,
        project_id=record.project_id,
        model=record.model,
        system_prompt=record.system_prompt,
        agent_id=record.agent_id,
        archived=record.archived,
        message_count=int(record.message_count),
        owner_id=record.owner_id,
        access=access,
        created_at=record.created_at,
        updated_at=record.updated_at,
        last_activity_at=record.last_activity_at,
        source=ConversationSource.model_validate(record.source) if record.source else None,
    )


def _public_message(record: MessageRecord, content: str | None = None) -> MessagePublic:
    return MessagePublic(
        id=record.message_id,
        conversation_id=record.conversation_id,
        seq=int(record.seq),
        role=record.role,
        content=store.message_content(record) if content is None else content,
        author_id=record.author_id,
        metadata=record.metadata,
        created_at=record.created_at,
    )


def _public_project(record: Any, access: Access) -> ProjectPublic:
    return ProjectPublic(
        id=record.project_id,
        name=record.name,
        description=record.description,
        owner_id=record.owner_id,
        access=access,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _public_member(record: MemberRecord) -> MemberPublic:
    return MemberPublic(user_id=record.user_id, email=record.email, role=record.role, added_at=record.added_at)


def _public_prompt(record: PromptRecord) -> PromptPublic:
    return PromptPublic(
        id=record.prompt_id,
        title=record.title,
        content=record.content,
        tags=list(record.tags),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@dataclass(frozen=True)
class ReplyThread:
    """A conversation chat has checked the user may add to, with its newest messages: a reply's messages are
    appended to it without checking again, within the request that checked."""

    conversation: ConversationPublic
    history: list[MessagePublic]
    _record: ConversationRecord = field(repr=False)
    _author_id: str = field(repr=False)

    def append(
        self, role: str, content: str, *, metadata: dict[str, Any] | None = None, message_id: str | None = None
    ) -> MessagePublic:
        """`append_message` without its access check: see the class."""
        return _append(self._record, self._author_id, role, content, metadata=metadata, message_id=message_id)


def start_conversation(
    principal: Principal, request: ConversationCreate, *, conversation_id: str, agent_id: str | None = None
) -> ReplyThread:
    """A new conversation for a reply; `conversation_id` names it before it exists (chat announces it first).
    `agent_id`: the agent its replies answer as, for good."""
    record = _create(principal, request, conversation_id, agent_id=agent_id)
    return ReplyThread(_public_conversation(record, "owner"), [], record, principal.user_id)


def start_sourced_conversation(
    principal: Principal, request: ConversationCreate, *, source: ConversationSource, agent_id: str | None = None
) -> ConversationPublic:
    """A new conversation owned by the caller whose messages come from `source` (a messaging channel's contact);
    it lists, reads and replies like any other. `agent_id`: the agent its replies answer as, for good."""
    return _public_conversation(_create(principal, request, new_id(), source=source, agent_id=agent_id), "owner")


def conversation_for_reply(principal: Principal, conversation_id: str, count: int) -> ReplyThread:
    """A conversation the user may add to, with its last `count` messages oldest first: what chat reads before it
    stores the user's next message and asks a model to reply."""
    known = _histories.get(conversation_id)
    if known is None:
        # The history is read alongside the access check (one round trip instead of two), used only if it passes.
        (conversation, access), records = together(
            lambda: _writable(principal.user_id, conversation_id, consistent=True),
            lambda: store.recent_messages(conversation_id, count),
        )
        history = [_public_message(record) for record in records]
        _histories.remember(conversation_id, history, keep=count)
        return ReplyThread(_public_conversation(conversation, access), history, conversation, principal.user_id)
    # A strongly consistent read: its counter decides whether the history known here is whole.
    conversation, access = _writable(principal.user_id, conversation_id, consistent=True)
    unknown_places = int(conversation.message_count) - known.last_seq
    if unknown_places <= 0:  # nothing added since: no history read at all
        history = list(known.messages)
    elif unknown_places >= count or known.keep < count:
        history = [_public_message(record) for record in store.recent_messages(conversation_id, count)]
        _histories.remember(conversation_id, history, keep=count)
    else:
        newer = [_public_message(record) for record in store.messages_after(conversation_id, known.last_seq)]
        history = [*known.messages, *newer]
        _histories.remember(conversation_id, newer, keep=count, after=known)
    return ReplyThread(_public_conversation(conversation, access), history[-count:], conversation, principal.user_id)
