"""The conversations context's storage: pynamodb records in its table, large message bodies in S3.

Items (pk / sk):
  CONV#<id> / META             a conversation; gsi1 USER#<owner>#CONVS#ACTIVE|ARCHIVED / <activity>#<id> lists
                               a user's conversations newest activity first; gsi2 PROJECT#<id> / <activity>#<id>
                               lists a project's
  CONV#<id> / MSG#<seq>        a message, `seq` from the conversation's atomic counter, so concurrent appends
                               all land, in the order they were accepted; gsi3 USER#<owner>#MSGS / <message id>
                               indexes the owner's message text for search
  PROJECT#<id> / META          a project
  PROJECT#<id> / MEMBER#<user> a member and their role, the owner included (role `owner`); gsi1
                               USER#<member>#PROJECTS / <project id> lists the projects a user is in
  USER#<id> / PROMPT#<id>      a saved prompt
  ARCHIVE#STATE / META         the last day the archiving run finished (functions.conversations.jobs)

gsi4 serves the jobs workflows, two sparse kinds of keys on it: an unarchived conversation carries
STALE#<day of last activity>#<shard> / <activity>#<id>, so the archiving run finds the conversations idle since a
day by Query (eight shards, so one busy day is not one hot key); a message written in someone else's conversation
carries AUTHOR#<author> / <conversation id>#<seq>, so an account deletion finds what its user wrote there.

A message body over `INLINE_LIMIT_BYTES` is kept in the payload bucket and read back transparently.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.attributes import BooleanAttribute, JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.settings import get_settings
from shared.storage import condition_failed, secondary_index, string_list, table_meta, update_existing
from shared.tables import CONVERSATIONS

# DynamoDB items stop at 400 KB; keep well clear of it, leaving room for the other attributes.
INLINE_LIMIT_BYTES = 350_000
# Who a message names as its author once that account is deleted (the message stays in its owner's conversation).
DELETED_AUTHOR = "deleted-user"
STALE_SHARDS = 8
# Characters of a message kept lower-cased for search (the index would otherwise hold every long paste twice).
SEARCH_TEXT_CHARS = 4_000
SEARCH_PAGE_ITEMS = 200

_Meta = table_meta(CONVERSATIONS)


def now() -> datetime:
    return datetime.now(UTC)


def activity_key(moment: datetime, item_id: str) -> str:
    """Sort key that orders by activity time, with the id breaking ties."""
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{item_id}"


class ConversationRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="META")
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    gsi4pk = UnicodeAttribute(null=True)
    gsi4sk = UnicodeAttribute(null=True)
    by_owner = secondary_index(CONVERSATIONS.index("gsi1"))
    by_project = secondary_index(CONVERSATIONS.index("gsi2"))
    by_idle_day = secondary_index(CONVERSATIONS.index("gsi4"))

    conversation_id = UnicodeAttribute(attr_name="conversationId")
    owner_id = UnicodeAttribute(attr_name="ownerId")
    title = UnicodeAttribute()
    title_search = UnicodeAttribute(attr_name="titleSearch")
    project_id = UnicodeAttribute(attr_name="projectId", null=True)
    model = UnicodeAttribute(null=True)
    system_prompt = UnicodeAttribute(attr_name="systemPrompt", null=True)
    # The agent its replies answer as (set when it starts, never changed).
    agent_id = UnicodeAttribute(attr_name="agentId", null=True)
    archived = BooleanAttribute(default=False)
    message_count = NumberAttribute(attr_name="messageCount", default=0)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)
    last_activity_at = UTCDateTimeAttribute(attr_name="lastActivityAt", default=now)
    # Where a conversation comes from when not from the API: a messaging channel's {channelId, type, contactId,
    # contactName?}.
    source = JSONAttribute(null=True)


class MessageRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi3pk = UnicodeAttribute()
    gsi3sk = UnicodeAttribute()
    gsi4pk = UnicodeAttribute(null=True)
    gsi4sk = UnicodeAttribute(null=True)
    by_owner_text = secondary_index(CONVERSATIONS.index("gsi3"))
    by_author = secondary_index(CONVERSATIONS.index("gsi4"))

    message_id = UnicodeAttribute(attr_name="messageId")
    conversation_id = UnicodeAttribute(attr_name="conversationId")
    seq = NumberAttribute()
    role = UnicodeAttribute()
    author_id = UnicodeAttribute(attr_name="authorId")
    content = UnicodeAttribute(null=True)
    # Set instead of `content` when the body lives in the payload bucket.
    content_ref = UnicodeAttribute(attr_name="contentRef", null=True)
    content_bytes = NumberAttribute(attr_name="contentBytes")
    search_text = UnicodeAttribute(attr_name="searchText")
    # What produced an assistant reply (provider, model, tokens, incomplete), written by chat.
    metadata = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)


class ProjectRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="META")
    project_id = UnicodeAttribute(attr_name="projectId")
    owner_id = UnicodeAttribute(attr_name="ownerId")
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)


class MemberRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_user = secondary_index(CONVERSATIONS.index("gsi1"))

    project_id = UnicodeAttribute(attr_name="projectId")
    user_id = UnicodeAttribute(attr_name="userId")
    email = UnicodeAttribute(null=True)
    # owner, editor or viewer
    role = UnicodeAttribute()
    added_at = UTCDateTimeAttribute(attr_name="addedAt", default=now)


class PromptRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    prompt_id = UnicodeAttribute(attr_name="promptId")
    title = UnicodeAttribute()
    content = UnicodeAttribute()
    tags = string_list()
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)


class ArchiveStateRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True, default="ARCHIVE#STATE")
    sk = UnicodeAttribute(range_key=True, default="META")
    # Every conversation idle since this day or before has been archived.
    last_day = UnicodeAttribute(attr_name="lastDay")


# Keys ---------------------------------------------------------------------------------------------------


def conversation_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def owner_partition(owner_id: str, *, archived: bool) -> str:
    return f"USER#{owner_id}#CONVS#{'ARCHIVED' if archived else 'ACTIVE'}"


def project_pk(project_id: str) -> str:
    return f"PROJECT#{project_id}"


def projects_partition(user_id: str) -> str:
    return f"USER#{user_id}#PROJECTS"


def messages_partition(owner_id: str) -> str:
    return f"USER#{owner_id}#MSGS"


LAST_SEQ = 10**10 - 1  # the highest place `message_sk` can write


def message_sk(seq: int) -> str:
    return f"MSG#{seq:010d}"


def idle_partition(day: date, shard: int) -> str:
    return f"STALE#{day.isoformat()}#{shard}"


def idle_keys(moment: datetime, conversation_id: str) -> tuple[str, str]:
    """The gsi4 keys (partition, sort) of an unarchived conversation last active at `moment`."""
    shard = zlib.crc32(conversation_id.encode()) % STALE_SHARDS
    return idle_partition(moment.date(), shard), activity_key(moment, conversation_id)


def author_partition(author_id: str) -> str:
    return f"AUTHOR#{author_id}"


def author_keys(conversation: ConversationRecord, author_id: str, seq: int) -> tuple[str | None, str | None]:
    """The gsi4 keys (partition, sort) of a message: only one written in someone else's conversation has them."""
    if author_id == conversation.owner_id:
        return None, None
    return author_partition(author_id), f"{conversation.conversation_id}#{seq:010d}"


def _start(cursor: str | None, partition: dict[str, str], **sort_prefixes: str) -> dict[str, Any] | None:
    return decode_cursor(cursor, partition=partition, sort_prefixes=sort_prefixes)


# Conversations ------------------------------------------------------------------------------------------


def create_conversation(conversation: ConversationRecord) -> None:
    conversation.save(condition=ConversationRecord.pk.does_not_exist())


def get_conversation(conversation_id: str, *, consistent: bool = False) -> ConversationRecord | None:
    try:
        return ConversationRecord.get(conversation_pk(conversation_id), "META", consistent_read=consistent)
    except DoesNotExist:
        return None


def list_conversations(
    owner_id: str, *, archived: bool, limit: int, cursor: str | None
) -> tuple[list[ConversationRecord], str | None]:
    partition = owner_partition(owner_id, archived=archived)
    results = ConversationRecord.by_owner.query(
        partition,
        limit=limit,
        last_evaluated_key=_start(cursor, {"gsi1pk": partition}, gsi1sk="", pk="CONV#", sk="META"),
        scan_index_forward=False,
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def list_project_conversations(
    project_id: str, *, archived: bool | None, limit: int, cursor: str | None
) -> tuple[list[ConversationRecord], str | None]:
    partition = project_pk(project_id)
    condition = None if archived is None else ConversationRecord.archived == archived
    results = ConversationRecord.by_project.query(
        partition,
        filter_condition=condition,
        limit=limit,
        last_evaluated_key=_start(cursor, {"gsi2pk": partition}, gsi2sk="", pk="CONV#", sk="META"),
        scan_index_forward=False,
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def all_owned_conversations(owner_id: str) -> Iterator[ConversationRecord]:
    """Every conversation the user owns, archived or not, page by page."""
    for archived in (False, True):
        yield from ConversationRecord.by_owner.query(owner_partition(owner_id, archived=archived))


def save_conversation(conversation: ConversationRecord, **changes: Any) -> ConversationRecord:
    """Apply `changes` (attribute name to value; None removes) to a conversation that must still exist."""
    try:
        update_existing(conversation, changes, updated_at=now())
    except UpdateError as error:
        if condition_failed(error):
            raise NotFound("Conversation not found", code="conversation_not_found") from None
        raise
    return conversation


def archiving_changes(conversation: ConversationRecord, *, archived: bool) -> dict[str, Any]:
    """What archiving (or unarchiving) changes on a conversation: its list, and whether the archiving run's
    index holds it."""
    idle_pk, idle_sk = idle_keys(conversation.last_activity_at, conversation.conversation_id)
    return {
        "archived": archived,
        "gsi1pk": owner_partition(conversation.owner_id, archived=archived),
        "gsi4pk": None if archived else idle_pk,
        "gsi4sk": None if archived else idle_sk,
    }


def archive_if_idle(conversation: ConversationRecord, moment: datetime) -> bool:
    """Archive a conversation the archiving run found, unless it was active (or archived, or deleted) since the
    index said it was idle; True when it was archived."""
    changes = {**archiving_changes(conversation, archived=True), "updated_at": moment}
    actions = [
        getattr(ConversationRecord, name).remove() if value is None else getattr(ConversationRecord, name).set(value)
        for name, value in changes.items()
    ]
    try:
        conversation.update(actions=actions, condition=ConversationRecord.gsi4sk == conversation.gsi4sk)
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def get_archive_state() -> ArchiveStateRecord | None:
    try:
        return ArchiveStateRecord.get("ARCHIVE#STATE", "META", consistent_read=True)
    except DoesNotExist:
        return None


def save_archive_state(last_day: date) -> None:
    ArchiveStateRecord(last_day=last_day.isoformat()).save()


def delete_conversation(conversation_id: str) -> int:
    """Delete a conversation with every message and stored payload; returns how many messages went.

    The conversation goes first: appending needs it, so no message can land while its messages are deleted."""
    pk = conversation_pk(conversation_id)
    ConversationRecord(pk, "META").delete()
    deleted = 0
    with MessageRecord.batch_write() as batch:
        for item in MessageRecord.query(pk, MessageRecord.sk.startswith("MSG#"), attributes_to_get=["pk", "sk"]):
            batch.delete(item)
            deleted += 1
    delete_payloads(f"conversations/{conversation_id}/")
    return deleted


# Messages -----------------------------------------------------------------------------------------------


def claim_message_slot(conversation: ConversationRecord, moment: datetime) -> int:
    """Reserve the next sequence number and mark the conversation active now; atomic, so every concurrent
    append gets its own slot. Raises NotFound if the conversation was deleted meanwhile."""
    sort_key = activity_key(moment, conversation.conversation_id)
    actions: list[Action] = [
        ConversationRecord.message_count.add(1),
        ConversationRecord.last_activity_at.set(moment),
        ConversationRecord.updated_at.set(moment),
        ConversationRecord.gsi1sk.set(sort_key),
    ]
    if conversation.project_id:
        actions.append(ConversationRecord.gsi2sk.set(sort_key))
    if not conversation.archived:
        idle_pk, idle_sk = idle_keys(moment, conversation.conversation_id)
        actions += [ConversationRecord.gsi4pk.set(idle_pk), ConversationRecord.gsi4sk.set(idle_sk)]
    try:
        conversation.update(actions=actions, condition=ConversationRecord.pk.exists())
    except UpdateError as error:
        if condition_failed(error):
            raise NotFound("Conversation not found", code="conversation_not_found") from None
        raise
    return int(conversation.message_count)


def put_message(message: MessageRecord, content: str) -> None:
    """Store a message; a body too large for an item goes to the payload bucket first."""
    set_message_body(message, content)
    message.save(condition=MessageRecord.pk.does_not_exist())


def set_message_body(message: MessageRecord, content: str) -> None:
    """Give a message its body: inline, or (too large for an item) in the payload bucket, stored now."""
    encoded = content.encode()
    message.content_bytes = len(encoded)
    message.search_text = content[:SEARCH_TEXT_CHARS].lower()
    if len(encoded) > INLINE_LIMIT_BYTES:
        message.content_ref = f"conversations/{message.conversation_id}/{message.message_id}"
        put_payload(message.content_ref, encoded)
        message.content = None
    else:
        message.content = content


def message_content(message: MessageRecord) -> str:
    if message.content_ref:
        return get_payload(message.content_ref).decode()
    return message.content or ""


def list_messages(conversation_id: str, *, limit: int, cursor: str | None) -> tuple[list[MessageRecord], str | None]:
    pk = conversation_pk(conversation_id)
    results = MessageRecord.query(
        pk, MessageRecord.sk.startswith("MSG#"), limit=limit, last_evaluated_key=_start(cursor, {"pk": pk}, sk="MSG#")
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def all_messages(conversation_id: str) -> Iterator[MessageRecord]:
    return MessageRecord.query(conversation_pk(conversation_id), MessageRecord.sk.startswith("MSG#"))


# What a prompt's history needs of a message: not the search copy of its text, which would double what is read.
_HISTORY_ATTRIBUTES = tuple(
    attribute.attr_name
    for attribute in (
        MessageRecord.message_id, MessageRecord.conversation_id, MessageRecord.seq, MessageRecord.role,
        MessageRecord.author_id, MessageRecord.content, MessageRecord.content_ref, MessageRecord.metadata,
        MessageRecord.created_at,
    )
)  # fmt: skip


def recent_messages(conversation_id: str, count: int) -> list[MessageRecord]:
    """The last `count` messages, oldest first (a prompt's history)."""
    newest = MessageRecord.query(
        conversation_pk(conversation_id),
        MessageRecord.sk.startswith("MSG#"),
        scan_index_forward=False,
        limit=count,
        attributes_to_get=list(_HISTORY_ATTRIBUTES),
        consistent_read=True,
    )
    return list(reversed(list(newest)))


def messages_after(conversation_id: str, seq: int) -> list[MessageRecord]:
    """The messages after place `seq`, oldest first: what a history already read lacks."""
    newer = MessageRecord.sk.between(message_sk(seq + 1), message_sk(LAST_SEQ))
    records = MessageRecord.query(
        conversation_pk(conversation_id), newer, attributes_to_get=list(_HISTORY_ATTRIBUTES), consistent_read=True
    )
    return list(records)


def search_owned_messages(
    owner_id: str, needle: str, *, limit: int, cursor: str | None
) -> tuple[list[MessageRecord], str | None]:
    """Messages of the user's own conversations whose text contains `needle` (lower-case), newest first.

    A filtered Query over the owner's message index: it reads on until `limit` matches or the end, so its cost
    grows with the history searched. A full-text index is the step after this one for very long histories.
    """
    partition = messages_partition(owner_id)
    results = MessageRecord.by_owner_text.query(
        partition,
        filter_condition=MessageRecord.search_text.contains(needle),
        last_evaluated_key=_start(cursor, {"gsi3pk": partition}, gsi3sk="", pk="CONV#", sk="MSG#"),
        scan_index_forward=False,
        limit=limit,
        page_size=SEARCH_PAGE_ITEMS,
    )
    hits = list(results)
    return hits, encode_cursor(results.last_evaluated_key)


# Projects -----------------------------------------------------------------------------------------------


def create_project(project: ProjectRecord, owner: MemberRecord) -> None:
    """Store a project with its owner's membership, together or not at all."""
    with TransactWrite(connection=ProjectRecord._get_connection().connection) as transaction:
        transaction.save(project, condition=ProjectRecord.pk.does_not_exist())
        transaction.save(owner, condition=MemberRecord.sk.does_not_exist())


def member_record(project_id: str, user_id: str, role: str, email: str | None) -> MemberRecord:
    return MemberRecord(
        project_pk(project_id),
        f"MEMBER#{user_id}",
        gsi1pk=projects_partition(user_id),
        gsi1sk=project_id,
        project_id=project_id,
        user_id=user_id,
        role=role,
        email=email,
    )


def get_project(project_id: str) -> ProjectRecord | None:
    try:
        return ProjectRecord.get(project_pk(project_id), "META")
    except DoesNotExist:
        return None


def save_project(project: ProjectRecord, **changes: Any) -> ProjectRecord:
    update_existing(project, changes, updated_at=now())
    return project


def get_member(project_id: str, user_id: str) -> MemberRecord | None:
    try:
        return MemberRecord.get(project_pk(project_id), f"MEMBER#{user_id}")
    except DoesNotExist:
        return None


def put_member(member: MemberRecord) -> None:
    member.save()


def members(project_id: str) -> list[MemberRecord]:
    return list(MemberRecord.query(project_pk(project_id), MemberRecord.sk.startswith("MEMBER#")))


def remove_member(project_id: str, user_id: str) -> bool:
    try:
        MemberRecord(project_pk(project_id), f"MEMBER#{user_id}").delete(condition=MemberRecord.pk.exists())
    except Exception as error:
        if condition_failed(error):
            return False
        raise
    return True


def memberships(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[MemberRecord], str | None]:
    """The user's memberships (their own projects included), by project id."""
    partition = projects_partition(user_id)
    results = MemberRecord.by_user.query(
        partition,
        limit=limit,
        last_evaluated_key=_start(cursor, {"gsi1pk": partition}, gsi1sk="", pk="PROJECT#", sk="MEMBER#"),
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def all_memberships(user_id: str) -> Iterator[MemberRecord]:
    entries: Iterator[MemberRecord] = MemberRecord.by_user.query(projects_partition(user_id))
    return entries


def projects_by_id(project_ids: Iterable[str]) -> dict[str, ProjectRecord]:
    keys = [(project_pk(project_id), "META") for project_id in dict.fromkeys(project_ids)]
    return {project.project_id: project for project in ProjectRecord.batch_get(keys)} if keys else {}


def conversations_by_id(conversation_ids: Iterable[str]) -> dict[str, ConversationRecord]:
    keys = [(conversation_pk(conversation_id), "META") for conversation_id in dict.fromkeys(conversation_ids)]
    return {record.conversation_id: record for record in ConversationRecord.batch_get(keys)} if keys else {}


def detach_from_project(conversation: ConversationRecord) -> None:
    """Take a conversation out of its project (which is going); its owner keeps it."""
    try:
        conversation.update(
            actions=[
                ConversationRecord.project_id.remove(),
                ConversationRecord.gsi2pk.remove(),
                ConversationRecord.gsi2sk.remove(),
            ],
            # The index lags: a conversation deleted meanwhile must not come back as a bare key.
            condition=ConversationRecord.pk.exists(),
        )
    except UpdateError as error:
        if not condition_failed(error):
            raise


def existing_items(
    *, conversations: Iterable[str], projects: Iterable[str], prompts: Iterable[tuple[str, str]]
) -> set[str]:
    """Which of these are stored already, by BatchGetItem: conversation and project ids, prompts as
    `<user id>/<prompt id>`."""
    found: set[str] = set()
    keys = [(conversation_pk(conversation_id), "META") for conversation_id in dict.fromkeys(conversations)]
    if keys:
        found |= {
            r.conversation_id
            for r in ConversationRecord.batch_get(keys, attributes_to_get=["pk", "sk", "conversationId"])
        }
    keys = [(project_pk(project_id), "META") for project_id in dict.fromkeys(projects)]
    if keys:
        found |= {r.project_id for r in ProjectRecord.batch_get(keys, attributes_to_get=["pk", "sk", "projectId"])}
    keys = [prompt_key(user_id, prompt_id) for user_id, prompt_id in dict.fromkeys(prompts)]
    if keys:
        found |= {
            f"{r.pk.removeprefix('USER#')}/{r.prompt_id}"
            for r in PromptRecord.batch_get(keys, attributes_to_get=["pk", "sk", "promptId"])
        }
    return found


def delete_project(project_id: str) -> None:
    """Delete a project and its memberships; its conversations are detached, not deleted (their owners keep them)."""
    for conversation in ConversationRecord.by_project.query(project_pk(project_id)):
        detach_from_project(conversation)
    with MemberRecord.batch_write() as batch:
        for member in MemberRecord.query(project_pk(project_id), MemberRecord.sk.startswith("MEMBER#")):
            batch.delete(member)
    ProjectRecord(project_pk(project_id), "META").delete()


# Saved prompts ------------------------------------------------------------------------------------------


def prompt_key(user_id: str, prompt_id: str) -> tuple[str, str]:
    return f"USER#{user_id}", f"PROMPT#{prompt_id}"


def create_prompt(prompt: PromptRecord) -> None:
    prompt.save(condition=PromptRecord.pk.does_not_exist())


def get_prompt(user_id: str, prompt_id: str) -> PromptRecord | None:
    try:
        return PromptRecord.get(*prompt_key(user_id, prompt_id))
    except DoesNotExist:
        return None


def list_prompts(
    user_id: str, *, tag: str | None, limit: int, cursor: str | None
) -> tuple[list[PromptRecord], str | None]:
    pk = f"USER#{user_id}"
    results = PromptRecord.query(
        pk,
        PromptRecord.sk.startswith("PROMPT#"),
        filter_condition=PromptRecord.tags.contains(tag) if tag else None,
        limit=limit,
        last_evaluated_key=_start(cursor, {"pk": pk}, sk="PROMPT#"),
        scan_index_forward=False,
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def save_prompt(prompt: PromptRecord, **changes: Any) -> PromptRecord:
    update_existing(prompt, changes, updated_at=now())
    return prompt


def delete_prompt(user_id: str, prompt_id: str) -> bool:
    try:
        PromptRecord(*prompt_key(user_id, prompt_id)).delete(condition=PromptRecord.pk.exists())
    except Exception as error:
        if condition_failed(error):
            return False
        raise
    return True


def all_prompts(user_id: str) -> Iterator[PromptRecord]:
    return PromptRecord.query(f"USER#{user_id}", PromptRecord.sk.startswith("PROMPT#"))


# Payloads -----------------------------------------------------------------------------------------------


def put_payload(key: str, body: bytes) -> None:
    from shared.aws import client

    client("s3").put_object(Bucket=_bucket(), Key=key, Body=body, ContentType="text/plain; charset=utf-8")


def get_payload(key: str) -> bytes:
    from shared.aws import client

    body: bytes = client("s3").get_object(Bucket=_bucket(), Key=key)["Body"].read()
    return body


def delete_payload_keys(keys: Iterable[str]) -> None:
    """Delete payload objects by key, 1,000 a DeleteObjects call."""
    from shared.aws import client

    pending = list(dict.fromkeys(keys))
    for start in range(0, len(pending), 1000):
        objects = [{"Key": key} for key in pending[start : start + 1000]]
        client("s3").delete_objects(Bucket=_bucket(), Delete={"Objects": objects, "Quiet": True})


def delete_payloads(prefix: str) -> None:
    from shared.aws import client

    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=_bucket(), Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=_bucket(), Delete={"Objects": keys, "Quiet": True})


def _bucket() -> str:
    bucket = get_settings().payload_bucket
    if not bucket:
        raise RuntimeError("PAYLOAD_BUCKET is not set: the function was deployed without its payload bucket")
    return bucket
