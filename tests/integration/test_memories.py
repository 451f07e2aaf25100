"""Memories through API Gateway events on moto: the round trip, listings and their pages, what goes into
prompts, expiry, search, archiving, isolation between users, bad input, and the services other contexts call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.memories import service
from shared.pagination import encode_cursor
from tests.integration.conftest import User, error_code, register

MEMORIES = "/api/v1/memories"
# A listing that takes more pages than this has lost its way (a cursor that never ends).
MAX_PAGES = 50


def create_memory(api: TestClient, user: User, content: str, **fields: Any) -> dict[str, Any]:
    response = api.post(MEMORIES, headers=user.auth, json={"content": content, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def expire(user: User, memory_id: str) -> None:
    """Put a memory's expiry in the past, as time passing would: moto, like DynamoDB for up to two days,
    keeps the item."""
    from functions.memories import store

    record = store.MemoryRecord.get(store.user_partition(user.id), store.MEMORY_PREFIX + memory_id)
    record.update(actions=[store.MemoryRecord.expires_at.set(datetime.now(UTC) - timedelta(seconds=1))])


def walk(api: TestClient, user: User, path: str = MEMORIES, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, following cursors; and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor = None
    for pages in range(1, MAX_PAGES + 1):
        response = api.get(path, headers=user.auth, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            return items, pages
    raise AssertionError(f"{path} still had a cursor after {MAX_PAGES} pages")


def contents(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"] for item in items]


def prompt_contents(user: User, token_budget: int) -> list[str]:
    return [memory.content for memory in service.memories_for_prompt(user.id, token_budget)]


# The round trip ---------------------------------------------------------------------------------------------


def test_create_get_update_and_delete_a_memory(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = create_memory(api, user, "Prefers metric units", category="preference", expiresAt=expires_at.isoformat())
    assert created | {"id": None, "createdAt": None, "updatedAt": None} == {
        "id": None, "content": "Prefers metric units", "category": "preference", "priority": 5, "active": True,
        "archived": False, "expiresAt": expires_at.isoformat().replace("+00:00", "Z"), "createdAt": None,
        "updatedAt": None,
    }  # fmt: skip
    path = f"{MEMORIES}/{created['id']}"
    assert api.get(path, headers=user.auth).json() == created

    updated = api.put(path, headers=user.auth, json={"priority": 9, "content": "Prefers SI units"})
    assert updated.status_code == 200
    assert updated.json() | {"updatedAt": None} == created | {
        "priority": 9, "content": "Prefers SI units", "updatedAt": None,
    }  # fmt: skip
    cleared = api.put(path, headers=user.auth, json={"expiresAt": None})
    assert cleared.json()["expiresAt"] is None
    assert api.get(path, headers=user.auth).json() == cleared.json()

    assert api.delete(path, headers=user.auth).status_code == 204
    gone = api.get(path, headers=user.auth)
    assert gone.status_code == 404
    assert error_code(gone) == "memory_not_found"
    assert api.delete(path, headers=user.auth).status_code == 404


def test_archive_takes_a_memory_out_of_prompts_and_the_default_list_and_restore_brings_it_back(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    kept = create_memory(api, user, "kept")
    shelved = create_memory(api, user, "shelved")
    archived = api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=user.auth)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert contents(walk(api, user)[0]) == ["kept"]
    assert contents(walk(api, user, archived="true")[0]) == ["shelved"]
    assert contents(walk(api, user, f"{MEMORIES}/active")[0]) == ["kept"]

    restored = api.post(f"{MEMORIES}/{shelved['id']}/restore", headers=user.auth)
    assert restored.json()["archived"] is False
    assert contents(walk(api, user)[0]) == ["shelved", "kept"]
    assert contents(walk(api, user, f"{MEMORIES}/active")[0]) == ["shelved", "kept"]
    assert api.get(f"{MEMORIES}/{kept['id']}", headers=user.auth).json()["archived"] is False  # untouched throughout


# Listings ---------------------------------------------------------------------------------------------------


def test_list_filters_by_category_active_and_archived_newest_first(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    create_memory(api, user, "tea", category="preference")
    create_memory(api, user, "lyon", category="fact")
    create_memory(api, user, "paused", category="preference", active=False)
    shelved = create_memory(api, user, "shelved", category="preference")
    api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=user.auth)

    assert contents(walk(api, user)[0]) == ["paused", "lyon", "tea"]
    assert contents(walk(api, user, category="preference")[0]) == ["paused", "tea"]
    assert contents(walk(api, user, category="preference", active="true")[0]) == ["tea"]
    assert contents(walk(api, user, active="false")[0]) == ["paused"]
    assert contents(walk(api, user, archived="true", category="preference")[0]) == ["shelved"]
    assert walk(api, user, archived="true", category="fact")[0] == []


def test_pages_follow_each_other_newest_first_each_memory_once(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    created = [create_memory(api, user, f"memory {number}")["id"] for number in range(7)]
    seen, pages = walk(api, user, limit=3)
    assert [item["id"] for item in seen] == list(reversed(created))
    assert pages >= 3
    # A filter may leave a page short, but never loses or repeats a memory.
    archived = created[1:6:2]
    for memory_id in archived:
        api.post(f"{MEMORIES}/{memory_id}/archive", headers=user.auth)
    unarchived, _ = walk(api, user, limit=2)
    assert [item["id"] for item in unarchived] == [m for m in reversed(created) if m not in archived]


def test_listing_pages_past_dynamodbs_1_mb_response_limit(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    imported = api.post(
        f"{MEMORIES}/bulk-import",
        headers=user.auth,
        json={"memories": [{"content": f"{number:03d} " + "x" * 9_000} for number in range(150)]},
    )
    assert imported.json() == {"imported": 150, "rejected": []}
    seen, pages = walk(api, user, limit=100)
    assert [item["content"][:3] for item in seen] == [f"{number:03d}" for number in reversed(range(150))]
    # 150 memories in pages of 100 take 2 pages unless DynamoDB cut pages at 1 MB: this test is about the cut.
    assert pages > 2


def test_active_memories_are_by_priority_then_newest_and_only_those_prompts_may_use(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    for content, priority in [("p3", 3), ("p9 older", 9), ("p5", 5), ("p9 newer", 9), ("p1", 1)]:
        create_memory(api, user, content, priority=priority)
    create_memory(api, user, "inactive", priority=10, active=False)
    shelved = create_memory(api, user, "archived", priority=10)
    api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=user.auth)
    expire(user, create_memory(api, user, "expired", priority=10)["id"])
    lowered = create_memory(api, user, "was p10, now p2", priority=10)
    api.put(f"{MEMORIES}/{lowered['id']}", headers=user.auth, json={"priority": 2})

    expected = ["p9 newer", "p9 older", "p5", "p3", "was p10, now p2", "p1"]
    assert contents(walk(api, user, f"{MEMORIES}/active")[0]) == expected
    assert contents(walk(api, user, f"{MEMORIES}/active", limit=4)[0]) == expected
    assert prompt_contents(user, token_budget=10_000) == expected
    budget = sum(service.estimate_tokens(content) for content in expected[:3])
    assert prompt_contents(user, token_budget=budget) == expected[:3]
    assert prompt_contents(user, token_budget=budget - 1) == expected[:2]


def test_stats_count_the_users_memories_by_state_and_category(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    other = register(api, "eve@example.com")
    create_memory(api, other, "not ada's")
    create_memory(api, user, "a", category="fact")
    create_memory(api, user, "b", category="fact", active=False)
    shelved = create_memory(api, user, "c", category="instruction")
    api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=user.auth)
    expire(user, create_memory(api, user, "d", category="context")["id"])
    stats = api.get(f"{MEMORIES}/stats", headers=user.auth).json()
    assert stats == {
        "total": 3, "active": 1, "archived": 1, "limit": 1000, "remaining": 997,
        "byCategory": {"preference": 0, "fact": 2, "instruction": 1, "context": 0, "general": 0},
    }  # fmt: skip


# Expiry -----------------------------------------------------------------------------------------------------


def test_an_expired_memory_is_invisible_everywhere_though_not_yet_removed(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    create_memory(api, user, "Visiting Rome this week")
    expired = create_memory(api, user, "Visiting Lisbon this week")
    expire(user, expired["id"])
    path = f"{MEMORIES}/{expired['id']}"
    for response in (
        api.get(path, headers=user.auth),
        api.put(path, headers=user.auth, json={"priority": 1}),
        api.post(f"{path}/archive", headers=user.auth),
        api.post(f"{path}/restore", headers=user.auth),
        api.delete(path, headers=user.auth),
    ):
        assert response.status_code == 404
        assert error_code(response) == "memory_not_found"
    assert contents(walk(api, user)[0]) == ["Visiting Rome this week"]
    assert contents(walk(api, user, f"{MEMORIES}/active")[0]) == ["Visiting Rome this week"]
    assert contents(walk(api, user, f"{MEMORIES}/search", q="visiting")[0]) == ["Visiting Rome this week"]
    assert api.get(f"{MEMORIES}/stats", headers=user.auth).json()["total"] == 1
    assert prompt_contents(user, token_budget=1000) == ["Visiting Rome this week"]


# Search -----------------------------------------------------------------------------------------------------


def test_search_ignores_case_covers_archived_memories_and_only_the_callers_own(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    create_memory(api, ada, "Allergic to PEANUTS")
    create_memory(api, ada, "Likes walnuts")
    shelved = create_memory(api, ada, "Peanut butter on Sundays")
    api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=ada.auth)
    create_memory(api, eve, "peanuts are fine")

    assert contents(walk(api, ada, f"{MEMORIES}/search", q="peanut")[0]) == [
        "Peanut butter on Sundays", "Allergic to PEANUTS",
    ]  # fmt: skip
    assert contents(walk(api, ada, f"{MEMORIES}/search", q="NUTS")[0]) == ["Likes walnuts", "Allergic to PEANUTS"]
    assert walk(api, ada, f"{MEMORIES}/search", q="almond")[0] == []
    assert contents(walk(api, eve, f"{MEMORIES}/search", q="peanut")[0]) == ["peanuts are fine"]


# Isolation --------------------------------------------------------------------------------------------------


def test_another_users_memory_is_not_found_and_stays_unchanged(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    memory = create_memory(api, ada, "Ada's secret")
    path = f"{MEMORIES}/{memory['id']}"
    for response in (
        api.get(path, headers=eve.auth),
        api.put(path, headers=eve.auth, json={"content": "pwned"}),
        api.delete(path, headers=eve.auth),
        api.post(f"{path}/archive", headers=eve.auth),
        api.post(f"{path}/restore", headers=eve.auth),
    ):
        assert response.status_code == 404
        assert error_code(response) == "memory_not_found"
    assert api.get(path, headers=ada.auth).json() == memory
    assert walk(api, eve)[0] == []
    assert walk(api, eve, f"{MEMORIES}/active")[0] == []
    # A cursor naming Ada's partition does not open it to Eve.
    stolen = encode_cursor({"pk": {"S": f"USER#{ada.id}"}, "sk": {"S": f"MEM#{memory['id']}"}})
    refused = api.get(MEMORIES, headers=eve.auth, params={"cursor": stolen})
    assert refused.status_code == 400
    assert error_code(refused) == "invalid_cursor"


# Bad input --------------------------------------------------------------------------------------------------


INVALID_FIELDS: list[dict[str, Any]] = [
    {"content": "x", "category": "mood"},
    {"content": "x", "priority": 0},
    {"content": "x", "priority": 11},
    {"content": ""},
    {"content": "   "},
    {"content": "x" * 10_001},
    {"content": "x", "expiresAt": "2001-01-01T00:00:00Z"},
    {"content": "x", "owner": "someone"},
]


@pytest.mark.parametrize("body", [*INVALID_FIELDS, {"category": "fact"}])
def test_invalid_new_memories_get_422_in_the_error_shape(api: TestClient, body: dict[str, Any]) -> None:
    user = register(api, "ada@example.com")
    created = api.post(MEMORIES, headers=user.auth, json=body)
    assert created.status_code == 422
    assert error_code(created) == "validation_error"
    assert walk(api, user)[0] == []


@pytest.mark.parametrize("body", INVALID_FIELDS)
def test_invalid_updates_get_422_and_change_nothing(api: TestClient, body: dict[str, Any]) -> None:
    user = register(api, "ada@example.com")
    memory = create_memory(api, user, "valid")
    updated = api.put(f"{MEMORIES}/{memory['id']}", headers=user.auth, json=body)
    assert updated.status_code == 422
    assert error_code(updated) == "validation_error"
    assert api.get(f"{MEMORIES}/{memory['id']}", headers=user.auth).json() == memory


def test_malformed_requests_get_400_or_422_never_500(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    memory = create_memory(api, user, "valid")
    own_partition_only = encode_cursor({"pk": {"S": f"USER#{user.id}"}})
    list_cursor = encode_cursor({"pk": {"S": f"USER#{user.id}"}, "sk": {"S": f"MEM#{memory['id']}"}})
    counter_cursor = encode_cursor({"pk": {"S": f"USER#{user.id}"}, "sk": {"S": "MEMCOUNT"}})
    cases = {
        "malformed_json": [
            api.post(MEMORIES, headers=user.auth | {"content-type": "application/json"}, content=b'{"content": '),
        ],
        "invalid_cursor": [
            api.get(MEMORIES, headers=user.auth, params={"cursor": "not-a-cursor!"}),
            api.get(MEMORIES, headers=user.auth, params={"cursor": own_partition_only}),
            api.get(MEMORIES, headers=user.auth, params={"cursor": counter_cursor}),
            api.get(f"{MEMORIES}/active", headers=user.auth, params={"cursor": list_cursor}),
        ],
        "validation_error": [
            api.get(MEMORIES, headers=user.auth, params={"category": "mood"}),
            api.get(MEMORIES, headers=user.auth, params={"limit": 0}),
            api.get(MEMORIES, headers=user.auth, params={"limit": 101}),
            api.get(MEMORIES, headers=user.auth, params={"active": "maybe"}),
            api.get(f"{MEMORIES}/search", headers=user.auth),
            api.get(f"{MEMORIES}/search", headers=user.auth, params={"q": ""}),
            api.get(f"{MEMORIES}/search", headers=user.auth, params={"q": "x" * 201}),
            api.post(f"{MEMORIES}/bulk-import", headers=user.auth, json={"memories": [{"content": "x"}] * 501}),
            api.post(f"{MEMORIES}/bulk-import", headers=user.auth, json={"memories": "all of them"}),
        ],
    }
    for code, responses in cases.items():
        for response in responses:
            assert response.status_code == (400 if code != "validation_error" else 422), response.text
            assert error_code(response) == code
    assert api.get(f"{MEMORIES}/not-an-id", headers=user.auth).status_code == 404
    # The list cursor itself still works where it came from.
    assert api.get(MEMORIES, headers=user.auth, params={"cursor": list_cursor}).status_code == 200
