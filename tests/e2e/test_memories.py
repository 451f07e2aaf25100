"""A user's journey through their memories on the running local stack, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
MEMORIES = "/api/v1/memories"


def _register(http: httpx.Client, label: str) -> dict[str, str]:
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    response = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


def _contents(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["content"] for item in response.json()["items"]]


def _create(http: httpx.Client, auth: dict[str, str], content: str, **fields: Any) -> str:
    response = http.post(MEMORIES, headers=auth, json={"content": content, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_keep_find_archive_restore_and_delete_memories(http: httpx.Client) -> None:
    auth = _register(http, "memories")
    tea = _create(http, auth, "Prefers green TEA", category="preference", priority=8)
    _create(http, auth, "Works on the Stratus backend", category="context", priority=3)
    assert _contents(http.get(MEMORIES, headers=auth)) == ["Works on the Stratus backend", "Prefers green TEA"]
    assert _contents(http.get(f"{MEMORIES}/active", headers=auth)) == [
        "Prefers green TEA", "Works on the Stratus backend",
    ]  # fmt: skip
    assert _contents(http.get(f"{MEMORIES}/search", headers=auth, params={"q": "tea"})) == ["Prefers green TEA"]

    assert http.post(f"{MEMORIES}/{tea}/archive", headers=auth).json()["archived"] is True
    assert _contents(http.get(f"{MEMORIES}/active", headers=auth)) == ["Works on the Stratus backend"]
    assert http.post(f"{MEMORIES}/{tea}/restore", headers=auth).json()["archived"] is False
    assert http.get(f"{MEMORIES}/stats", headers=auth).json()["active"] == 2

    assert http.delete(f"{MEMORIES}/{tea}", headers=auth).status_code == 204
    assert http.get(f"{MEMORIES}/{tea}", headers=auth).status_code == 404
    assert _contents(http.get(MEMORIES, headers=auth)) == ["Works on the Stratus backend"]


def test_another_user_gets_404_for_a_memory_that_is_not_theirs(http: httpx.Client) -> None:
    owner = _register(http, "owner")
    other = _register(http, "other")
    memory_id = _create(http, owner, "Owner's memory")
    for response in (
        http.get(f"{MEMORIES}/{memory_id}", headers=other),
        http.put(f"{MEMORIES}/{memory_id}", headers=other, json={"content": "changed"}),
        http.delete(f"{MEMORIES}/{memory_id}", headers=other),
        http.post(f"{MEMORIES}/{memory_id}/archive", headers=other),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "memory_not_found"
    assert http.get(f"{MEMORIES}/{memory_id}", headers=owner).json()["content"] == "Owner's memory"
    assert _contents(http.get(MEMORIES, headers=other)) == []


def test_bad_memory_input_over_http_gets_the_error_shape(http: httpx.Client) -> None:
    auth = _register(http, "bad-input")
    json_header = auth | {"content-type": "application/json"}
    cases = [
        http.post(MEMORIES, headers=json_header, content=b"{not json"),
        http.post(MEMORIES, headers=auth, json={"content": "x", "priority": 11}),
        http.get(MEMORIES, headers=auth, params={"cursor": "garbage!"}),
        http.post(MEMORIES, json={"content": "no credentials"}),
    ]
    assert [case.status_code for case in cases] == [400, 422, 400, 401]
    for case in cases[:3]:
        assert set(case.json()["error"]) >= {"code", "message", "requestId"}
