"""Conversations and messages through the API on moto: ordering, archiving, large messages, concurrent appends,
pagination, search, stats, and isolation between users."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from shared.aws import client
from shared.pagination import encode_cursor
from shared.settings import get_settings
from tests.integration.conftest import User, error_code, register

BASE = "/api/v1/conversations"


def _create(api: TestClient, user: User, **body: object) -> dict[str, object]:
    response = api.post(BASE, headers=user.auth, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _append(
    api: TestClient, user: User, conversation_id: object, content: str, role: str = "user"
) -> dict[str, object]:
    response = api.post(
        f"{BASE}/{conversation_id}/messages", headers=user.auth, json={"role": role, "content": content}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _walk(api: TestClient, user: User, path: str, limit: int, **params: object) -> list[dict[str, object]]:
    """Every item of a paginated list, following cursors to the end."""
    items: list[dict[str, object]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        page = api.get(path, headers=user.auth, params=query).json()
        items += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return items
    raise AssertionError("pagination never ended")


@pytest.fixture
def ada(api: TestClient) -> User:
    return register(api, "ada@example.com")


@pytest.fixture
def bob(api: TestClient) -> User:
    return register(api, "bob@example.com")


def test_new_conversation_has_defaults_and_is_owned(api: TestClient, ada: User) -> None:
    created = _create(api, ada, model="claude-sonnet-4-6", systemPrompt="Be brief.")
    assert created["title"] == "New conversation"
    assert created["access"] == "owner"
    assert created["messageCount"] == 0
    assert created["ownerId"] == ada.id
    assert created["model"] == "claude-sonnet-4-6"


def test_list_is_newest_activity_first(api: TestClient, ada: User) -> None:
    first = _create(api, ada, title="first")
    second = _create(api, ada, title="second")
    assert [c["title"] for c in api.get(BASE, headers=ada.auth).json()["items"]] == ["second", "first"]
    _append(api, ada, first["id"], "bringing this one back up")
    listed = api.get(BASE, headers=ada.auth).json()["items"]
    assert [c["id"] for c in listed] == [first["id"], second["id"]]
    assert listed[0]["messageCount"] == 1


def test_archived_conversations_leave_the_default_list_and_come_back(api: TestClient, ada: User) -> None:
    kept = _create(api, ada, title="kept")
    shelved = _create(api, ada, title="shelved")
    assert api.post(f"{BASE}/{shelved['id']}/archive", headers=ada.auth).json()["archived"] is True
    assert [c["id"] for c in api.get(BASE, headers=ada.auth).json()["items"]] == [kept["id"]]
    archived = api.get(BASE, headers=ada.auth, params={"archived": "true"}).json()["items"]
    assert [c["id"] for c in archived] == [shelved["id"]]
    api.post(f"{BASE}/{shelved['id']}/unarchive", headers=ada.auth)
    assert {c["id"] for c in api.get(BASE, headers=ada.auth).json()["items"]} == {kept["id"], shelved["id"]}


def test_update_renames_and_clears(api: TestClient, ada: User) -> None:
    conversation = _create(api, ada, title="draft", model="gpt-5")
    updated = api.put(f"{BASE}/{conversation['id']}", headers=ada.auth, json={"title": "Final", "model": None})
    assert updated.status_code == 200
    assert updated.json()["title"] == "Final"
    assert updated.json()["model"] is None
    assert api.get(f"{BASE}/{conversation['id']}", headers=ada.auth).json()["title"] == "Final"


def test_messages_come_back_oldest_first_page_by_page(api: TestClient, ada: User) -> None:
    conversation = _create(api, ada)
    for number in range(7):
        _append(api, ada, conversation["id"], f"message {number}", role="user" if number % 2 == 0 else "assistant")
    detail = api.get(f"{BASE}/{conversation['id']}", headers=ada.auth, params={"messagesLimit": 3}).json()
    assert [m["content"] for m in detail["messages"]["items"]] == ["message 0", "message 1", "message 2"]
    assert detail["messages"]["nextCursor"]
    walked = _walk(api, ada, f"{BASE}/{conversation['id']}/messages", limit=3)
    assert [m["content"] for m in walked] == [f"message {n}" for n in range(7)]
    assert [m["seq"] for m in walked] == list(range(1, 8))


def test_a_one_megabyte_paste_survives_the_round_trip_through_the_payload_bucket(api: TestClient, ada: User) -> None:
    document = "".join(f"line {n}: {'lorem ipsum dolor sit amet ' * 3}\n" for n in range(12_500))
    assert len(document.encode()) > 1_000_000
    conversation = _create(api, ada)
    stored = _append(api, ada, conversation["id"], document)
    assert stored["content"] == document
    read_back = api.get(f"{BASE}/{conversation['id']}/messages", headers=ada.auth).json()["items"][0]
    assert read_back["content"] == document
    bucket = get_settings().payload_bucket
    assert client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    # Deleting the conversation deletes the payload too.
    assert api.delete(f"{BASE}/{conversation['id']}", headers=ada.auth).status_code == 204
    assert client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_concurrent_appends_are_all_kept_in_the_order_they_were_accepted(api: TestClient, ada: User) -> None:
    conversation = _create(api, ada)

    def send(number: int) -> int:
        return int(_append(api, ada, conversation["id"], f"racing {number}")["seq"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        seqs = list(pool.map(send, range(40)))
    assert sorted(seqs) == list(range(1, 41))
    stored = _walk(api, ada, f"{BASE}/{conversation['id']}/messages", limit=100)
    assert [m["seq"] for m in stored] == list(range(1, 41))
    assert sorted(m["content"] for m in stored) == sorted(f"racing {n}" for n in range(40))
    assert api.get(f"{BASE}/{conversation['id']}", headers=ada.auth).json()["messageCount"] == 40


def test_lists_paginate_past_dynamodbs_one_megabyte_page(api: TestClient, ada: User) -> None:
    conversation = _create(api, ada)
    big = "x" * 20_000  # 100 of these are 2 MB: DynamoDB cuts such a page short at 1 MB
    for number in range(120):
        _append(api, ada, conversation["id"], f"{number:03d} {big}")
    walked = _walk(api, ada, f"{BASE}/{conversation['id']}/messages", limit=100)
    assert [m["content"][:3] for m in walked] == [f"{n:03d}" for n in range(120)]


def test_conversation_list_pages_visit_every_conversation_once(api: TestClient, ada: User) -> None:
    created = [_create(api, ada, title=f"chat {n}")["id"] for n in range(23)]
    walked = _walk(api, ada, BASE, limit=5)
    assert [c["id"] for c in walked] == list(reversed(created))


def test_search_finds_titles_and_message_text_case_insensitively_in_own_conversations(
    api: TestClient, ada: User, bob: User
) -> None:
    titled = _create(api, ada, title="Quarterly Budget review")
    other = _create(api, ada, title="Holiday plans")
    message = _append(api, ada, other["id"], "Remember the BUDGET for flights")
    _append(api, ada, other["id"], "nothing relevant here")
    bobs = _create(api, bob, title="Bob's budget")
    hits = api.get(f"{BASE}/search", headers=ada.auth, params={"q": "budget"}).json()["items"]
    assert [(h["matchedIn"], h["conversationId"]) for h in hits] == [
        ("title", titled["id"]),
        ("message", other["id"]),
    ]
    assert hits[1]["messageId"] == message["id"]
    assert "BUDGET" in hits[1]["snippet"]
    assert bobs["id"] not in {h["conversationId"] for h in hits}
    assert api.get(f"{BASE}/search", headers=ada.auth).status_code == 422


def test_stats_count_conversations_messages_and_models(api: TestClient, ada: User, bob: User) -> None:
    one = _create(api, ada, model="gpt-5")
    _create(api, ada, model="gpt-5")
    three = _create(api, ada)
    _append(api, ada, one["id"], "a")
    _append(api, ada, one["id"], "b")
    api.post(f"{BASE}/{three['id']}/archive", headers=ada.auth)
    _create(api, bob, model="gpt-5")
    assert api.get(f"{BASE}/stats", headers=ada.auth).json() == {
        "conversations": 3,
        "archived": 1,
        "messages": 2,
        "byModel": {"gpt-5": 2, "default": 1},
    }


def test_another_users_conversation_is_not_found_and_untouched(api: TestClient, ada: User, bob: User) -> None:
    secret = _create(api, ada, title="private")
    _append(api, ada, secret["id"], "my secret")
    path = f"{BASE}/{secret['id']}"
    attempts = [
        api.get(path, headers=bob.auth),
        api.put(path, headers=bob.auth, json={"title": "pwned"}),
        api.delete(path, headers=bob.auth),
        api.post(f"{path}/archive", headers=bob.auth),
        api.get(f"{path}/messages", headers=bob.auth),
        api.post(f"{path}/messages", headers=bob.auth, json={"content": "injected"}),
    ]
    assert [response.status_code for response in attempts] == [404] * 6
    assert {error_code(response) for response in attempts} == {"conversation_not_found"}
    mine = api.get(path, headers=ada.auth).json()
    assert mine["title"] == "private"
    assert [m["content"] for m in mine["messages"]["items"]] == ["my secret"]
    assert api.get(BASE, headers=bob.auth).json()["items"] == []


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "", {"projectId": "not-an-id"}),
        ("POST", "", {"title": ""}),
        ("POST", "", {"title": "x", "owner": "someone"}),
        ("POST", "/{id}/messages", {"role": "robot", "content": "hi"}),
        ("POST", "/{id}/messages", {"content": ""}),
        ("POST", "/{id}/messages", {"content": 42}),
        ("PUT", "/{id}", {"title": "x" * 201}),
    ],
)
def test_bad_input_is_refused_in_the_error_shape(
    api: TestClient, ada: User, method: str, suffix: str, body: dict[str, object]
) -> None:
    conversation = _create(api, ada)
    response = api.request(method, BASE + suffix.format(id=conversation["id"]), headers=ada.auth, json=body)
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_bad_cursor_and_unknown_conversation_answer_cleanly(api: TestClient, ada: User) -> None:
    own_partition = f"USER#{ada.id}#CONVS#ACTIVE"
    crafted = [
        "bm9wZQ",
        # The caller's own partition, but a start key DynamoDB would refuse (no sort key, wrong item type).
        encode_cursor({"gsi1pk": {"S": own_partition}}),
        encode_cursor(
            {"gsi1pk": {"S": own_partition}, "gsi1sk": {"S": "x"}, "pk": {"S": "PROMPT#1"}, "sk": {"S": "X"}}
        ),
    ]
    for cursor in crafted:
        bad_cursor = api.get(BASE, headers=ada.auth, params={"cursor": cursor})
        assert bad_cursor.status_code == 400
        assert error_code(bad_cursor) == "invalid_cursor"
    assert api.get(f"{BASE}/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=ada.auth).status_code == 404
