"""Every action of API.md's audit list, done through the API (or the workflow step that ends it) on moto, on
success and on a refused attempt: exactly one event each, with the right actor, target, outcome and log; and no
secret the test used (a password, a token, a key, an MCP header, a channel token) anywhere in what was recorded.

What the code published is read off the events queue (`tests.fakes.events.published`): no writer is needed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.identity.service import hash_email
from functions.jobs import service as jobs
from functions.jobs import steps
from functions.mcp import service as mcp
from infra.catalog import AUTHORIZER_FUNCTION, all_routes
from infra.local.gateway import Gateway
from shared.audit import ACTIONS
from shared.aws import client
from shared.events import Event
from shared.settings import get_settings
from tests.fakes import job_contexts as fakes
from tests.fakes.events import published
from tests.integration.conftest import PASSWORD, RecordingNotifier, User, login, register
from tests.integration.test_jobs import BUCKET, run_export, upload_import

MCP_HEADER_SECRET = "Bearer mcp-header-s3cret-5a1e"
BOT_TOKEN = "7000001:AAauditBotTokenThatMustNotLeak42"
TELEGRAM_SECRET_TOKEN = "audit-telegram-secret-token-77"
NEW_PASSWORD = "a brand new passphrase 9"


@pytest.fixture
def api(aws: None, monkeypatch: pytest.MonkeyPatch, notifier: RecordingNotifier) -> Iterator[TestClient]:
    """The whole API, the jobs' state machines held at their start (the steps are called by the tests), the fake
    job contexts and every hostname resolving to a public address (MCP servers are registered, never called)."""
    fakes.install(monkeypatch)
    monkeypatch.setenv("EXPORT_BUCKET", BUCKET)
    client("s3").create_bucket(Bucket=BUCKET)
    stepfunctions = client("stepfunctions")
    for kind, variable in jobs.WORKFLOW_VARIABLES.items():
        machine = stepfunctions.create_state_machine(
            name=f"stratus-test-{kind}-held",
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/stratus-test-jobs",
        )
        monkeypatch.setenv(variable, machine["stateMachineArn"])

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    previous = mcp.use_resolver(resolve)
    gateway = Gateway(all_routes(), authorizer=AUTHORIZER_FUNCTION, stage="test")
    with TestClient(gateway, base_url="http://127.0.0.1") as test_client:
        yield test_client
    gateway.close()
    mcp.use_resolver(previous)


@dataclass
class Stage:
    """The stage a case runs on: its admin (the first account), a member, and the secrets used so far."""

    api: TestClient
    notifier: RecordingNotifier
    monkeypatch: pytest.MonkeyPatch
    admin: User
    ana: User
    secrets: set[str] = field(default_factory=set)

    def call(self, method: str, path: str, user: User | None, expected: int, **kwargs: Any) -> Any:
        headers = user.auth if user is not None else {}
        response = self.api.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        assert response.status_code == expected, response.text
        if response.content and response.headers.get("content-type", "").startswith("application/json"):
            self._remember_secrets(response.json())
            return response.json()
        return None

    def _remember_secrets(self, body: Any) -> None:
        if isinstance(body, dict):
            for name in ("accessToken", "refreshToken", "key"):
                if isinstance(body.get(name), str):
                    self.secrets.add(body[name])

    def session_of(self, user: User) -> str:
        from shared.auth.keys import key_ring
        from shared.auth.tokens import verify_token

        return str(verify_token(user.refresh_token, key_ring(), get_settings(), token_type="refresh")["sid"])


@pytest.fixture
def stage(api: TestClient, notifier: RecordingNotifier, monkeypatch: pytest.MonkeyPatch) -> Stage:
    admin, ana = register(api, "admin@example.com"), register(api, "ana@example.com")
    made = Stage(api, notifier, monkeypatch, admin, ana, {PASSWORD, NEW_PASSWORD})
    made.secrets |= {admin.access_token, admin.refresh_token, ana.access_token, ana.refresh_token}
    published()  # what setting the stage up recorded is not the case's
    return made


@dataclass(frozen=True)
class Expected:
    """The one event a case must record: by whom (a user id, or None for no actor), to what, in whose log."""

    actor: str | None
    target: tuple[str, str] | None
    user: str | None
    # Other actions the same request records by design (the failure that locks an account is a failed login too).
    also: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    # Recorded while serving a request (its id, address and user agent), not by a workflow's step.
    by_request: bool = True


Case = Callable[[Stage], Expected]
CASES: dict[tuple[str, str], Case] = {}


def case(action: str, outcome: str) -> Callable[[Case], Case]:
    def register_case(run: Case) -> Case:
        assert action in ACTIONS, action
        CASES[(action, outcome)] = run
        return run

    return register_case


# Identity -------------------------------------------------------------------------------------------------


@case("user.registered", "success")
def _(stage: Stage) -> Expected:
    body = stage.call("POST", "/auth/register", None, 201, json={"email": "cy@example.com", "password": PASSWORD})
    user_id = body["user"]["id"]
    return Expected(user_id, ("user", user_id), user_id, details={"emailHash": hash_email("cy@example.com")})


@case("user.registered", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/register", None, 409, json={"email": "ana@example.com", "password": PASSWORD})
    return Expected(None, None, None, details={"error": "email_taken"})


@case("user.login", "success")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/login", None, 200, json={"email": "ana@example.com", "password": PASSWORD})
    return Expected(stage.ana.id, ("user", stage.ana.id), stage.ana.id)


@case("user.login", "failure")
def _(stage: Stage) -> Expected:
    wrong = "not the password at all"
    stage.secrets.add(wrong)
    stage.call("POST", "/auth/login", None, 401, json={"email": "ana@example.com", "password": wrong})
    # In the log of the account the email names, the email hashed.
    details = {"emailHash": hash_email("ana@example.com"), "error": "invalid_credentials"}
    return Expected(None, ("user", stage.ana.id), stage.ana.id, details=details)


@case("user.login", "failure of an unknown email")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/login", None, 401, json={"email": "nobody@example.com", "password": PASSWORD})
    return Expected(None, None, None, details={"emailHash": hash_email("nobody@example.com")})


@case("user.locked", "success")
def _(stage: Stage) -> Expected:
    attempt = {"email": "ana@example.com", "password": "wrong wrong wrong"}
    for _ in range(get_settings().login_max_failures - 1):
        stage.call("POST", "/auth/login", None, 401, json=attempt)
    published()
    stage.call("POST", "/auth/login", None, 401, json=attempt)  # the failure that locks the account
    return Expected(None, ("user", stage.ana.id), stage.ana.id, also=("user.login",))


@case("user.login", "failure while locked out")
def _(stage: Stage) -> Expected:
    attempt = {"email": "ana@example.com", "password": "wrong wrong wrong"}
    for _ in range(get_settings().login_max_failures):
        stage.call("POST", "/auth/login", None, 401, json=attempt)
    published()
    stage.call("POST", "/auth/login", None, 429, json={"email": "ana@example.com", "password": PASSWORD})
    return Expected(None, ("user", stage.ana.id), stage.ana.id, details={"error": "rate_limited"})


@case("user.logout", "success")
def _(stage: Stage) -> Expected:
    session = stage.session_of(stage.ana)
    stage.call("POST", "/auth/logout", stage.ana, 204)
    return Expected(stage.ana.id, ("session", session), stage.ana.id)


@case("session.refresh_reused", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/refresh", None, 200, json={"refreshToken": stage.ana.refresh_token})
    published()
    stage.call("POST", "/auth/refresh", None, 401, json={"refreshToken": stage.ana.refresh_token})
    return Expected(None, ("session", stage.session_of(stage.ana)), stage.ana.id)


@case("session.revoked", "success")
def _(stage: Stage) -> Expected:
    other = login(stage.api, "ana@example.com")
    session = stage.session_of(other)
    published()
    stage.call("DELETE", f"/auth/sessions/{session}", stage.ana, 204)
    return Expected(stage.ana.id, ("session", session), stage.ana.id)


@case("session.revoked", "failure")
def _(stage: Stage) -> Expected:
    admins = stage.session_of(stage.admin)
    stage.call("DELETE", f"/auth/sessions/{admins}", stage.ana, 404)  # another user's: not found
    return Expected(stage.ana.id, ("session", admins), stage.ana.id, details={"error": "session_not_found"})


@case("password.reset_requested", "success")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/forgot-password", None, 202, json={"email": "ana@example.com"})
    stage.secrets.add(stage.notifier.token_for("ana@example.com"))
    return Expected(None, ("user", stage.ana.id), stage.ana.id)


@case("password.reset_requested", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/forgot-password", None, 202, json={"email": "nobody@example.com"})
    return Expected(None, None, None)


@case("password.reset", "success")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/auth/forgot-password", None, 202, json={"email": "ana@example.com"})
    token = stage.notifier.token_for("ana@example.com")
    stage.secrets.add(token)
    published()
    stage.call("POST", "/auth/reset-password", None, 204, json={"token": token, "password": NEW_PASSWORD})
    return Expected(None, ("user", stage.ana.id), stage.ana.id)


@case("password.reset", "failure")
def _(stage: Stage) -> Expected:
    token = "not-a-reset-token-ever-issued"
    stage.secrets.add(token)
    stage.call("POST", "/auth/reset-password", None, 400, json={"token": token, "password": NEW_PASSWORD})
    return Expected(None, None, None, details={"error": "invalid_reset_token"})


@case("user.invited", "success")
def _(stage: Stage) -> Expected:
    invited = stage.call("POST", "/admin/users", stage.admin, 201, json={"email": "dee@example.com"})
    return Expected(stage.admin.id, ("user", invited["id"]), invited["id"])


@case("user.invited", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/admin/users", stage.ana, 403, json={"email": "dee@example.com"})
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


@case("user.roles_changed", "success")
def _(stage: Stage) -> Expected:
    stage.call("PUT", f"/admin/users/{stage.ana.id}/roles", stage.admin, 200, json={"roles": ["viewer"]})
    return Expected(stage.admin.id, ("user", stage.ana.id), stage.ana.id, details={"roles": "viewer"})


@case("user.roles_changed", "failure")
def _(stage: Stage) -> Expected:
    stage.call("PUT", f"/admin/users/{stage.ana.id}/roles", stage.ana, 403, json={"roles": ["admin"]})
    return Expected(stage.ana.id, ("user", stage.ana.id), stage.ana.id, details={"error": "permission_denied"})


@case("user.status_changed", "success")
def _(stage: Stage) -> Expected:
    stage.call("PUT", f"/admin/users/{stage.ana.id}/status", stage.admin, 200, json={"status": "disabled"})
    return Expected(stage.admin.id, ("user", stage.ana.id), stage.ana.id, details={"status": "disabled"})


@case("user.status_changed", "failure")
def _(stage: Stage) -> Expected:
    stage.call("PUT", f"/admin/users/{stage.admin.id}/status", stage.admin, 409, json={"status": "disabled"})
    return Expected(stage.admin.id, ("user", stage.admin.id), stage.admin.id, details={"error": "last_admin"})


@case("role.created", "success")
def _(stage: Stage) -> Expected:
    body = {"name": "auditor", "permissions": ["audit.read"]}
    stage.call("POST", "/admin/roles", stage.admin, 201, json=body)
    return Expected(stage.admin.id, ("role", "auditor"), stage.admin.id)


@case("role.created", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/admin/roles", stage.ana, 403, json={"name": "auditor", "permissions": ["audit.read"]})
    return Expected(stage.ana.id, ("role", "auditor"), stage.ana.id, details={"error": "permission_denied"})


@case("role.deleted", "success")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/admin/roles", stage.admin, 201, json={"name": "auditor", "permissions": ["audit.read"]})
    published()
    stage.call("DELETE", "/admin/roles/auditor", stage.admin, 204)
    return Expected(stage.admin.id, ("role", "auditor"), stage.admin.id)


@case("role.deleted", "failure")
def _(stage: Stage) -> Expected:
    stage.call("DELETE", "/admin/roles/member", stage.admin, 409)
    return Expected(stage.admin.id, ("role", "member"), stage.admin.id, details={"error": "builtin_role"})


@case("apikey.created", "success")
def _(stage: Stage) -> Expected:
    key = stage.call("POST", "/api-keys", stage.ana, 201, json={"name": "ci", "permissions": ["ai.chat"]})
    return Expected(stage.ana.id, ("apikey", key["id"]), stage.ana.id, details={"permissions": "ai.chat"})


@case("apikey.created", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/api-keys", stage.ana, 403, json={"name": "ci", "permissions": ["users.manage"]})
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


@case("apikey.revoked", "success")
def _(stage: Stage) -> Expected:
    key = stage.call("POST", "/api-keys", stage.ana, 201, json={"name": "ci"})
    published()
    stage.call("DELETE", f"/api-keys/{key['id']}", stage.ana, 204)
    return Expected(stage.ana.id, ("apikey", key["id"]), stage.ana.id)


@case("apikey.revoked", "failure")
def _(stage: Stage) -> Expected:
    key = stage.call("POST", "/api-keys", stage.admin, 201, json={"name": "ci"})
    published()
    stage.call("DELETE", f"/api-keys/{key['id']}", stage.ana, 404)  # another user's key
    return Expected(stage.ana.id, ("apikey", key["id"]), stage.ana.id, details={"error": "api_key_not_found"})


@case("account.deletion_requested", "success")
def _(stage: Stage) -> Expected:
    job = stage.call("DELETE", "/users/account", stage.ana, 202, json={"password": PASSWORD})
    return Expected(stage.ana.id, ("user", stage.ana.id), stage.ana.id, details={"jobId": job["jobId"]})


@case("account.deletion_requested", "failure")
def _(stage: Stage) -> Expected:
    stage.call("DELETE", "/users/account", stage.ana, 401, json={"password": "a wrong password"})
    return Expected(stage.ana.id, ("user", stage.ana.id), stage.ana.id, details={"error": "invalid_credentials"})


# Jobs -----------------------------------------------------------------------------------------------------


@case("export.requested", "success")
def _(stage: Stage) -> Expected:
    job = stage.call("POST", "/users/export", stage.ana, 202)
    return Expected(stage.ana.id, ("job", job["jobId"]), stage.ana.id)


@case("export.requested", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/users/export", stage.ana, 202)
    published()
    stage.call("POST", "/users/export", stage.ana, 409)
    return Expected(stage.ana.id, None, stage.ana.id, also=(), details={"error": "job_in_progress"})


@case("export.downloaded", "success")
def _(stage: Stage) -> Expected:
    job_id = stage.call("POST", "/users/export", stage.ana, 202)["jobId"]
    run_export(stage.monkeypatch, job_id, stage.ana.id)
    published()
    assert "downloadUrl" in stage.call("GET", f"/users/export/{job_id}", stage.ana, 200)["result"]
    return Expected(stage.ana.id, ("job", job_id), stage.ana.id)


@case("export.downloaded", "failure")
def _(stage: Stage) -> Expected:
    job_id = stage.call("POST", "/users/export", stage.admin, 202)["jobId"]
    published()
    stage.call("GET", f"/users/export/{job_id}", stage.ana, 404)  # another user's export
    return Expected(stage.ana.id, ("job", job_id), stage.ana.id, details={"error": "job_not_found"})


@case("import.started", "success")
def _(stage: Stage) -> Expected:
    job_id = upload_import(stage.api, stage.ana, "claude", b"[]")
    published()
    stage.call("POST", f"/users/import/{job_id}/start", stage.ana, 202)
    return Expected(stage.ana.id, ("job", job_id), stage.ana.id, details={"format": "claude"})


@case("import.started", "failure")
def _(stage: Stage) -> Expected:
    job_id = stage.call("POST", "/users/import", stage.ana, 201, json={"format": "claude"})["jobId"]
    published()
    stage.call("POST", f"/users/import/{job_id}/start", stage.ana, 422)  # nothing uploaded yet
    return Expected(stage.ana.id, ("job", job_id), stage.ana.id, details={"error": "upload_missing"})


@case("account.deletion_completed", "success")
def _(stage: Stage) -> Expected:
    job_id = stage.call("DELETE", "/users/account", stage.ana, 202, json={"password": PASSWORD})["jobId"]
    published()
    steps.lambda_handler({"action": "begin", "jobId": job_id, "kind": "deletion"}, None)
    steps.lambda_handler({"action": "finish", "jobId": job_id}, None)
    steps.lambda_handler({"action": "finish", "jobId": job_id}, None)  # a retried step records nothing more
    return Expected(None, ("user", stage.ana.id), stage.ana.id, details={"jobId": job_id}, by_request=False)


@case("account.deletion_completed", "failure")
def _(stage: Stage) -> Expected:
    job_id = stage.call("DELETE", "/users/account", stage.ana, 202, json={"password": PASSWORD})["jobId"]
    published()
    steps.lambda_handler({"action": "begin", "jobId": job_id, "kind": "deletion"}, None)
    steps.lambda_handler({"action": "fail", "jobId": job_id, "error": {"Error": "States.Timeout"}}, None)
    return Expected(None, ("user", stage.ana.id), stage.ana.id, details={"error": steps.FAILED_CODE}, by_request=False)


@case("admin.archive_started", "success")
def _(stage: Stage) -> Expected:
    job = stage.call("POST", "/admin/jobs/archive", stage.admin, 202)
    return Expected(stage.admin.id, ("job", job["jobId"]), stage.admin.id)


@case("admin.archive_started", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/admin/jobs/archive", stage.ana, 403)
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


# MCP servers, agents, channels ----------------------------------------------------------------------------


def mcp_server(stage: Stage, owner: User) -> str:
    config = {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": MCP_HEADER_SECRET}}
    body = {"name": "tools", "type": "http", "config": config}
    return str(stage.call("POST", "/mcp/servers", owner, 201, json=body)["id"])


@case("mcp_server.created", "success")
def _(stage: Stage) -> Expected:
    server_id = mcp_server(stage, stage.ana)
    return Expected(stage.ana.id, ("mcp_server", server_id), stage.ana.id, details={"scope": "user"})


@case("mcp_server.created", "failure")
def _(stage: Stage) -> Expected:
    body = {"name": "tools", "type": "http", "scope": "stage", "config": {"url": "https://mcp.example.com/mcp"}}
    stage.call("POST", "/mcp/servers", stage.ana, 403, json=body)  # a stage server needs mcp.manage
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


@case("mcp_server.updated", "success")
def _(stage: Stage) -> Expected:
    server_id = mcp_server(stage, stage.ana)
    published()
    config = {"url": "https://mcp.example.com/v2", "headers": {"Authorization": MCP_HEADER_SECRET + "-v2"}}
    stage.secrets.add(MCP_HEADER_SECRET + "-v2")
    stage.call("PUT", f"/mcp/servers/{server_id}", stage.ana, 200, json={"config": config})
    return Expected(stage.ana.id, ("mcp_server", server_id), stage.ana.id, details={"fields": "config"})


@case("mcp_server.updated", "failure")
def _(stage: Stage) -> Expected:
    server_id = mcp_server(stage, stage.admin)
    published()
    stage.call("PUT", f"/mcp/servers/{server_id}", stage.ana, 404, json={"enabled": False})  # personal: not hers
    return Expected(stage.ana.id, ("mcp_server", server_id), stage.ana.id)


@case("mcp_server.deleted", "success")
def _(stage: Stage) -> Expected:
    server_id = mcp_server(stage, stage.ana)
    published()
    stage.call("DELETE", f"/mcp/servers/{server_id}", stage.ana, 204)
    return Expected(stage.ana.id, ("mcp_server", server_id), stage.ana.id)


@case("mcp_server.deleted", "failure")
def _(stage: Stage) -> Expected:
    server_id = mcp_server(stage, stage.admin)
    published()
    stage.call("DELETE", f"/mcp/servers/{server_id}", stage.ana, 404)
    return Expected(stage.ana.id, ("mcp_server", server_id), stage.ana.id)


def agent(stage: Stage) -> str:
    body = {"name": "Support", "instructions": "Answer briefly."}
    return str(stage.call("POST", "/agents", stage.admin, 201, json=body)["agentId"])


@case("agent.created", "success")
def _(stage: Stage) -> Expected:
    agent_id = agent(stage)
    return Expected(stage.admin.id, ("agent", agent_id), stage.admin.id, details={"name": "Support"})


@case("agent.created", "failure")
def _(stage: Stage) -> Expected:
    stage.call("POST", "/agents", stage.ana, 403, json={"name": "Mine", "instructions": "Hi."})
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


@case("agent.updated", "success")
def _(stage: Stage) -> Expected:
    agent_id = agent(stage)
    published()
    stage.call("PUT", f"/agents/{agent_id}", stage.admin, 200, json={"name": "Helpdesk"})
    return Expected(stage.admin.id, ("agent", agent_id), stage.admin.id, details={"fields": "name"})


@case("agent.updated", "failure")
def _(stage: Stage) -> Expected:
    agent_id = agent(stage)
    published()
    stage.call("PUT", f"/agents/{agent_id}", stage.ana, 403, json={"name": "Mine"})
    return Expected(stage.ana.id, ("agent", agent_id), stage.ana.id, details={"error": "permission_denied"})


@case("agent.deleted", "success")
def _(stage: Stage) -> Expected:
    agent_id = agent(stage)
    published()
    stage.call("DELETE", f"/agents/{agent_id}", stage.admin, 204)
    return Expected(stage.admin.id, ("agent", agent_id), stage.admin.id)


@case("agent.deleted", "failure")
def _(stage: Stage) -> Expected:
    agent_id = agent(stage)
    published()
    stage.call("DELETE", f"/agents/{agent_id}", stage.ana, 403)
    return Expected(stage.ana.id, ("agent", agent_id), stage.ana.id, details={"error": "permission_denied"})


def channel(stage: Stage) -> str:
    body = {"type": "telegram", "name": "Support bot",
            "config": {"botToken": BOT_TOKEN, "secretToken": TELEGRAM_SECRET_TOKEN}}  # fmt: skip
    return str(stage.call("POST", "/channels", stage.admin, 201, json=body)["id"])


@case("channel.created", "success")
def _(stage: Stage) -> Expected:
    channel_id = channel(stage)
    return Expected(stage.admin.id, ("channel", channel_id), stage.admin.id, details={"type": "telegram"})


@case("channel.created", "failure")
def _(stage: Stage) -> Expected:
    body = {"type": "telegram", "name": "Mine", "config": {"botToken": BOT_TOKEN, "secretToken": TELEGRAM_SECRET_TOKEN}}
    stage.call("POST", "/channels", stage.ana, 403, json=body)
    return Expected(stage.ana.id, None, stage.ana.id, details={"error": "permission_denied"})


@case("channel.updated", "success")
def _(stage: Stage) -> Expected:
    channel_id = channel(stage)
    published()
    new_token = BOT_TOKEN + "-rotated"
    stage.secrets.add(new_token)
    stage.call("PUT", f"/channels/{channel_id}", stage.admin, 200, json={"config": {"botToken": new_token}})
    return Expected(stage.admin.id, ("channel", channel_id), stage.admin.id, details={"fields": "config"})


@case("channel.updated", "failure")
def _(stage: Stage) -> Expected:
    channel_id = channel(stage)
    published()
    stage.call("PUT", f"/channels/{channel_id}", stage.ana, 403, json={"name": "Mine"})
    return Expected(stage.ana.id, ("channel", channel_id), stage.ana.id, details={"error": "permission_denied"})


@case("channel.deleted", "success")
def _(stage: Stage) -> Expected:
    channel_id = channel(stage)
    published()
    stage.call("DELETE", f"/channels/{channel_id}", stage.admin, 204)
    return Expected(stage.admin.id, ("channel", channel_id), stage.admin.id)


@case("channel.deleted", "failure")
def _(stage: Stage) -> Expected:
    channel_id = channel(stage)
    published()
    stage.call("DELETE", f"/channels/{channel_id}", stage.ana, 403)
    return Expected(stage.ana.id, ("channel", channel_id), stage.ana.id, details={"error": "permission_denied"})


# The checks -----------------------------------------------------------------------------------------------


def audit_events() -> list[Event]:
    return [event for event in published() if event.kind == "audit"]


def assert_recorded_once(events: list[Event], action: str, outcome: str, expected: Expected) -> Event:
    assert sorted(event.type for event in events) == sorted([action, *expected.also]), [e.type for e in events]
    (event,) = [event for event in events if event.type == action]
    data = event.data
    assert data["action"] == action
    assert data["outcome"] == outcome
    assert data["actor"].get("userId") == expected.actor
    if expected.actor is not None:
        assert data["actor"]["authType"] == "token"
    if expected.by_request:
        assert data["actor"]["ip"], data["actor"]  # the request's origin
        assert data["actor"]["userAgent"], data["actor"]
        assert data["requestId"]
    target = (data["target"]["type"], data["target"]["id"]) if "target" in data else None
    assert target == expected.target
    assert event.user_id == expected.user
    for name, value in expected.details.items():
        assert data["details"][name] == value, data.get("details")
    return event


# The audit actions that cannot be refused: they record what the stage did, or their only attempt fails.
NO_FAILURE = {"user.locked", "user.logout"}
NO_SUCCESS = {"session.refresh_reused"}
# Webhooks are recorded by the webhooks context, whose own tests hold them.
ELSEWHERE = {"webhook.created", "webhook.updated", "webhook.deleted", "webhook.disabled"}


def test_every_action_of_the_list_has_its_cases() -> None:
    covered = {(action, outcome) for action, outcome in CASES if outcome in ("success", "failure")}
    for action in ACTIONS - ELSEWHERE:
        for outcome, exempt in (("success", NO_SUCCESS), ("failure", NO_FAILURE)):
            assert ((action, outcome) in covered) != (action in exempt), (action, outcome)


@pytest.mark.parametrize(("action", "outcome"), sorted(CASES), ids=[f"{a} {o}" for a, o in sorted(CASES)])
def test_each_action_records_exactly_one_event_with_its_actor_target_and_outcome(
    stage: Stage, action: str, outcome: str
) -> None:
    expected = CASES[(action, outcome)](stage)
    event = assert_recorded_once(audit_events(), action, outcome.split(maxsplit=1)[0], expected)
    recorded = event.to_message()
    for secret in stage.secrets:
        assert secret not in recorded


def test_no_recorded_event_holds_a_secret_the_test_used(stage: Stage) -> None:
    """A member's whole life on the stage, every secret-bearing act of it; then every event recorded, whole,
    searched for every secret used: passwords, access and refresh tokens, a reset token, an API key, an MCP
    header secret, channel tokens."""
    api, admin = stage.api, stage.admin
    wrong = "a wrong password that must not leak"
    stage.secrets.add(wrong)
    bo = register(api, "bo@example.com")
    stage.secrets |= {bo.access_token, bo.refresh_token}
    stage.call("POST", "/auth/login", None, 401, json={"email": "bo@example.com", "password": wrong})
    stage.call("POST", "/auth/login", None, 200, json={"email": "bo@example.com", "password": PASSWORD})
    stage.call("POST", "/auth/refresh", None, 200, json={"refreshToken": bo.refresh_token})
    stage.call("POST", "/auth/refresh", None, 401, json={"refreshToken": bo.refresh_token})
    stage.call("POST", "/auth/forgot-password", None, 202, json={"email": "bo@example.com"})
    reset = stage.notifier.token_for("bo@example.com")
    stage.secrets.add(reset)
    stage.call("POST", "/auth/reset-password", None, 204, json={"token": reset, "password": NEW_PASSWORD})
    signed_in = stage.call("POST", "/auth/login", None, 200, json={"email": "bo@example.com", "password": NEW_PASSWORD})
    bo = User(bo.id, bo.email, signed_in["accessToken"], signed_in["refreshToken"])
    key = stage.call("POST", "/api-keys", bo, 201, json={"name": "scan"})["key"]
    keyed = User(bo.id, bo.email, key, "")
    stage.call("POST", "/api-keys", keyed, 403, json={"name": "from a key"})  # recorded, by the key
    server_id = mcp_server(stage, bo)
    rotated = MCP_HEADER_SECRET + "-rotated"
    stage.secrets |= {MCP_HEADER_SECRET, rotated}
    config = {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": rotated}}
    stage.call("PUT", f"/mcp/servers/{server_id}", bo, 200, json={"config": config})
    channel_id = channel(stage)
    stage.secrets |= {BOT_TOKEN, TELEGRAM_SECRET_TOKEN, BOT_TOKEN + "-new"}
    stage.call("PUT", f"/channels/{channel_id}", admin, 200, json={"config": {"botToken": BOT_TOKEN + "-new"}})
    stage.call("DELETE", "/users/account", bo, 401, json={"password": wrong})
    stage.call("DELETE", "/users/account", keyed, 202)

    recorded = audit_events()
    assert {event.type for event in recorded} >= {
        "user.registered", "user.login", "session.refresh_reused", "password.reset_requested", "password.reset",
        "apikey.created", "mcp_server.created", "mcp_server.updated", "channel.created", "channel.updated",
        "account.deletion_requested",
    }  # fmt: skip
    everything = "\n".join(event.to_message() for event in recorded)
    assert [secret for secret in stage.secrets if secret in everything] == []
    assert key[:15] not in everything  # nor the key's shown prefix
