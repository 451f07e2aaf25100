"""The conversations context's part in the jobs workflows: export page by page, import (the round trip through a
real export archive), account deletion (nothing of the user left, their words in others' conversations kept
anonymous, batched calls), and the daily archiving of idle conversations."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from botocore.client import BaseClient
from fastapi.testclient import TestClient

from functions.conversations import jobs, store
from functions.jobs.formats.archive import ExportWriter
from functions.jobs.formats.importers import read_import
from functions.jobs.formats.items import ImportedConversation, ImportedItem
from shared.aws import client
from shared.settings import get_settings
from shared.tables import CONVERSATIONS
from tests.integration.conftest import User, register

BIG = "é" * 500_000 + "y"  # a 1 MB body, over DynamoDB's item limit


@contextmanager
def dynamodb_calls() -> Iterator[list[str]]:
    calls: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counting):
        yield calls


def export_all(user_id: str, limit: int) -> tuple[dict[str, list[dict[str, Any]]], int]:
    records: dict[str, list[dict[str, Any]]] = {}
    cursor, pages = None, 0
    while True:
        page = jobs.export_page(user_id, cursor, limit)
        pages += 1
        assert sum(len(lines) for lines in page.records.values()) <= limit
        for stem, lines in page.records.items():
            records.setdefault(stem, []).extend(lines)
        if page.cursor is None:
            return records, pages
        cursor = page.cursor


def delete_all(user_id: str, limit: int = 2_000, *, retry_each_page: bool = False) -> int:
    deleted, cursor = 0, None
    while True:
        page = jobs.delete_page(user_id, cursor, limit)
        if retry_each_page:  # as Step Functions' Retry would, after a task failed once it had done its work
            page = jobs.delete_page(user_id, cursor, limit)
        deleted += page.deleted
        if page.cursor is None:
            return deleted
        cursor = page.cursor


def archive(records: dict[str, list[dict[str, Any]]], user_id: str) -> bytes:
    """A Stratus export archive of the records, as the export's assembly step writes it."""
    conversations: list[dict[str, Any]] = []
    for line in records.get("conversations", []):
        if "conversation" in line:
            conversations.append({**line["conversation"], "messages": []})
        else:
            conversations[-1]["messages"].append(line["message"])
    sink = io.BytesIO()
    with ExportWriter(sink, user_id=user_id, exported_at=datetime.now(UTC)) as writer:
        writer.write_conversations(conversations)
        writer.write_context("projects", records.get("projects", []))
        writer.write_context("prompts", records.get("prompts", []))
    return sink.getvalue()


def items_of(upload: bytes) -> list[ImportedItem]:
    """The reader's items, each conversation's messages read before the next item (they are read lazily)."""
    items: list[ImportedItem] = []
    for item in read_import("stratus", io.BytesIO(upload)):
        items.append(replace(item, messages=list(item.messages)) if isinstance(item, ImportedConversation) else item)
    return items


def conversation_with_messages(api: TestClient, user: User, conversation_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(
        f"/api/v1/conversations/{conversation_id}", headers=user.auth, params={"messagesLimit": 100}
    ).json()
    return body


def listed(api: TestClient, user: User, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/v1/conversations", headers=user.auth, params=params).json()["items"]
    return items


@pytest.fixture
def ada(api: TestClient) -> User:
    return register(api, "ada@example.com")


@pytest.fixture
def bob(api: TestClient) -> User:
    return register(api, "bob@example.com")


@pytest.fixture
def cleo(api: TestClient) -> User:
    return register(api, "cleo@example.com")


def post(api: TestClient, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/api/v1{path}", headers=user.auth, json=body)
    assert response.status_code in (200, 201), response.text
    created: dict[str, Any] = response.json()
    return created


def say(api: TestClient, user: User, conversation_id: str, content: str, role: str = "user") -> None:
    post(api, user, f"/conversations/{conversation_id}/messages", {"content": content, "role": role})


# Export and import ----------------------------------------------------------------------------------------


def test_an_export_imported_into_another_account_gives_the_same_conversations_projects_and_prompts(
    api: TestClient, ada: User, bob: User
) -> None:
    project = post(api, ada, "/projects", {"name": "Launch", "description": "Q3"})
    planned = post(api, ada, "/conversations", {"title": "Plan", "projectId": project["id"], "model": "m1"})
    for number in range(12):
        say(api, ada, planned["id"], f"step {number}", "user" if number % 2 == 0 else "assistant")
    say(api, ada, planned["id"], BIG)
    old = post(api, ada, "/conversations", {"title": "Old notes", "systemPrompt": "be brief"})
    say(api, ada, old["id"], "remember this", "system")
    post(api, ada, f"/conversations/{old['id']}/archive", {})
    post(api, ada, "/prompts", {"title": "Summarise", "content": "Summarise: {text}", "tags": ["work"]})

    records, pages = export_all(ada.id, limit=5)
    assert pages > 3  # the planned conversation alone is 14 records: it went on over several pages
    heads = [line["conversation"]["title"] for line in records["conversations"] if "conversation" in line]
    assert heads == ["Plan", "Old notes"]
    assert [p["name"] for p in records["projects"]] == ["Launch"]
    assert [m["userId"] for m in records["projects"][0]["members"]] == [ada.id]
    assert [p["title"] for p in records["prompts"]] == ["Summarise"]

    upload = archive(records, ada.id)
    result = jobs.import_items(bob.id, "job-1", items_of(upload))
    assert result.imported == {"conversations": 2, "messages": 14, "projects": 1, "prompts": 1}
    assert result.rejected == []

    originals = {c["title"]: conversation_with_messages(api, ada, c["id"]) for c in listed(api, ada)}
    originals |= {c["title"]: conversation_with_messages(api, ada, c["id"]) for c in listed(api, ada, archived=True)}
    active, archived = listed(api, bob), listed(api, bob, archived=True)
    assert [c["title"] for c in active] == ["Plan"]
    assert [c["title"] for c in archived] == ["Old notes"]
    copied_project = api.get("/api/v1/projects", headers=bob.auth).json()["items"]
    assert [(p["name"], p["description"], p["access"]) for p in copied_project] == [("Launch", "Q3", "owner")]
    assert active[0]["projectId"] == copied_project[0]["id"]
    for copy in (*active, *archived):
        original = originals[copy["title"]]
        copied = conversation_with_messages(api, bob, copy["id"])
        same = ("title", "model", "systemPrompt", "messageCount", "createdAt", "updatedAt", "lastActivityAt")
        assert {key: copied[key] for key in same} == {key: original[key] for key in same}
        assert [(m["seq"], m["role"], m["content"], m["createdAt"]) for m in copied["messages"]["items"]] == [
            (m["seq"], m["role"], m["content"], m["createdAt"]) for m in original["messages"]["items"]
        ]
        assert {m["authorId"] for m in copied["messages"]["items"]} == {bob.id}
    prompts = api.get("/api/v1/prompts", headers=bob.auth).json()["items"]
    assert [(p["title"], p["content"], p["tags"]) for p in prompts] == [("Summarise", "Summarise: {text}", ["work"])]
    # The 1 MB body lives in the payload bucket under the copy, not inline.
    bucket = get_settings().payload_bucket
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=f"conversations/{active[0]['id']}/")["KeyCount"] == 1

    # The same file again (a retried page, or a second import) adds nothing.
    again = jobs.import_items(bob.id, "job-2", items_of(upload))
    assert again.imported == result.imported
    assert [c["id"] for c in listed(api, bob)] == [c["id"] for c in active]
    assert len(listed(api, bob, archived=True)) == 1
    assert len(api.get("/api/v1/projects", headers=bob.auth).json()["items"]) == 1
    assert len(api.get("/api/v1/prompts", headers=bob.auth).json()["items"]) == 1
    assert conversation_with_messages(api, bob, active[0]["id"])["messageCount"] == 13


def test_a_conversation_named_twice_in_one_page_is_stored_once(api: TestClient, bob: User) -> None:
    from functions.jobs.formats.items import ImportedMessage

    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)

    def twin() -> ImportedConversation:
        hello = [ImportedMessage("user", "hello", moment), ImportedMessage("assistant", "hi", moment)]
        return ImportedConversation("same", "Twice", moment, moment, hello)

    jobs.import_items(bob.id, "job-7", [twin(), twin()])
    (conversation,) = listed(api, bob)
    messages = conversation_with_messages(api, bob, conversation["id"])["messages"]["items"]
    assert [m["content"] for m in messages] == ["hello", "hi"]


def test_an_export_page_holds_a_bounded_amount_of_text(api: TestClient, ada: User) -> None:
    conversation = post(api, ada, "/conversations", {"title": "Pastes"})
    for number in range(4):
        say(api, ada, conversation["id"], f"{number}{BIG}")
    with patch.object(jobs, "EXPORT_PAGE_BYTES", 2_500_000):
        pages, cursor = [], None
        while True:
            page = jobs.export_page(ada.id, cursor, 2_000)
            pages.append(
                [line["message"]["content"] for line in page.records.get("conversations", []) if "message" in line]
            )
            if page.cursor is None:
                break
            cursor = page.cursor
    assert [len(contents) for contents in pages] == [3, 1]  # the page that passes the bound is the last to grow
    assert [content[0] for contents in pages for content in contents] == ["0", "1", "2", "3"]
    assert all(content[1:] == BIG for contents in pages for content in contents)


def test_an_imported_conversation_can_be_continued_and_its_rejected_messages_are_reported(
    api: TestClient, bob: User
) -> None:
    from functions.jobs.formats.items import ImportedMessage, RejectedItem

    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)
    item = ImportedConversation(
        source_id=None,
        title="From elsewhere",
        created_at=moment,
        updated_at=moment,
        messages=iter(
            [
                ImportedMessage("user", "hello", moment),
                RejectedItem("conversation 1, message 2", "it has no text"),
                ImportedMessage("assistant", "hi", moment + timedelta(minutes=1)),
            ]
        ),
    )
    result = jobs.import_items(bob.id, "job-9", [item])
    assert result.imported["messages"] == 2
    assert [r.as_result() for r in result.rejected] == [
        {"item": "conversation 1, message 2", "reason": "it has no text"}
    ]
    (conversation,) = listed(api, bob)
    say(api, bob, conversation["id"], "and now?")
    messages = conversation_with_messages(api, bob, conversation["id"])["messages"]["items"]
    assert [(m["seq"], m["content"]) for m in messages] == [(1, "hello"), (2, "hi"), (3, "and now?")]


# Deletion -------------------------------------------------------------------------------------------------


def partition_items(partition: str, index: str | None = None) -> list[dict[str, Any]]:
    key = f"{index}pk" if index else "pk"
    request: dict[str, Any] = {
        "TableName": CONVERSATIONS.name_from_env(),
        "KeyConditionExpression": "#k = :v",
        "ExpressionAttributeNames": {"#k": key},
        "ExpressionAttributeValues": {":v": {"S": partition}},
    }
    if index:
        request["IndexName"] = index
    items: list[dict[str, Any]] = client("dynamodb").query(**request)["Items"]
    return items


def test_deleting_a_user_leaves_nothing_of_theirs_and_keeps_their_words_in_others_conversations_anonymous(
    api: TestClient, ada: User, bob: User, cleo: User
) -> None:
    project = post(api, ada, "/projects", {"name": "Launch"})
    for member in (bob, cleo):
        post(api, ada, f"/projects/{project['id']}/members", {"email": member.email, "role": "editor"})
    adas = post(api, ada, "/conversations", {"title": "Ada's", "projectId": project["id"]})
    say(api, ada, adas["id"], "kickoff")
    say(api, bob, adas["id"], "bob was here")
    bobs_in_project = post(api, bob, "/conversations", {"title": "Bob's", "projectId": project["id"]})
    say(api, ada, bobs_in_project["id"], "ada replies")
    cleos = post(api, cleo, "/conversations", {"title": "Cleo's", "projectId": project["id"]})
    say(api, cleo, cleos["id"], "cleo's own")
    bobs = []
    for number in range(3):
        bobs.append(post(api, bob, "/conversations", {"title": f"Bob {number}"})["id"])
        for line in range(4):
            say(api, bob, bobs[-1], f"{number}.{line}")
    say(api, bob, bobs[0], BIG)
    post(api, bob, f"/conversations/{bobs[1]}/archive", {})
    bobs_project = post(api, bob, "/projects", {"name": "Bob's own"})
    post(api, bob, f"/projects/{bobs_project['id']}/members", {"email": cleo.email, "role": "editor"})
    cleo_in_bobs = post(api, cleo, "/conversations", {"title": "Cleo in Bob's", "projectId": bobs_project["id"]})
    say(api, bob, cleo_in_bobs["id"], "bob helps cleo")
    for number in range(3):
        post(api, bob, "/prompts", {"title": f"p{number}", "content": "c"})

    # Small pages, each run twice: a retried page does no harm.
    delete_all(bob.id, limit=4, retry_each_page=True)

    for partition, index in (
        (store.owner_partition(bob.id, archived=False), "gsi1"),
        (store.owner_partition(bob.id, archived=True), "gsi1"),
        (store.projects_partition(bob.id), "gsi1"),
        (store.messages_partition(bob.id), "gsi3"),
        (store.author_partition(bob.id), "gsi4"),
        (f"USER#{bob.id}", None),
        (store.project_pk(bobs_project["id"]), None),
        (store.project_pk(bobs_project["id"]), "gsi2"),
        *((store.conversation_pk(c), None) for c in (*bobs, bobs_in_project["id"])),
    ):
        assert partition_items(partition, index) == [], partition
    assert all(item["sk"]["S"] != f"MEMBER#{bob.id}" for item in partition_items(store.project_pk(project["id"])))
    assert client("s3").list_objects_v2(Bucket=get_settings().payload_bucket)["KeyCount"] == 0

    # Ada's conversation keeps what Bob wrote there, naming nobody; Cleo keeps hers, out of Bob's project.
    kept = conversation_with_messages(api, ada, adas["id"])["messages"]["items"]
    assert [(m["content"], m["authorId"]) for m in kept] == [
        ("kickoff", ada.id),
        ("bob was here", store.DELETED_AUTHOR),
    ]
    cleos_kept = conversation_with_messages(api, cleo, cleo_in_bobs["id"])
    assert cleos_kept["projectId"] is None
    assert [(m["content"], m["authorId"]) for m in cleos_kept["messages"]["items"]] == [
        ("bob helps cleo", store.DELETED_AUTHOR)
    ]
    assert [c["title"] for c in listed(api, cleo)] == ["Cleo in Bob's", "Cleo's"]
    assert delete_all(bob.id) == 0

    # Ada goes too: her conversation with it, her project's other conversations stay with their owner.
    # Her conversation and its 2 messages, Cleo's conversation detached, the 2 members left and the project.
    assert delete_all(ada.id, limit=3) == 1 + 2 + 1 + 2 + 1
    assert api.get(f"/api/v1/conversations/{adas['id']}", headers=ada.auth).status_code in (401, 404)
    assert partition_items(store.project_pk(project["id"])) == []
    assert conversation_with_messages(api, cleo, cleos["id"])["projectId"] is None


def test_deletion_is_batched_at_most_1_1_dynamodb_calls_per_item(api: TestClient, ada: User, bob: User) -> None:
    for number in range(6):
        conversation = post(api, bob, "/conversations", {"title": f"c{number}"})
        for line in range(15):
            say(api, bob, conversation["id"], f"line {line}")
    for number in range(10):
        post(api, bob, "/prompts", {"title": f"p{number}", "content": "c"})
    project = post(api, bob, "/projects", {"name": "Bob's"})
    post(api, bob, f"/projects/{project['id']}/members", {"email": ada.email, "role": "editor"})
    adas = post(api, ada, "/conversations", {"title": "Ada's"})

    with dynamodb_calls() as calls:
        deleted = delete_all(bob.id)
    assert deleted == 6 + 6 * 15 + 10 + 1 + 2  # conversations, messages, prompts, the project and its members
    assert len(calls) / deleted <= 1.1, calls
    assert "GetItem" not in calls
    assert listed(api, ada)[0]["id"] == adas["id"]


# Archiving ------------------------------------------------------------------------------------------------


@pytest.fixture
def archive_after() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def set_archive_days(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    monkeypatch.setenv("ARCHIVE_CONVERSATIONS_AFTER_DAYS", str(days))
    get_settings.cache_clear()


def archive_all(now: datetime) -> tuple[int, int]:
    archived, pages, cursor = 0, 0, None
    while True:
        page = jobs.archive_page(now, cursor, 2_000)
        archived, pages = archived + page.archived, pages + 1
        if page.cursor is None:
            return archived, pages
        cursor = page.cursor


@pytest.mark.usefixtures("archive_after")
def test_the_archiving_run_archives_idle_conversations_once(
    api: TestClient, ada: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_archive_days(monkeypatch, 90)
    now = datetime.now(UTC)
    with patch.object(store, "now", return_value=now - timedelta(days=120)):
        idle = post(api, ada, "/conversations", {"title": "idle"})
        say(api, ada, idle["id"], "long ago")
        revived = post(api, ada, "/conversations", {"title": "revived"})
    say(api, ada, revived["id"], "back again")  # activity now: no longer idle
    fresh = post(api, ada, "/conversations", {"title": "fresh"})

    with dynamodb_calls() as calls:
        assert archive_all(now)[0] == 1
    assert "Scan" not in calls
    assert [c["id"] for c in listed(api, ada, archived=True)] == [idle["id"]]
    assert {c["id"] for c in listed(api, ada)} == {revived["id"], fresh["id"]}

    # The next day's run visits only the day since: a few Queries, nothing archived again.
    with dynamodb_calls() as calls:
        assert archive_all(now + timedelta(days=1)) == (0, 1)
    assert calls.count("Query") <= 2 * store.STALE_SHARDS

    # Unarchiving puts the conversation back in the index: its owner decided, the run leaves it be.
    post(api, ada, f"/conversations/{idle['id']}/unarchive", {})
    record = store.get_conversation(idle["id"])
    assert record is not None
    assert record.gsi4pk == store.idle_keys(record.last_activity_at, idle["id"])[0]
    assert archive_all(now + timedelta(days=2))[0] == 0


@pytest.mark.usefixtures("archive_after")
def test_archiving_after_0_days_is_off(api: TestClient, ada: User, monkeypatch: pytest.MonkeyPatch) -> None:
    set_archive_days(monkeypatch, 0)
    now = datetime.now(UTC)
    with patch.object(store, "now", return_value=now - timedelta(days=1_000)):
        post(api, ada, "/conversations", {"title": "ancient"})
    assert archive_all(now) == (0, 1)
    assert [c["title"] for c in listed(api, ada)] == ["ancient"]
