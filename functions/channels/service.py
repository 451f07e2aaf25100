"""The channels' logic: who may connect which channel, its secrets sealed and shown masked, the credentials test,
and the webhooks' side: the subscription check, and a delivery verified before anything else, then queued.

A channel belongs to the user who connected it (`channels.manage`); to anyone else it does not exist (404). Its
inbound messages are answered by `functions.channels.worker`, in conversations owned by that user.

Queueing: the webhook reads the delivery's text messages (cheap: the JSON is parsed once, for nothing but ids,
sender and text) and queues one SQS message per text message, so each message has its own FIFO group (channel +
contact: one contact's messages in order, contacts in parallel) and its own deduplication id (the platform's
message id). Queueing the raw delivery would put a batch from several contacts in one group and give one id to
several messages.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from functions.channels import platforms
from functions.channels.models import (
    SECRET_FIELDS,
    ChannelCreate,
    ChannelPublic,
    ChannelTest,
    ChannelUpdate,
    InboundMessage,
    config_for,
)
from shared import audit
from shared.audit import Target
from shared.auth.principal import Principal
from shared.errors import NotFound, ValidationFailed
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.observability import logger
from shared.secrets import MASK, merged_secrets, seal, unseal
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.channels import store
    from functions.channels.store import ChannelRecord
else:
    store = LazyModule("functions.channels.store")

SECRET_CONTEXT = "channels"
MANAGE = "channels.manage"
# A secret is shown as the mask's first four dots and its last four characters, if it is long enough to spare them.
HINT_CHARS = 4
HINT_MIN_LENGTH = 16
_MASK_PREFIX = MASK[:4]
# SendMessageBatch takes ten entries.
QUEUE_BATCH = 10
# How long a container trusts a channel it read for a webhook: a platform delivers in bursts, and every delivery
# would otherwise cost a read before its acknowledgement. A delivery that fails verification against what is
# trusted reads the channel again (a secret just rotated is accepted at once); the worker reads the channel itself
# before answering (one deleted or disabled in these seconds answers nothing).
WEBHOOK_CHANNEL_SECONDS = 30.0
_WEBHOOK_CHANNELS_KEPT = 1024


# The registry -----------------------------------------------------------------------------------------------


def _check_agent(principal: Principal, agent_id: str | None) -> None:
    """A channel's agent must be one of the stage's (422 otherwise): its inbound messages are answered as it."""
    if agent_id is None:
        return
    from functions.agents import service as agents

    try:
        agents.get_agent(principal, agent_id)
    except NotFound:
        raise ValidationFailed(
            "agentId must name one of the stage's agents", code="validation_error", details=[{"field": "agentId"}]
        ) from None


def create_channel(principal: Principal, request: ChannelCreate) -> ChannelPublic:
    details = {"name": request.name, "type": request.type}
    with audit.recorded("channel.created", actor=principal, details=details) as entry:
        created = _create_channel(principal, request)
        entry.target = Target("channel", created.id)
    return created


def _create_channel(principal: Principal, request: ChannelCreate) -> ChannelPublic:
    principal.require(MANAGE)
    _check_agent(principal, request.agent_id)
    channel_id = new_id()
    plain, secrets = _split_config(request.type, request.config)
    # Nothing is stored yet: a masked value is refused.
    secrets = merged_secrets({}, {name: _masked_or(value) for name, value in secrets.items()})
    moment = store.now()
    record = store.ChannelRecord(
        store.channel_pk(channel_id), store.META, gsi1pk=store.owner_partition(principal.user_id),
        gsi1sk=store.channel_pk(channel_id), channel_id=channel_id, owner_id=principal.user_id, type=request.type,
        name=request.name, agent_id=request.agent_id, enabled=request.enabled, config=plain,
        secret_hints=_hints(secrets), sealed_secrets=_sealed(secrets, channel_id), created_at=moment,
        updated_at=moment,
    )  # fmt: skip
    store.add_channel(record)
    logger.info("Channel connected", extra={"channelId": channel_id, "type": request.type})
    return public_channel(record)


def list_channels(principal: Principal, limit: int, cursor: str | None) -> tuple[list[ChannelPublic], str | None]:
    principal.require(MANAGE)
    records, next_cursor = store.owned_channels_page(principal.user_id, limit=limit, cursor=cursor)
    return [public_channel(record) for record in records], next_cursor


def get_channel(principal: Principal, channel_id: str) -> ChannelPublic:
    return public_channel(_owned(principal, channel_id))


def update_channel(principal: Principal, channel_id: str, update: ChannelUpdate) -> ChannelPublic:
    # The fields sent, by name: a config's tokens are never recorded.
    details = {"fields": " ".join(sorted(update.model_fields_set))}
    with audit.recorded("channel.updated", actor=principal, target=Target("channel", channel_id), details=details):
        return _update_channel(principal, channel_id, update)


def _update_channel(principal: Principal, channel_id: str, update: ChannelUpdate) -> ChannelPublic:
    record = _owned(principal, channel_id)
    changes: dict[str, Any] = {}
    if update.name is not None:
        changes["name"] = update.name
    if update.enabled is not None:
        changes["enabled"] = update.enabled
    if "agent_id" in update.model_fields_set:
        _check_agent(principal, update.agent_id)
        changes["agent_id"] = update.agent_id
    if update.config is not None:
        # Fields left out keep their value; a secret sent back as it was shown (masked) keeps the stored one.
        stored = channel_secrets(record)
        sent = {
            name: stored[name]
            if name in stored and isinstance(value, str) and value.startswith(_MASK_PREFIX)
            else value
            for name, value in update.config.items()
        }
        plain, secrets = _split_config(record.type, {**record.config, **stored, **sent})
        changes.update(config=plain, secret_hints=_hints(secrets), sealed_secrets=_sealed(secrets, record.channel_id))
    if not changes:
        return public_channel(record)
    updated = store.update_channel(record, changes)
    logger.info("Channel changed", extra={"channelId": channel_id, "fields": sorted(changes)})
    return public_channel(updated)


def delete_channel(principal: Principal, channel_id: str) -> None:
    with audit.recorded("channel.deleted", actor=principal, target=Target("channel", channel_id)):
        store.delete_channels([_owned(principal, channel_id)])
    logger.info("Channel deleted", extra={"channelId": channel_id})


def test_channel(principal: Principal, channel_id: str) -> ChannelTest:
    """Ask the platform who the credentials belong to. For Telegram, also `setWebhook` to this channel's URL with
    its secret token: the Bot API has no console to paste a URL into, and a test is the moment the operator is
    there to see it fail (creation stays a plain write that never depends on the platform being up)."""
    record = _owned(principal, channel_id)
    secrets = channel_secrets(record)
    try:
        details = platforms.identify(record.type, record.config, secrets)
        if record.type == "telegram":
            platforms.set_telegram_webhook(secrets, webhook_url(record))
            details = {**details, "webhookSet": True}
    except platforms.SendFailed as failure:
        return ChannelTest(ok=False, error=str(failure))
    return ChannelTest(ok=True, details=details)


def _owned(principal: Principal, channel_id: str) -> ChannelRecord:
    principal.require(MANAGE)
    record = store.get_channel(channel_id) if is_id(channel_id) else None
    if record is None or record.owner_id != principal.user_id:
        raise store.channel_not_found()
    return record


def _split_config(channel_type: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    names = SECRET_FIELDS[channel_type]
    try:
        validated = config_for(channel_type, dict(config)).model_dump(by_alias=True)
    except PydanticValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise ValidationFailed(f"config: {problems}", code="validation_error") from None
    return (
        {name: value for name, value in validated.items() if name not in names},
        {name: str(validated[name]) for name in names},
    )


def _masked_or(value: str) -> str:
    """A value shown masked ("••••1234") sent back as the mask itself: `merged_secrets` keeps the stored one."""
    return MASK if value.startswith(_MASK_PREFIX) else value


def _hints(secrets: Mapping[str, str]) -> dict[str, str]:
    return {
        name: (_MASK_PREFIX + value[-HINT_CHARS:]) if len(value) >= HINT_MIN_LENGTH else MASK
        for name, value in secrets.items()
    }


def _sealed(secrets: Mapping[str, str], channel_id: str) -> str:
    return seal(dict(secrets), context=SECRET_CONTEXT, record=channel_id)


def channel_secrets(record: ChannelRecord) -> dict[str, str]:
    """The channel's secrets in clear (a KMS call once per container and ciphertext)."""
    value = unseal(record.sealed_secrets, context=SECRET_CONTEXT, record=record.channel_id)
    return {str(name): str(secret) for name, secret in dict(value).items()}


def _shown_config(record: ChannelRecord) -> dict[str, Any]:
    return {**record.config, **record.secret_hints}


def webhook_url(record: ChannelRecord) -> str:
    return f"{get_settings().public_api_url.rstrip('/')}/webhooks/{record.type}/{record.channel_id}"


def public_channel(record: ChannelRecord) -> ChannelPublic:
    return ChannelPublic(
        id=record.channel_id, type=record.type, name=record.name, agent_id=record.agent_id, enabled=record.enabled,
        config=_shown_config(record), webhook_url=webhook_url(record), owner_id=record.owner_id,
        created_at=record.created_at, updated_at=record.updated_at,
    )  # fmt: skip


def exported_channel(record: ChannelRecord) -> dict[str, Any]:
    return public_channel(record).model_dump(mode="json", by_alias=True)


# Webhooks ---------------------------------------------------------------------------------------------------


class _TrustedChannels:
    """Channels read for webhooks, kept `WEBHOOK_CHANNEL_SECONDS` per container (unknown ids are never kept)."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, ChannelRecord]] = {}
        self._lock = threading.Lock()

    def get(self, channel_id: str, *, fresh: bool = False) -> ChannelRecord | None:
        now = time.monotonic()
        with self._lock:
            kept = None if fresh else self._kept.get(channel_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        record = store.get_channel(channel_id)
        with self._lock:
            if record is None:
                self._kept.pop(channel_id, None)
                return None
            if len(self._kept) >= _WEBHOOK_CHANNELS_KEPT:
                self._kept = {key: value for key, value in self._kept.items() if value[0] > now}
            self._kept[channel_id] = (now + WEBHOOK_CHANNEL_SECONDS, record)
        return record

    def forget(self) -> None:
        with self._lock:
            self._kept.clear()


_trusted_channels = _TrustedChannels()


def forget_trusted_channels() -> None:
    """Tests: a new stage's channels are not the last one's."""
    _trusted_channels.forget()


def _channel_for_webhook(channel_type: str, channel_id: str, *, fresh: bool = False) -> ChannelRecord | None:
    record = _trusted_channels.get(channel_id, fresh=fresh) if is_id(channel_id) else None
    return record if record is not None and record.type == channel_type else None


def _verified(channel_type: str, record: ChannelRecord, body: bytes, headers: Mapping[str, str]) -> bool:
    secrets = channel_secrets(record)
    if channel_type == "telegram":
        return platforms.secret_token_valid(headers.get("x-telegram-bot-api-secret-token"), secrets["secretToken"])
    return platforms.meta_signature_valid(body, headers.get("x-hub-signature-256"), secrets["appSecret"])


def subscription_challenge(channel_type: str, channel_id: str, mode: str | None, token: str | None) -> bool:
    """Meta's subscription check: `hub.mode=subscribe` with the channel's verify token."""
    if mode != "subscribe" or token is None:
        return False
    record = _channel_for_webhook(channel_type, channel_id, fresh=True)
    return record is not None and platforms.secret_token_valid(token, channel_secrets(record)["verifyToken"])


def accept_delivery(channel_type: str, channel_id: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Verify a delivery (False: refuse it, nothing stored or queued), then queue its text messages. An unknown
    channel is refused like a bad signature, so ids cannot be probed."""
    record = _channel_for_webhook(channel_type, channel_id)
    verified = record is not None and _verified(channel_type, record, body, headers)
    if record is not None and not verified:
        # Perhaps a secret changed since this container read the channel: what is stored now decides.
        record = _channel_for_webhook(channel_type, channel_id, fresh=True)
        verified = record is not None and _verified(channel_type, record, body, headers)
    if record is None:
        return False
    if not verified:
        logger.warning("A webhook delivery failed verification", extra={"channelId": channel_id})
        return False
    if not record.enabled:
        # Perhaps enabled since this container read it: a message is dropped only for what is stored now.
        record = _channel_for_webhook(channel_type, channel_id, fresh=True)
        if record is None or not record.enabled or not _verified(channel_type, record, body, headers):
            return True
    try:
        payload = json.loads(body)
    except ValueError:
        return True
    messages = [
        InboundMessage(channel_id=channel_id, type=record.type, message_id=parsed.message_id,
                       contact_id=parsed.contact_id, contact_name=parsed.contact_name, text=parsed.text)
        for parsed in platforms.text_messages(channel_type, payload)
    ]  # fmt: skip
    if messages:
        queue(messages)
    return True


def queue(messages: list[InboundMessage]) -> None:
    """Queue inbound messages for the worker: FIFO group channel + contact, deduplicated by platform message id."""
    from shared.aws import client

    sqs, url = client("sqs"), get_settings().channels_queue_url
    for start in range(0, len(messages), QUEUE_BATCH):
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.model_dump_json(),
                "MessageGroupId": _digest(f"{message.channel_id}:{message.contact_id}"),
                "MessageDeduplicationId": _digest(f"{message.channel_id}:{message.message_id}"),
            }
            for index, message in enumerate(messages[start : start + QUEUE_BATCH])
        ]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            # Not acknowledged: the platform delivers again, and the ids already queued are deduplicated.
            raise RuntimeError(f"the inbound queue refused {len(answer['Failed'])} messages")


def _digest(value: str) -> str:
    """An SQS group or deduplication id: the platforms' ids may be longer than 128 or hold other characters."""
    return hashlib.sha256(value.encode()).hexdigest()
