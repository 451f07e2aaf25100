"""Stream tickets: issued over HTTP for one GET stream route, redeemed once by `StreamCaller` on that route only,
within 60 seconds, and never for a credential revoked since; the ticket itself is never stored, echoed or logged."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from functions.chat import tickets
from functions.chat.sse import EventStream, SseEvent
from functions.chat.tickets import StreamCaller
from shared.auth.principal import Principal
from shared.errors import Unauthorized
from shared.http.app import create_app
from shared.http.responses import refusals
from shared.ids import new_id
from shared.tables import CHAT
from tests.integration.conftest import PASSWORD, User, error_code, register

TICKETS = "/api/v1/ai/stream-tickets"
ADMIN_USERS = "/api/v1/admin/users"


def reply_path(message_id: str | None = None) -> str:
    return f"/api/v1/ai/chat/stream/{message_id or new_id()}"


def issue(api: TestClient, credential: dict[str, str], path: str) -> str:
    issued = api.post(TICKETS, headers=credential, json={"path": path})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["ticket"])


def refusal_code(call: Any, *args: Any) -> str:
    with pytest.raises(Unauthorized) as refused:
        call(*args)
    return str(refused.value.error_code)


@pytest.fixture
def user(api: TestClient) -> User:
    return register(api, "reader@example.com")


# A GET stream route as the chat app would declare one: its events say who the caller is.
_stream_router = APIRouter(prefix="/api/v1/ai")


@_stream_router.get("/chat/stream/{messageId}", responses=refusals(401, meaning={401: tickets.REFUSED_STREAM_CALLER}))
async def _resume(caller: StreamCaller) -> EventStream:
    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[SseEvent]]:
        async def events() -> AsyncIterator[SseEvent]:
            yield None, {"type": "caller", "userId": caller.user_id}

        yield events()

    return EventStream(source)


@pytest.fixture
def stream_app(aws: None) -> Iterator[TestClient]:
    app: FastAPI = create_app(title="stream routes", public=[_stream_router])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def streamed_caller(stream_app: TestClient, path: str, **options: Any) -> str:
    with stream_app.stream("GET", path, **options) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data:")]
    assert [event["type"] for event in events] == ["caller"]
    return str(events[0]["userId"])


# Issue -----------------------------------------------------------------------------------------------------


def test_a_ticket_is_issued_for_a_stream_path_valid_60_seconds_and_stored_only_as_its_hash(
    api: TestClient, user: User
) -> None:
    before = int(time.time())
    issued = api.post(TICKETS, headers=user.auth, json={"path": reply_path()})
    after = int(time.time())

    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"ticket", "expiresAt"}
    assert len(body["ticket"]) == 43  # 32 random bytes, URL-safe base 64
    assert body["expiresAt"].endswith("Z")
    expires_at = datetime.fromisoformat(body["expiresAt"])
    assert expires_at.tzinfo == UTC
    assert before + 60 <= expires_at.timestamp() <= after + 60

    from shared.aws import client

    stored = client("dynamodb").get_item(TableName=CHAT.name_from_env(), Key=tickets._key(body["ticket"]))["Item"]
    assert body["ticket"] not in json.dumps(stored)
    assert stored["principal"]["M"]["userId"] == {"S": user.id}


def test_two_tickets_for_one_path_are_different(api: TestClient, user: User) -> None:
    path = reply_path()
    assert issue(api, user.auth, path) != issue(api, user.auth, path)


def test_issuing_needs_a_verified_caller(api: TestClient) -> None:
    refused = api.post(TICKETS, json={"path": reply_path()})
    assert refused.status_code == 401
    assert error_code(refused) == "missing_credentials"


# A fixed id: test ids must be the same in every process that collects them (parallel workers).
SOME_ID = "01J9ZZZZZZZZZZZZZZZZZZZZZZ"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/ai/chat/stream",
        "/api/v1/ai/chat/stream/",
        "/api/v1/ai/chat/stream/not-a-ulid",
        f"/api/v1/ai/chat/stream/{SOME_ID.lower()}",
        f"/api/v1/ai/chat/stream/{SOME_ID}/",
        f"/api/v1/ai/chat/stream/{SOME_ID}?after=3",
        f"/api/v1/ai/chat/{SOME_ID}/cancel",
        f"/ai/stream/{SOME_ID}",
        f"https://api.example.com/api/v1/ai/stream/{SOME_ID}",
        f"/api/v1/ai/stream/../chat/stream/{SOME_ID}",
        "/api/v1/memories",
        "",
    ],
)
def test_a_path_that_is_not_a_get_stream_route_is_422(api: TestClient, user: User, path: str) -> None:
    refused = api.post(TICKETS, headers=user.auth, json={"path": path})
    assert refused.status_code == 422
    body = refused.json()["error"]
    assert body["code"] == "validation_error"
    assert [detail["field"] for detail in body["details"]] == ["path"]


def test_a_missing_or_extra_field_is_422(api: TestClient, user: User) -> None:
    assert api.post(TICKETS, headers=user.auth, json={}).status_code == 422
    extra = {"path": reply_path(), "ttl": 3600}
    assert api.post(TICKETS, headers=user.auth, json=extra).status_code == 422


def test_an_enhancement_stream_path_gets_a_ticket_too(api: TestClient, user: User) -> None:
    path = f"/api/v1/ai/stream/{new_id()}"
    assert tickets.redeem(issue(api, user.auth, path), path).user_id == user.id


# Redeem ----------------------------------------------------------------------------------------------------


def test_a_ticket_is_redeemed_once_for_the_principal_it_was_issued_to(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)

    principal = tickets.redeem(ticket, path)
    assert principal.user_id == user.id
    assert principal.auth_type == "token"
    assert principal.can("ai.chat")

    assert refusal_code(tickets.redeem, ticket, path) == "invalid_ticket"


def test_twenty_concurrent_redeems_of_one_ticket_yield_exactly_one_principal(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)

    def attempt(_: int) -> Principal | str:
        try:
            return tickets.redeem(ticket, path)
        except Unauthorized as refused:
            return refused.error_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))

    principals = [outcome for outcome in outcomes if isinstance(outcome, Principal)]
    assert [principal.user_id for principal in principals] == [user.id]
    assert sorted(outcome for outcome in outcomes if isinstance(outcome, str)) == ["invalid_ticket"] * 19


def test_an_expired_ticket_is_refused(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)
    later = time.time() + 61
    with patch.object(tickets.time, "time", return_value=later):
        assert refusal_code(tickets.redeem, ticket, path) == "invalid_ticket"


def test_a_ticket_still_in_its_minute_is_accepted(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)
    with patch.object(tickets.time, "time", return_value=time.time() + 55):
        assert tickets.redeem(ticket, path).user_id == user.id


def test_a_ticket_expires_no_later_than_the_token_it_was_issued_with(aws: None) -> None:
    now = int(time.time())
    principal = Principal(
        user_id=new_id(), roles=("member",), permissions=frozenset({"ai.chat"}), auth_type="token",
        expires_at=now + 10, session_id=new_id(), verified_at_ms=now * 1000,
    )  # fmt: skip
    path = reply_path()
    ticket, expires_at = tickets.issue(principal, path)
    assert expires_at == now + 10
    with patch.object(tickets.time, "time", return_value=now + 11):
        assert refusal_code(tickets.redeem, ticket, path) == "invalid_ticket"


def test_a_ticket_presented_on_another_path_is_refused_and_not_used_up(api: TestClient, user: User) -> None:
    """Another path is refused without using the ticket: a client that asked for one stream and opened another
    by mistake can still open the right one within the minute."""
    path = reply_path()
    ticket = issue(api, user.auth, path)

    for other in (reply_path(), path.replace("/chat/stream/", "/stream/"), path + "/", path.lower()):
        assert refusal_code(tickets.redeem, ticket, other) == "invalid_ticket", other

    assert tickets.redeem(ticket, path).user_id == user.id


@pytest.mark.parametrize(
    "ticket",
    ["", "x", "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "/", "A" * 42 + "é", "A" * 10_000, "' OR 1=1 --"],
)
def test_a_malformed_ticket_is_invalid_ticket(api: TestClient, user: User, ticket: str) -> None:
    path = reply_path()
    good = issue(api, user.auth, path)
    assert refusal_code(tickets.redeem, ticket, path) == "invalid_ticket"
    assert tickets.redeem(good, path).user_id == user.id


def test_a_well_formed_ticket_never_issued_is_invalid_ticket(aws: None) -> None:
    assert refusal_code(tickets.redeem, "A" * 43, reply_path()) == "invalid_ticket"


# Revocations since the ticket was taken ------------------------------------------------------------------


def test_signing_out_refuses_a_ticket_taken_before(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)
    assert api.post("/api/v1/auth/logout", headers=user.auth).status_code == 204
    assert refusal_code(tickets.redeem, ticket, path) == "session_revoked"


def test_a_disabled_users_ticket_is_refused(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    bob = register(api, "bob@example.com")
    path = reply_path()
    ticket = issue(api, bob.auth, path)
    disabled = api.put(f"{ADMIN_USERS}/{bob.id}/status", headers=admin.auth, json={"status": "disabled"})
    assert disabled.status_code == 200
    assert refusal_code(tickets.redeem, ticket, path) == "session_revoked"


def test_a_deleted_accounts_ticket_is_refused(api: TestClient, user: User) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)
    deleted = api.request("DELETE", "/api/v1/users/account", headers=user.auth, json={"password": PASSWORD})
    assert deleted.status_code in (200, 202, 204), deleted.text
    assert refusal_code(tickets.redeem, ticket, path) == "session_revoked"


def test_a_ticket_taken_with_a_revoked_api_key_is_refused(api: TestClient, user: User) -> None:
    created = api.post("/api/v1/api-keys", headers=user.auth, json={"name": "ci", "permissions": ["ai.chat"]})
    assert created.status_code == 201, created.text
    key = {"authorization": f"Bearer {created.json()['key']}"}
    path = reply_path()
    ticket = issue(api, key, path)
    other = issue(api, key, path)
    assert tickets.redeem(other, path).api_key_id == created.json()["id"]  # the key's own scope travels with it

    assert api.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=user.auth).status_code == 204
    assert refusal_code(tickets.redeem, ticket, path) == "invalid_api_key"


# Through a stream route ----------------------------------------------------------------------------------


def test_a_stream_route_accepts_a_ticket_once_and_refuses_its_reuse(
    api: TestClient, stream_app: TestClient, user: User
) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)

    assert streamed_caller(stream_app, path, params={"ticket": ticket}) == user.id

    reused = stream_app.get(path, params={"ticket": ticket})
    assert reused.status_code == 401
    assert error_code(reused) == "invalid_ticket"
    assert ticket not in reused.text


def test_a_stream_route_refuses_a_ticket_for_another_path_and_the_ticket_still_opens_its_own(
    api: TestClient, stream_app: TestClient, user: User
) -> None:
    path = reply_path()
    ticket = issue(api, user.auth, path)

    refused = stream_app.get(reply_path(), params={"ticket": ticket})
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_ticket"

    assert streamed_caller(stream_app, path, params={"ticket": ticket}) == user.id


def test_a_stream_route_refuses_a_request_with_neither_credential(stream_app: TestClient) -> None:
    refused = stream_app.get(reply_path())
    assert refused.status_code == 401
    assert error_code(refused) == "missing_credentials"


def test_an_authorization_header_is_used_before_a_ticket_and_leaves_it_unused(
    api: TestClient, stream_app: TestClient, user: User
) -> None:
    other = register(api, "other@example.com")
    path = reply_path()
    ticket = issue(api, other.auth, path)

    assert streamed_caller(stream_app, path, params={"ticket": ticket}, headers=user.auth) == user.id
    assert streamed_caller(stream_app, path, params={"ticket": ticket}) == other.id


def test_a_ticket_is_in_no_response_but_its_issue_and_in_no_log_line(
    api: TestClient, stream_app: TestClient, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    path = reply_path()
    with caplog.at_level(logging.DEBUG):
        ticket = issue(api, user.auth, path)
        responses = [
            stream_app.get(reply_path(), params={"ticket": ticket}),  # another path
            stream_app.get(path, params={"ticket": ticket}),  # its use
            stream_app.get(path, params={"ticket": ticket}),  # a reuse
            stream_app.get(path, params={"ticket": ticket + "x"}),  # a malformed one
        ]
        failing = issue(api, user.auth, path)
        with patch.object(tickets, "_invalid", side_effect=RuntimeError("boom")):
            responses.append(stream_app.get(reply_path(), params={"ticket": failing}))  # fails unexpectedly

    assert [response.status_code for response in responses] == [401, 200, 401, 401, 500]
    for response in responses:
        for secret in (ticket, failing):
            assert secret not in response.text
            assert all(secret not in value for value in response.headers.values())
    # The test's own HTTP client logs the URLs it requests; the server side must log none of them.
    server_lines = [record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))]
    assert server_lines  # the failure above was logged
    for secret in (ticket, failing):
        assert all(secret not in record.getMessage() for record in server_lines)
        assert all(secret not in (record.exc_text or "") for record in server_lines)


def test_a_stream_route_documents_the_ticket_refusal(stream_app: TestClient) -> None:
    assert isinstance(stream_app.app, FastAPI)
    operation = stream_app.app.openapi()["paths"]["/api/v1/ai/chat/stream/{messageId}"]["get"]
    assert "`invalid_ticket`" in operation["responses"]["401"]["description"]
