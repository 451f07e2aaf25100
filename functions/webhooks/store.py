"""The webhooks' storage: pynamodb records in the webhooks table.

Items (pk / sk), a subscription and everything of it in one partition:
  SUB#<id> / META                 the subscription, its secret sealed (gsi1: OWNER#<user id> or OWNER#STAGE /
                                  SUB#<id>: a user's subscriptions, and the stage's, one Query each; the fan-out
                                  reads the event user's and the stage's, never scans).
  SUB#<id> / DELIVERY#<event id>  one event to deliver to it: the body sent (the same bytes every attempt), how many
                                  attempts were made, its state. Written with `attribute_not_exists`, so an event
                                  redelivered to the fan-out makes no second delivery.
  SUB#<id> / LOG#<attempt id>     one attempt: event id, type, attempt, status code, latency, next retry (the
                                  delivery log, newest first by its ULID).
Deliveries and log entries expire (TTL) after `DELIVERY_TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.models import Model

from shared.errors import NotFound
from shared.ids import new_id
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, string_list, table_meta, update_existing
from shared.tables import WEBHOOKS

SUB_PREFIX = "SUB#"
DELIVERY_PREFIX = "DELIVERY#"
LOG_PREFIX = "LOG#"
OWNER_PREFIX = "OWNER#"
STAGE_OWNER = "STAGE"
META = "META"
# Retries last 24 hours; the log is kept a while longer so a failure can be looked at.
DELIVERY_TTL_SECONDS = 7 * 86400

_Meta = table_meta(WEBHOOKS)


def now() -> datetime:
    return datetime.now(UTC)


def sub_pk(subscription_id: str) -> str:
    return SUB_PREFIX + subscription_id


def owner_partition(owner_id: str | None) -> str:
    """A user's subscriptions, or (None) the stage's."""
    return OWNER_PREFIX + (owner_id or STAGE_OWNER)


class SubscriptionRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_owner = secondary_index(WEBHOOKS.index("gsi1"))

    subscription_id = UnicodeAttribute(attr_name="subscriptionId")
    scope = UnicodeAttribute()
    # The user whose events it gets (and who is told when it is disabled); its creator for a stage one.
    owner_id = UnicodeAttribute(attr_name="ownerId")
    url = UnicodeAttribute()
    events = string_list()
    description = UnicodeAttribute(null=True)
    enabled = BooleanAttribute()
    sealed_secret = UnicodeAttribute(attr_name="sealedSecret")
    # Since when every attempt failed (cleared by a success); 24 hours of it disables the subscription.
    failing_since = UTCDateTimeAttribute(attr_name="failingSince", null=True)
    disabled_reason = UnicodeAttribute(attr_name="disabledReason", null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)


class DeliveryRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute(attr_name="eventId")
    type = UnicodeAttribute()
    # The JSON body every attempt sends, byte for byte.
    body = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    # pending, delivered, failed (gave up after 24 hours, or the subscription went away).
    status = UnicodeAttribute(default="pending")
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    ttl = NumberAttribute()


class AttemptRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute(attr_name="eventId")
    type = UnicodeAttribute()
    attempt = NumberAttribute()
    status = UnicodeAttribute()
    status_code = NumberAttribute(attr_name="statusCode", null=True)
    latency_ms = NumberAttribute(attr_name="latencyMs")
    error = UnicodeAttribute(null=True)
    next_retry_at = UTCDateTimeAttribute(attr_name="nextRetryAt", null=True)
    at = UTCDateTimeAttribute(default=now)
    ttl = NumberAttribute()


def _expiry() -> int:
    return int(time.time()) + DELIVERY_TTL_SECONDS


# Subscriptions ------------------------------------------------------------------------------------------------


def new_subscription(
    *, subscription_id: str, scope: str, owner_id: str, url: str, events: Sequence[str], description: str | None,
    enabled: bool, sealed_secret: str,
) -> SubscriptionRecord:  # fmt: skip
    return SubscriptionRecord(
        pk=sub_pk(subscription_id), sk=META,
        gsi1pk=owner_partition(None if scope == "stage" else owner_id), gsi1sk=sub_pk(subscription_id),
        subscription_id=subscription_id, scope=scope, owner_id=owner_id, url=url, events=list(events),
        description=description, enabled=enabled, sealed_secret=sealed_secret,
    )  # fmt: skip


def add_subscription(record: SubscriptionRecord) -> None:
    record.save(condition=SubscriptionRecord.pk.does_not_exist())


def get_subscription(subscription_id: str) -> SubscriptionRecord | None:
    try:
        return SubscriptionRecord.get(sub_pk(subscription_id), META)
    except DoesNotExist:
        return None


def subscriptions_page(
    owner_id: str | None, *, limit: int, cursor: str | None
) -> tuple[list[SubscriptionRecord], str | None]:
    """A user's own subscriptions (or, None, the stage's), a page at a time."""
    partition = owner_partition(owner_id)
    start = decode_cursor(
        cursor, partition={"gsi1pk": partition}, sort_prefixes={"gsi1sk": SUB_PREFIX, "pk": SUB_PREFIX, "sk": ""}
    )
    results = SubscriptionRecord.by_owner.query(partition, limit=limit, last_evaluated_key=start)
    page = next(results.page_iter)
    records = [SubscriptionRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return records, encode_cursor(page.get("LastEvaluatedKey"))


def subscriptions_reached(user_id: str | None) -> list[SubscriptionRecord]:
    """Every subscription an event of `user_id` reaches before filtering by type: the user's and the stage's (one
    Query each, every page)."""
    partitions = [owner_partition(None)] + ([owner_partition(user_id)] if user_id else [])
    return [record for partition in partitions for record in SubscriptionRecord.by_owner.query(partition)]


def update_subscription(record: SubscriptionRecord, changes: dict[str, Any]) -> SubscriptionRecord:
    try:
        update_existing(record, changes, updated_at=now())
    except UpdateError as error:
        if condition_failed(error):
            raise subscription_not_found() from None
        raise
    return record


def mark_failing(record: SubscriptionRecord, since: datetime) -> None:
    """Note when the failures began, unless an earlier failure already did (concurrent deliveries keep the first)."""
    try:
        record.update(
            actions=[SubscriptionRecord.failing_since.set(since)],
            condition=SubscriptionRecord.pk.exists() & SubscriptionRecord.failing_since.does_not_exist(),
        )
    except UpdateError as error:
        if not condition_failed(error):
            raise


def clear_failing(record: SubscriptionRecord) -> None:
    try:
        record.update(actions=[SubscriptionRecord.failing_since.remove()], condition=SubscriptionRecord.pk.exists())
    except UpdateError as error:
        if not condition_failed(error):
            raise


def disable(record: SubscriptionRecord, reason: str) -> bool:
    """Disable the subscription if it still is enabled; True when this call did (so one audit event says so)."""
    try:
        record.update(
            actions=[
                SubscriptionRecord.enabled.set(False),
                SubscriptionRecord.disabled_reason.set(reason),
                SubscriptionRecord.updated_at.set(now()),
            ],
            condition=SubscriptionRecord.pk.exists() & (SubscriptionRecord.enabled == True),  # noqa: E712
        )
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def delete_subscription(subscription_id: str) -> int:
    """Delete the subscription and its deliveries and log; the number of items deleted."""
    keys = [(item.pk, item.sk) for item in AttemptRecord.query(sub_pk(subscription_id), attributes_to_get=["pk", "sk"])]
    with AttemptRecord.batch_write() as batch:
        for pk, sk in keys:
            batch.delete(AttemptRecord(pk, sk))
    return len(keys)


def subscription_not_found() -> NotFound:
    return NotFound("Webhook subscription not found", code="webhook_not_found")


# Deliveries ---------------------------------------------------------------------------------------------------


def add_delivery(subscription_id: str, *, event_id: str, event_type: str, body: str) -> DeliveryRecord | None:
    """The delivery of an event to a subscription, stored once: None when it already was (a redelivered event)."""
    record = DeliveryRecord(
        pk=sub_pk(subscription_id), sk=DELIVERY_PREFIX + event_id, event_id=event_id, type=event_type, body=body,
        attempts=0, status="pending", ttl=_expiry(),
    )  # fmt: skip
    try:
        record.save(condition=DeliveryRecord.pk.does_not_exist())
    except PutError as error:
        if condition_failed(error):
            return None
        raise
    return record


def get_delivery(subscription_id: str, event_id: str) -> DeliveryRecord | None:
    try:
        return DeliveryRecord.get(sub_pk(subscription_id), DELIVERY_PREFIX + event_id, consistent_read=True)
    except DoesNotExist:
        return None


def claim_attempt(record: DeliveryRecord, attempt: int) -> bool:
    """Take attempt number `attempt` of a pending delivery; False when it was taken already (SQS delivered the
    message twice) or the delivery is over, so one attempt is made once."""
    try:
        record.update(
            actions=[DeliveryRecord.attempts.set(attempt)],
            condition=(DeliveryRecord.attempts == attempt - 1) & (DeliveryRecord.status == "pending"),
        )
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def finish_delivery(record: DeliveryRecord, status: str) -> None:
    record.update(actions=[DeliveryRecord.status.set(status)])


def log_attempt(
    subscription_id: str, *, event_id: str, event_type: str, attempt: int, status: str, status_code: int | None,
    latency_ms: int, error: str | None, next_retry_at: datetime | None,
) -> AttemptRecord:  # fmt: skip
    record = AttemptRecord(
        pk=sub_pk(subscription_id), sk=LOG_PREFIX + new_id(), event_id=event_id, type=event_type, attempt=attempt,
        status=status, status_code=status_code, latency_ms=latency_ms, error=error, next_retry_at=next_retry_at,
        ttl=_expiry(),
    )  # fmt: skip
    record.save()
    return record


def attempts_page(subscription_id: str, *, limit: int, cursor: str | None) -> tuple[list[AttemptRecord], str | None]:
    """The delivery log, newest first; expired entries (TTL not yet applied) left out."""
    partition = sub_pk(subscription_id)
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": LOG_PREFIX})
    results = AttemptRecord.query(
        partition, AttemptRecord.sk.startswith(LOG_PREFIX), scan_index_forward=False, limit=limit,
        last_evaluated_key=start,
    )  # fmt: skip
    page = next(results.page_iter)
    current = int(time.time())
    records = [AttemptRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return [record for record in records if record.ttl > current], encode_cursor(page.get("LastEvaluatedKey"))


def delete_many(records: Iterable[SubscriptionRecord]) -> int:
    return sum(delete_subscription(record.subscription_id) for record in records)
