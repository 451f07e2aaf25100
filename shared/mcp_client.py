"""The one MCP client: streamable HTTP (through the outbound guard) and allow-listed stdio, under our own deadlines.

Used by the MCP routes and by chat's tool runner. Every connect and call has a deadline of its own (the SDK's probe
ignores ours), what a server sends is capped (a stdio line, a tool result for the model), and whatever goes wrong
(the SDK raises nested exception groups) comes out as one `McpServerFailed` with a message a user can act on.
The SDK costs about a second to import, so it is imported inside the functions that connect, never at module level.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import DomainError, McpServerFailed, McpServerTimedOut, ValidationFailed
from shared.outbound import (
    OutboundPolicy,
    Resolver,
    checked_destination,
    guarded_http_client,
    stage_policy,
    system_resolver,
)
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    import httpx2
    from anyio import CancelScope
    from anyio.abc import Process
    from mcp import Client

CONNECT_TIMEOUT_SECONDS = 10.0
# What one tool result may put in front of the model.
MAX_TOOL_RESULT_BYTES = 64 * 1024
# What one resource read may answer: well inside a Lambda response (6 MB), base64 blobs included.
MAX_RESOURCE_BYTES = 4 * 1024 * 1024
# One line of a stdio server's output (one JSON-RPC message); a longer line ends the session. Read linearly, 16 MB
# parse in well under a second; what reaches the model is cut far lower (MAX_TOOL_RESULT_BYTES).
MAX_STDIO_LINE_BYTES = 16 * 1024 * 1024
# A stdio child gets this environment and the server's own `env`, nothing of ours (no AWS credentials, no HOME).
_STDIO_BASE_ENVIRONMENT = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
_STDIO_STOP_GRACE_SECONDS = 2.0
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class HttpServer:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StdioServer:
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


McpServer = HttpServer | StdioServer


@dataclass(frozen=True)
class ToolServer:
    """A registered server as chat's tool runner uses it: its registry id, its name (the prefix of its tools' names
    toward the model), how to reach it (header secrets already unsealed), and which of its tools need approval.
    `version` changes whenever the registration does, so a tool list cached for an older one is not used."""

    id: str
    name: str
    server: McpServer
    require_approval: bool | frozenset[str] = False
    version: str = ""

    def needs_approval(self, tool_name: str) -> bool:
        if isinstance(self.require_approval, frozenset):
            return tool_name in self.require_approval
        return self.require_approval


@dataclass(frozen=True)
class McpLimits:
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
    call_timeout_seconds: float = 30.0
    max_tool_result_bytes: int = MAX_TOOL_RESULT_BYTES
    max_stdio_line_bytes: int = MAX_STDIO_LINE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> McpLimits:
        return cls(call_timeout_seconds=settings.mcp_call_timeout_seconds)


def outbound_policy(settings: Settings) -> OutboundPolicy:
    """What an HTTP server's URL may reach on this stage: checked at registration and before every connect."""
    return stage_policy(
        dev_stage=settings.is_dev_stage or settings.local_mode, allow_private=settings.mcp_allow_private
    )


def stdio_argv(server: StdioServer, allowed: Sequence[Sequence[str]]) -> list[str]:
    """The argv to spawn if `[command, *args]` starts with an allowed prefix (`python`: our interpreter), else 422."""

    def resolved(argv: Sequence[str]) -> list[str]:
        return [sys.executable if index == 0 and part == "python" else part for index, part in enumerate(argv)]

    argv = resolved([server.command, *server.args])
    if not any(argv[: len(prefix)] == resolved(prefix) for prefix in allowed if prefix):
        raise ValidationFailed("this stdio command is not in the stage's allow-list", code="stdio_not_allowed")
    forbidden = sorted(name for name in server.env if name.upper().startswith("AWS_"))
    if forbidden:
        raise ValidationFailed("a stdio server's env may not set AWS_ variables", code="stdio_not_allowed")
    return argv


def stdio_environment(server: StdioServer) -> dict[str, str]:
    """PATH, and PYTHONPATH where we have one (in Lambda it names the layers, where the shipped servers live)."""
    inherited = {name: os.environ[name] for name in ("PYTHONPATH",) if os.environ.get(name)}
    return {"PATH": os.environ.get("PATH", os.defpath), **inherited, **_STDIO_BASE_ENVIRONMENT, **server.env}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def domain_error_of(error: BaseException, *, doing: str) -> DomainError:
    """One domain error for whatever the SDK raised (often an ExceptionGroup nested several deep)."""
    from mcp.shared.exceptions import MCPError

    leaves = list(_leaves(error))
    for leaf in leaves:
        if isinstance(leaf, DomainError):
            return leaf
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            return McpServerFailed(f"the MCP server refused {doing}: {_short(leaf.message)}")
    for leaf in leaves:
        if isinstance(leaf, TimeoutError):
            return McpServerTimedOut(f"the MCP server did not answer {doing} in time")
    for leaf in leaves:
        if isinstance(leaf, OSError | ConnectionError) or type(leaf).__module__.startswith(("httpx2", "httpcore2")):
            return McpServerFailed(f"the MCP server could not be reached ({doing}): {_short(type(leaf).__name__)}")
    return McpServerFailed(f"the MCP server failed {doing}")


@asynccontextmanager
async def _bounded_stdio(
    argv: list[str], env: dict[str, str], max_line_bytes: int, problems: list[DomainError]
) -> AsyncIterator[Any]:
    """A stdio transport that reads at most `max_line_bytes` per message and kills the child's group on exit."""
    import anyio
    import mcp_types
    from mcp.shared.message import SessionMessage

    process: Process = await anyio.open_process(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_stdout() -> None:
        assert process.stdout is not None
        buffer = bytearray()
        async with read_writer:
            try:
                async for chunk in process.stdout:
                    buffer += chunk
                    while (end := buffer.find(b"\n")) >= 0:
                        line = bytes(buffer[:end])
                        del buffer[: end + 1]
                        try:
                            message: SessionMessage | Exception = SessionMessage(
                                mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                            )
                        except ValueError as error:
                            message = error
                        await read_writer.send(message)
                    if len(buffer) > max_line_bytes:
                        megabytes = max_line_bytes / (1024 * 1024)
                        problems.append(McpServerFailed(f"the MCP server sent a message over {megabytes:g} MB"))
                        return
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                return

    async def write_stdin() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_stdout)
        tasks.start_soon(write_stdin)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _stop_child(process)
            tasks.cancel_scope.cancel()


async def _stop_child(process: Process) -> None:
    """Close stdin, give the server a moment to exit, then end its whole process group (children included)."""
    import anyio

    if process.stdin is not None:
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await process.stdin.aclose()
    with anyio.move_on_after(_STDIO_STOP_GRACE_SECONDS / 4):
        await process.wait()
    if process.returncode is None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with anyio.move_on_after(_STDIO_STOP_GRACE_SECONDS):
            await process.wait()
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with anyio.move_on_after(_STDIO_STOP_GRACE_SECONDS), suppress(OSError):
        await process.aclose()


def _as_data(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    # Protocol bookkeeping (caching hints, result kinds) is the SDK's business, not the API's.
    for key in ("_meta", "ttlMs", "cacheScope", "resultType"):
        data.pop(key, None)
    return data


def capped_tool_result(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """`{content, structuredContent?, isError}` with at most `max_bytes` of content, and a note saying what was cut."""
    budget, total, content = max_bytes, 0, []
    for block in result.get("content", []):
        size = len(json.dumps(block).encode())
        total += size
        if size <= budget:
            content.append(block)
            budget -= size
        elif block.get("type") == "text" and budget > 0:
            text = block["text"].encode()[:budget].decode(errors="ignore")
            content.append({**block, "text": text})
            budget = 0
        else:
            budget = 0
    capped: dict[str, Any] = {"content": content, "isError": bool(result.get("isError", False))}
    structured = result.get("structuredContent")
    if structured is not None:
        size = len(json.dumps(structured).encode())
        total += size
        if size <= max_bytes:
            capped["structuredContent"] = structured
    if total > max_bytes:
        note = f"[output cut: the tool returned {total:,} bytes; only the first {max_bytes // 1024} KB are shown]"
        capped["content"].append({"type": "text", "text": note})
    return capped


def capped_resource(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The contents that fit in `max_bytes`, in order: a text cut where the budget ends, a blob that does not fit left
    out; `truncated` says whether anything was."""
    budget, contents, truncated = max_bytes, [], False
    for item in result.get("contents", []):
        size = len(json.dumps(item).encode())
        if size <= budget:
            contents.append(item)
            budget -= size
            continue
        truncated = True
        if "text" in item and budget > 0:
            contents.append({**item, "text": item["text"].encode()[:budget].decode(errors="ignore")})
        budget = 0
    return {**result, "contents": contents, "truncated": truncated}


class McpSession:
    """An open connection to one MCP server; every method runs under the call deadline."""

    def __init__(self, client: Client, deadline: CancelScope, limits: McpLimits, problems: list[DomainError]) -> None:
        self._client = client
        self._problems = problems
        self._deadline = deadline
        self._limits = limits
        self.doing = "the connection"

    @contextmanager
    def _call(self, doing: str) -> Iterator[None]:
        import anyio

        self.doing = doing
        self._deadline.deadline = anyio.current_time() + self._limits.call_timeout_seconds
        try:
            yield
        except DomainError:
            raise
        except Exception as error:
            raise (self._problems[0] if self._problems else domain_error_of(error, doing=doing)) from None
        self._deadline.deadline = float("inf")

    @property
    def protocol_version(self) -> str:
        return self._client.protocol_version

    @property
    def server_info(self) -> dict[str, Any] | None:
        info = self._client.server_info
        return _as_data(info) if info is not None else None

    async def list_tools(self) -> list[dict[str, Any]]:
        with self._call("the tool list"):
            return [_as_data(tool) for tool in (await self._client.list_tools()).tools]

    async def list_resources(self) -> list[dict[str, Any]]:
        with self._call("the resource list"):
            return [_as_data(resource) for resource in (await self._client.list_resources()).resources]

    async def list_prompts(self) -> list[dict[str, Any]]:
        with self._call("the prompt list"):
            return [_as_data(prompt) for prompt in (await self._client.list_prompts()).prompts]

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`{content, structuredContent?, isError}`, cut to what a model may be given."""
        with self._call(f"the call of {_short(name)}"):
            result = _as_data(await self._client.call_tool(name, dict(arguments or {})))
        return capped_tool_result(result, self._limits.max_tool_result_bytes)

    async def read_resource(self, uri: str) -> dict[str, Any]:
        """`{contents: [...]}`, at most MAX_RESOURCE_BYTES of it; `truncated: true` when some was cut."""
        with self._call("the resource read"):
            return capped_resource(_as_data(await self._client.read_resource(uri)), MAX_RESOURCE_BYTES)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None) -> dict[str, Any]:
        with self._call(f"the prompt {_short(name)}"):
            return _as_data(await self._client.get_prompt(name, dict(arguments or {})))


@asynccontextmanager
async def mcp_session(
    server: McpServer,
    *,
    settings: Settings | None = None,
    limits: McpLimits | None = None,
    resolver: Resolver = system_resolver,
    on_tools_changed: Callable[[], None] | None = None,
) -> AsyncIterator[McpSession]:
    """Connect to `server` (checked first: its URL by the outbound guard, its command by the allow-list) and yield
    a session; a stdio child is killed when the block ends. `on_tools_changed` is called whenever the server says
    its tool list changed (`notifications/tools/list_changed`)."""
    import anyio

    settings = settings or get_settings()
    limits = limits or McpLimits.from_settings(settings)
    # What the transport saw go wrong (a stdio line over the cap): a clearer reason than the closed connection.
    problems: list[DomainError] = []
    transport, http_client = await _transport(server, settings, limits, resolver, problems)
    from mcp import Client

    session: McpSession | None = None
    with anyio.CancelScope() as deadline:
        deadline.deadline = anyio.current_time() + limits.connect_timeout_seconds
        try:
            async with AsyncExitStack() as stack:
                if http_client is not None:
                    await stack.enter_async_context(http_client)
                client = await stack.enter_async_context(
                    Client(transport, message_handler=_notification_handler(on_tools_changed))
                )
                if on_tools_changed is not None:
                    await _listen_for_tool_changes(client, stack, on_tools_changed)
                deadline.deadline = float("inf")
                session = McpSession(client, deadline, limits, problems)
                yield session
        except DomainError:
            raise
        except Exception as error:
            if problems:
                raise problems[0] from None
            doing = session.doing if session is not None else "the connection"
            raise domain_error_of(error, doing=doing) from None
    if deadline.cancelled_caught:
        seconds = limits.call_timeout_seconds if session is not None else limits.connect_timeout_seconds
        doing = session.doing if session is not None else "the connection"
        raise McpServerTimedOut(f"the MCP server did not answer {doing} within {seconds:g} s")


def _notification_handler(on_tools_changed: Callable[[], None] | None) -> Any:
    """The SDK's message handler: every server message passes through it; only a tool-list change is acted on."""
    if on_tools_changed is None:
        return None

    async def handle(message: Any) -> None:
        import anyio

        if getattr(message, "method", None) == "notifications/tools/list_changed":
            on_tools_changed()
        await anyio.lowlevel.checkpoint()

    return handle


async def _listen_for_tool_changes(client: Client, stack: AsyncExitStack, on_tools_changed: Callable[[], None]) -> None:
    """On a 2026-07-28 connection a tool-list change arrives on a `subscriptions/listen` stream, not as a
    notification: listen (in a task that ends with the session) if the server offers it."""
    import anyio
    from anyio.abc import TaskStatus
    from mcp.client.subscriptions import ListenNotSupportedError
    from mcp.shared.exceptions import MCPError
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return  # earlier versions notify through the message handler

    async def listen(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listening = False
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                task_status.started()
                listening = True
                async for _ in subscription:
                    on_tools_changed()
        except (ListenNotSupportedError, MCPError, RuntimeError, TimeoutError):
            if not listening:  # a server that cannot tell us: its list is refreshed by age alone
                task_status.started()

    tasks = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tasks.cancel_scope.cancel)
    await tasks.start(listen)


async def _transport(
    server: McpServer, settings: Settings, limits: McpLimits, resolver: Resolver, problems: list[DomainError]
) -> tuple[Any, httpx2.AsyncClient | None]:
    if isinstance(server, StdioServer):
        argv = stdio_argv(server, settings.mcp_stdio_allowed)
        return _bounded_stdio(argv, stdio_environment(server), limits.max_stdio_line_bytes, problems), None
    from mcp.client.streamable_http import streamable_http_client

    destination = await checked_destination(server.url, outbound_policy(settings), resolver=resolver)
    http_client = guarded_http_client(
        destination, headers=server.headers, timeout_seconds=max(limits.call_timeout_seconds, 1.0)
    )
    return streamable_http_client(server.url, http_client=http_client), http_client


async def server_health(
    server: McpServer,
    *,
    settings: Settings | None = None,
    limits: McpLimits | None = None,
    resolver: Resolver = system_resolver,
) -> dict[str, Any]:
    """`{reachable, latencyMs, protocolVersion, serverInfo, tools, error?}`: connect and list the tools, live."""
    started = time.perf_counter()
    try:
        async with mcp_session(server, settings=settings, limits=limits, resolver=resolver) as session:
            tools = await session.list_tools()
            health: dict[str, Any] = {
                "reachable": True,
                "protocolVersion": session.protocol_version,
                "serverInfo": session.server_info,
                "tools": len(tools),
            }
    except DomainError as error:
        return {
            "reachable": False,
            "latencyMs": round((time.perf_counter() - started) * 1000, 1),
            "protocolVersion": None,
            "serverInfo": None,
            "tools": 0,
            "error": {"code": error.error_code, "message": error.message},
        }
    health["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return health
