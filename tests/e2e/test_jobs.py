"""Export, import and account deletion on the running local stack, from the API alone: the workflows run on
moto's Step Functions, their tasks in the local stack's handlers, the files go through presigned S3 URLs."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from typing import Any

import httpx
import pytest

from tests.unit.test_jobs_imports import chatgpt_conversation_with_an_edit

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
API = "/api/v1"
JOB_TIMEOUT_SECONDS = 120


def _register(http: httpx.Client, email: str) -> dict[str, str]:
    response = http.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


def _email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def _finished(http: httpx.Client, path: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        response = http.get(path, headers=auth)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish: {job}")


def _write_history(http: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    project = http.post(f"{API}/projects", headers=auth, json={"name": "Garden"}).json()
    conversation = http.post(
        f"{API}/conversations", headers=auth, json={"title": "Tomatoes", "projectId": project["id"]}
    ).json()
    long_body = "soil " * 200_000  # 1 MB: kept in the payload bucket, not in the item
    for content in ("When do I plant?", long_body):
        response = http.post(
            f"{API}/conversations/{conversation['id']}/messages", headers=auth, json={"content": content}
        )
        assert response.status_code == 201, response.text
    http.post(f"{API}/prompts", headers=auth, json={"title": "Weekly", "content": "Plan my week"})
    http.post(f"{API}/memories", headers=auth, json={"content": "Grows tomatoes", "category": "context"})
    return {"conversation": conversation["id"], "contents": ["When do I plant?", long_body]}


def _export(http: httpx.Client, auth: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    started = http.post(f"{API}/users/export", headers=auth)
    assert started.status_code == 202, started.text
    assert http.post(f"{API}/users/export", headers=auth).status_code in (202, 409)
    job = _finished(http, f"{API}/users/export/{started.json()['jobId']}", auth)
    assert job["status"] == "succeeded", job
    download = httpx.get(job["result"]["downloadUrl"], timeout=30)
    assert download.status_code == 200
    assert len(download.content) == job["result"]["sizeBytes"]
    return job, download.content


def _import(http: httpx.Client, auth: dict[str, str], import_format: str, body: bytes) -> dict[str, Any]:
    created = http.post(f"{API}/users/import", headers=auth, json={"format": import_format})
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["uploadMethod"] == "PUT"
    assert httpx.put(upload["uploadUrl"], content=body, timeout=30).status_code == 200
    started = http.post(f"{API}/users/import/{upload['jobId']}/start", headers=auth)
    assert started.status_code == 202, started.text
    return _finished(http, f"{API}/users/import/{upload['jobId']}", auth)


def _messages(http: httpx.Client, auth: dict[str, str], conversation_id: str) -> list[tuple[str, str]]:
    response = http.get(f"{API}/conversations/{conversation_id}/messages", headers=auth, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["items"]]


def test_export_then_import_into_another_account_restores_everything(http: httpx.Client) -> None:
    owner = _register(http, _email("exporter"))
    written = _write_history(http, owner)
    job, archive = _export(http, owner)
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        manifest = json.loads(files.read("manifest.json"))
    assert manifest["format"] == "stratus-export"
    assert manifest["contexts"]["conversations"]["count"] == 1
    assert job["result"]["counts"]["conversations"] == 1

    newcomer = _register(http, _email("importer"))
    imported = _import(http, newcomer, "stratus", archive)
    assert imported["status"] == "succeeded", imported
    assert imported["result"]["imported"] == {
        "conversations": 1, "messages": 2, "projects": 1, "prompts": 1, "memories": 1,
    }  # fmt: skip
    assert imported["result"]["rejected"] == []
    conversations = http.get(f"{API}/conversations", headers=newcomer).json()["items"]
    assert [c["title"] for c in conversations] == ["Tomatoes"]
    assert conversations[0]["projectId"] is not None
    assert [content for _, content in _messages(http, newcomer, conversations[0]["id"])] == written["contents"]
    assert [p["title"] for p in http.get(f"{API}/prompts", headers=newcomer).json()["items"]] == ["Weekly"]
    assert [m["content"] for m in http.get(f"{API}/memories", headers=newcomer).json()["items"]] == ["Grows tomatoes"]
    # The owner's own data is untouched by someone else's import.
    assert [content for _, content in _messages(http, owner, written["conversation"])] == written["contents"]


def test_a_chatgpt_export_imports_only_the_branch_the_user_saw(http: httpx.Client) -> None:
    auth = _register(http, _email("chatgpt"))
    body = json.dumps([chatgpt_conversation_with_an_edit("Arithmetic")]).encode()
    job = _import(http, auth, "chatgpt", body)
    assert job["status"] == "succeeded", job
    conversation = http.get(f"{API}/conversations", headers=auth).json()["items"][0]
    roles = [role for role, _ in _messages(http, auth, conversation["id"])]
    assert roles
    assert set(roles) <= {"user", "assistant"}


def test_a_file_that_is_not_what_it_claims_fails_the_import_with_a_reason(http: httpx.Client) -> None:
    auth = _register(http, _email("badfile"))
    job = _import(http, auth, "stratus", b"this is not a zip")
    assert job["status"] == "failed"
    assert job["error"]["message"]
    assert http.get(f"{API}/conversations", headers=auth).json()["items"] == []


def test_deleting_an_account_refuses_its_credentials_at_once_and_frees_the_email(http: httpx.Client) -> None:
    email = _email("leaver")
    auth = _register(http, email)
    _write_history(http, auth)
    assert http.request("DELETE", f"{API}/users/account", headers=auth, json={"password": "wrong"}).status_code in (
        401,
        403,
    )
    accepted = http.request("DELETE", f"{API}/users/account", headers=auth, json={"password": PASSWORD})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["jobId"]
    assert http.get(f"{API}/auth/me", headers=auth).status_code == 401
    assert http.request("DELETE", f"{API}/users/account", headers=auth, json={"password": PASSWORD}).status_code == 401

    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while (again := http.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})).status_code != 201:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.3)
    fresh = {"authorization": f"Bearer {again.json()['accessToken']}"}
    for listing in ("conversations", "projects", "prompts", "memories"):
        assert http.get(f"{API}/{listing}", headers=fresh).json()["items"] == [], listing
