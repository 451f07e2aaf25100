"""A container's view of revocations: what each kind refuses, how often it reads, and what it forgets."""

from __future__ import annotations

import pytest

from infra.catalog import (
    AUTHORIZER_CACHE_SECONDS,
    AUTHORIZER_FUNCTION,
    HTTP_FUNCTIONS,
    STREAMING_FUNCTIONS,
    WEBSOCKET_FUNCTIONS,
)
from shared.auth.principal import Principal
from shared.auth.revocations import (
    LONGEST_KEPT_PRINCIPAL_SECONDS,
    OutdatedApiKeyError,
    RevocationView,
    revocation_horizon_seconds,
    revocation_sort_key,
)
from shared.errors import Unauthorized
from shared.ids import id_time_ms, new_id

NOW = 1_700_000_000.0


class Revocations:
    """An identity table's revocation partition in memory, and the reads a view makes of it."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int]] = []
        self.reads: list[int] = []

    def record(self, kind: str, subject: str, at: float) -> None:
        self.entries.append((kind, subject, int(at * 1000)))

    def read_since(self, start_ms: int) -> list[tuple[str, str, int]]:
        self.reads.append(start_ms)
        return [entry for entry in self.entries if entry[2] >= start_ms]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Revocations:
    return Revocations()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def view(table: Revocations, clock: Clock) -> RevocationView:
    return RevocationView(refresh_seconds=lambda: 2.0, wall_clock=clock, monotonic=clock, read_since=table.read_since)


def token(
    user: str = "u1", session: str = "s1", at: float = NOW - 60, roles: tuple[str, ...] = ("member",)
) -> Principal:
    return Principal(user_id=user, roles=roles, permissions=frozenset(), auth_type="token", session_id=session,
                     verified_at_ms=int(at * 1000))  # fmt: skip


def key(user: str = "u1", key_id: str = "k1", at: float = NOW - 60) -> Principal:
    return Principal(user_id=user, roles=("member",), permissions=frozenset(), auth_type="api_key",
                     api_key_id=key_id, verified_at_ms=int(at * 1000))  # fmt: skip


def refusal(view: RevocationView, principal: Principal) -> str | None:
    try:
        view.check(principal)
    except Unauthorized as error:
        return error.error_code
    return None


def test_each_kind_refuses_exactly_what_it_names(view: RevocationView, table: Revocations) -> None:
    table.record("session", "s1", NOW - 10)
    table.record("api_key", "k1", NOW - 10)
    table.record("user", "u2", NOW - 10)
    table.record("role", "support", NOW - 10)

    assert refusal(view, token(session="s1")) == "session_revoked"
    assert refusal(view, token(session="s2")) is None
    assert refusal(view, key(key_id="k1")) == "invalid_api_key"
    assert refusal(view, key(key_id="k2")) is None
    # A user or role revocation refuses what was verified before it, never what was verified after.
    assert refusal(view, token(user="u2", session="s9", at=NOW - 11)) == "token_revoked"
    assert refusal(view, token(user="u2", session="s9", at=NOW - 9)) is None
    assert refusal(view, token(session="s9", roles=("member", "support"), at=NOW - 11)) == "token_revoked"
    assert refusal(view, token(session="s9", roles=("member",), at=NOW - 11)) is None
    with pytest.raises(OutdatedApiKeyError):  # the key itself may still be good: its holder resolves it again
        view.check(key(user="u2", key_id="k9", at=NOW - 11))
    assert refusal(view, key(user="u2", key_id="k9", at=NOW - 9)) is None


def test_a_principal_of_unknown_age_is_refused_by_any_change_to_its_user(
    view: RevocationView, table: Revocations
) -> None:
    table.record("user", "u1", NOW - 10)
    unknown = Principal(user_id="u1", roles=(), permissions=frozenset(), auth_type="token", session_id="s1")
    assert refusal(view, unknown) == "token_revoked"


def test_the_view_reads_once_per_interval_and_then_only_what_is_new(
    view: RevocationView, table: Revocations, clock: Clock
) -> None:
    for _ in range(100):
        assert refusal(view, token()) is None
    assert len(table.reads) == 1  # one read for a hundred checks
    assert table.reads[0] == int(NOW * 1000) - revocation_horizon_seconds(900) * 1000

    table.record("session", "s1", clock.now)
    clock.now += 1.9
    assert refusal(view, token()) is None  # not read yet: within the interval
    clock.now += 0.1
    assert refusal(view, token()) == "session_revoked"
    assert len(table.reads) == 2
    # The second read starts just before the first one's time, so a write that landed late is still seen.
    assert table.reads[1] == int(NOW * 1000) - 10_000


def test_the_view_says_whether_a_check_would_read(view: RevocationView, table: Revocations, clock: Clock) -> None:
    # The HTTP layer verifies on the event loop only what reads nothing: a due view must say so.
    assert not view.is_fresh()  # never read
    view.check(token())
    assert view.is_fresh()
    clock.now += 1.9
    assert view.is_fresh()
    clock.now += 0.2
    assert not view.is_fresh()
    assert len(table.reads) == 1  # asking reads nothing
    view.check(token())
    assert view.is_fresh()
    assert len(table.reads) == 2


def test_a_failed_read_keeps_the_last_view_but_a_view_never_read_fails_closed(table: Revocations, clock: Clock) -> None:
    failing = True

    def read_since(start_ms: int) -> list[tuple[str, str, int]]:
        if failing:
            raise ConnectionError("DynamoDB is unreachable")
        return table.read_since(start_ms)

    view = RevocationView(refresh_seconds=lambda: 2.0, wall_clock=clock, monotonic=clock, read_since=read_since)
    with pytest.raises(ConnectionError):
        view.check(token())
    failing = False
    table.record("session", "s1", clock.now)
    assert refusal(view, token()) == "session_revoked"
    failing = True
    clock.now += 5
    assert refusal(view, token()) == "session_revoked"
    assert refusal(view, token(session="s2")) is None


def test_revocations_older_than_any_credential_they_could_refuse_are_forgotten(
    view: RevocationView, table: Revocations, clock: Clock
) -> None:
    table.record("session", "s1", clock.now)
    assert refusal(view, token()) == "session_revoked"
    clock.now += revocation_horizon_seconds(900) + 1
    assert refusal(view, token()) is None


def test_a_revocation_outlives_every_credential_it_refuses() -> None:
    from functions.realtime.store import CONNECTION_LIFETIME_SECONDS

    horizon = revocation_horizon_seconds(900)
    assert horizon > max(AUTHORIZER_CACHE_SECONDS, CONNECTION_LIFETIME_SECONDS, 900)
    assert LONGEST_KEPT_PRINCIPAL_SECONDS >= CONNECTION_LIFETIME_SECONDS
    assert revocation_horizon_seconds(3600) > 3600


def test_sort_keys_order_by_time_and_keep_the_subject_whole() -> None:
    earlier, later = revocation_sort_key(999, "role", "a#b"), revocation_sort_key(1_000, "session", "s")
    assert earlier < later
    assert earlier.split("#", 2) == ["0000000000999", "role", "a#b"]


def test_an_id_tells_the_millisecond_it_was_made_in() -> None:
    assert id_time_ms(new_id(1_700_000_000_123)) == 1_700_000_000_123
    with pytest.raises(ValueError, match="not a ULID"):
        id_time_ms("not-an-id")


def test_every_function_that_accepts_a_principal_checks_revocations() -> None:
    for spec in (*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS):
        assert spec.checks_revocations == any(not route.public for route in spec.routes), spec.name
    # The WebSocket authorizer verifies tokens; the handler and the worker act as the principal stored at connect.
    assert all(spec.checks_revocations for spec in (AUTHORIZER_FUNCTION, *WEBSOCKET_FUNCTIONS))
