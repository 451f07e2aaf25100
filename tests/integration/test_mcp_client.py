"""The MCP client against real servers: server-everything over streamable HTTP, mcp-server-time over stdio, and a
project-written stdio server that hangs, floods and reports its environment."""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.errors import McpServerFailed, McpServerTimedOut, ValidationFailed
from shared.mcp_client import HttpServer, McpLimits, McpServer, StdioServer, mcp_session, server_health
from shared.settings import Settings, settings_from_environ
from tests.integration.conftest import MISBEHAVING, ROOT, TIME_SERVER, dev_settings, free_port


def test_an_http_server_lists_calls_reads_and_renders(everything_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with mcp_session(HttpServer(everything_url), settings=dev_settings()) as session:
            return {
                "tools": await session.list_tools(),
                "echo": await session.call_tool("echo", {"message": "hello from Stratus"}),
                "sum": await session.call_tool("get-sum", {"a": 19, "b": 23}),
                "resources": await session.list_resources(),
                "resource": await session.read_resource("demo://resource/dynamic/text/1"),
                "prompts": await session.list_prompts(),
                "prompt": await session.get_prompt("args-prompt", {"city": "Lisbon"}),
            }

    result = asyncio.run(scenario())
    tools = {tool["name"]: tool for tool in result["tools"]}
    assert {"echo", "get-sum", "trigger-long-running-operation"} <= set(tools)
    assert tools["get-sum"]["inputSchema"]["properties"].keys() >= {"a", "b"}
    assert result["echo"] == {"content": [{"type": "text", "text": "Echo: hello from Stratus"}], "isError": False}
    assert "42" in result["sum"]["content"][0]["text"]
    assert result["resources"]
    assert all("uri" in resource for resource in result["resources"])
    assert result["resource"]["contents"][0]["uri"] == "demo://resource/dynamic/text/1"
    assert "Resource 1" in result["resource"]["contents"][0]["text"]
    assert "args-prompt" in {prompt["name"] for prompt in result["prompts"]}
    assert "Lisbon" in str(result["prompt"]["messages"])


def test_an_http_server_reports_its_health(everything_url: str) -> None:
    health = asyncio.run(server_health(HttpServer(everything_url), settings=dev_settings()))
    assert health["reachable"] is True
    assert health["tools"] >= 10
    assert health["serverInfo"]["name"] == "mcp-servers/everything"
    assert health["protocolVersion"]
    assert health["latencyMs"] > 0


def test_a_hanging_http_call_times_out_at_its_deadline(everything_url: str) -> None:
    async def scenario() -> None:
        async with mcp_session(
            HttpServer(everything_url), settings=dev_settings(), limits=McpLimits(call_timeout_seconds=1)
        ) as session:
            await session.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 2})

    with pytest.raises(McpServerTimedOut, match="trigger-long-running-operation within 1 s") as caught:
        asyncio.run(scenario())
    assert caught.value.status == 504


def test_a_loopback_http_server_is_refused_outside_dev_stages(everything_url: str) -> None:
    https_url = everything_url.replace("http://", "https://")
    production = dev_settings(STAGE="prod", SIGNING_KEYS_SECRET="s", MCP_ALLOW_PRIVATE="false")
    with pytest.raises(ValidationFailed, match="loopback") as caught:
        asyncio.run(_connect(HttpServer(https_url), production))
    assert caught.value.error_code == "url_not_allowed"
    health = asyncio.run(server_health(HttpServer(https_url), settings=production))
    assert health["reachable"] is False
    assert health["error"]["code"] == "url_not_allowed"


def test_a_server_that_is_down_gives_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"

    async def scenario() -> None:
        async with mcp_session(HttpServer(url), settings=dev_settings()) as session:
            await session.list_tools()

    with pytest.raises(McpServerFailed, match="could not be reached") as caught:
        asyncio.run(scenario())
    assert caught.value.status == 502
    health = asyncio.run(server_health(HttpServer(url), settings=dev_settings()))
    assert health["reachable"] is False
    assert health["error"]["code"] == "mcp_unavailable"


def test_the_time_server_answers_over_stdio() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with mcp_session(TIME_SERVER, settings=dev_settings()) as session:
            return await session.list_tools(), await session.call_tool("get_current_time", {"timezone": "UTC"})

    tools, now = asyncio.run(scenario())
    assert {tool["name"] for tool in tools} == {"get_current_time", "convert_time"}
    assert now["isError"] is False
    assert now["structuredContent"]["timezone"] == "UTC"
    health = asyncio.run(server_health(TIME_SERVER, settings=dev_settings()))
    assert health["reachable"] is True
    assert health["tools"] == 2


def test_the_fetch_server_the_stage_ships_refuses_internal_addresses_unless_told_otherwise() -> None:
    page = b"<html><body><p>Stratus fetched this page.</p></body></html>"

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/page"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page if found else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/page"

    def fetch(*options: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        fetcher = StdioServer("python", ("-m", "mcp_server_fetch", *options))
        allowed = '[["python", "-m", "mcp_server_fetch"]]'  # the stage's default entry: any options may follow
        settings = settings_from_environ({"STAGE": "dev", "MCP_STDIO_ALLOWED": allowed})

        async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            async with mcp_session(fetcher, settings=settings) as session:
                return await session.list_tools(), await session.call_tool("fetch", {"url": url, "raw": True})

        return asyncio.run(scenario())

    try:
        tools, refused = fetch()
        _, fetched = fetch("--allow-private-ips")
    finally:
        server.shutdown()
    assert [tool["name"] for tool in tools] == ["fetch"]
    # As shipped it refuses what our own outbound guard refuses: nothing internal, the Lambda runtime API included.
    assert refused["isError"] is True
    assert "not a public address" in refused["content"][0]["text"]
    assert fetched["isError"] is False
    assert "Stratus fetched this page." in fetched["content"][0]["text"]


def test_a_command_not_in_the_allow_list_is_refused_before_anything_is_spawned(tmp_path: Path) -> None:
    marker = tmp_path / "spawned"
    server = StdioServer(sys.executable, ("-c", f"open({str(marker)!r}, 'w')"))
    with pytest.raises(ValidationFailed, match="allow-list") as caught:
        asyncio.run(_connect(server))
    assert caught.value.status == 422
    assert not marker.exists()
    # A prefix must match whole arguments: another module after `python -m` is not the allowed one.
    with pytest.raises(ValidationFailed, match="allow-list"):
        asyncio.run(_connect(StdioServer("python", ("-m", "mcp_server_time_evil"))))


def test_a_stdio_child_gets_no_aws_variable_and_dies_with_the_session() -> None:
    assert os.environ.get("AWS_ACCESS_KEY_ID")  # the test process has credentials to leak

    async def scenario() -> tuple[dict[str, Any], int]:
        async with mcp_session(StdioServer("python", (str(MISBEHAVING),)), settings=dev_settings()) as session:
            environment = await session.call_tool("environment")
            pid = (await session.call_tool("pid"))["structuredContent"]["result"]
        return environment, pid

    environment, pid = asyncio.run(scenario())
    names = environment["structuredContent"]["result"]
    assert "PATH" in names
    assert not [name for name in names if name.startswith("AWS_")]
    assert "HOME" not in names
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_stdio_env_setting_aws_variables_is_refused() -> None:
    server = StdioServer("python", ("-m", "mcp_server_time"), env={"AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(ValidationFailed, match="AWS_"):
        asyncio.run(_connect(server))


def test_a_hanging_stdio_tool_times_out_and_its_child_is_killed() -> None:
    pids: list[int] = []

    async def scenario() -> None:
        async with mcp_session(
            StdioServer("python", (str(MISBEHAVING),)),
            settings=dev_settings(),
            limits=McpLimits(call_timeout_seconds=1),
        ) as session:
            pids.append((await session.call_tool("pid"))["structuredContent"]["result"])
            await session.call_tool("hang", {"seconds": 60})

    with pytest.raises(McpServerTimedOut, match="hang within 1 s"):
        asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_a_slow_connect_times_out_at_the_connect_deadline() -> None:
    server = StdioServer("python", (str(MISBEHAVING),), env={"STARTUP_DELAY_SECONDS": "60"})
    with pytest.raises(McpServerTimedOut, match="the connection within 1 s"):
        asyncio.run(_connect(server))


async def _connect(server: McpServer, settings: Settings | None = None) -> None:
    limits = McpLimits(connect_timeout_seconds=1)
    async with mcp_session(server, settings=settings or dev_settings(), limits=limits):
        pass


def test_a_5_mb_tool_output_is_cut_for_the_model() -> None:
    async def scenario() -> dict[str, Any]:
        async with mcp_session(StdioServer("python", (str(MISBEHAVING),)), settings=dev_settings()) as session:
            return await session.call_tool("flood", {"megabytes": 5})

    result = asyncio.run(scenario())
    text = "".join(block["text"] for block in result["content"])
    assert len(text.encode()) < 70 * 1024
    assert text.startswith("x" * 1000)
    assert "output cut" in result["content"][-1]["text"]
    assert "structuredContent" not in result


def test_a_stdio_message_over_the_line_cap_ends_the_session_with_a_clear_error() -> None:
    async def scenario() -> None:
        async with mcp_session(
            StdioServer("python", (str(MISBEHAVING),)),
            settings=dev_settings(),
            limits=McpLimits(max_stdio_line_bytes=1024 * 1024),
        ) as session:
            await session.call_tool("flood", {"megabytes": 2})

    with pytest.raises(McpServerFailed, match="message over 1 MB"):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("modules", "sdk"),
    [
        ("shared.mcp_client, shared.outbound", "{'mcp', 'mcp_types', 'httpx2', 'anyio'}"),
        # What a cold start of the MCP function and of chat loads: the SDK comes with the first connect.
        ("functions.mcp.handler, functions.chat.api, functions.chat.tools", "{'mcp', 'mcp_types', 'httpx2'}"),
    ],
)
def test_importing_the_client_or_its_functions_does_not_import_the_sdk(modules: str, sdk: str) -> None:
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] in {sdk}))"
    environment = {**os.environ, "STAGE": "dev"}
    command = [sys.executable, "-c", code]
    output = subprocess.run(command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "[]"
