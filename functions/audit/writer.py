"""The audit log's writer, a consumer of the events function (`functions.events.handler.CONSUMERS`): stores each
audit event (`kind == "audit"`, published by `shared.audit`) in the log of every user it concerns, its personal
fields encrypted with their owners' keys (functions.audit.crypto).

Append-only and idempotent by event id: every item is put on `attribute_not_exists`, at keys the event alone
decides, so a redelivered event (SQS delivers at least once) is a no-op, and a half-written one is completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.audit import crypto
from shared.events import Event
from shared.lazy import LazyModule
from shared.observability import logger
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.audit import store
else:
    store = LazyModule("functions.audit.store")

# Where the user's account deletion is recorded: from this event on, no key is made for them again.
DELETION_REQUESTED = "account.deletion_requested"

_keys = crypto.KeyCache()


def consume(events: Sequence[Event]) -> Iterable[str]:
    """Store the batch's audit events; the ids of those that could not be stored (SQS delivers them again)."""
    failed: list[str] = []
    for event in events:
        if event.kind != "audit":
            continue
        try:
            store_event(event)
        except (KeyError, TypeError, ValueError):
            # Not an event `shared.audit` builds: delivering it again would not make it one.
            logger.exception("An audit event of an unknown shape was dropped", extra={"eventId": event.id})
        except Exception:
            logger.exception("An audit event was not stored", extra={"eventId": event.id})
            failed.append(event.id)
    return failed


def concerned_users(event: Event) -> list[str]:
    """The users in whose log the event is: whose it was recorded as, who did it, the user it was done to."""
    actor = event.data.get("actor") or {}
    target = event.data.get("target") or {}
    target_user = target.get("id") if target.get("type") == "user" else None
    return list(dict.fromkeys(user for user in (event.user_id, actor.get("userId"), target_user) if user))


def store_event(event: Event) -> None:
    data = event.data
    action, outcome = str(data["action"]), str(data["outcome"])
    actor: dict[str, Any] = dict(data.get("actor") or {})
    details: dict[str, Any] = dict(data.get("details") or {})
    target = data.get("target")
    target_user = target["id"] if isinstance(target, dict) and target.get("type") == "user" else None
    if action == DELETION_REQUESTED and outcome == "success" and event.user_id:
        # Before anything is encrypted: from here on no key is made for the user, whenever the deletion deletes it.
        shred(event.user_id)
    # The actor's address is the actor's (or, before sign-in, the account's whose log it is); a detail that names
    # a person names the user the action was done to, or else the log's owner.
    parts = (
        ("actor", actor, crypto.ACTOR_PERSONAL_FIELDS, actor.get("userId") or event.user_id),
        ("details", details, tuple(name for name in details if crypto.PERSONAL_DETAIL.search(name)),
         target_user or event.user_id),
    )  # fmt: skip
    sealed: list[crypto.Envelope] = []
    for part, fields, personal, owner in parts:
        taken = {name: fields.pop(name) for name in personal if name in fields}
        if not taken or owner is None:
            fields.update(taken)  # no one's to shred: an attempt that names no account
            continue
        key = data_key(owner)
        if key is not None:  # None: the owner's account is being deleted, their personal fields are not kept
            sealed.append(crypto.seal_fields(key, taken, event_id=event.id, part=part, owner=owner))
    expires = int(_epoch(event.at) + get_settings().audit_retention_days * 86400)
    sort_key = store.event_sort_key(event.at, event.id)
    users = concerned_users(event)
    partitions = [store.user_partition(user) for user in users] or [store.EVENT_PREFIX + event.id]
    for index, partition in enumerate(partitions):
        record = store.EventRecord(
            partition, sort_key, event_id=event.id, at=event.at, action=action, outcome=outcome, actor=actor,
            target=target, request_id=data.get("requestId"), details=details or None, sealed=sealed or None,
            ttl=expires,
        )  # fmt: skip
        if index == 0:  # the stage's view lists each event once
            record.gsi1pk, record.gsi1sk = store.day_partition(event.at[:10]), f"{event.at}#{event.id}"
        store.put_new(record)


def data_key(user_id: str) -> bytes | None:
    """The user's data key, made on their first event; None once their account's deletion was requested."""
    known, key = _keys.get(user_id)
    if known:
        return key
    for _ in range(2):
        state = store.key_state(user_id)
        if state.shredded:
            key = None
        elif state.sealed_key:
            key = crypto.unseal_key(user_id, state.sealed_key)
        else:
            key = crypto.new_key()
            made = store.KeyRecord(store.key_partition(user_id), store.KEY, sealed_key=crypto.seal_key(user_id, key))
            if not store.put_new(made):
                continue  # another writer made it first: use theirs
        _keys.put(user_id, key)
        return key
    raise RuntimeError(f"the audit key of user {user_id} could neither be read nor made")


def shred(user_id: str) -> None:
    """Mark the user's account as being deleted: the writer makes no key for them again, so an event stored after
    the deletion's audit task deleted their key keeps no personal field in clear."""
    store.put_new(store.KeyRecord(store.key_partition(user_id), store.SHREDDED))
    _keys.put(user_id, None)


def forget_keys() -> None:
    """Drop the keys this container opened (tests start each from a fresh stage)."""
    _keys.clear()


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
