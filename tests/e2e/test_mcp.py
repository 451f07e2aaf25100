"""MCP servers on the running local stack, over real HTTP: the routes are served from the catalog,
and the refusals a member meets."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
SERVERS = "/api/v1/mcp/servers"
TIME_SERVER = {"command": "python", "args": ["-m", "mcp_server_time"]}


def _register(http: httpx.Client, label: str) -> dict[str, str]:
    """A member: the stack's first account is its admin, so one more is made if this was the first."""
    for _ in range(2):
        email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
        response = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        if "admin" not in response.json()["user"]["roles"]:
            return {"authorization": f"Bearer {response.json()['accessToken']}"}
    raise AssertionError("two admins in a row")


def test_a_member_meets_the_registry_refusals_and_nothing_is_stored(http: httpx.Client) -> None:
    member = _register(http, "mcp-member")
    stdio = http.post(SERVERS, headers=member, json={"name": "time", "type": "stdio", "config": TIME_SERVER})
    assert stdio.status_code == 403
    assert stdio.json()["error"]["code"] == "permission_denied"
    # `make dev` does not opt in to private addresses: loopback and the metadata address are refused.
    for url in ("http://127.0.0.1:8000/mcp", "http://169.254.169.254/latest/meta-data"):
        refused = http.post(SERVERS, headers=member, json={"name": "local", "type": "http", "config": {"url": url}})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "url_not_allowed"
    listed = http.get(SERVERS, headers=member)
    assert listed.status_code == 200
    assert [server for server in listed.json()["items"] if server["scope"] == "user"] == []


def test_an_unknown_server_is_404_on_the_live_routes(http: httpx.Client) -> None:
    member = _register(http, "mcp-one")
    missing = http.get(f"{SERVERS}/01ARZ3NDEKTSV4RRFFQ69G5FAV/tools", headers=member)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "mcp_server_not_found"


def test_a_personal_server_keeps_its_header_sealed_and_is_no_one_elses(http: httpx.Client) -> None:
    owner, other = _register(http, "mcp-owner"), _register(http, "mcp-other")
    # A public address literal: nothing to resolve, and registration connects to nothing.
    body = {
        "name": "personal",
        "type": "http",
        "config": {"url": "https://93.184.215.14/mcp", "headers": {"Authorization": "Bearer e2e-s3cret"}},
    }
    created = http.post(SERVERS, headers=owner, json=body)
    assert created.status_code == 201, created.text
    path = f"{SERVERS}/{created.json()['id']}"
    shown = http.get(path, headers=owner)
    assert shown.json()["config"] == {"url": "https://93.184.215.14/mcp", "headers": {"Authorization": "••••••"}}
    assert "e2e-s3cret" not in created.text + shown.text + http.get(SERVERS, headers=owner).text
    for response in (http.get(path, headers=other), http.delete(path, headers=other)):
        assert response.status_code == 404
    assert http.delete(path, headers=owner).status_code == 204
