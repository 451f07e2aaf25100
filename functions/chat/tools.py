"""Chat's tool runner: the user's enabled MCP servers supply the tools a reply may call.

Tools reach the model as `<server name>__<tool name>`, made valid for every provider. Tool lists are cached per
container (module level), keyed by server id and version, for `TOOL_LIST_SECONDS` or until a server says its
list changed; with every list cached, building the tools makes no network call. A server's session opens on its
reply's first call to it and serves the reply's later rounds; each session lives in a task of its own (its cancel
scopes never cross the reply generator's yields), and `aclose` ends them all, stdio children killed. A call that
fails, is refused or times out becomes an error result the model reads; the reply goes on.

A tool that needs approval is announced with a `tool_approval` event; the answer may reach any container, so the
pending approval is an item in the chat table, polled until answered (or `APPROVAL_WAIT_SECONDS` pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from functions.chat import store
from shared.auth.principal import Principal
from shared.concurrency import complete_despite_cancellation
from shared.errors import DomainError, McpServerFailed
from shared.llm.types import ToolCall, ToolResult, ToolSpec
from shared.mcp_client import McpLimits, ToolServer, mcp_session
from shared.observability import logger
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.mcp_client import McpSession

Event = dict[str, Any]

TOOL_LIST_SECONDS = 300.0
APPROVAL_WAIT_SECONDS = 300.0
# One strongly consistent GetItem per pending approval every quarter second: the answer shows within 0.25 s, at
# 4 reads a second for as long as the user takes (at most APPROVAL_WAIT_SECONDS).
APPROVAL_POLL_SECONDS = 0.25
# A name every provider accepts (Anthropic, OpenAI and Bedrock agree on this one).
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NAME_LIMIT = 64
# What the reply's stored metadata keeps of each call: the whole list must fit next to the largest inline message
# body (functions.conversations keeps up to 350 KB inline, in a 400 KB item).
STORED_TOOL_CALLS_BYTES = 32 * 1024
STORED_RESULT_BYTES = 4 * 1024
STORED_TOOL_CALLS_MAX = 100

REFUSED = "The user refused this tool call"
NO_ANSWER = "No answer within 5 minutes"
NOT_INTERACTIVE = (
    "This tool needs the user's approval, which this route cannot ask for; it was not run "
    "(the streaming and WebSocket chat can ask)"
)


# How long a container reuses what the registry answered for a user's enabled servers: within it a reply makes no
# registry read before the first token; a server disabled, deleted or changed in the registry reaches chat within
# it (as a revocation reaches every function within REVOCATION_REFRESH_SECONDS).
SERVERS_REFRESH_SECONDS = 5.0
_ENABLED_SERVERS_MAX = 1024
_enabled_servers: OrderedDict[tuple[str, bool, tuple[str, ...]], tuple[float, list[ToolServer]]] = OrderedDict()


def servers_for(principal: Principal, server_ids: Sequence[str]) -> list[ToolServer]:
    """The enabled servers among `server_ids` the user may use: one read of the MCP registry, at most every
    `SERVERS_REFRESH_SECONDS` for the same user, permission and servers."""
    if not server_ids:
        return []
    key = (principal.user_id, principal.can("mcp.use"), tuple(server_ids))
    cached = _enabled_servers.get(key)
    if cached is not None and time.monotonic() - cached[0] < SERVERS_REFRESH_SECONDS:
        return cached[1]
    from functions.mcp import service as mcp

    servers: list[ToolServer] = mcp.servers_for_chat(principal, list(server_ids))
    _enabled_servers[key] = (time.monotonic(), servers)
    _enabled_servers.move_to_end(key)
    while len(_enabled_servers) > _ENABLED_SERVERS_MAX:
        _enabled_servers.popitem(last=False)
    return servers


def forget_enabled_servers() -> None:
    """Drop what the registry answered: the next reply reads it again."""
    _enabled_servers.clear()


# The per-container tool-list cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ToolList:
    tools: tuple[dict[str, Any], ...]
    fetched_at: float


_tool_lists: dict[tuple[str, str], _ToolList] = {}


def forget_tool_lists(server_id: str | None = None) -> None:
    """Drop the cached tool lists (of one server, whatever its version, or all): the next reply lists again."""
    for key in [key for key in _tool_lists if server_id is None or key[0] == server_id]:
        _tool_lists.pop(key, None)


def _cached_tools(server: ToolServer) -> tuple[dict[str, Any], ...] | None:
    cached = _tool_lists.get((server.id, server.version))
    if cached is None or time.monotonic() - cached.fetched_at > TOOL_LIST_SECONDS:
        return None
    return cached.tools


# Names toward the model ---------------------------------------------------------------------------------------


def model_tool_names(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """A valid, distinct name for each (server name, tool name), in order: `<server>__<tool>` with every other
    character made `_`; one too long, or taken by an earlier tool, is cut and given a hash of where it came from."""
    names: list[str] = []
    taken: set[str] = set()
    for server_name, tool_name in pairs:
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", f"{server_name}__{tool_name}")
        if len(name) > _NAME_LIMIT or name in taken:
            digest = hashlib.sha256(f"{server_name}\0{tool_name}".encode()).hexdigest()
            attempt = 0
            while True:
                suffix = "_" + digest[attempt : attempt + 8]
                candidate = name[: _NAME_LIMIT - len(suffix)] + suffix
                if candidate not in taken:
                    name = candidate
                    break
                attempt += 1
        assert _VALID_NAME.match(name)
        taken.add(name)
        names.append(name)
    return names


def _input_schema(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return {"type": "object"}
    return schema


# What the model reads of a result ------------------------------------------------------------------------------


def content_for_model(result: dict[str, Any]) -> str:
    """Text blocks joined; other blocks summarised; structured content as JSON when there is no text."""
    parts: list[str] = []
    has_text = False
    for block in result.get("content", []):
        kind = block.get("type")
        if kind == "text":
            has_text = True
            parts.append(str(block.get("text", "")))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.get('mimeType', 'unknown')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.get('uri', '')}]")
        elif kind == "resource":
            resource = block.get("resource") or {}
            text = resource.get("text")
            has_text = has_text or isinstance(text, str)
            parts.append(text if isinstance(text, str) else f"[resource {resource.get('uri', '')}]")
        else:
            parts.append(f"[{kind}]")
    structured = result.get("structuredContent")
    if not has_text and structured is not None:
        parts.insert(0, json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


def stored_tool_calls(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The reply's tool calls as its metadata keeps them (`toolCalls`, and `toolCallsOmitted` past the first
    STORED_TOOL_CALLS_MAX): each result and input cut so the whole stays within STORED_TOOL_CALLS_BYTES."""
    if not records:
        return {}
    kept = records[:STORED_TOOL_CALLS_MAX]
    share = max(256, min(STORED_RESULT_BYTES, STORED_TOOL_CALLS_BYTES // len(kept) - 256))
    stored = []
    for record in kept:
        entry = dict(record)
        content = str(entry.get("content", ""))
        if len(content.encode()) > share:
            cut = content.encode()[:share].decode(errors="ignore")
            entry["content"] = f"{cut}… [cut: {len(content.encode()):,} bytes in all]"
        if len(json.dumps(entry.get("toolInput", {})).encode()) > share:
            entry["toolInput"] = {"cut": json.dumps(entry["toolInput"])[: share // 2]}
        stored.append(entry)
    # Very many calls: the last ones keep only what was called, and how it ended.
    for entry in reversed(stored):
        if len(json.dumps(stored).encode()) <= STORED_TOOL_CALLS_BYTES - 64:  # room for toolCallsOmitted
            break
        entry.update(toolInput={}, content="[not kept]")
    metadata: dict[str, Any] = {"toolCalls": stored}
    if len(records) > len(kept):
        metadata["toolCallsOmitted"] = len(records) - len(kept)
    return metadata


# Sessions --------------------------------------------------------------------------------------------------------


_Work = Callable[["McpSession"], Awaitable[Any]]


class _Connection:
    """One server's session for one reply, owned by a task of its own; work is handed over through a queue and
    runs one item at a time (a session's deadline is its own: a call that times out ends the session, and the
    next work opens a new one)."""

    def __init__(self, server: ToolServer, limits: McpLimits) -> None:
        self.server = server
        self._limits = limits
        self._work: asyncio.Queue[tuple[_Work, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: _Work) -> Any:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._serve())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._work.put((work, future))
        return await future

    async def _serve(self) -> None:
        pending: asyncio.Future[Any] | None = None
        try:
            async with mcp_session(
                self.server.server, limits=self._limits, on_tools_changed=lambda: forget_tool_lists(self.server.id)
            ) as session:
                while True:
                    work, pending = await self._work.get()
                    try:
                        result = await work(session)
                    except DomainError as error:  # the call failed; the session serves the next one
                        result = error
                    if not pending.done():
                        if isinstance(result, DomainError):
                            pending.set_exception(result)
                        else:
                            pending.set_result(result)
                    pending = None
        except DomainError as error:
            self._fail_waiting(pending, error)
        except Exception:
            logger.exception("MCP session failed", extra={"mcpServer": self.server.id})
            self._fail_waiting(pending, McpServerFailed("the MCP server failed"))

    def _fail_waiting(self, pending: asyncio.Future[Any] | None, error: DomainError) -> None:
        if pending is not None and not pending.done():
            pending.set_exception(error)
        while not self._work.empty():
            _, waiting = self._work.get_nowait()
            if not waiting.done():
                waiting.set_exception(error)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass(frozen=True)
class _Tool:
    connection: _Connection
    name: str  # the server's own name for it


@dataclass
class McpToolRunner:
    """Runs the model's tool calls against the user's MCP servers for one reply; see the module docstring."""

    specs: tuple[ToolSpec, ...]
    tools: dict[str, _Tool]
    connections: list[_Connection]
    user_id: str
    message_id: str
    # False on the buffered route: nobody can be asked, so a call that needs approval is refused at once.
    interactive: bool = True
    approvals: dict[str, bool] = field(default_factory=dict)

    async def run(self, calls: Sequence[ToolCall]) -> AsyncGenerator[Event | ToolResult, None]:
        """`tool_approval` events for the calls that need an answer, then every call's result, in call order."""
        answers: dict[str, str] = {}
        asking = [call for call in calls if self._needs_approval(call)]
        if asking and self.interactive:
            expires = int(time.time() + APPROVAL_WAIT_SECONDS + 3600)
            for call in asking:
                tool_name = self.tools[call.name].name
                await anyio.to_thread.run_sync(
                    store.put_pending_approval, self.message_id, call.id, self.user_id, tool_name, expires
                )
            for call in asking:
                yield {"type": "tool_approval", "toolCallId": call.id, "toolName": call.name, "toolInput": call.input}
            answers = await self._answers([call.id for call in asking])
        elif asking:
            answers = {call.id: "unasked" for call in asking}
        for call_id, answer in list(answers.items()):
            if answer in ("approved", "refused"):
                self.approvals[call_id] = answer == "approved"
            if answer == "approved":
                del answers[call_id]
        refusals = {"refused": REFUSED, "expired": NO_ANSWER, "unasked": NOT_INTERACTIVE}
        results = await asyncio.gather(
            *(
                self._call(call) if call.id not in answers else _refused(call, refusals[answers[call.id]])
                for call in calls
            )
        )
        for result in results:
            yield result

    def _needs_approval(self, call: ToolCall) -> bool:
        tool = self.tools.get(call.name)
        return tool is not None and tool.connection.server.needs_approval(tool.name)

    async def _answers(self, call_ids: list[str]) -> dict[str, str]:
        """Poll each pending approval until answered, or mark it expired once the wait is over."""
        answers: dict[str, str] = {}
        deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
        while True:
            for call_id in call_ids:
                if call_id not in answers:
                    status = await anyio.to_thread.run_sync(store.approval_status, self.message_id, call_id)
                    if status in ("approved", "refused"):
                        answers[call_id] = status
            if len(answers) == len(call_ids):
                return answers
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(APPROVAL_POLL_SECONDS)
        for call_id in call_ids:
            if call_id not in answers:
                answers[call_id] = await anyio.to_thread.run_sync(store.expire_approval, self.message_id, call_id)
        return answers

    async def _call(self, call: ToolCall) -> ToolResult:
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult(call.id, f"There is no tool named {call.name}", is_error=True)

        async def work(session: McpSession) -> dict[str, Any]:
            return await session.call_tool(tool.name, call.input)

        try:
            result = await tool.connection.run(work)
        except DomainError as error:
            return ToolResult(call.id, error.message, is_error=True)
        return ToolResult(call.id, content_for_model(result), is_error=bool(result.get("isError")))

    def approval_of(self, tool_call_id: str) -> bool | None:
        return self.approvals.get(tool_call_id)

    async def aclose(self) -> None:
        """End every session (stdio children killed), even when the reply's task is being cancelled."""

        async def close_all() -> None:
            await asyncio.gather(*(connection.aclose() for connection in self.connections), return_exceptions=True)

        await complete_despite_cancellation(close_all())


async def _refused(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call.id, message, is_error=True)


async def tool_runner(
    servers: Sequence[ToolServer], user_id: str, message_id: str, *, interactive: bool = True
) -> McpToolRunner | None:
    """The runner for a reply over `servers` (None without any): cached tool lists are used as they are; the
    others are listed concurrently, each within the connect deadline. A server that cannot be listed leaves its
    tools out (a warning in the log) and the reply goes on without them."""
    if not servers:
        return None
    limits = McpLimits.from_settings(get_settings())
    connections = [_Connection(server, limits) for server in servers]
    lists: dict[str, tuple[dict[str, Any], ...]] = {}

    async def fetch(connection: _Connection) -> None:
        server = connection.server

        async def list_tools(session: McpSession) -> list[dict[str, Any]]:
            return await session.list_tools()

        try:
            with anyio.fail_after(limits.connect_timeout_seconds):
                tools = tuple(await connection.run(list_tools))
        except (DomainError, TimeoutError) as error:
            reason = error.message if isinstance(error, DomainError) else "no tool list within the connect deadline"
            logger.warning("MCP server left out of the reply", extra={"mcpServer": server.id, "reason": reason})
            await connection.aclose()
            return
        _tool_lists[(server.id, server.version)] = _ToolList(tools, time.monotonic())
        lists[server.id] = tools

    uncached = []
    for connection in connections:
        cached = _cached_tools(connection.server)
        if cached is None:
            uncached.append(connection)
        else:
            lists[connection.server.id] = cached
    if uncached:
        await asyncio.gather(*(fetch(connection) for connection in uncached))

    offered = [(connection, tool) for connection in connections for tool in lists.get(connection.server.id, ())]
    names = model_tool_names([(connection.server.name, str(tool["name"])) for connection, tool in offered])
    specs = tuple(
        ToolSpec(name, str(tool.get("description") or ""), _input_schema(tool))
        for name, (_, tool) in zip(names, offered, strict=True)
    )
    tools = {
        name: _Tool(connection, str(tool["name"])) for name, (connection, tool) in zip(names, offered, strict=True)
    }
    return McpToolRunner(specs, tools, connections, user_id, message_id, interactive=interactive)
