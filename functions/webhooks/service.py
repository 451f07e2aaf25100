"""The webhooks' logic: subscriptions (who may see and change which), the fan-out of published events to the
subscriptions they reach (`fan_out`), one delivery attempt and its retry or end (`deliver`), and the test ping.

Visibility: a user's subscription is its owner's alone (404 to anyone else); a stage subscription (every user's
events) is seen and changed by holders of `webhooks.manage`. The secret is generated here, shown once, sealed with
`shared.secrets` (context "webhooks") and unsealed only to sign.
"""

from __future__ import annotations

import asyncio
import json
import secrets as random_secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from functions.webhooks import delivery
from functions.webhooks.models import (
    EVENT_TYPES,
    DeliveryPublic,
    PingResult,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)
from shared import audit
from shared.audit import Target
from shared.auth.principal import Principal
from shared.events import Event
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.observability import logger
from shared.outbound import checked_destination
from shared.secrets import seal, unseal
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.webhooks import store
    from functions.webhooks.store import AttemptRecord, SubscriptionRecord
else:
    store = LazyModule("functions.webhooks.store")

SECRET_CONTEXT = "webhooks"
SUBSCRIBE, MANAGE = "webhooks.subscribe", "webhooks.manage"
SECRET_PREFIX = "whsec_"
# Deliveries the worker sends per SendMessageBatch (SQS's limit).
_SEND_BATCH = 10
# An SQS message waits at most 15 minutes: a longer wait is a chain of such waits.
MAX_QUEUE_DELAY_SECONDS = 900


def now() -> datetime:
    return datetime.now(UTC)


# Subscriptions ------------------------------------------------------------------------------------------------


def _check_url(url: str) -> None:
    asyncio.run(checked_destination(url, delivery.outbound_policy(get_settings()), resolver=delivery.resolver()))


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def create_subscription(principal: Principal, request: SubscriptionCreate) -> SubscriptionCreated:
    principal.require(SUBSCRIBE)
    with audit.recorded("webhook.created", actor=principal, details={"scope": request.scope}) as entry:
        if request.scope == "stage":
            principal.require(MANAGE)
        _check_url(request.url)
        subscription_id = new_id()
        entry.target = Target("webhook", subscription_id)
        entry.details["host"] = _host(request.url)
        secret = SECRET_PREFIX + random_secrets.token_urlsafe(32)
        record = store.new_subscription(
            subscription_id=subscription_id, scope=request.scope, owner_id=principal.user_id, url=request.url,
            events=request.events, description=request.description, enabled=request.enabled,
            sealed_secret=seal(secret, context=SECRET_CONTEXT, record=subscription_id),
        )  # fmt: skip
        store.add_subscription(record)
    logger.info("Webhook subscribed", extra={"subscriptionId": subscription_id, "scope": request.scope})
    return SubscriptionCreated(**public_subscription(record).model_dump(), secret=secret)


def list_subscriptions(
    principal: Principal, scope: str, limit: int, cursor: str | None
) -> tuple[list[SubscriptionPublic], str | None]:
    principal.require(SUBSCRIBE)
    if scope == "stage":
        principal.require(MANAGE)
    records, next_cursor = store.subscriptions_page(
        None if scope == "stage" else principal.user_id, limit=limit, cursor=cursor
    )
    return [public_subscription(record) for record in records], next_cursor


def get_subscription(principal: Principal, subscription_id: str) -> SubscriptionPublic:
    return public_subscription(_visible(principal, subscription_id))


def update_subscription(principal: Principal, subscription_id: str, update: SubscriptionUpdate) -> SubscriptionPublic:
    with audit.recorded("webhook.updated", actor=principal, target=Target("webhook", subscription_id)) as entry:
        record = _visible(principal, subscription_id)
        changes: dict[str, Any] = {}
        if update.url is not None:
            _check_url(update.url)
            changes["url"] = update.url
            entry.details["host"] = _host(update.url)
        if update.events is not None:
            changes["events"] = update.events
        if update.description is not None:
            changes["description"] = update.description or None
        if update.enabled is not None:
            changes["enabled"] = update.enabled
            if update.enabled:
                # Enabled again by its owner: the failures counted so far are forgotten.
                changes["disabled_reason"] = None
                changes["failing_since"] = None
        entry.details["fields"] = ",".join(sorted(changes))
        if changes:
            record = store.update_subscription(record, changes)
    return public_subscription(record)


def delete_subscription(principal: Principal, subscription_id: str) -> None:
    with audit.recorded("webhook.deleted", actor=principal, target=Target("webhook", subscription_id)):
        record = _visible(principal, subscription_id)
        store.delete_subscription(record.subscription_id)


def deliveries(
    principal: Principal, subscription_id: str, limit: int, cursor: str | None
) -> tuple[list[DeliveryPublic], str | None]:
    record = _visible(principal, subscription_id)
    attempts, next_cursor = store.attempts_page(record.subscription_id, limit=limit, cursor=cursor)
    return [public_attempt(entry) for entry in attempts], next_cursor


def ping(principal: Principal, subscription_id: str) -> PingResult:
    """Deliver a `ping` now, once (no retry: the caller sees the answer), and log it as any delivery."""
    record = _visible(principal, subscription_id)
    event = Event(type="ping", data={"subscriptionId": record.subscription_id}, user_id=principal.user_id)
    body = delivery.event_body(event.id, event.type, event.at, event.data)
    stored = store.add_delivery(record.subscription_id, event_id=event.id, event_type=event.type, body=body)
    assert stored is not None  # a fresh id
    store.claim_attempt(stored, 1)
    outcome = delivery.attempt(record.url, _secret(record), event.id, body, delivery.outbound_policy(get_settings()))
    status = "delivered" if outcome.delivered else "failed"
    store.finish_delivery(stored, status)
    store.log_attempt(
        record.subscription_id, event_id=event.id, event_type=event.type, attempt=1, status=status,
        status_code=outcome.status_code, latency_ms=outcome.latency_ms, error=outcome.error, next_retry_at=None,
    )  # fmt: skip
    return PingResult(
        event_id=event.id, status=status, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
        error=outcome.error,
    )  # fmt: skip


def _visible(principal: Principal, subscription_id: str) -> SubscriptionRecord:
    principal.require(SUBSCRIBE)
    record = store.get_subscription(subscription_id) if is_id(subscription_id) else None
    if record is None:
        raise store.subscription_not_found()
    if record.scope == "stage":
        if not principal.can(MANAGE):
            raise store.subscription_not_found()
    elif record.owner_id != principal.user_id:
        raise store.subscription_not_found()
    return record


def _secret(record: SubscriptionRecord) -> str:
    return str(unseal(record.sealed_secret, context=SECRET_CONTEXT, record=record.subscription_id))


def public_subscription(record: SubscriptionRecord) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=record.subscription_id, url=record.url, events=list(record.events), description=record.description,
        enabled=record.enabled, scope="stage" if record.scope == "stage" else "user", owner_id=record.owner_id,
        disabled_reason=record.disabled_reason, failing_since=record.failing_since, created_at=record.created_at,
        updated_at=record.updated_at,
    )  # fmt: skip


def public_attempt(record: AttemptRecord) -> DeliveryPublic:
    return DeliveryPublic(
        event_id=record.event_id, type=record.type, attempt=int(record.attempt),
        status="delivered" if record.status == "delivered" else "failed",
        status_code=int(record.status_code) if record.status_code is not None else None,
        latency_ms=int(record.latency_ms), error=record.error, next_retry_at=record.next_retry_at, at=record.at,
    )  # fmt: skip


# The fan-out (a consumer of the events function) --------------------------------------------------------------

DELIVERED_TYPES = frozenset(EVENT_TYPES) - {"ping"}


def fan_out(events: Sequence[Event]) -> list[str]:
    """One delivery per (subscription, event) for each webhook event, and one queue message per delivery; the ids
    of events it failed. A redelivered event finds its deliveries stored and sends only those not yet attempted,
    so a batch cut short is completed, and an attempt made is never repeated by it."""
    failed: list[str] = []
    messages: list[dict[str, Any]] = []
    reached: dict[str | None, list[SubscriptionRecord]] = {}
    for event in events:
        if event.kind != "domain" or event.type not in DELIVERED_TYPES:
            continue
        try:
            if event.user_id not in reached:
                reached[event.user_id] = store.subscriptions_reached(event.user_id)
            body = delivery.event_body(event.id, event.type, event.at, event.data)
            for subscription in reached[event.user_id]:
                if not subscription.enabled or event.type not in subscription.events:
                    continue
                stored = store.add_delivery(
                    subscription.subscription_id, event_id=event.id, event_type=event.type, body=body
                )
                if stored is None:
                    stored = store.get_delivery(subscription.subscription_id, event.id)
                    if stored is None or stored.attempts or stored.status != "pending":
                        continue
                messages.append(_message(subscription.subscription_id, event.id, attempt=1))
        except Exception:
            logger.exception("Fanning out an event failed", extra={"eventId": event.id})
            failed.append(event.id)
    _send(messages)
    return failed


def _message(subscription_id: str, event_id: str, *, attempt: int, not_before: float | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"subscriptionId": subscription_id, "eventId": event_id, "attempt": attempt}
    if not_before is not None:
        message["notBefore"] = not_before
    return message


def _send(messages: Sequence[dict[str, Any]], *, delay_seconds: int = 0) -> None:
    from shared.aws import client

    if not messages:
        return
    url = get_settings().webhook_deliveries_queue_url
    if not url:
        raise RuntimeError("WEBHOOK_DELIVERIES_QUEUE_URL is not set: deployed without the deliveries queue")
    for start in range(0, len(messages), _SEND_BATCH):
        batch = messages[start : start + _SEND_BATCH]
        answer = client("sqs").send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(index), "MessageBody": json.dumps(message), "DelaySeconds": delay_seconds}
                for index, message in enumerate(batch)
            ],
        )
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} webhook deliveries")


# The delivery worker -------------------------------------------------------------------------------------------


def deliver(message: dict[str, Any]) -> None:
    """Take one delivery message: wait on (a longer wait than SQS's 15 minutes is chained), or make its attempt and
    then log it, retry it later, or end it; disable the subscription after 24 hours of failures."""
    subscription_id, event_id, attempt = message["subscriptionId"], message["eventId"], int(message["attempt"])
    not_before = message.get("notBefore")
    current = now()
    if not_before is not None and not_before > current.timestamp() + 1:
        _send([message], delay_seconds=min(MAX_QUEUE_DELAY_SECONDS, int(not_before - current.timestamp()) + 1))
        return
    record = store.get_delivery(subscription_id, event_id)
    subscription = store.get_subscription(subscription_id)
    if record is None or record.status != "pending":
        return
    if subscription is None or not subscription.enabled:
        store.finish_delivery(record, "failed")
        return
    if not store.claim_attempt(record, attempt):
        return  # this attempt was made already (SQS delivered the message twice)
    outcome = delivery.attempt(
        subscription.url, _secret(subscription), event_id, record.body, delivery.outbound_policy(get_settings())
    )
    next_retry: datetime | None = None
    if outcome.delivered:
        store.finish_delivery(record, "delivered")
        if subscription.failing_since is not None:
            store.clear_failing(subscription)
    else:
        next_retry = delivery.retry_at(record.created_at, attempt, get_settings().webhook_retry_base_seconds, current)
        if _failing_too_long(subscription, current):
            next_retry = None
        if next_retry is None:
            store.finish_delivery(record, "failed")
    store.log_attempt(
        subscription_id, event_id=event_id, event_type=record.type, attempt=attempt,
        status="delivered" if outcome.delivered else "failed", status_code=outcome.status_code,
        latency_ms=outcome.latency_ms, error=outcome.error, next_retry_at=next_retry,
    )  # fmt: skip
    if next_retry is not None:
        wait = max(0.0, (next_retry - current).total_seconds())
        _send(
            [_message(subscription_id, event_id, attempt=attempt + 1, not_before=next_retry.timestamp())],
            delay_seconds=min(MAX_QUEUE_DELAY_SECONDS, int(wait)),
        )


def _failing_too_long(subscription: SubscriptionRecord, current: datetime) -> bool:
    """Note the failure; True when the subscription has failed for 24 hours and is disabled now (its owner is told
    in the audit log, once)."""
    if subscription.failing_since is None:
        store.mark_failing(subscription, current)
        return False
    if current - subscription.failing_since < delivery.RETRY_WINDOW:
        return False
    hours = int((current - subscription.failing_since) / timedelta(hours=1))
    if store.disable(subscription, "failing for 24 hours"):
        audit.record(
            "webhook.disabled", outcome="success", user_id=subscription.owner_id,
            target=Target("webhook", subscription.subscription_id),
            details={"reason": "every delivery failed for 24 hours", "failingHours": hours,
                     "host": _host(subscription.url)},
        )  # fmt: skip
        logger.warning("Webhook disabled", extra={"subscriptionId": subscription.subscription_id})
    return True


# Jobs ----------------------------------------------------------------------------------------------------------


def delete_subscriptions(records: Iterable[SubscriptionRecord]) -> int:
    return store.delete_many(records)
