"""The one way to record a security event (API.md, Audit log): where something happens, its service says so here.

`record` builds the event (actor, target, outcome, the request's id, address and user agent) and publishes it
through `shared.events`; the events function's audit writer stores it, append-only. `recorded` wraps an action: it
records `success` when the block ends and `failure` (with the error's code) when a `DomainError` leaves it.

No secret may be recorded: `details` refuses names that carry one (a password, token, secret, key material or an
authorization header), and values are short, plain and JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shared import events
from shared.request_context import current_origin

if TYPE_CHECKING:
    from shared.auth.principal import Principal

Outcome = Literal["success", "failure"]
DetailValue = str | int | float | bool | None

# Every action the log records (API.md's list); `record` refuses any other name.
ACTIONS: frozenset[str] = frozenset(
    {
        "user.registered",
        "user.login",
        "user.locked",
        "user.logout",
        "session.refresh_reused",
        "session.revoked",
        "password.reset_requested",
        "password.reset",
        "user.invited",
        "user.roles_changed",
        "user.status_changed",
        "role.created",
        "role.deleted",
        "apikey.created",
        "apikey.revoked",
        "export.requested",
        "export.downloaded",
        "import.started",
        "account.deletion_requested",
        "account.deletion_completed",
        "mcp_server.created",
        "mcp_server.updated",
        "mcp_server.deleted",
        "agent.created",
        "agent.updated",
        "agent.deleted",
        "channel.created",
        "channel.updated",
        "channel.deleted",
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
        "webhook.disabled",
        "admin.archive_started",
    }
)

# A detail whose name says it holds a secret is refused: the log must never hold one, whoever calls.
_SECRET_NAME = re.compile(r"password|passwd|secret|token|authorization|cookie|credential|private|signature", re.I)
_MAX_DETAIL_CHARS = 256


class SecretInAuditError(ValueError):
    """A caller tried to record something a secret could be in."""


@dataclass(frozen=True)
class Target:
    """What the action was done to: `type` is `user`, `apikey`, `session`, `mcp_server`, `agent`, `channel`,
    `webhook`, `job`, `role`..."""

    type: str
    id: str


@dataclass
class Entry:
    """An action being recorded by `recorded`: its target and details may be filled in as they become known."""

    action: str
    target: Target | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)
    user_id: str | None = None


def record(
    action: str,
    *,
    outcome: Outcome = "success",
    actor: Principal | None = None,
    user_id: str | None = None,
    target: Target | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> events.Event:
    """Record one event. `actor` is who did it (none for a sign-in attempt, which has no principal yet); `user_id`
    is whose log it belongs to when that is not the actor (a failed login belongs to the account the email names,
    a role change to the user changed: the writer files it under the actor and under that user)."""
    if action not in ACTIONS:
        raise ValueError(f"{action!r} is not an audit action (shared.audit.ACTIONS)")
    origin = current_origin()
    actor_fields: dict[str, Any] = {"ip": origin.ip, "userAgent": origin.user_agent}
    if actor is not None:
        actor_fields |= {"userId": actor.user_id, "authType": actor.auth_type}
        if actor.api_key_id:
            actor_fields["apiKeyId"] = actor.api_key_id
    data: dict[str, Any] = {
        "action": action,
        "outcome": outcome,
        "actor": {name: value for name, value in actor_fields.items() if value is not None},
        "requestId": origin.request_id,
    }
    if target is not None:
        data["target"] = {"type": target.type, "id": target.id}
    if details:
        data["details"] = _checked(details)
    owner = user_id or (actor.user_id if actor is not None else None)
    return events.publish(action, data, user_id=owner, kind="audit")


@contextmanager
def recorded(
    action: str,
    *,
    actor: Principal | None = None,
    user_id: str | None = None,
    target: Target | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> Iterator[Entry]:
    """Record `action` once, by how the block ends: `success`, or `failure` with `details.error` the code of the
    `DomainError` that left it (which goes on). Other exceptions are bugs, not refusals, and record nothing."""
    from shared.errors import DomainError

    entry = Entry(action, target, dict(details or {}), user_id)
    try:
        yield entry
    except DomainError as error:
        failed = {**entry.details, "error": error.error_code}
        record(action, outcome="failure", actor=actor, user_id=entry.user_id, target=entry.target, details=failed)
        raise
    record(action, actor=actor, user_id=entry.user_id, target=entry.target, details=entry.details)


def _checked(details: Mapping[str, DetailValue]) -> dict[str, DetailValue]:
    checked: dict[str, DetailValue] = {}
    for name, value in details.items():
        if _SECRET_NAME.search(name):
            raise SecretInAuditError(f"audit details may not hold {name!r}: it names a secret")
        if not isinstance(value, str | int | float | bool | type(None)):
            raise TypeError(f"audit detail {name!r} must be a plain value, not {type(value).__name__}")
        checked[name] = value[:_MAX_DETAIL_CHARS] if isinstance(value, str) else value
    return checked
