"""The conversations context's part in the jobs workflows (functions.jobs.ports): a user's conversations, messages,
projects and prompts exported and deleted page by page, an import's items stored, and the daily archiving of
conversations nobody has touched for `ARCHIVE_CONVERSATIONS_AFTER_DAYS`.

Every page reads through Query pages (never a Scan, never an item at a time) and writes through BatchWriteItem,
25 items a call, so a page costs little more than one call per 25 items. A cursor is JSON: the phase the page
stopped in and where in it (the key of the last item done, DynamoDB's own page position). A page run twice from
the same cursor does the same work again, which deleting, anonymising and putting the same items allow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedItem,
    ImportedMessage,
    ImportedProject,
    ImportedPrompt,
    RejectedItem,
)
from functions.jobs.ports import PAGE_ITEMS, ArchivePage, DeletePage, ExportPage, ImportResult
from shared.ids import derived_id
from shared.lazy import LazyModule
from shared.settings import get_settings

if TYPE_CHECKING:
    from pynamodb.models import BatchWrite, Model

    from functions.conversations import service, store
    from functions.conversations.store import ConversationRecord, MemberRecord, MessageRecord, PromptRecord
else:
    store = LazyModule("functions.conversations.store")
    service = LazyModule("functions.conversations.service")

# The first archiving run looks this far back for idle conversations; later runs start after the last one.
FIRST_ARCHIVE_LOOKBACK_DAYS = 400
# Message text one export page holds at most, whatever its count of items.
EXPORT_PAGE_BYTES = 64 * 1024 * 1024


@dataclass
class _Page:
    """One page's work: what it may still do, what it produced, and (deleting) the batch its writes go to."""

    left: int
    batch: BatchWrite[Any] | None = None
    bytes_left: int = field(default_factory=lambda: EXPORT_PAGE_BYTES)
    done: int = 0
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forgotten: list[str] = field(default_factory=list)

    @property
    def writes(self) -> BatchWrite[Any]:
        assert self.batch is not None, "a page that writes opens a batch"
        return self.batch

    def spend(self, items: int = 1) -> None:
        self.left -= items
        self.done += items

    def emit(self, stem: str, record: dict[str, Any], *, size: int = 0) -> None:
        self.records.setdefault(stem, []).append(record)
        self.spend()
        self.bytes_left -= size
        if self.bytes_left <= 0:
            self.left = 0

    def delete(self, records: list[Any]) -> None:
        for record in records:
            self.writes.delete(record)
        self.spend(len(records))


# A phase carries on from its own position (`at`), and returns where it stopped when the page ran out, or None
# when it is finished.
_Phase = Callable[[str, dict[str, Any], _Page], dict[str, Any] | None]


def _run(phases: dict[str, _Phase], user_id: str, cursor: str | None, page: _Page) -> str | None:
    names = list(phases)
    state: dict[str, Any] = json.loads(cursor) if cursor else {"phase": names[0], "at": {}}
    for name in names[names.index(state["phase"]) :]:
        at: dict[str, Any] = state["at"] if name == state["phase"] else {}
        if page.left <= 0:
            return json.dumps({"phase": name, "at": at})
        stopped = phases[name](user_id, at, page)
        if stopped is not None:
            return json.dumps({"phase": name, "at": stopped})
    return None


def _walk(
    query: Callable[[int, dict[str, Any] | None], Any],
    after: dict[str, Any] | None,
    page: _Page,
    handle: Callable[[list[Any]], None],
) -> dict[str, Any] | None:
    """Query pages from `after` (a LastEvaluatedKey; {} or None: the start), each handed whole to `handle`, which
    spends what it does, until the end (None) or until the page has done its share (the position to go on from)."""
    after = after or None
    while page.left > 0:
        found = query(page.left, after)
        handle(list(found))
        after = found.last_evaluated_key
        if after is None:
            return None
    return after or {}


def _rest(stopped: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if stopped is None else {"after": stopped}


def _index_position(record: Model, index: str) -> dict[str, Any]:
    """The key DynamoDB resumes a Query of `index` after, for `record` (as a LastEvaluatedKey)."""
    names = ("pk", "sk", f"{index}pk", f"{index}sk") if index else ("pk", "sk")
    return {name: {"S": getattr(record, name)} for name in names}


def _batch() -> BatchWrite[Any]:
    return store.ConversationRecord.batch_write()


# Export -------------------------------------------------------------------------------------------------


def export_page(user_id: str, cursor: str | None, limit: int = PAGE_ITEMS) -> ExportPage:
    """The user's own conversations, each followed by its messages in order, then the projects they own with
    their members, then their saved prompts; at most `limit` records a page."""
    page = _Page(limit)
    next_cursor = _run(
        {"conversations": _export_conversations, "projects": _export_projects, "prompts": _export_prompts},
        user_id,
        cursor,
        page,
    )
    return ExportPage(records=page.records, cursor=next_cursor)


def _export_conversations(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    """Owned conversations, active then archived, least recently active first: one that gets a message during
    the export moves to the end, still ahead of the cursor, so it is exported (perhaps twice), never skipped.
    A conversation's messages may go on over the next pages."""
    archived, after = at.get("archived", False), at.get("after")
    if at.get("conversation"):
        messages = _export_messages(at["conversation"], at.get("messages") or None, page)
        if messages is not None:
            return at | {"messages": messages}
    while page.left > 0:
        found = store.ConversationRecord.by_owner.query(
            store.owner_partition(user_id, archived=archived), limit=page.left, last_evaluated_key=after
        )
        for conversation in found:
            page.emit("conversations", {"conversation": service.exported_conversation(conversation)})
            after = _index_position(conversation, "gsi1")
            messages = _export_messages(conversation.conversation_id, None, page)
            if messages is not None:
                return {"archived": archived, "after": after, "conversation": conversation.conversation_id,
                        "messages": messages}  # fmt: skip
            if page.left <= 0:
                return {"archived": archived, "after": after}
        if found.last_evaluated_key is not None:
            after = found.last_evaluated_key
        elif archived:
            return None
        else:
            archived, after = True, None
    return {"archived": archived, "after": after}


def _export_messages(conversation_id: str, after: dict[str, Any] | None, page: _Page) -> dict[str, Any] | None:
    """Messages of one conversation from `after` on; where the page stopped, or None when all are out. A page
    also stops once it holds `EXPORT_PAGE_BYTES` of message text (2,000 messages of a megabyte would not fit a
    task's memory)."""
    while page.left > 0:
        found = store.MessageRecord.query(
            store.conversation_pk(conversation_id),
            store.MessageRecord.sk.startswith("MSG#"),
            limit=page.left,
            last_evaluated_key=after or None,
        )
        for message in found:
            page.emit("conversations", {"message": service.exported_message(message)}, size=int(message.content_bytes))
            after = _index_position(message, "")
            if page.left <= 0:
                return after
        if found.last_evaluated_key is None:
            return None
    return after or {}


def _export_projects(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    def emit(memberships: list[MemberRecord]) -> None:
        owned = [membership for membership in memberships if membership.role == "owner"]
        projects = store.projects_by_id(membership.project_id for membership in owned)
        for membership in owned:
            if membership.project_id in projects:
                members = store.members(membership.project_id)
                page.emit("projects", service.exported_project(projects[membership.project_id], members))
                page.spend(len(members))

    return _rest(_walk(_memberships_query(user_id), at.get("after"), page, emit))


def _memberships_query(user_id: str) -> Callable[[int, dict[str, Any] | None], Any]:
    return lambda limit, start: store.MemberRecord.by_user.query(
        store.projects_partition(user_id), limit=limit, last_evaluated_key=start
    )


def _prompts_query(user_id: str, **options: Any) -> Callable[[int, dict[str, Any] | None], Any]:
    return lambda limit, start: store.PromptRecord.query(
        f"USER#{user_id}", store.PromptRecord.sk.startswith("PROMPT#"), limit=limit, last_evaluated_key=start, **options
    )


def _export_prompts(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    def emit(prompts: list[PromptRecord]) -> None:
        for prompt in prompts:
            page.emit("prompts", service.exported_prompt(prompt))

    return _rest(_walk(_prompts_query(user_id), at.get("after"), page, emit))


# Deletion -----------------------------------------------------------------------------------------------


def delete_page(user_id: str, cursor: str | None, limit: int = PAGE_ITEMS) -> DeletePage:
    """Delete the user's data, at most `limit` items a page: their conversations, then every message of them
    (and their bodies in the payload bucket), then their projects (others' conversations in them are detached and
    kept) and memberships, then the messages they wrote in others' conversations (kept, no longer naming them),
    then their prompts.

    A conversation goes before its messages, so no message can be added to it meanwhile; its messages are found
    through the owner's message index, which does not need the conversation any more."""
    with _batch() as batch:
        page = _Page(limit, batch)
        next_cursor = _run(
            {
                "conversations": _delete_conversations,
                "messages": _delete_messages,
                "projects": _delete_projects,
                "authored": _anonymise_authored,
                "prompts": _delete_prompts,
            },
            user_id,
            cursor,
            page,
        )
    service.forget_histories(page.forgotten)
    return DeletePage(deleted=page.done, cursor=next_cursor)


def _delete_conversations(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    def delete(conversations: list[ConversationRecord]) -> None:
        page.delete(conversations)
        page.forgotten += [conversation.conversation_id for conversation in conversations]

    def owned(archived: bool) -> Callable[[int, dict[str, Any] | None], Any]:
        return lambda limit, start: store.ConversationRecord.by_owner.query(
            store.owner_partition(user_id, archived=archived),
            limit=limit,
            last_evaluated_key=start,
            attributes_to_get=["pk", "sk", "gsi1pk", "gsi1sk", "conversationId"],
        )

    archived = at.get("archived", False)
    for partition_archived in (False, True)[int(archived) :]:
        after = at.get("after") if partition_archived == archived else None
        stopped = _walk(owned(partition_archived), after, page, delete)
        if stopped is not None:
            return {"archived": partition_archived, "after": stopped}
    return None


def _delete_messages(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    def delete(messages: list[MessageRecord]) -> None:
        # Bodies first: were the page to fail after its messages went, a retry would no longer find them.
        store.delete_payload_keys(message.content_ref for message in messages if message.content_ref)
        page.delete(messages)

    query = lambda limit, start: store.MessageRecord.by_owner_text.query(  # noqa: E731
        store.messages_partition(user_id),
        limit=limit,
        last_evaluated_key=start,
        attributes_to_get=["pk", "sk", "gsi3pk", "gsi3sk", "contentRef"],
    )
    return _rest(_walk(query, at.get("after"), page, delete))


def _delete_projects(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    """Memberships one by one: an owned project is taken apart (others' conversations detached, members, the
    project), possibly over several pages; a membership of someone else's project just ends."""
    after, project, step, position = at.get("after"), at.get("project"), at.get("step"), at.get("position")
    while True:
        if project is not None:
            stopped = _take_apart_project(user_id, project, step or "detach", position or None, page)
            if stopped is not None:
                return {"after": after, "project": project, "step": stopped[0], "position": stopped[1]}
            project = None
        if page.left <= 0:
            return {"after": after}
        found = _memberships_query(user_id)(page.left, after)
        for membership in found:
            after = _index_position(membership, "gsi1")
            if membership.role == "owner":
                project, step, position = membership.project_id, "detach", None
                break
            page.writes.delete(membership)
            page.spend()
        else:
            if found.last_evaluated_key is None:
                return None


def _take_apart_project(
    user_id: str, project_id: str, step: str, position: dict[str, Any] | None, page: _Page
) -> tuple[str, dict[str, Any]] | None:
    """Detach the project's conversations (others': the user's own are going), then delete its members, then the
    project; (step, position) where the page stopped, or None when the project is gone."""

    def detach(conversations: list[ConversationRecord]) -> None:
        for conversation in conversations:
            if conversation.owner_id != user_id:
                store.detach_from_project(conversation)
                page.spend()

    if step == "detach":
        query = lambda limit, start: store.ConversationRecord.by_project.query(  # noqa: E731
            store.project_pk(project_id), limit=limit, last_evaluated_key=start
        )
        stopped = _walk(query, position, page, detach)
        if stopped is not None:
            return "detach", stopped
        position = None
    members = lambda limit, start: store.MemberRecord.query(  # noqa: E731
        store.project_pk(project_id),
        store.MemberRecord.sk.startswith("MEMBER#"),
        limit=limit,
        last_evaluated_key=start,
        attributes_to_get=["pk", "sk"],
    )
    stopped = _walk(members, position, page, page.delete)
    if stopped is not None:
        return "members", stopped
    page.delete([store.ProjectRecord(store.project_pk(project_id), "META")])
    return None


def _anonymise_authored(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    """The user's messages in others' conversations stay, naming nobody: put back whole (the index holds every
    attribute) without the author and without this index's keys."""

    def anonymise(messages: list[MessageRecord]) -> None:
        for message in messages:
            message.author_id = store.DELETED_AUTHOR
            message.gsi4pk = message.gsi4sk = None
            page.writes.save(message)
        page.spend(len(messages))

    query = lambda limit, start: store.MessageRecord.by_author.query(  # noqa: E731
        store.author_partition(user_id), limit=limit, last_evaluated_key=start
    )
    return _rest(_walk(query, at.get("after"), page, anonymise))


def _delete_prompts(user_id: str, at: dict[str, Any], page: _Page) -> dict[str, Any] | None:
    return _rest(_walk(_prompts_query(user_id, attributes_to_get=["pk", "sk"]), at.get("after"), page, page.delete))


# Import -------------------------------------------------------------------------------------------------


def _conversation_key(user_id: str, job_id: str, item: ImportedConversation, seen: dict[str, int]) -> str:
    if item.source_id:
        return derived_id(item.created_at, user_id, "conversation", item.source_id)
    # No id in the file: its place among the job's conversations alike (same title, same start).
    fingerprint = f"{item.title}\x1f{item.created_at.isoformat()}"
    seen[fingerprint] = seen.get(fingerprint, 0) + 1
    return derived_id(item.created_at, user_id, "conversation", job_id, fingerprint, str(seen[fingerprint]))


def _project_key(user_id: str, source_id: str) -> str:
    # A fixed time part: a conversation names its project by source id alone and must find the same id.
    return derived_id(datetime(2000, 1, 1, tzinfo=UTC), user_id, "project", source_id)


def _prompt_key(user_id: str, job_id: str, item: ImportedPrompt, seen: dict[str, int]) -> str:
    moment = item.created_at or datetime(2000, 1, 1, tzinfo=UTC)
    if item.source_id:
        return derived_id(moment, user_id, "prompt", item.source_id)
    fingerprint = f"{item.title}\x1f{hashlib.sha256(item.content.encode()).hexdigest()}"
    seen[fingerprint] = seen.get(fingerprint, 0) + 1
    return derived_id(moment, user_id, "prompt", job_id, fingerprint, str(seen[fingerprint]))


@dataclass
class _Import:
    user_id: str
    batch: BatchWrite[Any]
    existing: set[str]
    projects: set[str]
    counts: dict[str, int] = field(
        default_factory=lambda: {"conversations": 0, "messages": 0, "projects": 0, "prompts": 0}
    )
    rejected: list[RejectedItem] = field(default_factory=list)


def import_items(user_id: str, job_id: str, items: Sequence[ImportedItem]) -> ImportResult:
    """Store an import's projects (the importer owns them), conversations with their messages and prompts,
    keeping their times. An item already imported (same id) is left as it is and counted again, so a retried
    page reports what the file holds."""
    conversation_seen: dict[str, int] = {}
    prompt_seen: dict[str, int] = {}
    keyed: list[tuple[ImportedItem, str]] = []
    for item in items:
        if isinstance(item, ImportedConversation):
            keyed.append((item, _conversation_key(user_id, job_id, item, conversation_seen)))
        elif isinstance(item, ImportedProject):
            keyed.append((item, _project_key(user_id, item.source_id)))
        elif isinstance(item, ImportedPrompt):
            keyed.append((item, _prompt_key(user_id, job_id, item, prompt_seen)))
    named_projects = {
        _project_key(user_id, item.project_source_id)
        for item, _ in keyed
        if isinstance(item, ImportedConversation) and item.project_source_id
    }
    existing = store.existing_items(
        conversations=[key for item, key in keyed if isinstance(item, ImportedConversation)],
        projects=[key for item, key in keyed if isinstance(item, ImportedProject)] + sorted(named_projects),
        prompts=[(user_id, key) for item, key in keyed if isinstance(item, ImportedPrompt)],
    )
    moment = store.now()
    with _batch() as batch:
        work = _Import(user_id, batch, existing, {key for item, key in keyed if isinstance(item, ImportedProject)})
        work.projects |= existing & named_projects
        for item, key in keyed:
            if isinstance(item, ImportedProject):
                _import_project(work, item, key)
            elif isinstance(item, ImportedConversation):
                _import_conversation(work, item, key, moment)
            elif isinstance(item, ImportedPrompt):
                _import_prompt(work, item, key)
    return ImportResult(imported=work.counts, rejected=work.rejected)


def _import_project(work: _Import, item: ImportedProject, project_id: str) -> None:
    work.counts["projects"] += 1
    if project_id in work.existing:
        return
    work.existing.add(project_id)  # named twice in the file: one batch may not hold the same key twice
    project = store.ProjectRecord(
        store.project_pk(project_id),
        "META",
        project_id=project_id,
        owner_id=work.user_id,
        name=item.name,
        description=item.description,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )
    owner = store.member_record(project_id, work.user_id, "owner", None)
    owner.added_at = item.created_at
    work.batch.save(project)
    work.batch.save(owner)


def _import_conversation(work: _Import, item: ImportedConversation, conversation_id: str, moment: datetime) -> None:
    """Messages first, numbered from 1 in file order, the conversation last: it says how many there are."""
    skip = conversation_id in work.existing
    work.existing.add(conversation_id)  # named twice in the file: one batch may not hold the same key twice
    project_id = _project_key(work.user_id, item.project_source_id) if item.project_source_id else None
    if project_id not in work.projects:
        project_id = None
    pk = store.conversation_pk(conversation_id)
    seq = 0
    last_message_at = item.created_at
    for entry in item.messages:
        if isinstance(entry, RejectedItem):
            work.rejected.append(entry)
            continue
        seq += 1
        work.counts["messages"] += 1
        last_message_at = max(last_message_at, entry.created_at)
        if not skip:
            work.batch.save(_imported_message(work.user_id, conversation_id, pk, seq, entry))
    work.counts["conversations"] += 1
    if skip:
        return
    # Activity is what moves a conversation up its owner's list: its last message (a rename does not).
    last_activity = last_message_at
    title = item.title
    conversation = store.ConversationRecord(
        pk,
        "META",
        gsi1pk=store.owner_partition(work.user_id, archived=item.archived),
        gsi1sk=store.activity_key(last_activity, conversation_id),
        gsi2pk=store.project_pk(project_id) if project_id else None,
        gsi2sk=store.activity_key(last_activity, conversation_id) if project_id else None,
        conversation_id=conversation_id,
        owner_id=work.user_id,
        title=title,
        title_search=title.lower(),
        project_id=project_id,
        model=item.model,
        system_prompt=item.system_prompt,
        archived=item.archived,
        message_count=seq,
        created_at=item.created_at,
        updated_at=item.updated_at,
        last_activity_at=last_activity,
    )
    if not item.archived:
        # Idle from the day it arrived, not from its last activity elsewhere: archiving, which visits only the
        # days since its last run, archives it `ARCHIVE_CONVERSATIONS_AFTER_DAYS` after the import if untouched.
        conversation.gsi4pk, conversation.gsi4sk = store.idle_keys(max(moment, last_activity), conversation_id)
    work.batch.save(conversation)


def _imported_message(owner_id: str, conversation_id: str, pk: str, seq: int, entry: ImportedMessage) -> MessageRecord:
    message_id = derived_id(entry.created_at, conversation_id, str(seq))
    message = store.MessageRecord(
        pk,
        store.message_sk(seq),
        gsi3pk=store.messages_partition(owner_id),
        gsi3sk=message_id,
        message_id=message_id,
        conversation_id=conversation_id,
        seq=seq,
        role=entry.role,
        author_id=owner_id,
        metadata=entry.metadata,
        created_at=entry.created_at,
    )
    store.set_message_body(message, entry.content)
    return message


def _import_prompt(work: _Import, item: ImportedPrompt, prompt_id: str) -> None:
    work.counts["prompts"] += 1
    if f"{work.user_id}/{prompt_id}" in work.existing:
        return
    work.existing.add(f"{work.user_id}/{prompt_id}")
    created = item.created_at or store.now()
    work.batch.save(
        store.PromptRecord(
            *store.prompt_key(work.user_id, prompt_id),
            prompt_id=prompt_id,
            title=item.title,
            content=item.content,
            tags=sorted(set(item.tags)),
            created_at=created,
            updated_at=item.updated_at or created,
        )
    )


# Archiving ----------------------------------------------------------------------------------------------


def archive_page(now: datetime, cursor: str | None, limit: int = PAGE_ITEMS) -> ArchivePage:
    """Archive the conversations idle for `ARCHIVE_CONVERSATIONS_AFTER_DAYS` (0: none), as their owner's archive
    would: day partitions of the idle index from the day after the last run's up to the cutoff day, each of its
    shards a Query. An empty partition counts as one item of the page's work, so a first run's year of empty
    days spans pages too."""
    days = get_settings().archive_conversations_after_days
    if days == 0:
        return ArchivePage(archived=0, cursor=None)
    if cursor:
        state = json.loads(cursor)
    else:
        cutoff = now.astimezone(UTC) - timedelta(days=days)
        known = store.get_archive_state()
        first = (
            date.fromisoformat(known.last_day) + timedelta(days=1)
            if known
            else cutoff.date() - timedelta(days=FIRST_ARCHIVE_LOOKBACK_DAYS)
        )
        state = {"day": first.isoformat(), "shard": 0, "after": None, "cutoff": cutoff.isoformat(),
                 "floor": (first - timedelta(days=1)).isoformat()}  # fmt: skip
    cutoff = datetime.fromisoformat(state["cutoff"])
    before = store.activity_key(cutoff, "")
    day, shard, after = date.fromisoformat(state["day"]), state["shard"], state["after"]
    left = limit
    archived = 0
    while day <= cutoff.date():
        if left <= 0:
            return ArchivePage(archived, json.dumps({**state, "day": day.isoformat(), "shard": shard, "after": after}))
        found = store.ConversationRecord.by_idle_day.query(
            store.idle_partition(day, shard),
            store.ConversationRecord.gsi4sk < before,
            limit=left,
            last_evaluated_key=after,
        )
        left -= 1
        for conversation in found:
            archived += store.archive_if_idle(conversation, now)
            left -= 1
        after = found.last_evaluated_key
        if after is None:
            shard += 1
            if shard == store.STALE_SHARDS:
                day, shard = day + timedelta(days=1), 0
    # The cutoff day itself is only partly behind the cutoff: the next run visits it again.
    store.save_archive_state(max(cutoff.date() - timedelta(days=1), date.fromisoformat(state["floor"])))
    return ArchivePage(archived, None)
