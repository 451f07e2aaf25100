"""The per-user memory limit: it holds under concurrent writes, expired memories give their room back, and bulk
imports keep what is valid and fits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.memories import jobs
from shared.settings import get_settings
from tests.integration.conftest import User, error_code, register
from tests.integration.test_memories import MEMORIES, contents, create_memory, expire, walk

SetLimit = Callable[[int], None]


@pytest.fixture
def memory_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetLimit]:
    """Set MEMORY_LIMIT_PER_USER for the test; settings are cached per container, so the cache is cleared on the
    way in and, with the environment restored, on the way out."""

    def set_limit(limit: int) -> None:
        monkeypatch.setenv("MEMORY_LIMIT_PER_USER", str(limit))
        get_settings.cache_clear()

    yield set_limit
    monkeypatch.undo()
    get_settings.cache_clear()


def import_memories(api: TestClient, user: User, memories: list[Any]) -> dict[str, Any]:
    response = api.post(f"{MEMORIES}/bulk-import", headers=user.auth, json={"memories": memories})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_one_memory_past_the_limit_is_409_until_one_is_deleted(api: TestClient, memory_limit: SetLimit) -> None:
    memory_limit(3)
    user = register(api, "ada@example.com")
    first = create_memory(api, user, "one")
    create_memory(api, user, "two")
    create_memory(api, user, "three")
    refused = api.post(MEMORIES, headers=user.auth, json={"content": "four"})
    assert refused.status_code == 409
    assert error_code(refused) == "memory_limit_reached"
    assert api.get(f"{MEMORIES}/stats", headers=user.auth).json() | {"byCategory": None} == {
        "total": 3, "active": 3, "archived": 0, "byCategory": None, "limit": 3, "remaining": 0,
    }  # fmt: skip
    # Archiving keeps a memory, so it keeps its slot; deleting frees it.
    api.post(f"{MEMORIES}/{first['id']}/archive", headers=user.auth)
    assert api.post(MEMORIES, headers=user.auth, json={"content": "four"}).status_code == 409
    assert api.delete(f"{MEMORIES}/{first['id']}", headers=user.auth).status_code == 204
    create_memory(api, user, "four")
    assert contents(walk(api, user)[0]) == ["four", "three", "two"]
    # The limit is each user's own.
    create_memory(api, register(api, "eve@example.com"), "eve's first")


def test_concurrent_creates_never_pass_the_limit(api: TestClient, memory_limit: SetLimit) -> None:
    memory_limit(15)
    user = register(api, "ada@example.com")
    assert import_memories(api, user, [{"content": f"existing {n}"} for n in range(5)])["imported"] == 5

    def create(number: int) -> int:
        return int(api.post(MEMORIES, headers=user.auth, json={"content": f"racer {number}"}).status_code)

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(create, range(20)))
    assert statuses == [201] * 10 + [409] * 10
    assert len(walk(api, user)[0]) == 15


def test_expired_memories_give_their_room_back(api: TestClient, memory_limit: SetLimit) -> None:
    memory_limit(3)
    user = register(api, "ada@example.com")
    kept = create_memory(api, user, "kept")
    for content in ("lapsed 1", "lapsed 2"):
        expire(user, create_memory(api, user, content)["id"])
    create_memory(api, user, "new 1")
    create_memory(api, user, "new 2")
    assert api.post(MEMORIES, headers=user.auth, json={"content": "new 3"}).status_code == 409
    assert contents(walk(api, user)[0]) == ["new 2", "new 1", "kept"]
    # Reclaimed memories are gone from storage too, not only hidden.
    stored = jobs.export_page(user.id, None, 100).records["memories"]
    assert sorted(contents(stored)) == ["kept", "new 1", "new 2"]
    assert api.get(f"{MEMORIES}/{kept['id']}", headers=user.auth).json()["content"] == "kept"  # a live one stays


def test_memories_dynamodb_already_removed_by_ttl_give_their_room_back(api: TestClient, memory_limit: SetLimit) -> None:
    from functions.memories import store

    memory_limit(2)
    user = register(api, "ada@example.com")
    create_memory(api, user, "kept")
    lapsed = create_memory(api, user, "lapsed", expiresAt="2099-01-01T00:00:00Z")
    # What DynamoDB's TTL does, up to two days after expiry: delete the item, and nothing else.
    store.MemoryRecord(store.user_partition(user.id), store.MEMORY_PREFIX + lapsed["id"]).delete()
    create_memory(api, user, "new")
    assert api.post(MEMORIES, headers=user.auth, json={"content": "one too many"}).status_code == 409


def test_bulk_import_of_500_keeps_the_valid_ones_and_reports_the_rest_by_index(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    invalid: dict[int, Any] = {
        0: {"content": ""},
        7: {"content": "x", "category": "mood"},
        99: {"content": "x", "priority": 11},
        250: "just a string",
        499: {"content": "x", "expiresAt": "2001-01-01T00:00:00Z"},
    }
    memories = [invalid.get(n, {"content": f"memory {n:03d}", "priority": 1 + n % 10}) for n in range(500)]
    result = import_memories(api, user, memories)
    assert result["imported"] == 495
    assert [rejection["index"] for rejection in result["rejected"]] == sorted(invalid)
    reasons = {rejection["index"]: rejection["reason"] for rejection in result["rejected"]}
    assert reasons[7].startswith("category:")
    assert reasons[99].startswith("priority:")
    assert reasons[250] == "memory: must be an object"
    assert reasons[499] == "expiresAt: Value error, must be in the future"
    stored, _ = walk(api, user, limit=100)
    assert contents(stored) == [f"memory {n:03d}" for n in reversed(range(500)) if n not in invalid]
    assert api.get(f"{MEMORIES}/stats", headers=user.auth).json()["total"] == 495


def test_bulk_import_past_the_limit_imports_what_fits_and_rejects_the_rest(
    api: TestClient, memory_limit: SetLimit
) -> None:
    memory_limit(150)
    user = register(api, "ada@example.com")
    assert import_memories(api, user, [{"content": f"old {n}"} for n in range(40)])["imported"] == 40
    expire(user, walk(api, user)[0][0]["id"])
    memories: list[Any] = [{"content": f"new {n:03d}"} for n in range(120)]
    memories[3] = {"content": "   "}
    result = import_memories(api, user, memories)
    # 150 - 39 live memories leave 111 slots, the expired one's included; index 3 was invalid anyway.
    assert result["imported"] == 111
    assert [(r["index"], r["reason"]) for r in result["rejected"] if r["reason"] == "memory limit reached"] == [
        (n, "memory limit reached") for n in range(112, 120)
    ]
    assert [r["index"] for r in result["rejected"] if r["reason"] != "memory limit reached"] == [3]
    assert api.get(f"{MEMORIES}/stats", headers=user.auth).json()["remaining"] == 0
    full = import_memories(api, user, [{"content": "no room"}])
    assert full == {"imported": 0, "rejected": [{"index": 0, "reason": "memory limit reached"}]}


def test_bulk_import_of_more_than_500_is_refused_whole(api: TestClient) -> None:
    user = register(api, "ada@example.com")
    response = api.post(f"{MEMORIES}/bulk-import", headers=user.auth, json={"memories": [{"content": "x"}] * 501})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert walk(api, user)[0] == []
