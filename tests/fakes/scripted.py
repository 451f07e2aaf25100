"""What the fake providers share: the behaviours a test scripts, the requests they record, and a uvicorn server
on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Reply:
    """A streamed text reply. `output_tokens` None: one token per four characters. `chunk_size` None: word by word,
    else that many characters a delta. `chunk_delay` spaces the deltas (for idle timeouts and the bench).
    `{tool_result}` in the text is replaced by the last tool result of the request it answers (a model that
    uses what its tool returned)."""

    text: str
    input_tokens: int = 10
    output_tokens: int | None = None
    chunk_size: int | None = None
    chunk_delay: float = 0.0
    stop_reason: str = "end_turn"
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def chunks(self) -> list[str]:
        if self.chunk_size is None:
            return re.findall(r"\S+\s*|\s+", self.text)
        return [self.text[start : start + self.chunk_size] for start in range(0, len(self.text), self.chunk_size)]

    @property
    def billed_output_tokens(self) -> int:
        return self.output_tokens if self.output_tokens is not None else max(1, -(-len(self.text) // 4))


@dataclass(frozen=True)
class ToolCallReply:
    """A reply that calls a tool, its JSON input streamed in a few pieces, after optional text."""

    name: str
    input: dict[str, Any]
    id: str = "call_1"
    text: str = ""
    input_tokens: int = 20
    output_tokens: int = 12


@dataclass(frozen=True)
class Fail:
    """An error response before any byte of stream: the provider's JSON error body and status."""

    status: int
    retry_after: float | None = None
    retry_after_ms: int | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Accept the request, then send nothing for `seconds` (a client read timeout should fire first)."""

    seconds: float


@dataclass(frozen=True)
class FailMidStream:
    """Stream the first `after_chunks` deltas of `text`, then an error event (`drop=False`) or a dropped
    connection (`drop=True`)."""

    after_chunks: int
    text: str = "This reply will be cut short by a scripted failure."
    drop: bool = False
    error_status: int = 529


Behaviour = Reply | ToolCallReply | Fail | Hang | FailMidStream


TOOL_RESULT = "{tool_result}"


def using_tool_result(behaviour: Behaviour, tool_result: str | None) -> Behaviour:
    """`behaviour` with `{tool_result}` in its text filled in (with `[no tool result]` if the request had none)."""
    if isinstance(behaviour, Reply) and TOOL_RESULT in behaviour.text:
        return replace(behaviour, text=behaviour.text.replace(TOOL_RESULT, tool_result or "[no tool result]"))
    return behaviour


def block_text(content: Any) -> str:
    """A message's or block's content as text, whether a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    return "".join(str(block.get("text", "")) for block in content or [] if isinstance(block, dict))


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    # The client's address and port: two requests from one port came over one kept-alive connection.
    client: str = ""


class ScriptedServer:
    """A fake provider: behaviours are served in the order queued, then `default` for every later request."""

    default: Behaviour = Reply("Hello from the fake provider.")

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._queue_lock = threading.Lock()
        self._stopping = threading.Event()
        # Streams whose client closed them before their end (a reply cancelled, a client gone).
        self.streams_closed_early = 0
        self.stream_closed_early = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # Scripting ------------------------------------------------------------------------------------------------

    def reply(
        self,
        text: str,
        input_tokens: int = 10,
        output_tokens: int | None = None,
        chunk_size: int | None = None,
        **options: Any,
    ) -> Self:
        return self.then(Reply(text, input_tokens, output_tokens, chunk_size, **options))

    def tool_call(self, name: str, input: dict[str, Any], **options: Any) -> Self:
        return self.then(ToolCallReply(name, input, **options))

    def fail(self, status: int, retry_after: float | None = None, **options: Any) -> Self:
        return self.then(Fail(status, retry_after, **options))

    def hang(self, seconds: float) -> Self:
        return self.then(Hang(seconds))

    def fail_mid_stream(self, after_chunks: int, **options: Any) -> Self:
        return self.then(FailMidStream(after_chunks, **options))

    def then(self, behaviour: Behaviour) -> Self:
        with self._queue_lock:
            self._queue.append(behaviour)
        return self

    def next_behaviour(self, *, only_failures: bool = False) -> Behaviour:
        with self._queue_lock:
            if self._queue and (not only_failures or isinstance(self._queue[0], Fail | Hang)):
                return self._queue.popleft()
            return self.default

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    def reset(self) -> None:
        with self._queue_lock:
            self._queue.clear()
        self.requests.clear()
        self.streams_closed_early = 0
        self.stream_closed_early.clear()

    # Serving --------------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self) -> list[Route]:
        raise NotImplementedError

    async def record(self, request: Request) -> dict[str, Any] | None:
        raw = await request.body()
        body = None
        if raw:
            body = json.loads(raw)
        client = f"{request.client.host}:{request.client.port}" if request.client else ""
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body, client))
        return body

    async def watched(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`events`, noting when the client closes the stream before its end."""
        try:
            async for chunk in events:
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            self.streams_closed_early += 1
            self.stream_closed_early.set()
            raise

    async def wait(self, seconds: float) -> None:
        """Sleep, cut short when the server stops (so a hanging request never holds up teardown)."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by every accepted connection: without it a kept-alive connection's response waits on the
        # client's delayed ACK (~40 ms a request), which no real provider makes its clients pay.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=self.routes())
        config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def sse(event: str | None, data: str) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


class DroppedConnection(Exception):
    """Raised inside a streaming body: uvicorn aborts the connection mid-body, as a crashed upstream would."""


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def retry_headers(failure: Fail) -> dict[str, str]:
    headers: dict[str, str] = {}
    if failure.retry_after is not None:
        headers["retry-after"] = f"{failure.retry_after:g}"
    if failure.retry_after_ms is not None:
        headers["retry-after-ms"] = str(failure.retry_after_ms)
    return headers
