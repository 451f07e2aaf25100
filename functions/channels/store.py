"""The channels' storage: pynamodb records in the channels table.

Items (pk / sk), a channel and everything of it in one partition:
  CHANNEL#<id> / META                 the channel (gsi1: USER#<owner> / CHANNEL#<id>, the owner's channels).
  CHANNEL#<id> / CONTACT#<contact>    the conversation a contact's messages go to, and the agent it answers as.
  CHANNEL#<id> / INBOUND#<message>    a platform message id taken (the worker's deduplication), with the answer
                                      and how many of its parts went out, kept a week (TTL): SQS FIFO dedupes
                                      only five minutes, a platform retries for longer.

Secret values never reach this module in clear: a channel holds them sealed (shared.secrets).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.models import Model

from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, table_meta, update_existing
from shared.tables import CHANNELS

CHANNEL_PREFIX = "CHANNEL#"
CONTACT_PREFIX = "CONTACT#"
INBOUND_PREFIX = "INBOUND#"
META = "META"
# How long a processed platform message id is remembered.
INBOUND_TTL_SECONDS = 7 * 86400

_Meta = table_meta(CHANNELS)


def now() -> datetime:
    return datetime.now(UTC)


def channel_pk(channel_id: str) -> str:
    return CHANNEL_PREFIX + channel_id


def owner_partition(owner_id: str) -> str:
    return f"USER#{owner_id}"


class ChannelRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_owner = secondary_index(CHANNELS.index("gsi1"))

    channel_id = UnicodeAttribute(attr_name="channelId")
    owner_id = UnicodeAttribute(attr_name="ownerId")
    type = UnicodeAttribute()
    name = UnicodeAttribute()
    agent_id = UnicodeAttribute(attr_name="agentId", null=True)
    enabled = BooleanAttribute()
    # The plain config fields (phoneNumberId, pageId); the secrets are sealed apart.
    config = JSONAttribute()
    # The last characters of each secret, what a response shows of it ("••••1234").
    secret_hints = JSONAttribute(attr_name="secretHints")
    sealed_secrets = UnicodeAttribute(attr_name="sealedSecrets")
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)


class ContactRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    conversation_id = UnicodeAttribute(attr_name="conversationId")
    contact_name = UnicodeAttribute(attr_name="contactName", null=True)
    agent_id = UnicodeAttribute(attr_name="agentId", null=True)


class InboundRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # The answer once generated (a retried delivery sends it, not a second one), and how many parts went out.
    answer = UnicodeAttribute(null=True)
    parts_sent = NumberAttribute(attr_name="partsSent", default=0)
    done = BooleanAttribute(default=False)
    ttl = NumberAttribute()


# Channels ---------------------------------------------------------------------------------------------------


def add_channel(record: ChannelRecord) -> None:
    record.save(condition=ChannelRecord.pk.does_not_exist())


def get_channel(channel_id: str) -> ChannelRecord | None:
    try:
        return ChannelRecord.get(channel_pk(channel_id), META)
    except DoesNotExist:
        return None


def owned_channels_page(owner_id: str, *, limit: int, cursor: str | None) -> tuple[list[ChannelRecord], str | None]:
    partition = owner_partition(owner_id)
    start = decode_cursor(
        cursor,
        partition={"gsi1pk": partition},
        sort_prefixes={"gsi1sk": CHANNEL_PREFIX, "pk": CHANNEL_PREFIX, "sk": ""},
    )
    results = ChannelRecord.by_owner.query(partition, limit=limit, last_evaluated_key=start)
    page = next(results.page_iter)
    return [ChannelRecord.from_raw_data(raw) for raw in page.get("Items", [])], encode_cursor(
        page.get("LastEvaluatedKey")
    )


def update_channel(record: ChannelRecord, changes: dict[str, Any]) -> ChannelRecord:
    try:
        update_existing(record, changes, updated_at=now())
    except UpdateError as error:
        if condition_failed(error):
            raise channel_not_found() from None
        raise
    return record


def delete_channels(records: Sequence[ChannelRecord]) -> int:
    """Delete channels with their contact maps and processed message ids; returns how many items went."""
    deleted = 0
    with ChannelRecord.batch_write() as batch:
        for record in records:
            for item in ChannelRecord.query(record.pk, attributes_to_get=["pk", "sk"]):
                batch.delete(item)
                deleted += 1
    return deleted


def channel_not_found() -> NotFound:
    return NotFound("Channel not found", code="channel_not_found")


# Contacts ---------------------------------------------------------------------------------------------------


def contact_conversation(channel_id: str, contact_id: str) -> ContactRecord | None:
    try:
        return ContactRecord.get(channel_pk(channel_id), CONTACT_PREFIX + contact_id)
    except DoesNotExist:
        return None


def map_contact(
    channel_id: str, contact_id: str, conversation_id: str, contact_name: str | None, agent_id: str | None
) -> None:
    ContactRecord(
        channel_pk(channel_id),
        CONTACT_PREFIX + contact_id,
        conversation_id=conversation_id,
        contact_name=contact_name,
        agent_id=agent_id,
    ).save()


# Inbound messages -------------------------------------------------------------------------------------------


def claim_inbound(channel_id: str, message_id: str) -> InboundRecord | None:
    """Take a platform message id. Returns the record to work on: a new one, or an earlier attempt's that did not
    finish (its answer, if any, to send the rest of); None when that message was answered already."""
    record = InboundRecord(
        channel_pk(channel_id), INBOUND_PREFIX + message_id, ttl=int(time.time()) + INBOUND_TTL_SECONDS
    )
    try:
        record.save(condition=InboundRecord.pk.does_not_exist())
        return record
    except PutError as error:
        if not condition_failed(error):
            raise
    earlier = InboundRecord.get(record.pk, record.sk, consistent_read=True)
    return None if earlier.done else earlier


def keep_answer(record: InboundRecord, answer: str) -> None:
    record.update(actions=[InboundRecord.answer.set(answer)])


def note_parts_sent(record: InboundRecord, parts_sent: int, *, done: bool) -> None:
    record.update(actions=[InboundRecord.parts_sent.set(parts_sent), InboundRecord.done.set(done)])
