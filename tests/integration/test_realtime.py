"""The realtime handlers with API Gateway WebSocket-shaped events on moto; `@connections` is a recording stub
(moto's `post_to_connection` accepts any id and never raises `GoneException`)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from functions.realtime import connect, connections, handler, store, worker
from infra.local.events import LambdaContext
from tests.integration.conftest import User, register


class StubManagementApi:
    """Records what is posted to each connection; ids in `gone` answer `GoneException` as API Gateway does."""

    def __init__(self) -> None:
        self.posted: dict[str, list[dict[str, Any]]] = {}
        self.gone: set[str] = set()
        self.broken_after: int | None = None  # posts that succeed before the API starts failing (not Gone)
        self.attempts: list[str] = []

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.attempts.append(ConnectionId)
        if ConnectionId in self.gone:
            raise ClientError({"Error": {"Code": "GoneException", "Message": "gone"}}, "PostToConnection")
        if self.broken_after is not None and len(self.attempts) > self.broken_after:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, "PostToConnection")
        self.posted.setdefault(ConnectionId, []).append(json.loads(Data))
        return {}

    def frames(self, connection_id: str, event: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.posted.get(connection_id, []) if event is None or f["event"] == event]


@pytest.fixture
def management(monkeypatch: pytest.MonkeyPatch) -> StubManagementApi:
    stub = StubManagementApi()
    monkeypatch.setattr(connections, "management_client", lambda _endpoint: stub)
    return stub


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(handler, "invoke_worker", sent.append)
    return sent


def lambda_context() -> LambdaContext:
    return LambdaContext(function_name="stratus-test-realtime", memory_limit_in_mb=512, timeout_seconds=30,
                         region="us-east-1")  # fmt: skip


def context(connection_id: str, route: str, event_type: str) -> dict[str, Any]:
    return {
        "routeKey": route,
        "eventType": event_type,
        "connectionId": connection_id,
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "stage": "test",
        "connectedAt": int(time.time() * 1000),
        "apiId": "abc123",
    }


def connect_as(user: User, connection_id: str) -> None:
    """The authorizer, then the `$connect` integration with the authorizer's context, as API Gateway runs them."""
    answer = connect.lambda_handler(
        {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:abc123/test/$connect",
         "queryStringParameters": {"token": user.access_token}},
        lambda_context(),
    )  # fmt: skip
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    authorizer = {**answer["context"], "principalId": answer["principalId"]}
    result = handler.lambda_handler(
        {"requestContext": {**context(connection_id, "$connect", "CONNECT"), "authorizer": authorizer}},
        lambda_context(),
    )
    assert result["statusCode"] == 200


def send(connection_id: str, frame: dict[str, Any] | str) -> None:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    route = frame.get("action", "$default") if isinstance(frame, dict) else "$default"
    result = handler.lambda_handler(
        {"requestContext": context(connection_id, str(route), "MESSAGE"), "body": body, "isBase64Encoded": False},
        lambda_context(),
    )
    assert result["statusCode"] == 200


def disconnect(connection_id: str) -> None:
    handler.lambda_handler({"requestContext": context(connection_id, "$disconnect", "DISCONNECT")}, lambda_context())


def new_conversation(api: TestClient, user: User) -> str:
    response = api.post("/api/v1/conversations", headers=user.auth, json={"title": "Room"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def both_in_a_room(api: TestClient, owner: User, reader: User) -> str:
    """A conversation of `owner` shared with `reader` through a project, both connected (`c-ada`, `c-bob`) and
    in its room."""
    room = new_conversation(api, owner)
    project = api.post("/api/v1/projects", headers=owner.auth, json={"name": "P"}).json()["id"]
    assert api.post(f"/api/v1/projects/{project}/members", headers=owner.auth,
                    json={"email": reader.email, "role": "viewer"}).status_code == 201  # fmt: skip
    assert api.put(f"/api/v1/conversations/{room}", headers=owner.auth, json={"projectId": project}).status_code == 200
    connect_as(owner, "c-ada")
    connect_as(reader, "c-bob")
    send("c-ada", {"action": "conversation:join", "conversationId": room})
    send("c-bob", {"action": "conversation:join", "conversationId": room})
    return room


@pytest.fixture
def users(api: TestClient) -> tuple[User, User]:
    return register(api, "ada@example.com"), register(api, "bob@example.com")


def test_the_authorizer_denies_a_missing_or_bad_token(aws: None) -> None:
    for query in ({}, {"token": "not-a-token"}):
        answer = connect.lambda_handler(
            {"type": "REQUEST", "methodArn": "arn:x", "queryStringParameters": query}, lambda_context()
        )
        assert answer["policyDocument"]["Statement"] == [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "arn:x"}
        ]


def test_connect_stores_the_connection_for_its_user(users: tuple[User, User], management: StubManagementApi) -> None:
    ada, _ = users
    connect_as(ada, "c-ada")
    connect_as(ada, "c-ada-2")
    found = store.get_connection("c-ada")
    assert found is not None
    assert found.user_id == ada.id
    assert sorted(store.user_connections(ada.id)) == ["c-ada", "c-ada-2"]


def test_rooms_presence_typing_and_disconnect(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    room = both_in_a_room(api, ada, bob)
    presence = management.frames("c-ada", "presence")
    assert presence[-1]["data"] == {"conversationId": room, "userId": bob.id, "status": "joined",
                                    "members": sorted([ada.id, bob.id])}  # fmt: skip
    assert management.frames("c-bob", "presence")[-1]["data"]["userId"] == bob.id

    send("c-bob", {"action": "chat:typing", "conversationId": room, "isTyping": True})
    assert management.frames("c-ada", "chat:typing") == [
        {"event": "chat:typing", "data": {"conversationId": room, "userId": bob.id, "isTyping": True}}
    ]
    assert management.frames("c-bob", "chat:typing") == []  # never echoed to the sender

    disconnect("c-bob")
    assert management.frames("c-ada", "presence")[-1]["data"] == {
        "conversationId": room, "userId": bob.id, "status": "left", "members": [ada.id]
    }  # fmt: skip
    assert store.get_connection("c-bob") is None
    assert [m.connection_id for m in store.room_members(room)] == ["c-ada"]


def test_joining_someone_elses_conversation_is_refused(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    room = new_conversation(api, ada)
    connect_as(bob, "c-bob")
    send("c-bob", {"action": "conversation:join", "conversationId": room})
    assert management.frames("c-bob") == [
        {"event": "chat:error", "data": {"code": "conversation_not_found", "message": "Conversation not found",
                                         "action": "conversation:join"}}
    ]  # fmt: skip
    assert store.room_members(room) == []
    send("c-bob", {"action": "chat:typing", "conversationId": room, "isTyping": True})
    assert management.frames("c-bob")[-1]["data"]["code"] == "not_in_room"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "invalid_frame"),
        ('{"action": "chat:dance"}', "unknown_action"),
        (json.dumps({"action": "chat:send", "message": "x" * 40_000}), "message_too_large"),
    ],
)
def test_a_bad_frame_gets_chat_error_and_the_connection_stays_usable(
    users: tuple[User, User], management: StubManagementApi, body: str, code: str
) -> None:
    connect_as(users[0], "c-ada")
    send("c-ada", body)
    send("c-ada", {"action": "ping"})
    assert [f["event"] for f in management.frames("c-ada")] == ["chat:error", "pong"]
    assert management.frames("c-ada")[0]["data"]["code"] == code


def test_chat_send_hands_the_reply_to_the_worker_which_streams_it(
    api: TestClient, users: tuple[User, User], management: StubManagementApi, invocations: list[dict[str, Any]]
) -> None:
    ada, _ = users
    connect_as(ada, "c-ada")
    send("c-ada", {"action": "chat:send", "message": "Hello over WebSocket"})
    assert management.frames("c-ada") == []  # the route returns at once; the worker answers
    (payload,) = invocations
    assert payload["connectionId"] == "c-ada"
    assert payload["endpoint"] == "https://abc123.execute-api.us-east-1.amazonaws.com/test"

    result = worker.lambda_handler(json.loads(json.dumps(payload)), lambda_context())
    assert result["status"] == "sent"
    events = [f["data"] for f in management.frames("c-ada", "chat:response")]
    assert next(e["type"] for e in events) == "start"
    assert [e["type"] for e in events][-2:] == ["usage", "end"]
    assert {e["messageId"] for e in events} == {result["messageId"]}
    conversation = events[0]["conversationId"]
    messages = api.get(f"/api/v1/conversations/{conversation}/messages", headers=ada.auth).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["id"] == result["messageId"]
    assert messages[1]["content"] == "".join(e["delta"] for e in events if e["type"] == "content")


def test_the_worker_answers_a_refusal_with_chat_error(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    room = new_conversation(api, ada)
    connect_as(bob, "c-bob")
    bob_principal = store.get_connection("c-bob")
    assert bob_principal is not None
    result = worker.lambda_handler(
        {"connectionId": "c-bob", "endpoint": "https://x/test", "principal": bob_principal.principal,
         "request": {"message": "hi", "conversationId": room}},
        lambda_context(),
    )  # fmt: skip
    assert result == {"status": "refused", "code": "conversation_not_found"}
    assert management.frames("c-bob", "chat:error")[0]["data"]["action"] == "chat:send"


def test_a_gone_connection_is_removed_with_its_rooms_and_never_retried(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, _ = users
    room = new_conversation(api, ada)
    connect_as(ada, "c-ada")
    connect_as(ada, "c-ada-old")
    send("c-ada-old", {"action": "conversation:join", "conversationId": room})
    management.gone.add("c-ada-old")
    management.attempts.clear()

    send("c-ada", {"action": "conversation:join", "conversationId": room})  # presence to both members

    assert management.attempts.count("c-ada-old") == 1
    assert store.get_connection("c-ada-old") is None
    assert store.connection_rooms("c-ada-old") == []
    assert [m.connection_id for m in store.room_members(room)] == ["c-ada"]
    assert store.user_connections(ada.id) == ["c-ada"]


def test_a_room_hears_that_a_gone_member_left_and_the_late_disconnect_adds_nothing(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    room = both_in_a_room(api, ada, bob)
    assert [m.user_id for m in store.room_members(room)] == sorted([ada.id, bob.id])
    management.gone.add("c-bob")  # Bob's tab closed; API Gateway's $disconnect has not arrived yet
    management.posted.clear()

    send("c-ada", {"action": "chat:typing", "conversationId": room, "isTyping": True})  # finds Bob gone

    assert management.frames("c-ada", "presence")[-1]["data"] == {
        "conversationId": room, "userId": bob.id, "status": "left", "members": [ada.id],
    }  # fmt: skip
    management.posted.clear()
    disconnect("c-bob")  # the late $disconnect: already removed and announced, nothing more to tell
    assert management.posted == {}


def reply_to_ada(api: TestClient, ada: User) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ada (on `c-ada`) asks for a reply through the worker: its result, and her only conversation's messages."""
    connect_as(ada, "c-ada")
    found = store.get_connection("c-ada")
    assert found is not None
    result = worker.lambda_handler(
        {"connectionId": "c-ada", "endpoint": "https://x/test", "principal": found.principal,
         "request": {"message": "Anyone there?"}},
        lambda_context(),
    )  # fmt: skip
    (conversation,) = api.get("/api/v1/conversations", headers=ada.auth).json()["items"]
    messages = api.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=ada.auth).json()["items"]
    return result, messages


def resume_on(connection_id: str, message_id: str, after: int) -> dict[str, Any]:
    """What the worker's resume job (a `chat:resume` frame's) answers, following the reply to `connection_id`."""
    found = store.get_connection(connection_id)
    assert found is not None
    job = {"job": "resume", "connectionId": connection_id, "endpoint": "https://x/test",
           "principal": found.principal, "messageId": message_id, "after": after}  # fmt: skip
    return dict(worker.lambda_handler(job, lambda_context()))


def test_a_reply_whose_connection_is_gone_runs_to_its_end_and_resumes_on_a_new_connection(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, _ = users
    management.gone.add("c-ada")
    result, messages = reply_to_ada(api, ada)
    assert result["status"] == "gone"
    assert management.attempts == ["c-ada"]  # not posted to again once found gone
    assert store.get_connection("c-ada") is None
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["metadata"]["incomplete"] is False
    assert messages[-1]["metadata"]["stopReason"] == "end_turn"

    connect_as(ada, "c-ada-2")
    resumed = resume_on("c-ada-2", messages[-1]["id"], after=1)
    frames = [frame["data"] for frame in management.frames("c-ada-2", "chat:response")]
    assert resumed["status"] == "sent"
    assert [frame["seq"] for frame in frames] == list(range(2, len(frames) + 2))
    assert {frame["messageId"] for frame in frames} == {messages[-1]["id"]}
    assert "".join(f["delta"] for f in frames if f["type"] == "content") == messages[-1]["content"]
    assert frames[-1]["type"] == "end"


def test_resuming_someone_elses_reply_is_not_found(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    _, messages = reply_to_ada(api, ada)
    connect_as(bob, "c-bob")
    result = resume_on("c-bob", messages[-1]["id"], after=0)
    assert result == {"status": "refused", "code": "not_found"}
    assert management.frames("c-bob", "chat:response") == []
    assert management.frames("c-bob", "chat:error")[-1]["data"]["code"] == "not_found"
    send("c-bob", {"action": "chat:cancel", "messageId": messages[-1]["id"]})
    assert management.frames("c-bob", "chat:error")[-1]["data"]["action"] == "chat:cancel"
    send("c-ada", {"action": "chat:cancel", "messageId": messages[-1]["id"]})
    assert management.frames("c-ada", "chat:cancelled")[-1]["data"] == {
        "messageId": messages[-1]["id"], "cancelled": False,
    }  # fmt: skip


def test_a_worker_that_fails_mid_reply_keeps_it_and_does_not_raise(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, _ = users
    management.broken_after = 2  # `start` and the first content get through, then the management API fails
    result, messages = reply_to_ada(api, ada)
    assert result["status"] == "failed"  # returned, not raised: an asynchronous invocation must not be retried
    assert result["events"] == 2
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["metadata"]["incomplete"] is True


def test_an_open_connection_of_a_signed_out_session_is_refused_on_its_next_frame(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    ada, bob = users
    connect_as(ada, "c-ada")
    connect_as(bob, "c-bob")
    ada_connection = store.get_connection("c-ada")
    assert ada_connection is not None

    assert api.post("/api/v1/auth/logout", headers=ada.auth).status_code == 204

    send("c-ada", {"action": "ping"})
    send("c-bob", {"action": "ping"})
    assert [(f["event"], f["data"].get("code")) for f in management.frames("c-ada")] == [
        ("chat:error", "session_revoked")
    ]
    assert [f["event"] for f in management.frames("c-bob")] == ["pong"]
    # A reply already handed to the worker is refused too, before anything is generated.
    result = worker.lambda_handler(
        {"connectionId": "c-ada", "endpoint": "https://x/test", "principal": ada_connection.principal,
         "request": {"message": "hi"}},
        lambda_context(),
    )  # fmt: skip
    assert result == {"status": "refused", "code": "session_revoked"}


def test_open_connections_are_counted_once_each_however_they_close(
    api: TestClient, users: tuple[User, User], management: StubManagementApi
) -> None:
    from functions.analytics import store as analytics
    from tests.fakes.events import deliver_events

    ada, bob = users
    room = both_in_a_room(api, ada, bob)  # c-ada and c-bob connected
    management.gone.add("c-bob")
    send("c-ada", {"action": "chat:typing", "conversationId": room, "isTyping": True})  # finds Bob gone: closed
    disconnect("c-bob")  # the late $disconnect finds nothing to remove
    connect_as(bob, "c-bob-2")
    disconnect("c-bob-2")

    published = deliver_events()

    assert sorted(event.type for event in published if event.type.startswith("connection.")) == [
        "connection.closed", "connection.closed", "connection.opened", "connection.opened", "connection.opened",
    ]  # fmt: skip
    assert sum(item.figures["open"] for item in analytics.gauge_items()) == 1  # Ada's
