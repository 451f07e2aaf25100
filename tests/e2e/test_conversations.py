"""Conversations, projects and prompts on the running local stack, over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def _user(http: httpx.Client, label: str) -> tuple[dict[str, str], str]:
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    body = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).json()
    return {"authorization": f"Bearer {body['accessToken']}"}, email


def test_a_conversation_with_a_large_paste_shared_through_a_project(http: httpx.Client) -> None:
    owner, _ = _user(http, "owner")
    viewer, viewer_email = _user(http, "viewer")
    stranger, _ = _user(http, "stranger")

    project = http.post("/api/v1/projects", headers=owner, json={"name": "Research"}).json()
    shared = http.post(
        f"/api/v1/projects/{project['id']}/members", headers=owner, json={"email": viewer_email, "role": "viewer"}
    )
    assert shared.status_code == 201
    conversation = http.post(
        "/api/v1/conversations", headers=owner, json={"title": "Paper notes", "projectId": project["id"]}
    ).json()
    paste = "A long pasted paper. " * 30_000  # ~630 KB: stored in the payload bucket
    for content in ("Summarise this:", paste):
        response = http.post(
            f"/api/v1/conversations/{conversation['id']}/messages", headers=owner, json={"content": content}
        )
        assert response.status_code == 201

    seen_by_viewer = http.get(f"/api/v1/conversations/{conversation['id']}", headers=viewer).json()
    assert [m["content"] for m in seen_by_viewer["messages"]["items"]] == ["Summarise this:", paste]
    assert seen_by_viewer["access"] == "viewer"
    refused = http.post(
        f"/api/v1/conversations/{conversation['id']}/messages", headers=viewer, json={"content": "can I?"}
    )
    assert refused.status_code == 403
    assert http.get(f"/api/v1/conversations/{conversation['id']}", headers=stranger).status_code == 404

    hits = http.get("/api/v1/conversations/search", headers=owner, params={"q": "pasted paper"}).json()["items"]
    assert [h["matchedIn"] for h in hits] == ["message"]
    assert http.get("/api/v1/conversations/stats", headers=owner).json()["messages"] == 2

    assert http.delete(f"/api/v1/conversations/{conversation['id']}", headers=owner).status_code == 204
    assert http.get(f"/api/v1/conversations/{conversation['id']}", headers=viewer).status_code == 404


def test_saved_prompts_over_http(http: httpx.Client) -> None:
    user, _ = _user(http, "prompts")
    created = http.post(
        "/api/v1/prompts", headers=user, json={"title": "Review", "content": "Review {code}", "tags": ["dev"]}
    )
    assert created.status_code == 201
    assert [p["title"] for p in http.get("/api/v1/prompts", headers=user, params={"tag": "dev"}).json()["items"]] == [
        "Review"
    ]
