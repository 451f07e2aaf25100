"""Revocations that take effect at once: signed-out sessions, revoked API keys, users and roles whose
credentials must stop working, read by every function that accepts a principal.

Identity records each revoking act as one item of a stage-wide partition of its table
(`REVOCATIONS` / `<epoch ms>#<kind>#<subject>`, kept by TTL for as long as a credential it refuses can still be
presented). Each container keeps a view of the recent ones and brings it up to date with ONE Query for the entries
written since its last look, at most every `revocation_refresh_seconds` and only when a request needs it, so a
valid credential costs no DynamoDB read per request; a revocation reaches every container within that interval.

What each kind refuses:
- `session`: access tokens of that session (`sid`);
- `api_key`: that key (`apiKeyId`);
- `user`: the user's credentials verified before it (a token's `iat`, an API key's resolution time);
- `role`: credentials of anyone holding that role verified before it (the role was deleted or changed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from shared.errors import Unauthorized
from shared.tables import IDENTITY

RevocationKind = Literal["session", "api_key", "user", "role"]


class Credential(Protocol):
    """What a revocation is checked against: a verified principal (`shared.auth.principal.Principal`)."""

    @property
    def user_id(self) -> str: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def auth_type(self) -> Literal["token", "api_key"]: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def api_key_id(self) -> str | None: ...
    @property
    def verified_at_ms(self) -> int | None: ...


REVOCATIONS_PARTITION = "REVOCATIONS"
# A WebSocket connection keeps the principal verified at `$connect` for its whole life (API Gateway ends it after
# 2 hours); the authorizer's cache (300 s) and an access token (15 minutes by default) are shorter.
LONGEST_KEPT_PRINCIPAL_SECONDS = 2 * 60 * 60
# Entries are read again this far back: another container's write may land with a slightly older time (its clock,
# the write's own latency), and the Query is eventually consistent.
REREAD_OVERLAP_MS = 10_000
_SORT_KEY_DIGITS = 13  # epoch milliseconds, zero-padded so the sort key orders by time


def revocation_horizon_seconds(access_token_ttl_seconds: int) -> int:
    """How long a revocation must be kept: as long as any credential it refuses could still be presented."""
    return max(access_token_ttl_seconds, LONGEST_KEPT_PRINCIPAL_SECONDS) + 60


def revocation_sort_key(at_ms: int, kind: RevocationKind, subject: str) -> str:
    return f"{at_ms:0{_SORT_KEY_DIGITS}d}#{kind}#{subject}"


class OutdatedApiKeyError(Unauthorized):
    """An API key's answer predates a change to its owner or their roles: the key itself may still be good, so a
    caller holding the key resolves it again."""

    def __init__(self) -> None:
        super().__init__("The API key's permissions changed since it was checked; try again", code="invalid_api_key")


class RevocationView:
    """One container's view of the stage's recent revocations, refreshed on demand and at most every interval."""

    def __init__(
        self,
        *,
        refresh_seconds: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        read_since: Callable[[int], list[tuple[str, str, int]]] | None = None,
    ) -> None:
        self._refresh_seconds = refresh_seconds or _configured_refresh_seconds
        self._read_since = read_since or _query_since
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._sessions: dict[str, int] = {}
        self._api_keys: dict[str, int] = {}
        self._users: dict[str, int] = {}
        self._roles: dict[str, int] = {}
        self._read_from_ms: int | None = None  # where the next Query starts; None: never read
        self._refreshed_at = 0.0

    def check(self, principal: Credential) -> None:
        """Raise `Unauthorized` when a revocation covers `principal`."""
        with self._lock:
            self._refresh_if_due()
            refusal = self._refusal(principal)
        if refusal is not None:
            raise refusal

    def is_fresh(self) -> bool:
        """True when `check` answers from this view, reading nothing."""
        with self._lock:
            return not self._refresh_due()

    def forget(self) -> None:
        with self._lock:
            for entries in (self._sessions, self._api_keys, self._users, self._roles):
                entries.clear()
            self._read_from_ms = None
            self._refreshed_at = 0.0

    def _refusal(self, principal: Credential) -> Unauthorized | None:
        if principal.session_id and principal.session_id in self._sessions:
            return Unauthorized("This session has ended; sign in again", code="session_revoked")
        if principal.api_key_id and principal.api_key_id in self._api_keys:
            return Unauthorized("The API key has been revoked", code="invalid_api_key")
        changed_at = max(
            (self._users.get(principal.user_id, 0), *(self._roles.get(role, 0) for role in principal.roles))
        )
        if changed_at and (principal.verified_at_ms or 0) < changed_at:
            if principal.auth_type == "api_key":
                return OutdatedApiKeyError()
            return Unauthorized(
                "This access token predates a change to the account; refresh it or sign in again",
                code="token_revoked",
            )
        return None

    def _refresh_due(self) -> bool:
        return self._read_from_ms is None or self._monotonic() - self._refreshed_at >= self._refresh_seconds()

    def _refresh_if_due(self) -> None:
        if not self._refresh_due():
            return
        now = self._monotonic()
        from shared.settings import get_settings

        wall_ms = int(self._wall_clock() * 1000)
        horizon_ms = revocation_horizon_seconds(get_settings().access_token_ttl_seconds) * 1000
        start_ms = wall_ms - horizon_ms if self._read_from_ms is None else self._read_from_ms
        try:
            entries = self._read_since(start_ms)
        except Exception:
            if self._read_from_ms is None:
                raise  # never read: refusing nothing would be failing open from a cold start
            from shared.observability import logger

            # Keep the last view and try again on the next request; every other read of this function fails too.
            logger.warning("revocations could not be read; using the last view", exc_info=True)
            return
        for kind, subject, at_ms in entries:
            table = self._table(kind)
            if table is not None:
                table[subject] = max(at_ms, table.get(subject, 0))
        cutoff = wall_ms - horizon_ms
        for table in (self._sessions, self._api_keys, self._users, self._roles):
            for subject in [subject for subject, at_ms in table.items() if at_ms < cutoff]:
                del table[subject]
        self._read_from_ms = wall_ms - REREAD_OVERLAP_MS
        self._refreshed_at = now

    def _table(self, kind: str) -> dict[str, int] | None:
        return {"session": self._sessions, "api_key": self._api_keys, "user": self._users, "role": self._roles}.get(
            kind
        )


def _configured_refresh_seconds() -> float:
    from shared.settings import get_settings

    return get_settings().revocation_refresh_seconds


def _query_since(start_ms: int) -> list[tuple[str, str, int]]:
    """Every revocation (kind, subject, epoch ms) recorded at or after `start_ms`: one Query (more pages only
    after a burst)."""
    from shared.aws import client

    dynamodb = client("dynamodb")
    request: dict[str, Any] = {
        "TableName": IDENTITY.name_from_env(),
        "KeyConditionExpression": "pk = :partition AND sk >= :start",
        "ExpressionAttributeValues": {
            ":partition": {"S": REVOCATIONS_PARTITION},
            ":start": {"S": f"{max(start_ms, 0):0{_SORT_KEY_DIGITS}d}"},
        },
        "ProjectionExpression": "sk",
    }
    entries = []
    while True:
        page = dynamodb.query(**request)
        for item in page.get("Items", []):
            at_ms, kind, subject = str(item["sk"]["S"]).split("#", 2)
            entries.append((kind, subject, int(at_ms)))
        if "LastEvaluatedKey" not in page:
            return entries
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


_view = RevocationView()


def ensure_not_revoked(principal: Credential) -> None:
    """Raise `Unauthorized` when a revocation recorded since covers `principal` (this container's view)."""
    _view.check(principal)


def revocations_are_fresh() -> bool:
    """True when `ensure_not_revoked` answers from this container's view, reading nothing."""
    return _view.is_fresh()


def forget_revocations() -> None:
    """Drop this container's view: the next check reads every revocation still in force (tests)."""
    _view.forget()


def use_revocation_view(view: RevocationView) -> RevocationView:
    """Check against `view` from now on (tests drive its clock); returns the view it replaces."""
    global _view
    previous, _view = _view, view
    return previous
