"""The principal the authorizer hands to functions, and role permissions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.auth.principal import Principal, permissions_of
from shared.auth.revocations import RevocationView, use_revocation_view
from shared.errors import Forbidden, Unauthorized


@pytest.fixture(autouse=True)
def nothing_revoked() -> Iterator[None]:
    previous = use_revocation_view(RevocationView(read_since=lambda _start: []))
    yield
    use_revocation_view(previous)


def _principal(**overrides: object) -> Principal:
    values: dict[str, object] = {
        "user_id": "u1",
        "roles": ("member",),
        "permissions": frozenset({"ai.chat", "mcp.use"}),
        "auth_type": "token",
        "expires_at": int(time.time()) + 600,
        "session_id": "s1",
    }
    return Principal(**(values | overrides))  # type: ignore[arg-type]


def test_principal_survives_the_authorizer_context_round_trip() -> None:
    principal = _principal()
    context = principal.to_authorizer_context()
    assert all(isinstance(value, str | int) for value in context.values())
    assert Principal.from_authorizer_context(context) == principal


def test_authorizer_refusal_becomes_a_401_with_its_reason() -> None:
    with pytest.raises(Unauthorized) as refusal:
        Principal.from_authorizer_context({"authError": "token_expired", "authMessage": "The token has expired"})
    assert refusal.value.error_code == "token_expired"


def test_cached_authorizer_answer_past_token_expiry_is_refused() -> None:
    context = _principal(expires_at=int(time.time()) - 1).to_authorizer_context()
    with pytest.raises(Unauthorized):
        Principal.from_authorizer_context(context)


def test_permissions_union_roles_and_admin_holds_everything() -> None:
    assert permissions_of(["viewer"], {}) == frozenset()
    assert permissions_of(["viewer", "support"], {"support": ["users.manage"]}) == {"users.manage"}
    assert _principal(permissions=frozenset({"*"})).can("anything.at.all")
    with pytest.raises(Forbidden):
        _principal().require("users.manage")


def test_unknown_role_grants_nothing() -> None:
    assert permissions_of(["ghost"], {}) == frozenset()
