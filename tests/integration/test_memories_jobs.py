"""Memories' part in the jobs workflows, on moto: export and deletion pages, import, and archiving expired memories."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from functions.jobs.formats.items import ImportedItem, ImportedMemory, ImportedPrompt
from functions.memories import jobs
from tests.integration import jobs_pages as pages
from tests.integration.conftest import register
from tests.integration.test_memories import MEMORIES, create_memory, expire, walk
from tests.integration.test_memories_limits import SetLimit, memory_limit

__all__ = ["memory_limit"]  # the fixture, shared with the limit tests


def export_all(user_id: str, limit: int = 2) -> list[dict[str, Any]]:
    return pages.export_all(jobs.export_page, user_id, "memories", limit)[0]


def delete_all(user_id: str, limit: int = 2) -> int:
    return pages.delete_all(jobs.delete_page, user_id, limit)[0]


def items_of(user_id: str) -> list[dict[str, Any]]:
    """Every item in the memories table under the user's partition (the base table holds all of them)."""
    from functions.memories import store

    return [record.attribute_values for record in store.MemoryRecord.query(store.user_partition(user_id))]


def imported(content: str, source_id: str | None = None, **fields: Any) -> ImportedMemory:
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "source_id": source_id, "content": content, "category": None, "priority": None, "active": True,
        "archived": False, "expires_at": None, "created_at": moment, "updated_at": moment,
    }  # fmt: skip
    return ImportedMemory(**(values | fields))


def test_export_pages_hold_every_memory_of_the_user_as_the_api_shows_it(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    create_memory(api, ada, "active one")
    create_memory(api, ada, "inactive one", active=False)
    shelved = create_memory(api, ada, "archived one", category="fact")
    api.post(f"{MEMORIES}/{shelved['id']}/archive", headers=ada.auth)
    gone = create_memory(api, ada, "expired one")
    expire(ada, gone["id"])
    create_memory(api, eve, "eve's")

    exported = export_all(ada.id)
    assert sorted(item["content"] for item in exported) == ["active one", "archived one", "expired one", "inactive one"]
    assert json.loads(json.dumps(exported)) == exported
    archived = next(item for item in exported if item["id"] == shelved["id"])
    assert archived | {"updatedAt": None} == shelved | {"archived": True, "updatedAt": None}
    assert export_all(eve.id)[0]["content"] == "eve's"


def test_deletion_pages_leave_nothing_of_the_user_and_everything_of_others(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    for number in range(4):
        create_memory(api, ada, f"ada {number}", expiresAt=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    expire(ada, create_memory(api, ada, "ada expired")["id"])
    kept = create_memory(api, eve, "eve's")

    assert delete_all(ada.id) == 5
    assert items_of(ada.id) == []
    assert api.get(f"{MEMORIES}/stats", headers=ada.auth).json()["total"] == 0
    assert walk(api, eve)[0] == [kept]
    # Run again (a retried page): nothing more to do, no error.
    assert jobs.delete_page(ada.id, None, 2).deleted == 0
    # Nothing of Ada is left in the expiry index either.
    now = datetime.now(UTC)
    assert jobs.archive_page(now + timedelta(days=5), None, 100).archived == 0


def test_import_applies_defaults_keeps_expiry_and_a_second_run_adds_nothing(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    later = datetime.now(UTC) + timedelta(days=10)
    items: list[ImportedItem] = [
        imported("likes tea", source_id="m1"),
        imported("works at night", source_id="m2", category="fact", priority=8, expires_at=later),
        imported("no source id"),
        ImportedPrompt(source_id="p1", title="not a memory", content="x"),
        imported("   ", source_id="m3"),
        imported("odd", source_id="m4", category="mood"),
    ]
    result = jobs.import_items(ada.id, "JOB1", items)
    assert result.imported == {"memories": 3}
    assert sorted(rejected.reason for rejected in result.rejected) == ["it has no content", "unknown category 'mood'"]

    again = jobs.import_items(ada.id, "JOB1", items)
    assert again.imported == {"memories": 0}
    listed, _ = walk(api, ada)
    assert sorted(item["content"] for item in listed) == ["likes tea", "no source id", "works at night"]
    tea = next(item for item in listed if item["content"] == "likes tea")
    assert (tea["category"], tea["priority"], tea["createdAt"]) == ("general", 5, "2025-03-01T00:00:00Z")
    night = next(item for item in listed if item["content"] == "works at night")
    assert datetime.fromisoformat(night["expiresAt"]) == later
    assert api.get(f"{MEMORIES}/stats", headers=ada.auth).json()["total"] == 3
    # The same file under another job: the memories with an id are the same memories.
    assert jobs.import_items(ada.id, "JOB2", items[:2]).imported == {"memories": 0}


def test_an_imported_memory_already_past_its_expiry_comes_in_archived(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    past = datetime.now(UTC) - timedelta(days=1)
    jobs.import_items(ada.id, "JOB1", [imported("old plan", source_id="m1", expires_at=past)])
    archived, _ = walk(api, ada, archived="true")
    assert [item["content"] for item in archived] == ["old plan"]


def test_import_past_the_limit_rejects_the_rest(api: TestClient, memory_limit: SetLimit) -> None:
    memory_limit(2)
    ada = register(api, "ada@example.com")
    result = jobs.import_items(ada.id, "JOB1", [imported(f"m{n}", source_id=f"s{n}") for n in range(3)])
    assert result.imported == {"memories": 2}
    assert [rejected.reason for rejected in result.rejected] == ["memory limit reached"]


def test_archiving_moves_expired_memories_to_the_archive_where_they_can_be_restored(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    expiring = [create_memory(api, ada, f"ada {n}", expiresAt=soon) for n in range(3)]
    eves = create_memory(api, eve, "eve soon", expiresAt=soon)
    lasting = create_memory(api, ada, "ada later", expiresAt=later)
    forever = create_memory(api, ada, "ada forever")

    run_at = datetime.now(UTC) + timedelta(hours=2)
    archived, cursor, pages = 0, None, 0
    while True:
        page = jobs.archive_page(run_at, cursor, 2)
        archived, cursor, pages = archived + page.archived, page.cursor, pages + 1
        if cursor is None:
            break
    assert archived == 4
    assert pages > 1
    assert jobs.archive_page(run_at, None, 100).archived == 0

    shelved, _ = walk(api, ada, archived="true")
    assert sorted(item["id"] for item in shelved) == sorted(item["id"] for item in expiring)
    assert sorted(item["id"] for item in walk(api, ada)[0]) == sorted([lasting["id"], forever["id"]])
    assert [item["id"] for item in walk(api, eve, archived="true")[0]] == [eves["id"]]

    restored = api.post(f"{MEMORIES}/{expiring[0]['id']}/restore", headers=ada.auth, json={"expiresAt": later})
    assert restored.status_code == 200, restored.text
    assert (restored.json()["archived"], restored.json()["expiresAt"] is not None) == (False, True)
    # Once its expiry has truly passed, a restore without a new one clears it.
    expire(ada, expiring[1]["id"])
    plain = api.post(f"{MEMORIES}/{expiring[1]['id']}/restore", headers=ada.auth)
    assert plain.status_code == 200, plain.text
    assert plain.json()["expiresAt"] is None


def test_archiving_leaves_a_memory_whose_expiry_was_moved_on(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    memory = create_memory(api, ada, "kept", expiresAt=soon)
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert api.put(f"{MEMORIES}/{memory['id']}", headers=ada.auth, json={"expiresAt": later}).status_code == 200

    assert jobs.archive_page(datetime.now(UTC) + timedelta(hours=2), None, 100).archived == 0
    assert [item["id"] for item in walk(api, ada)[0]] == [memory["id"]]


def test_a_memory_with_an_expiry_carries_nothing_dynamodb_would_delete_it_by(aws: None) -> None:
    from functions.memories import store
    from shared.tables import MEMORIES as SPEC

    record = store.new_memory(
        user_id="u", memory_id="01J0000000000000000000000A", content="c", category="general", priority=5,
        active=True, expires_at=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    item = record.serialize()
    assert SPEC.ttl_attribute not in item
    assert "expiresAt" in item
    assert "gsi2pk" in item
