"""The MCP registry through API Gateway events on moto, against real servers: server-everything over streamable HTTP
and mcp-server-time over stdio, registered by an admin and used live; the outbound guard at registration and at
call time; who sees and changes which server; header secrets sealed, masked, never logged, and really sent."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest.mock import patch

import pytest
from botocore.client import BaseClient
from fastapi.testclient import TestClient

from functions.chat import tools
from functions.mcp import jobs, service
from shared.auth.principal import Principal
from shared.mcp_client import HttpServer
from shared.settings import get_settings, settings_from_environ
from tests.fakes.anthropic_server import FakeAnthropic
from tests.integration.conftest import User, error_code, free_port, login, register
from tests.integration.jobs_pages import delete_all, export_all
from tests.integration.test_chat_tools import enable_for, events_of, kinds, text_of

SERVERS = "/api/v1/mcp/servers"
SECRET = "Bearer s3cret-7d1f0c9a"
TIME_SERVER = {"command": "python", "args": ["-m", "mcp_server_time"]}


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This dev stage lets MCP servers on loopback be called (the test servers run there)."""
    monkeypatch.setenv("MCP_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def people(api: TestClient) -> dict[str, User]:
    """An admin (the first user), two members and a viewer."""
    admin = register(api, "admin@example.com")
    ada, bob = register(api, "ada@example.com"), register(api, "bob@example.com")
    viewer = register(api, "vic@example.com")
    demoted = api.put(f"/api/v1/admin/users/{viewer.id}/roles", headers=admin.auth, json={"roles": ["viewer"]})
    assert demoted.status_code == 200, demoted.text
    return {"admin": admin, "ada": ada, "bob": bob, "viewer": login(api, "vic@example.com")}


def register_server(api: TestClient, user: User, **body: Any) -> dict[str, Any]:
    response = api.post(SERVERS, headers=user.auth, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def http_server(name: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "http", "config": {"url": url}, **fields}


def listed_names(api: TestClient, user: User) -> list[str]:
    response = api.get(SERVERS, headers=user.auth)
    assert response.status_code == 200, response.text
    return [server["name"] for server in response.json()["items"]]


# Real servers, live ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_allowed")
def test_an_admin_registers_an_http_server_and_uses_it_live(
    api: TestClient, people: dict[str, User], everything_url: str
) -> None:
    admin, ada = people["admin"], people["ada"]
    server = register_server(api, admin, **http_server("everything", everything_url, scope="stage"))
    assert server | {"id": None, "createdAt": None, "updatedAt": None} == {
        "id": None, "name": "everything", "displayName": "everything", "type": "http", "scope": "stage",
        "config": {"url": everything_url, "headers": {}}, "requireApproval": False, "enabled": True,
        "ownerId": None, "createdAt": None, "updatedAt": None,
    }  # fmt: skip
    path = f"{SERVERS}/{server['id']}"
    # A stage server is for every user with mcp.use: a member uses it.
    health = api.get(f"{path}/health", headers=ada.auth).json()
    assert health["reachable"] is True
    assert health["tools"] >= 10
    assert health["serverInfo"]["name"] == "mcp-servers/everything"

    tools = {tool["name"]: tool for tool in api.get(f"{path}/tools", headers=ada.auth).json()["items"]}
    assert {"echo", "get-sum"} <= set(tools)
    assert {"a", "b"} <= set(tools["get-sum"]["inputSchema"]["properties"])
    echo = api.post(f"{path}/tools/echo/call", headers=ada.auth, json={"arguments": {"message": "hi"}})
    assert echo.status_code == 200, echo.text
    assert echo.json() == {"content": [{"type": "text", "text": "Echo: hi"}], "isError": False}
    total = api.post(f"{path}/tools/get-sum/call", headers=ada.auth, json={"arguments": {"a": 19, "b": 23}})
    assert "42" in total.json()["content"][0]["text"]

    resources = api.get(f"{path}/resources", headers=ada.auth).json()["items"]
    uri = next(resource["uri"] for resource in resources if resource["uri"].startswith("demo://resource/static"))
    read = api.get(f"{path}/resources/read", headers=ada.auth, params={"uri": uri})
    assert read.status_code == 200, read.text
    assert read.json()["contents"][0]["uri"] == uri
    prompts = api.get(f"{path}/prompts", headers=ada.auth).json()["items"]
    assert "args-prompt" in {prompt["name"] for prompt in prompts}
    rendered = api.post(f"{path}/prompts/args-prompt/get", headers=ada.auth, json={"arguments": {"city": "Lisbon"}})
    assert rendered.status_code == 200, rendered.text
    assert "Lisbon" in json.dumps(rendered.json()["messages"])

    unknown_tool = api.post(f"{path}/tools/no-such-tool/call", headers=ada.auth, json={"arguments": {}})
    # The server's own refusal is the tool's result, as the model would get it.
    assert unknown_tool.status_code == 200
    assert unknown_tool.json()["isError"] is True
    assert "not found" in unknown_tool.json()["content"][0]["text"]


def test_an_admin_registers_the_shipped_stdio_server_and_calls_it(api: TestClient, people: dict[str, User]) -> None:
    admin = people["admin"]
    server = register_server(api, admin, name="time", type="stdio", config=TIME_SERVER, scope="stage")
    assert server["config"] == {**TIME_SERVER, "env": {}}
    path = f"{SERVERS}/{server['id']}"
    tools = {tool["name"] for tool in api.get(f"{path}/tools", headers=people["ada"].auth).json()["items"]}
    assert "get_current_time" in tools
    now = api.post(
        f"{path}/tools/get_current_time/call", headers=people["ada"].auth, json={"arguments": {"timezone": "UTC"}}
    )
    assert now.status_code == 200, now.text
    assert now.json()["isError"] is False
    assert "UTC" in now.json()["content"][0]["text"]
    assert api.get(f"{path}/health", headers=admin.auth).json()["reachable"] is True


def test_a_stdio_command_outside_the_allow_list_is_refused(api: TestClient, people: dict[str, User]) -> None:
    for config in ({"command": "bash", "args": ["-c", "id"]}, {"command": "python", "args": ["-c", "print(1)"]}):
        refused = api.post(SERVERS, headers=people["admin"].auth, json={"name": "x", "type": "stdio", "config": config})
        assert refused.status_code == 422
        assert error_code(refused) == "stdio_not_allowed"
    assert listed_names(api, people["admin"]) == []


# The outbound guard ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/mcp",
        "http://[fd00:ec2::254]/mcp",
        "http://127.0.0.1:1/mcp",
    ],
)
def test_internal_addresses_are_refused_at_registration_and_nothing_is_stored(
    api: TestClient, people: dict[str, User], url: str
) -> None:
    refused = api.post(SERVERS, headers=people["ada"].auth, json=http_server("internal", url))
    assert refused.status_code == 422, refused.text
    assert error_code(refused) == "url_not_allowed"
    assert listed_names(api, people["ada"]) == []


def test_loopback_is_refused_outside_dev_stages_even_over_https(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    production = settings_from_environ({"STAGE": "prod", "SIGNING_KEYS_SECRET": "s"})
    monkeypatch.setattr(service, "get_settings", lambda: production)
    for url in ("http://127.0.0.1:1/mcp", "https://127.0.0.1:1/mcp", "http://example.com/mcp"):
        refused = api.post(SERVERS, headers=people["ada"].auth, json=http_server("loop", url))
        assert refused.status_code == 422, refused.text
        assert error_code(refused) == "url_not_allowed"
    assert listed_names(api, people["ada"]) == []


def test_a_hostname_resolving_to_a_private_address_is_refused(api: TestClient, people: dict[str, User]) -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.215.14", "10.1.2.3"]

    previous = service.use_resolver(resolve)
    try:
        refused = api.post(SERVERS, headers=people["ada"].auth, json=http_server("intranet", "http://mcp.example.com/"))
    finally:
        service.use_resolver(previous)
    assert refused.status_code == 422
    assert error_code(refused) == "url_not_allowed"
    assert "private" in refused.json()["error"]["message"]
    assert asked == ["mcp.example.com"]
    assert listed_names(api, people["ada"]) == []


class RedirectingHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(307)
        self.send_header("Location", "http://10.0.0.1/mcp")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.usefixtures("loopback_allowed")
def test_a_server_redirecting_to_an_internal_address_is_not_followed(api: TestClient, people: dict[str, User]) -> None:
    redirector = ThreadingHTTPServer(("127.0.0.1", 0), RedirectingHandler)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{redirector.server_address[1]}/mcp"
        server = register_server(api, people["ada"], **http_server("redirector", url))
        tools = api.get(f"{SERVERS}/{server['id']}/tools", headers=people["ada"].auth)
        health = api.get(f"{SERVERS}/{server['id']}/health", headers=people["ada"].auth).json()
    finally:
        redirector.shutdown()
    assert tools.status_code == 422, tools.text
    assert error_code(tools) == "url_not_allowed"
    assert "does not follow" in tools.json()["error"]["message"]
    assert health["reachable"] is False
    assert health["error"]["code"] == "url_not_allowed"


# Who sees and changes what ----------------------------------------------------------------------------------------


def test_members_register_only_their_own_http_servers(api: TestClient, people: dict[str, User]) -> None:
    ada, viewer = people["ada"], people["viewer"]
    for body in (
        {"name": "time", "type": "stdio", "config": TIME_SERVER},
        http_server("shared", "https://mcp.example.com/", scope="stage"),
    ):
        refused = api.post(SERVERS, headers=ada.auth, json=body)
        assert refused.status_code == 403
        assert error_code(refused) == "permission_denied"
    assert api.get(SERVERS, headers=viewer.auth).status_code == 403
    assert api.post(SERVERS, headers=viewer.auth, json=http_server("v", "https://mcp.example.com/")).status_code == 403


@pytest.fixture
def public_resolver() -> Iterator[None]:
    """Every hostname resolves to a public address (nothing is called: the tests only register)."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    previous = service.use_resolver(resolve)
    yield
    service.use_resolver(previous)


@pytest.mark.usefixtures("public_resolver")
def test_a_personal_server_does_not_exist_for_anyone_else(api: TestClient, people: dict[str, User]) -> None:
    ada = people["ada"]
    mine = register_server(api, ada, **http_server("mine", "https://mcp.example.com/"))
    assert mine["scope"] == "user"
    assert mine["ownerId"] == ada.id
    path = f"{SERVERS}/{mine['id']}"
    for other in (people["bob"], people["admin"]):
        assert api.get(path, headers=other.auth).status_code == 404
        assert api.put(path, headers=other.auth, json={"enabled": False}).status_code == 404
        assert api.delete(path, headers=other.auth).status_code == 404
        for live in ("health", "tools", "resources", "prompts"):
            answer = api.get(f"{path}/{live}", headers=other.auth)
            assert answer.status_code == 404
            assert error_code(answer) == "mcp_server_not_found"
        call = api.post(f"{path}/tools/echo/call", headers=other.auth, json={"arguments": {}})
        assert call.status_code == 404
        assert "mine" not in listed_names(api, other)
    assert api.get(path, headers=ada.auth).json() == mine
    # An update passes the same checks as a registration, and a refused one changes nothing.
    moved = api.put(path, headers=ada.auth, json={"config": {"url": "http://169.254.169.254/latest/meta-data"}})
    assert moved.status_code == 422
    assert error_code(moved) == "url_not_allowed"
    wrong_kind = api.put(path, headers=ada.auth, json={"config": TIME_SERVER})
    assert wrong_kind.status_code == 422
    assert error_code(wrong_kind) == "config_mismatch"
    assert api.get(path, headers=ada.auth).json() == mine
    assert api.delete(path, headers=ada.auth).status_code == 204
    assert api.get(path, headers=ada.auth).status_code == 404


@pytest.mark.usefixtures("public_resolver")
def test_stage_servers_are_seen_by_members_and_changed_by_managers_only(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, ada = people["admin"], people["ada"]
    stage = register_server(api, admin, **http_server("docs", "https://docs.example.com/mcp", scope="stage"))
    register_server(api, ada, **http_server("mine", "https://mcp.example.com/"))
    assert listed_names(api, ada) == ["docs", "mine"]
    assert listed_names(api, people["bob"]) == ["docs"]
    path = f"{SERVERS}/{stage['id']}"
    assert api.put(path, headers=ada.auth, json={"enabled": False}).status_code == 403
    assert api.delete(path, headers=ada.auth).status_code == 403
    changed = api.put(path, headers=admin.auth, json={"enabled": False, "requireApproval": ["search"]})
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False
    assert changed.json()["requireApproval"] == ["search"]
    assert changed.json()["updatedAt"] > stage["updatedAt"]
    assert api.put(path, headers=admin.auth, json={"name": "renamed"}).status_code == 422
    assert api.delete(path, headers=admin.auth).status_code == 204
    assert listed_names(api, ada) == ["mine"]


@pytest.mark.usefixtures("public_resolver")
def test_a_name_is_unique_among_what_one_user_sees(api: TestClient, people: dict[str, User]) -> None:
    admin, ada, bob = people["admin"], people["ada"], people["bob"]
    register_server(api, ada, **http_server("github", "https://a.example.com/"))
    # Bob does not see Ada's server: he may take the name for his own.
    register_server(api, bob, **http_server("github", "https://b.example.com/"))
    again = api.post(SERVERS, headers=ada.auth, json=http_server("GitHub", "https://c.example.com/"))
    assert again.status_code == 409
    assert error_code(again) == "mcp_server_name_taken"
    # A stage server would be seen next to theirs: refused, and nothing is left behind.
    stage = api.post(SERVERS, headers=admin.auth, json=http_server("github", "https://d.example.com/", scope="stage"))
    assert stage.status_code == 409
    assert listed_names(api, admin) == []
    register_server(api, admin, **http_server("search", "https://e.example.com/", scope="stage"))
    mine = api.post(SERVERS, headers=ada.auth, json=http_server("search", "https://f.example.com/"))
    assert mine.status_code == 409


@pytest.mark.parametrize("name", ["a__b", "_a", "a_", "with space", "x" * 33, "tool.name", ""])
def test_names_that_cannot_prefix_a_tool_name_are_422(api: TestClient, people: dict[str, User], name: str) -> None:
    refused = api.post(SERVERS, headers=people["ada"].auth, json=http_server(name, "https://mcp.example.com/"))
    assert refused.status_code == 422


@pytest.mark.usefixtures("public_resolver")
def test_the_list_pages_through_stage_servers_then_the_callers_own(api: TestClient, people: dict[str, User]) -> None:
    admin, ada = people["admin"], people["ada"]
    for n in range(3):
        register_server(api, admin, **http_server(f"stage-{n}", "https://s.example.com/", scope="stage"))
    for n in range(2):
        register_server(api, ada, **http_server(f"own-{n}", "https://o.example.com/"))
    for limit in (1, 2, 3, 5):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = api.get(SERVERS, headers=ada.auth, params=params).json()
            assert len(page["items"]) <= limit
            seen += [server["name"] for server in page["items"]]
            if not (cursor := page["nextCursor"]):
                break
        assert seen == ["stage-0", "stage-1", "stage-2", "own-0", "own-1"], limit
    # Ada's cursor into her own servers is nothing to Bob.
    ada_cursor = api.get(SERVERS, headers=ada.auth, params={"limit": 4}).json()["nextCursor"]
    assert api.get(SERVERS, headers=people["bob"].auth, params={"cursor": ada_cursor}).status_code == 400


# Secrets -------------------------------------------------------------------------------------------------------


class HeaderRecorder:
    """An ASGI wrapper that keeps every request's Authorization header before the MCP app answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers.get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def recording_server() -> Iterator[tuple[str, HeaderRecorder]]:
    """A real MCP server (the SDK's own) over streamable HTTP with one tool, recording the headers it gets."""
    import uvicorn
    from mcp.server import MCPServer

    mcp = MCPServer("recorder")

    @mcp.tool()
    def ping() -> str:
        return "pong"

    recorder = HeaderRecorder(mcp.streamable_http_app())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the recording MCP server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp", recorder
    server.should_exit = True
    thread.join(timeout=10)


def raw_item(owner: User, server_id: str) -> dict[str, Any]:
    """A user's server item as DynamoDB holds it."""
    from shared.aws import client
    from shared.tables import MCP

    key = {"pk": {"S": f"USER#{owner.id}"}, "sk": {"S": f"SERVER#{server_id}"}}
    item: dict[str, Any] = client("dynamodb").get_item(TableName=MCP.name_from_env(), Key=key)["Item"]
    return item


@pytest.mark.usefixtures("loopback_allowed")
def test_header_secrets_are_sealed_masked_never_logged_and_really_sent(
    api: TestClient,
    people: dict[str, User],
    recording_server: tuple[str, HeaderRecorder],
) -> None:
    from shared.observability import logger

    url, recorder = recording_server
    ada = people["ada"]
    # Every log line the functions write, formatted as in Lambda (extras included), at every level.
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    try:
        body = http_server("recorder", url)
        body["config"]["headers"] = {"Authorization": SECRET, "X-Team": "blue"}
        created = register_server(api, ada, **body)
        path = f"{SERVERS}/{created['id']}"
        answers = [created, api.get(path, headers=ada.auth).json(), api.get(SERVERS, headers=ada.auth).json()]
        assert created["config"]["headers"] == {"Authorization": "••••••", "X-Team": "••••••"}

        recorder.seen.clear()
        call = api.post(f"{path}/tools/ping/call", headers=ada.auth, json={"arguments": {}})
        assert call.status_code == 200, call.text
        assert call.json()["content"][0]["text"] == "pong"
        assert recorder.seen
        assert set(recorder.seen) == {SECRET}

        # Sent back as shown, the mask keeps the stored value; a new value replaces it.
        kept = api.put(path, headers=ada.auth, json={"config": {"url": url, "headers": {"Authorization": "••••••"}}})
        assert kept.status_code == 200, kept.text
        assert kept.json()["config"]["headers"] == {"Authorization": "••••••"}
        answers.append(kept.json())
        recorder.seen.clear()
        assert api.get(f"{path}/tools", headers=ada.auth).status_code == 200
        assert set(recorder.seen) == {SECRET}
        renamed = api.put(path, headers=ada.auth, json={"displayName": "Recorder"})
        answers.append(renamed.json())
        recorder.seen.clear()
        assert api.get(f"{path}/health", headers=ada.auth).json()["reachable"] is True
        assert set(recorder.seen) == {SECRET}

        unknown = api.put(path, headers=ada.auth, json={"config": {"url": url, "headers": {"X-New": "••••••"}}})
        assert unknown.status_code == 422
        assert error_code(unknown) == "unknown_secret"
        replaced = api.put(
            path, headers=ada.auth, json={"config": {"url": url, "headers": {"Authorization": "Bearer new"}}}
        )
        answers.append(replaced.json())
        recorder.seen.clear()
        api.get(f"{path}/tools", headers=ada.auth)
        assert set(recorder.seen) == {"Bearer new"}
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)
    logs = lines.getvalue()
    assert "MCP server registered" in logs
    assert "MCP server changed" in logs
    for text in [json.dumps(answer) for answer in answers] + [logs]:
        assert "s3cret" not in text
        assert "Bearer new" not in text
    stored = json.dumps(raw_item(ada, created["id"]))
    assert "sealedSecrets" in stored
    assert "Authorization" in stored
    assert "s3cret" not in stored
    assert "Bearer new" not in stored
    assert "blue" not in stored


def test_a_sealed_secret_does_not_open_on_another_record_or_context(aws: None) -> None:
    from shared.secrets import SecretUnreadable, seal, unseal

    sealed = seal({"Authorization": SECRET}, context="mcp", record="01SERVERA")
    assert unseal(sealed, context="mcp", record="01SERVERA") == {"Authorization": SECRET}
    assert SECRET not in sealed
    for context, record in (("mcp", "01SERVERB"), ("channels", "01SERVERA")):
        with pytest.raises(SecretUnreadable):
            unseal(sealed, context=context, record=record)


def test_a_container_asks_kms_once_per_sealed_secret(aws: None) -> None:
    from botocore.client import BaseClient

    from shared.secrets import seal, unseal

    sealed = seal({"Authorization": SECRET}, context="mcp", record="01SERVERA")
    resealed = seal({"Authorization": "Bearer rotated"}, context="mcp", record="01SERVERA")
    decrypts: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "Decrypt":
            decrypts.append(operation)
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counting):
        opened = [unseal(sealed, context="mcp", record="01SERVERA") for _ in range(3)]
        opened[0]["Authorization"] = "changed by a caller"
        again = unseal(sealed, context="mcp", record="01SERVERA")
        rotated = unseal(resealed, context="mcp", record="01SERVERA")

    assert len(decrypts) == 2  # one per ciphertext: a changed secret is a new ciphertext, opened anew
    assert again == {"Authorization": SECRET}  # a caller's copy is its own
    assert rotated == {"Authorization": "Bearer rotated"}


# For chat -------------------------------------------------------------------------------------------------------


def principal_of(user: User, api: TestClient) -> Principal:
    from shared.auth.verify import verify_authorization_header

    return verify_authorization_header(user.auth["authorization"])


@pytest.mark.usefixtures("public_resolver")
def test_servers_for_chat_are_the_enabled_visible_ones_unsealed_in_one_read(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, ada, bob = people["admin"], people["ada"], people["bob"]
    stage = register_server(
        api, admin, **http_server("docs", "https://docs.example.com/mcp", scope="stage", requireApproval=True)
    )
    off = register_server(api, admin, **http_server("off", "https://off.example.com/", scope="stage", enabled=False))
    body = http_server("mine", "https://mcp.example.com/", requireApproval=["delete_repo"])
    body["config"]["headers"] = {"Authorization": SECRET}
    mine = register_server(api, ada, **body)
    theirs = register_server(api, bob, **http_server("theirs", "https://b.example.com/"))
    ids = [mine["id"], "01UNKNOWN0000000000000000", stage["id"], off["id"], theirs["id"], "not-an-id"]

    from botocore.client import BaseClient

    calls: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return make_api_call(self, operation, params)

    principal = principal_of(ada, api)
    with patch.object(BaseClient, "_make_api_call", counting):
        servers = service.servers_for_chat(principal, ids)
    assert calls == ["BatchGetItem"]
    assert [server.name for server in servers] == ["mine", "docs"]
    assert servers[0].server == HttpServer("https://mcp.example.com/", headers={"Authorization": SECRET})
    assert servers[0].require_approval == frozenset({"delete_repo"})
    assert servers[0].needs_approval("delete_repo")
    assert not servers[0].needs_approval("list_repos")
    assert servers[1].require_approval is True
    assert servers[1].id == stage["id"]

    before = servers[1].version
    api.put(f"{SERVERS}/{stage['id']}", headers=admin.auth, json={"displayName": "Docs"})
    assert service.servers_for_chat(principal, [stage["id"]])[0].version != before
    assert service.servers_for_chat(principal, []) == []
    viewer = principal_of(people["viewer"], api)
    assert service.servers_for_chat(viewer, [stage["id"]]) == []


@pytest.mark.usefixtures("public_resolver")
def test_a_users_servers_export_without_secrets_and_go_with_their_account(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, ada = people["admin"], people["ada"]
    stage = register_server(api, admin, **http_server("docs", "https://docs.example.com/mcp", scope="stage"))
    body = http_server("mine", "https://mcp.example.com/")
    body["config"]["headers"] = {"Authorization": SECRET}
    register_server(api, ada, **body)

    for number in range(3):
        register_server(api, ada, **http_server(f"more-{number}", "https://mcp.example.com/"))
    bob_own = register_server(api, people["bob"], **http_server("mine", "https://mcp.example.com/"))

    exported, _ = export_all(jobs.export_page, ada.id, "mcp-servers", limit=2)
    assert sorted(server["name"] for server in exported) == ["mine", "more-0", "more-1", "more-2"]
    mine = next(server for server in exported if server["name"] == "mine")
    assert mine["config"]["headers"] == {"Authorization": "••••••"}
    assert "s3cret" not in json.dumps(exported)

    assert delete_all(jobs.delete_page, ada.id, limit=4) == (4 * 2, 2)  # each server and its name, two a page
    assert jobs.delete_page(ada.id, None, 4).deleted == 0
    assert jobs.export_page(ada.id, None, 100).records == {}
    assert api.get(f"{SERVERS}/{bob_own['id']}", headers=people["bob"].auth).status_code == 200
    assert listed_names(api, ada) == ["docs"]
    assert api.get(f"{SERVERS}/{stage['id']}", headers=ada.auth).status_code == 200
    # The name is free again.
    register_server(api, ada, **http_server("mine", "https://mcp.example.com/"))


@pytest.mark.usefixtures("public_resolver")
def test_a_stage_and_a_personal_server_registered_at_once_never_share_a_name(
    api: TestClient, people: dict[str, User]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    admin, ada = people["admin"], people["ada"]
    for round_ in range(4):
        name = f"race-{round_}"
        bodies = [
            (admin, http_server(name, "https://s.example.com/", scope="stage")),
            (ada, http_server(name, "https://o.example.com/")),
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(
                pool.map(lambda sent: api.post(SERVERS, headers=sent[0].auth, json=sent[1]).status_code, bodies)
            )
        assert sorted(statuses) == [201, 409], statuses
        assert listed_names(api, ada).count(name) == statuses.count(201)


@pytest.fixture
def anthropic_model(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    """The stage's model: the fake Anthropic API, scripted by the test."""
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


def offered_tool_names(model: FakeAnthropic) -> list[str]:
    body = model.last_request.body or {}
    return [tool["name"] for tool in body.get("tools", [])]


@pytest.mark.usefixtures("loopback_allowed")
def test_chat_uses_a_registered_server_the_user_enabled(
    api: TestClient,
    people: dict[str, User],
    everything_url: str,
    anthropic_model: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin, ada, anthropic = people["admin"], people["ada"], anthropic_model
    server = register_server(api, admin, **http_server("everything", everything_url, scope="stage"))
    enable_for(api, ada, server["id"])
    anthropic.tool_call("everything__get-sum", {"a": 19, "b": 23}, id="call_sum", text="Adding. ")
    anthropic.reply("The sum: {tool_result}")

    events = events_of(api, ada, {"message": "What is 19 + 23?"})

    assert kinds(events) == ["start", "tool_use", "tool_result", "usage", "end"]
    result = next(event for event in events if event["type"] == "tool_result")
    assert "42" in result["content"]
    assert result["isError"] is False
    assert "42" in text_of(events)
    # Within the refresh window the container reuses what the registry answered: no read before the model.
    registry_reads: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "BatchGetItem":
            registry_reads.extend(params["RequestItems"])
        return make_api_call(self, operation, params)

    anthropic.reply("Still here.")
    monkeypatch.setattr(tools, "SERVERS_REFRESH_SECONDS", 60.0)  # however long the first reply took
    with patch.object(BaseClient, "_make_api_call", counting):
        again = events_of(api, ada, {"message": "Again?"})
    assert kinds(again) == ["start", "usage", "end"]
    assert "everything__get-sum" in offered_tool_names(anthropic)
    assert [table for table in registry_reads if table.endswith("-mcp")] == []
    # Disabled in the registry, it no longer reaches chat once the window has passed.
    api.put(f"{SERVERS}/{server['id']}", headers=admin.auth, json={"enabled": False})
    monkeypatch.setattr(tools, "SERVERS_REFRESH_SECONDS", 0.0)
    anthropic.reply("No tools today.")
    assert kinds(events_of(api, ada, {"message": "And now?"})) == ["start", "usage", "end"]
    assert offered_tool_names(anthropic) == []
