"""The channels' worker: an SQS event source on the inbound FIFO queue (`ReportBatchItemFailures`), answering each
inbound text message through the one reply generator and sending the answer back through the platform.

For each message: take its platform id (a conditional put, kept a week: FIFO deduplication lasts five minutes),
find or create the (channel, contact) conversation, owned by the channel's owner and carrying its `source`,
reply as the owner (their limits apply), keep the answer, then send it in parts at the platform's limit, each
part retried on 429/5xx with backoff. A retried delivery sends what was not sent yet of the answer it kept, never a
second answer. A send that fails for good is noted on the conversation and the message fails, so SQS redelivers
it and, after the queue's maxReceiveCount, moves it to the dead-letter queue.

A batch's messages run group by group (one contact's in order, contacts in parallel); in a group, a failed
message fails those after it too, so a contact's messages never overtake one another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from functions.channels import platforms
from functions.channels.models import InboundMessage
from shared import events as shared_events
from shared.errors import DomainError
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.channels import service, store
    from functions.channels.store import ChannelRecord, InboundRecord
    from shared.auth.principal import Principal
else:
    service = LazyModule("functions.channels.service")
    store = LazyModule("functions.channels.store")

# Contacts answered at once within one batch.
MAX_PARALLEL_CONTACTS = 10
TITLE_CHARS = 60


class ReplyFailed(RuntimeError):
    """The model produced no answer (every provider failed): the message is tried again later."""


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in event.get("Records") or []:
        group = str((record.get("attributes") or {}).get("MessageGroupId") or record["messageId"])
        groups.setdefault(group, []).append(record)
    failures: list[str] = []
    if groups:
        with ThreadPoolExecutor(max_workers=min(len(groups), MAX_PARALLEL_CONTACTS)) as pool:
            for failed in pool.map(_answer_group, groups.values()):
                failures += failed
    # A queue worker is its own entry point: what it published is on the events queue before it returns.
    shared_events.flush()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _answer_group(records: Sequence[dict[str, Any]]) -> list[str]:
    """Answer one contact's messages in order; the ids of those that failed (the first failure and every later)."""
    for index, record in enumerate(records):
        try:
            message = InboundMessage.model_validate_json(record["body"])
        except ValidationError:
            logger.error("An inbound message of an unknown shape was dropped", extra={"sqsId": record["messageId"]})
            continue
        try:
            answer_inbound(message)
        except Exception:
            logger.exception("An inbound message was not answered", extra={"channelId": message.channel_id})
            return [later["messageId"] for later in records[index:]]
    return []


def answer_inbound(message: InboundMessage) -> None:
    channel = store.get_channel(message.channel_id)
    if channel is None or not channel.enabled:
        logger.info("An inbound message for a deleted or disabled channel", extra={"channelId": message.channel_id})
        return
    claim = store.claim_inbound(channel.channel_id, message.message_id)
    if claim is None:
        logger.info("A platform redelivered a message already answered", extra={"channelId": channel.channel_id})
        return
    from functions.identity import service as identity

    try:
        owner = identity.principal_for_user(channel.owner_id)
    except DomainError:
        logger.warning("The channel's owner may no longer act: not answered", extra={"channelId": channel.channel_id})
        store.note_parts_sent(claim, 0, done=True)
        return
    conversation_id = _conversation_for(owner, channel, message)
    answer = claim.answer
    if answer is None:
        _publish_received(channel, message, conversation_id)
        try:
            answer = asyncio.run(generate_answer(owner, message.text, conversation_id))
        except DomainError as refusal:  # over the owner's limits, the agent gone...: no retry helps
            _note_failure(owner, conversation_id, channel, f"not answered: {refusal}", code=refusal.code)
            store.note_parts_sent(claim, 0, done=True)
            return
        store.keep_answer(claim, answer)
    _send_answer(owner, channel, claim, recipient=message.contact_id, answer=answer, conversation_id=conversation_id)


def _publish_received(channel: ChannelRecord, message: InboundMessage, conversation_id: str) -> None:
    """`channel.message.received` (a webhook event) to the channel's owner, once per platform message (a retry
    that kept the answer already did)."""
    data: dict[str, Any] = {
        "channelId": channel.channel_id, "type": channel.type, "messageId": message.message_id,
        "contactId": message.contact_id, "text": message.text, "conversationId": conversation_id,
    }  # fmt: skip
    if message.contact_name:
        data["contactName"] = message.contact_name
    shared_events.publish("channel.message.received", data, user_id=channel.owner_id)


async def generate_answer(owner: Principal, text: str, conversation_id: str) -> str:
    """The reply to `text` in the conversation, as the owner, through the one reply generator: the user's message
    and the answer are stored in the conversation like any chat's, answered by the conversation's agent (the
    channel's, when the conversation began) with its knowledge and tools. The one place a channel's reply is asked
    for."""
    from functions.chat import reply
    from functions.chat.models import ChatRequest

    request = ChatRequest(message=text, conversation_id=conversation_id)
    prepared = await reply.prepare(owner, request, interactive=False)
    content: list[str] = []
    error: dict[str, Any] | None = None
    async with reply.streaming(prepared) as events:
        async for event in events:
            if event["type"] == "content":
                content.append(event["delta"])
            elif event["type"] == "error":
                error = event
    answer = "".join(content).strip()
    if not answer:
        raise ReplyFailed(str((error or {}).get("message") or "the model gave an empty answer"))
    return answer


def _conversation_for(owner: Principal, channel: ChannelRecord, message: InboundMessage) -> str:
    """The contact's conversation; a new one when there is none yet, or when the channel has changed agents since
    (a conversation answers as one agent for good)."""
    known = store.contact_conversation(channel.channel_id, message.contact_id)
    if known is not None and known.agent_id == channel.agent_id:
        return known.conversation_id
    from functions.conversations import service as conversations
    from functions.conversations.models import ConversationCreate, ConversationSource

    who = message.contact_name or message.contact_id
    created = conversations.start_sourced_conversation(
        owner,
        ConversationCreate(title=f"{channel.name}: {who}"[:TITLE_CHARS]),
        source=ConversationSource(
            channel_id=channel.channel_id,
            type=channel.type,
            contact_id=message.contact_id,
            contact_name=message.contact_name,
        ),
        agent_id=channel.agent_id,
    )
    store.map_contact(channel.channel_id, message.contact_id, created.id, message.contact_name, channel.agent_id)
    return created.id


def _send_answer(
    owner: Principal, channel: ChannelRecord, claim: InboundRecord, *, recipient: str, answer: str, conversation_id: str
) -> None:
    parts = platforms.split_message(answer, platforms.MESSAGE_LIMITS[channel.type])
    secrets = service.channel_secrets(channel)
    for index in range(int(claim.parts_sent), len(parts)):
        try:
            platforms.send_text(channel.type, channel.config, secrets, recipient, parts[index])
        except platforms.SendFailed as failure:
            _note_failure(
                owner, conversation_id, channel, f"the answer could not be sent: {failure}", code="send_failed",
                part=index + 1, parts=len(parts), http_status=failure.status, attempts=failure.attempts,
            )  # fmt: skip
            raise
        store.note_parts_sent(claim, index + 1, done=index + 1 == len(parts))


def _note_failure(
    owner: Principal, conversation_id: str, channel: ChannelRecord, text: str, *, code: str, **details: Any
) -> None:
    """A system message on the conversation: what the owner sees of an answer that did not reach the contact."""
    from functions.conversations import service as conversations

    delivery = {name: value for name, value in details.items() if value is not None}
    if "http_status" in delivery:
        delivery["httpStatus"] = delivery.pop("http_status")
    metadata = {"channelDelivery": {**delivery, "status": "failed", "code": code, "channelId": channel.channel_id}}
    conversations.append_message(owner, conversation_id, "system", text, metadata=metadata)
