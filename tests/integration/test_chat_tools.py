"""Chat's MCP tool loop through the API: the fake Anthropic and OpenAI models ask for tools, real MCP servers answer
(server-everything over streamable HTTP, mcp-server-time and the project's misbehaving server over stdio), and
the model's next reply uses what the tool returned."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.chat import tools
from shared.mcp_client import HttpServer, McpSession, StdioServer, ToolServer
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.scripted import ScriptedServer
from tests.integration.conftest import MISBEHAVING, TIME_SERVER, User, error_code, free_port, register

STREAM = "/api/v1/ai/chat/stream"
Enable = Callable[[ToolServer], str]
VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def misbehaving(server_id: str = "misbehaving", **options: Any) -> ToolServer:
    return ToolServer(server_id, server_id, StdioServer("python", (str(MISBEHAVING),)), **options)


@pytest.fixture(params=["anthropic", "openai"])
def model(
    request: pytest.FixtureRequest,
    anthropic_fake: FakeAnthropic,
    openai_fake: FakeOpenAI,
    llm_environment: Callable[..., None],
) -> ScriptedServer:
    """The fake model serving the stage: Anthropic's API or OpenAI's."""
    if request.param == "anthropic":
        llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
        return anthropic_fake
    llm_environment(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=openai_fake.base_url)
    return openai_fake


@pytest.fixture
def anthropic(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


@pytest.fixture
def user(api: TestClient) -> User:
    """The stage's first account, so an admin: stdio and stage-wide servers are theirs to register."""
    return register(api, "toolsmith@example.com")


@pytest.fixture
def enabled_mcp_servers(api: TestClient, user: User, monkeypatch: pytest.MonkeyPatch) -> Iterator[Enable]:
    """`enable(server)`: registers `server` (its name, connection and approvals) in the MCP registry through its
    route, as a stage-wide server, and returns its id; the same name again updates the registration (a new
    version). The user still enables it in their settings. The stage allows the project's misbehaving stdio server
    and servers on loopback, where the test servers run."""
    allowed = f'[["python", "-m", "mcp_server_time"], ["python", "{MISBEHAVING}"]]'
    monkeypatch.setenv("MCP_STDIO_ALLOWED", allowed)
    monkeypatch.setenv("MCP_ALLOW_PRIVATE", "true")
    # Every reply reads the registry, so a changed registration shows at once (the window is tested with the registry).
    monkeypatch.setattr(tools, "SERVERS_REFRESH_SECONDS", 0.0)
    get_settings.cache_clear()
    tools.forget_tool_lists()
    ids: dict[str, str] = {}

    def enable(server: ToolServer) -> str:
        connection = server.server
        if isinstance(connection, HttpServer):
            kind, config = "http", {"url": connection.url, "headers": dict(connection.headers)}
        else:
            kind, config = "stdio", {"command": connection.command, "args": list(connection.args)}
        approval = server.require_approval
        body = {"config": config, "requireApproval": sorted(approval) if isinstance(approval, frozenset) else approval}
        if server.name in ids:
            response = api.put(f"/api/v1/mcp/servers/{ids[server.name]}", headers=user.auth, json=body)
            assert response.status_code == 200, response.text
        else:
            registration = {"name": server.name, "type": kind, "scope": "stage", **body}
            response = api.post("/api/v1/mcp/servers", headers=user.auth, json=registration)
            assert response.status_code == 201, response.text
            ids[server.name] = response.json()["id"]
        return ids[server.name]

    yield enable
    tools.forget_tool_lists()
    monkeypatch.undo()
    get_settings.cache_clear()


def enable_for(api: TestClient, user: User, *server_ids: str) -> None:
    response = api.put("/api/v1/users/settings", headers=user.auth, json={"enabledMcpServers": list(server_ids)})
    assert response.status_code == 200, response.text


def events_of(
    api: TestClient, user: User, body: dict[str, Any], on_event: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    events = []
    with api.stream("POST", STREAM, headers=user.auth, json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if on_event is not None:
                    on_event(events[-1])
    return events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(event["delta"] for event in events if event["type"] == "content")


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events if event["type"] != "content"]


def offered_tools(body: dict[str, Any] | None) -> list[str]:
    """The tool names a model request offered, in Anthropic's or OpenAI's format."""
    assert body is not None
    return [tool.get("name") or tool["function"]["name"] for tool in body.get("tools", [])]


def tool_results_sent(body: dict[str, Any] | None) -> list[str]:
    """The tool results a model request carried, in Anthropic's or OpenAI's format."""
    assert body is not None
    found = []
    for message in body["messages"]:
        if message.get("role") == "tool":
            found.append(str(message["content"]))
        elif isinstance(message.get("content"), list):
            found += [str(b["content"]) for b in message["content"] if b.get("type") == "tool_result"]
    return found


def stored_reply(api: TestClient, user: User, conversation_id: str) -> dict[str, Any]:
    conversation = api.get(f"/api/v1/conversations/{conversation_id}", headers=user.auth)
    assert conversation.status_code == 200, conversation.text
    return dict(conversation.json()["messages"]["items"][-1])


def test_a_tool_round_streams_the_call_its_result_and_an_answer_that_uses_it(
    api: TestClient, user: User, model: ScriptedServer, everything_url: str, enabled_mcp_servers: Enable
) -> None:
    enable_for(api, user, enabled_mcp_servers(ToolServer("srv-1", "everything", HttpServer(everything_url))))
    model.tool_call("everything__echo", {"message": "hello from Stratus"}, id="call_echo", text="Let me ask. ")
    model.reply("The server said: {tool_result}")

    events = events_of(api, user, {"message": "Echo something"})

    assert kinds(events) == ["start", "tool_use", "tool_result", "usage", "end"]
    tool_use = next(e for e in events if e["type"] == "tool_use")
    assert tool_use == {"type": "tool_use", "toolCallId": "call_echo", "toolName": "everything__echo",
                        "toolInput": {"message": "hello from Stratus"}}  # fmt: skip
    result = next(e for e in events if e["type"] == "tool_result")
    assert result == {"type": "tool_result", "toolCallId": "call_echo", "content": "Echo: hello from Stratus",
                      "isError": False}  # fmt: skip
    assert text_of(events) == "Let me ask. The server said: Echo: hello from Stratus"
    assert events[-1]["stopReason"] == "end_turn"

    first, second = model.requests[-2:]
    names = offered_tools(first.body)
    assert {"everything__echo", "everything__get-sum"} <= set(names)
    assert all(VALID_NAME.match(name) for name in names)
    assert tool_results_sent(second.body) == ["Echo: hello from Stratus"]

    reply = stored_reply(api, user, events[0]["conversationId"])
    assert reply["id"] == events[0]["messageId"]
    assert reply["content"] == "Let me ask. The server said: Echo: hello from Stratus"
    assert reply["metadata"]["toolCalls"] == [
        {"toolCallId": "call_echo", "toolName": "everything__echo", "toolInput": {"message": "hello from Stratus"},
         "content": "Echo: hello from Stratus", "isError": False}
    ]  # fmt: skip


def test_two_rounds_over_two_servers_and_every_stdio_child_ends_with_the_reply(
    api: TestClient, user: User, anthropic: FakeAnthropic, everything_url: str, enabled_mcp_servers: Enable
) -> None:
    enable_for(
        api,
        user,
        enabled_mcp_servers(ToolServer("srv-1", "everything", HttpServer(everything_url))),
        enabled_mcp_servers(ToolServer("srv-2", "time", TIME_SERVER)),
        enabled_mcp_servers(misbehaving()),
    )
    anthropic.tool_call("misbehaving__pid", {}, id="call_pid")
    anthropic.tool_call("time__get_current_time", {"timezone": "UTC"}, id="call_time")
    anthropic.tool_call("everything__get-sum", {"a": 19, "b": 23}, id="call_sum")
    anthropic.reply("Sum: {tool_result}")

    events = events_of(api, user, {"message": "Add 19 and 23"})

    assert kinds(events) == ["start", *["tool_use", "tool_result"] * 3, "usage", "end"]
    results = {e["toolCallId"]: e for e in events if e["type"] == "tool_result"}
    assert not any(result["isError"] for result in results.values())
    assert "UTC" in results["call_time"]["content"]
    assert "42" in text_of(events)
    assert len(anthropic.requests) == 4
    # The reply's stdio sessions are closed with it: the server that reported its pid is gone.
    child = int(results["call_pid"]["content"])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    stored = stored_reply(api, user, events[0]["conversationId"])["metadata"]["toolCalls"]
    assert [call["toolCallId"] for call in stored] == ["call_pid", "call_time", "call_sum"]


def test_the_loop_stops_after_eight_model_rounds(
    api: TestClient, user: User, anthropic: FakeAnthropic, everything_url: str, enabled_mcp_servers: Enable
) -> None:
    enable_for(api, user, enabled_mcp_servers(ToolServer("srv-1", "everything", HttpServer(everything_url))))
    for round_number in range(10):
        anthropic.tool_call("everything__echo", {"message": f"round {round_number}"}, id=f"call_{round_number}")

    events = events_of(api, user, {"message": "Loop forever"})

    assert len(anthropic.requests) == 8
    results = [e for e in events if e["type"] == "tool_result"]
    assert len(results) == 8
    assert [r["isError"] for r in results] == [False] * 7 + [True]
    assert "limit of 8 model rounds" in results[-1]["content"]
    assert events[-1] == {"type": "end", "stopReason": "max_tool_rounds"}


def test_a_hanging_tool_times_out_and_the_reply_finishes(
    api: TestClient,
    user: User,
    anthropic: FakeAnthropic,
    enabled_mcp_servers: Enable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.settings import get_settings

    monkeypatch.setenv("MCP_CALL_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    enable_for(api, user, enabled_mcp_servers(misbehaving()))
    anthropic.tool_call("misbehaving__hang", {"seconds": 60}, id="call_hang")
    anthropic.reply("The tool failed: {tool_result}")

    events = events_of(api, user, {"message": "Wait for it"})

    result = next(e for e in events if e["type"] == "tool_result")
    assert result["isError"] is True
    assert "did not answer the call of hang within 1 s" in result["content"]
    assert text_of(events).startswith("The tool failed: the MCP server did not answer")
    assert events[-1]["stopReason"] == "end_turn"


class LogLines(logging.Handler):
    """What the functions' logger writes, each record with its extra keys."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()} {record.__dict__}")


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    from shared.observability import logger

    handler = LogLines()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_server_that_is_down_leaves_its_tools_out_and_chat_still_answers(
    api: TestClient,
    user: User,
    *,
    anthropic: FakeAnthropic,
    everything_url: str,
    enabled_mcp_servers: Enable,
    log_lines: LogLines,
) -> None:
    down = f"http://127.0.0.1:{free_port()}/mcp?token=secret-in-query"
    down_id = enabled_mcp_servers(ToolServer("srv-down", "down", HttpServer(down, {"authorization": "Bearer hush"})))
    enable_for(api, user, down_id, enabled_mcp_servers(ToolServer("srv-1", "everything", HttpServer(everything_url))))
    anthropic.reply("Answered anyway.")

    events = events_of(api, user, {"message": "Hello?"})

    assert text_of(events) == "Answered anyway."
    names = offered_tools(anthropic.last_request.body)
    assert "everything__echo" in names
    assert not [name for name in names if name.startswith("down__")]
    (warning,) = [line for line in log_lines.lines if "left out" in line]
    assert warning.startswith("WARNING")
    assert down_id in warning
    assert "could not be reached" in warning
    assert not [line for line in log_lines.lines if "secret-in-query" in line or "hush" in line]


def test_a_five_megabyte_output_reaches_the_model_cut(
    api: TestClient, user: User, anthropic: FakeAnthropic, enabled_mcp_servers: Enable
) -> None:
    enable_for(api, user, enabled_mcp_servers(misbehaving()))
    anthropic.tool_call("misbehaving__flood", {"megabytes": 5}, id="call_flood")
    anthropic.reply("Got it.")

    events = events_of(api, user, {"message": "Flood me"})

    (sent,) = tool_results_sent(anthropic.last_request.body)
    assert 60 * 1024 < len(sent.encode()) <= 66 * 1024
    assert sent.startswith("xxxx")
    assert "[output cut: the tool returned" in sent
    streamed = next(e for e in events if e["type"] == "tool_result")
    assert len(streamed["content"].encode()) <= 66 * 1024
    stored = stored_reply(api, user, events[0]["conversationId"])["metadata"]["toolCalls"][0]
    assert len(stored["content"].encode()) <= tools.STORED_RESULT_BYTES + 100


# Approvals --------------------------------------------------------------------------------------------------


def approval_url(message_id: str) -> str:
    return f"/api/v1/ai/chat/{message_id}/tool-approvals"


@pytest.mark.parametrize("approved", [True, False])
def test_a_tool_that_needs_approval_waits_for_the_users_answer(
    api: TestClient, user: User, *, model: ScriptedServer, everything_url: str, enabled_mcp_servers: Enable,
    approved: bool,
) -> None:  # fmt: skip
    server = ToolServer("srv-1", "everything", HttpServer(everything_url), require_approval=frozenset({"echo"}))
    enable_for(api, user, enabled_mcp_servers(server))
    model.tool_call("everything__echo", {"message": "may I?"}, id="call_ask")
    model.reply("Result: {tool_result}")
    other = register(api, "nosy@example.com")
    answers: list[Any] = []

    def answer(event: dict[str, Any]) -> None:
        if event["type"] == "start":
            answers.append(event["messageId"])
        if event["type"] == "tool_approval":
            url = approval_url(answers[0])
            nosy = api.post(url, headers=other.auth, json={"toolCallId": "call_ask", "approved": True})
            answers.append(nosy)
            answers.append(api.post(url, headers=user.auth, json={"toolCallId": "call_ask", "approved": approved}))
            answers.append(api.post(url, headers=user.auth, json={"toolCallId": "call_ask", "approved": approved}))

    events = events_of(api, user, {"message": "Echo, with permission"}, on_event=answer)

    assert kinds(events) == ["start", "tool_use", "tool_approval", "tool_result", "usage", "end"]
    approval = next(e for e in events if e["type"] == "tool_approval")
    assert approval == {"type": "tool_approval", "toolCallId": "call_ask", "toolName": "everything__echo",
                        "toolInput": {"message": "may I?"}}  # fmt: skip
    _, nosy, answered, again = answers
    assert (nosy.status_code, error_code(nosy)) == (404, "approval_not_found")
    assert answered.status_code == 200
    assert answered.json() == {"toolCallId": "call_ask", "approved": approved}
    assert (again.status_code, error_code(again)) == (409, "approval_answered")
    result = next(e for e in events if e["type"] == "tool_result")
    if approved:
        assert (result["content"], result["isError"]) == ("Echo: may I?", False)
    else:
        assert (result["content"], result["isError"]) == ("The user refused this tool call", True)
    assert text_of(events) == f"Result: {result['content']}"
    stored = stored_reply(api, user, events[0]["conversationId"])["metadata"]["toolCalls"]
    assert stored[0]["approved"] is approved


def test_an_approval_nobody_answers_is_refused_in_time(
    api: TestClient,
    user: User,
    *,
    anthropic: FakeAnthropic,
    everything_url: str,
    enabled_mcp_servers: Enable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tools, "APPROVAL_WAIT_SECONDS", 0.5)
    server = ToolServer("srv-1", "everything", HttpServer(everything_url), require_approval=True)
    enable_for(api, user, enabled_mcp_servers(server))
    anthropic.tool_call("everything__echo", {"message": "anyone?"}, id="call_late")
    anthropic.reply("Result: {tool_result}")

    events = events_of(api, user, {"message": "Echo"})

    result = next(e for e in events if e["type"] == "tool_result")
    assert (result["content"], result["isError"]) == ("No answer within 5 minutes", True)
    late = api.post(approval_url(events[0]["messageId"]), headers=user.auth,
                    json={"toolCallId": "call_late", "approved": True})  # fmt: skip
    assert (late.status_code, error_code(late)) == (409, "approval_answered")
    unknown = api.post(approval_url(events[0]["messageId"]), headers=user.auth,
                       json={"toolCallId": "call_other", "approved": True})  # fmt: skip
    assert unknown.status_code == 404


def test_the_buffered_route_runs_tools_and_refuses_those_that_need_approval(
    api: TestClient, user: User, anthropic: FakeAnthropic, everything_url: str, enabled_mcp_servers: Enable
) -> None:
    free = ToolServer("srv-1", "everything", HttpServer(everything_url))
    guarded = ToolServer("srv-2", "guarded", HttpServer(everything_url), require_approval=True)
    enable_for(api, user, enabled_mcp_servers(free), enabled_mcp_servers(guarded))
    anthropic.tool_call("everything__echo", {"message": "buffered"}, id="call_free")
    anthropic.tool_call("guarded__echo", {"message": "guarded"}, id="call_guarded")
    anthropic.reply("Last: {tool_result}")

    response = api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "Echo twice"})

    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"].startswith("Last: This tool needs the user's approval")
    assert tool_results_sent(anthropic.requests[1].body) == ["Echo: buffered"]
    stored = stored_reply(api, user, response.json()["conversationId"])["metadata"]["toolCalls"]
    assert [(call["toolName"], call["isError"]) for call in stored] == [
        ("everything__echo", False),
        ("guarded__echo", True),
    ]


# The tool-list cache -------------------------------------------------------------------------------------------


@pytest.fixture
def tool_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `tools/list` sent to a server (the real call still runs)."""
    listed: list[str] = []
    list_tools = McpSession.list_tools

    async def counted(session: McpSession) -> list[dict[str, Any]]:
        listed.append("tools/list")
        return await list_tools(session)

    monkeypatch.setattr(McpSession, "list_tools", counted)
    return listed


def test_tool_lists_are_cached_until_a_server_says_they_changed_or_five_minutes_pass(
    api: TestClient, user: User, anthropic: FakeAnthropic, enabled_mcp_servers: Enable, tool_listings: list[str]
) -> None:
    enable_for(api, user, enabled_mcp_servers(misbehaving()))

    events_of(api, user, {"message": "first"})
    assert len(tool_listings) == 1
    events_of(api, user, {"message": "second"})
    assert len(tool_listings) == 1  # cached: no tools/list before the model
    assert "misbehaving__flood" in offered_tools(anthropic.last_request.body)

    anthropic.tool_call("misbehaving__announce_tools_changed", {}, id="call_change")
    events = events_of(api, user, {"message": "change them"})
    assert next(e for e in events if e["type"] == "tool_result")["content"] == "announced"
    events_of(api, user, {"message": "after the change"})
    assert len(tool_listings) == 2

    for key, cached in list(tools._tool_lists.items()):
        tools._tool_lists[key] = replace(cached, fetched_at=cached.fetched_at - tools.TOOL_LIST_SECONDS - 1)
    events_of(api, user, {"message": "five minutes later"})
    assert len(tool_listings) == 3


def test_a_new_server_version_is_listed_again(
    api: TestClient, user: User, anthropic: FakeAnthropic, enabled_mcp_servers: Enable, tool_listings: list[str]
) -> None:
    enable_for(api, user, enabled_mcp_servers(misbehaving(version="1")))
    events_of(api, user, {"message": "first"})
    enabled_mcp_servers(misbehaving(version="2"))
    events_of(api, user, {"message": "second"})
    assert len(tool_listings) == 2


# Over the WebSocket -----------------------------------------------------------------------------------------


def test_a_tool_approval_answered_over_the_websocket(
    api: TestClient,
    user: User,
    *,
    anthropic: FakeAnthropic,
    everything_url: str,
    enabled_mcp_servers: Enable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.realtime import connections, handler, worker
    from tests.integration.test_realtime import StubManagementApi, connect_as, lambda_context, send

    management = StubManagementApi()
    monkeypatch.setattr(connections, "management_client", lambda _endpoint: management)
    invocations: list[dict[str, Any]] = []
    monkeypatch.setattr(handler, "invoke_worker", invocations.append)
    server = ToolServer("srv-1", "everything", HttpServer(everything_url), require_approval=True)
    enable_for(api, user, enabled_mcp_servers(server))
    anthropic.tool_call("everything__echo", {"message": "over the socket"}, id="call_ws")
    anthropic.reply("Result: {tool_result}")

    connect_as(user, "c-tools")
    send("c-tools", {"action": "chat:send", "message": "Echo over WebSocket"})
    results: list[dict[str, Any]] = []
    replying = threading.Thread(target=lambda: results.append(worker.lambda_handler(invocations[0], lambda_context())))
    replying.start()
    try:
        approval = wait_for_frame(management, "c-tools", "tool_approval")
        frame = {"action": "chat:tool-approval", "messageId": approval["messageId"], "toolCallId": "call_ws"}
        send("c-tools", {**frame, "approved": True})
    finally:
        replying.join(timeout=60)
    assert results[0]["status"] == "sent"
    events = [f["data"] for f in management.frames("c-tools", "chat:response")]
    assert kinds(events) == ["start", "tool_use", "tool_approval", "tool_result", "usage", "end"]
    assert text_of(events) == "Result: Echo: over the socket"
    send("c-tools", {**frame, "approved": False})
    (refused,) = management.frames("c-tools", "chat:error")
    assert refused["data"]["code"] == "approval_answered"


def wait_for_frame(management: Any, connection_id: str, kind: str) -> dict[str, Any]:
    done = threading.Event()
    for _ in range(600):
        found = [f["data"] for f in management.frames(connection_id, "chat:response") if f["data"]["type"] == kind]
        if found:
            return dict(found[0])
        done.wait(0.05)
    raise AssertionError(f"no {kind} frame")
