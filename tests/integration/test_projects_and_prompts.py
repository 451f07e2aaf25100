"""Projects and sharing, and saved prompts (their export and deletion: test_conversations_jobs)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import User, error_code, register


@pytest.fixture
def owner(api: TestClient) -> User:
    return register(api, "owner@example.com")


@pytest.fixture
def viewer(api: TestClient) -> User:
    return register(api, "viewer@example.com")


@pytest.fixture
def editor(api: TestClient) -> User:
    return register(api, "editor@example.com")


@pytest.fixture
def stranger(api: TestClient) -> User:
    return register(api, "stranger@example.com")


@pytest.fixture
def shared_project(api: TestClient, owner: User, viewer: User, editor: User) -> dict[str, str]:
    """A project with a viewer and an editor, and one conversation of the owner's in it."""
    project = api.post("/api/v1/projects", headers=owner.auth, json={"name": "Launch", "description": "Q3"}).json()
    for member, role in ((viewer, "viewer"), (editor, "editor")):
        added = api.post(
            f"/api/v1/projects/{project['id']}/members", headers=owner.auth, json={"email": member.email, "role": role}
        )
        assert added.status_code == 201, added.text
    conversation = api.post(
        "/api/v1/conversations", headers=owner.auth, json={"title": "Plan", "projectId": project["id"]}
    ).json()
    api.post(f"/api/v1/conversations/{conversation['id']}/messages", headers=owner.auth, json={"content": "kickoff"})
    return {"project": project["id"], "conversation": conversation["id"]}


def test_members_see_the_projects_conversations_with_their_access(
    api: TestClient, shared_project: dict[str, str], viewer: User, editor: User
) -> None:
    for member, access in ((viewer, "viewer"), (editor, "editor")):
        listed = api.get("/api/v1/conversations", headers=member.auth, params={"projectId": shared_project["project"]})
        assert [(c["id"], c["access"]) for c in listed.json()["items"]] == [(shared_project["conversation"], access)]
        detail = api.get(f"/api/v1/conversations/{shared_project['conversation']}", headers=member.auth).json()
        assert [m["content"] for m in detail["messages"]["items"]] == ["kickoff"]
        projects = api.get("/api/v1/projects", headers=member.auth).json()["items"]
        assert [(p["name"], p["access"]) for p in projects] == [("Launch", access)]


def test_editors_write_viewers_only_read_and_neither_deletes(
    api: TestClient, shared_project: dict[str, str], viewer: User, editor: User
) -> None:
    path = f"/api/v1/conversations/{shared_project['conversation']}"
    by_editor = api.post(f"{path}/messages", headers=editor.auth, json={"content": "editor here"})
    assert by_editor.status_code == 201
    assert by_editor.json()["authorId"] == editor.id
    assert api.put(path, headers=editor.auth, json={"title": "Plan v2"}).status_code == 200
    for attempt in (
        api.post(f"{path}/messages", headers=viewer.auth, json={"content": "viewer here"}),
        api.put(path, headers=viewer.auth, json={"title": "nope"}),
    ):
        assert attempt.status_code == 403
        assert error_code(attempt) == "read_only"
    for member in (viewer, editor):
        assert api.delete(path, headers=member.auth).status_code == 403
        assert api.post(f"{path}/archive", headers=member.auth).status_code == 403
    viewer_create = api.post(
        "/api/v1/conversations", headers=viewer.auth, json={"projectId": shared_project["project"]}
    )
    assert viewer_create.status_code == 403
    assert api.get(path, headers=viewer.auth).json()["title"] == "Plan v2"
    # Moving a conversation out of (or between) projects is its owner's call alone; an editor's attempt changes nothing.
    moved = api.put(path, headers=editor.auth, json={"projectId": None})
    assert moved.status_code == 403
    assert error_code(moved) == "owner_only"
    assert api.get(path, headers=viewer.auth).json()["projectId"] == shared_project["project"]


def test_strangers_get_not_found_for_the_project_and_its_conversations(
    api: TestClient, shared_project: dict[str, str], stranger: User
) -> None:
    project_path = f"/api/v1/projects/{shared_project['project']}"
    attempts = [
        api.get(project_path, headers=stranger.auth),
        api.put(project_path, headers=stranger.auth, json={"name": "mine"}),
        api.get(f"{project_path}/members", headers=stranger.auth),
        api.post(f"{project_path}/members", headers=stranger.auth, json={"email": stranger.email, "role": "editor"}),
        api.get("/api/v1/conversations", headers=stranger.auth, params={"projectId": shared_project["project"]}),
        api.get(f"/api/v1/conversations/{shared_project['conversation']}", headers=stranger.auth),
        api.post("/api/v1/conversations", headers=stranger.auth, json={"projectId": shared_project["project"]}),
    ]
    assert [response.status_code for response in attempts] == [404] * 7


def test_only_the_owner_manages_the_project_and_members_may_leave(
    api: TestClient, shared_project: dict[str, str], owner: User, viewer: User, editor: User
) -> None:
    project_path = f"/api/v1/projects/{shared_project['project']}"
    assert api.put(project_path, headers=editor.auth, json={"name": "hijack"}).status_code == 403
    assert api.delete(f"{project_path}/members/{viewer.id}", headers=editor.auth).status_code == 403
    members = api.get(f"{project_path}/members", headers=viewer.auth).json()["items"]
    assert {(m["userId"], m["role"]) for m in members} == {
        (owner.id, "owner"),
        (viewer.id, "viewer"),
        (editor.id, "editor"),
    }

    assert api.delete(f"{project_path}/members/{viewer.id}", headers=viewer.auth).status_code == 204
    assert api.get(f"/api/v1/conversations/{shared_project['conversation']}", headers=viewer.auth).status_code == 404
    assert api.delete(f"{project_path}/members/{owner.id}", headers=owner.auth).status_code == 409
    assert api.delete(f"{project_path}/members/{editor.id}", headers=owner.auth).status_code == 204
    assert api.get(project_path, headers=editor.auth).status_code == 404


def test_sharing_needs_a_known_email_and_not_yourself(api: TestClient, owner: User) -> None:
    project = api.post("/api/v1/projects", headers=owner.auth, json={"name": "Solo"}).json()
    members = f"/api/v1/projects/{project['id']}/members"
    unknown = api.post(members, headers=owner.auth, json={"email": "ghost@example.com", "role": "viewer"})
    assert unknown.status_code == 404
    assert error_code(unknown) == "user_not_found"
    assert api.post(members, headers=owner.auth, json={"email": owner.email, "role": "editor"}).status_code == 409
    assert api.post(members, headers=owner.auth, json={"email": owner.email, "role": "admin"}).status_code == 422


def test_deleting_a_project_keeps_its_conversations_with_their_owners(
    api: TestClient, shared_project: dict[str, str], owner: User, editor: User
) -> None:
    editors_own = api.post(
        "/api/v1/conversations", headers=editor.auth, json={"title": "Mine", "projectId": shared_project["project"]}
    ).json()
    assert api.delete(f"/api/v1/projects/{shared_project['project']}", headers=owner.auth).status_code == 204
    assert api.get(f"/api/v1/projects/{shared_project['project']}", headers=owner.auth).status_code == 404
    kept = api.get(f"/api/v1/conversations/{shared_project['conversation']}", headers=owner.auth).json()
    assert kept["projectId"] is None
    assert api.get(f"/api/v1/conversations/{editors_own['id']}", headers=editor.auth).json()["projectId"] is None
    assert api.get(f"/api/v1/conversations/{shared_project['conversation']}", headers=editor.auth).status_code == 404


def test_owner_moves_a_conversation_into_and_out_of_a_project(api: TestClient, owner: User, viewer: User) -> None:
    project = api.post("/api/v1/projects", headers=owner.auth, json={"name": "Later"}).json()
    conversation = api.post("/api/v1/conversations", headers=owner.auth, json={"title": "loose"}).json()
    path = f"/api/v1/conversations/{conversation['id']}"
    assert api.put(path, headers=owner.auth, json={"projectId": project["id"]}).json()["projectId"] == project["id"]
    in_project = api.get("/api/v1/conversations", headers=owner.auth, params={"projectId": project["id"]}).json()
    assert [c["id"] for c in in_project["items"]] == [conversation["id"]]
    assert api.put(path, headers=owner.auth, json={"projectId": None}).json()["projectId"] is None
    assert (
        api.get("/api/v1/conversations", headers=owner.auth, params={"projectId": project["id"]}).json()["items"] == []
    )
    others = api.post("/api/v1/projects", headers=viewer.auth, json={"name": "Not yours"}).json()
    assert api.put(path, headers=owner.auth, json={"projectId": others["id"]}).status_code == 404


def test_saved_prompts_crud_with_tags_and_isolation(api: TestClient, owner: User, stranger: User) -> None:
    base = "/api/v1/prompts"
    created = api.post(
        base, headers=owner.auth, json={"title": "Summarise", "content": "Summarise {text}", "tags": ["work", "short"]}
    )
    assert created.status_code == 201
    prompt = created.json()
    assert prompt["tags"] == ["short", "work"]
    api.post(base, headers=owner.auth, json={"title": "Translate", "content": "Translate {text}", "tags": ["lang"]})
    assert [p["title"] for p in api.get(base, headers=owner.auth).json()["items"]] == ["Translate", "Summarise"]
    assert [p["title"] for p in api.get(base, headers=owner.auth, params={"tag": "work"}).json()["items"]] == [
        "Summarise"
    ]
    updated = api.put(f"{base}/{prompt['id']}", headers=owner.auth, json={"content": "Summarise briefly: {text}"})
    assert updated.json()["content"] == "Summarise briefly: {text}"
    assert updated.json()["title"] == "Summarise"
    for response in (
        api.get(f"{base}/{prompt['id']}", headers=stranger.auth),
        api.put(f"{base}/{prompt['id']}", headers=stranger.auth, json={"title": "x"}),
        api.delete(f"{base}/{prompt['id']}", headers=stranger.auth),
    ):
        assert response.status_code == 404
    assert api.get(base, headers=stranger.auth).json()["items"] == []
    assert api.post(base, headers=owner.auth, json={"title": "", "content": "x"}).status_code == 422
    assert api.delete(f"{base}/{prompt['id']}", headers=owner.auth).status_code == 204
    assert api.get(f"{base}/{prompt['id']}", headers=owner.auth).status_code == 404
