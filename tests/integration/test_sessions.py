"""Signed-in sessions (API.md, Audit log) through API Gateway events on moto: each sign-in is one, listed with when
it began and was last refreshed, from which address and agent; signing one out refuses its refresh token and its
access tokens, as logging out does; another user's session is not found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from shared.events import Event
from tests.fakes.events import published
from tests.integration.conftest import User, error_code, login, register

SESSIONS = "/api/v1/auth/sessions"


def sessions_of(api: TestClient, user: User, **params: str | int) -> list[dict[str, object]]:
    response = api.get(SESSIONS, headers=user.auth, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "nextCursor"}
    return list(body["items"])


def refresh(api: TestClient, user: User, agent: str = "testclient") -> Any:
    return api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}, headers={"user-agent": agent})


def test_each_sign_in_is_a_session_listed_newest_first_with_the_current_one_flagged(api: TestClient) -> None:
    phone = register(api, "ana@example.com")
    laptop = api.post(
        "/api/v1/auth/login", json={"email": "ana@example.com", "password": "correct horse battery"},
        headers={"user-agent": "Laptop/1.0"},
    ).json()  # fmt: skip
    listed = sessions_of(api, phone)
    assert [session["current"] for session in listed] == [False, True]
    newest, oldest = listed
    assert set(newest) == {"sessionId", "createdAt", "lastUsedAt", "userAgent", "ip", "current"}
    assert newest["userAgent"] == "Laptop/1.0"
    assert oldest["userAgent"] == "testclient"
    assert newest["ip"]
    assert newest["createdAt"] == newest["lastUsedAt"]
    assert [s["current"] for s in sessions_of(api, User(phone.id, phone.email, laptop["accessToken"], ""))] == [
        True,
        False,
    ]


def test_a_refresh_moves_last_used_and_keeps_the_session(api: TestClient) -> None:
    ana = register(api, "ana@example.com")
    (before,) = sessions_of(api, ana)
    refreshed = refresh(api, ana, agent="Phone/2.0")
    assert refreshed.status_code == 200
    (after,) = sessions_of(api, ana)
    assert after["sessionId"] == before["sessionId"]
    assert after["createdAt"] == before["createdAt"]
    assert datetime.fromisoformat(str(after["lastUsedAt"])) >= datetime.fromisoformat(str(before["lastUsedAt"]))
    assert after["userAgent"] == "Phone/2.0"


def test_signing_a_session_out_refuses_its_refresh_and_access_tokens_only(api: TestClient) -> None:
    ana = register(api, "ana@example.com")
    other = login(api, "ana@example.com")
    sessions = sessions_of(api, ana)
    other_id = next(s["sessionId"] for s in sessions if not s["current"])
    published()

    assert api.delete(f"{SESSIONS}/{other_id}", headers=ana.auth).status_code == 204
    refused = refresh(api, other)
    assert refused.status_code == 401
    assert error_code(refused) == "session_revoked"
    assert api.get("/api/v1/auth/me", headers=other.auth).status_code == 401
    # The session signing it out goes on, and the signed-out one is no longer listed.
    assert api.get("/api/v1/auth/me", headers=ana.auth).status_code == 200
    assert other_id not in [s["sessionId"] for s in sessions_of(api, ana)]
    (event,) = [e for e in published() if e.kind == "audit"]
    assert_revoked(event, ana, str(other_id), "success")
    # Signed out already: not a session any more.
    assert api.delete(f"{SESSIONS}/{other_id}", headers=ana.auth).status_code == 404


def test_another_users_or_an_unknown_session_is_not_found(api: TestClient) -> None:
    ana, ben = register(api, "ana@example.com"), register(api, "ben@example.com")
    (bens,) = sessions_of(api, ben)
    published()
    for session_id in (bens["sessionId"], "01J00000000000000000000000", "not-an-id"):
        refused = api.delete(f"{SESSIONS}/{session_id}", headers=ana.auth)
        assert refused.status_code == 404
        assert error_code(refused) == "session_not_found"
    assert refresh(api, ben).status_code == 200
    recorded = [e for e in published() if e.kind == "audit" and e.type == "session.revoked"]
    assert len(recorded) == 3
    assert_revoked(recorded[0], ana, str(bens["sessionId"]), "failure")


def test_sessions_page_by_page_and_a_logout_ends_one(api: TestClient) -> None:
    ana = register(api, "ana@example.com")
    for _ in range(4):
        login(api, "ana@example.com")
    first = api.get(SESSIONS, headers=ana.auth, params={"limit": 3}).json()
    assert len(first["items"]) == 3
    assert first["nextCursor"]
    rest = api.get(SESSIONS, headers=ana.auth, params={"limit": 3, "cursor": first["nextCursor"]}).json()
    ids = [s["sessionId"] for s in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 5
    assert ids == sorted(ids, reverse=True)
    assert api.post("/api/v1/auth/logout", headers=ana.auth).status_code == 204
    assert len(sessions_of(api, login(api, "ana@example.com"))) == 5  # one ended, one begun


def assert_revoked(event: Event, actor: User, session_id: str, outcome: str) -> None:
    assert event.type == "session.revoked"
    assert event.user_id == actor.id
    assert event.data["outcome"] == outcome
    assert event.data["actor"]["userId"] == actor.id
    assert event.data["target"] == {"type": "session", "id": session_id}
