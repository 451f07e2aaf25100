"""Server-sent events that run to their end whether or not the client stays.

A reply, a comparison or an enhancement is produced in full on the server, stored, and resumable, even when the
client that asked for it goes away. So the response never stops early: a client gone only stops the sending, and
the events are consumed to the end. That also keeps the invocation alive in Lambda: under the Lambda Web Adapter
the invocation lasts as long as the app's response, and work left running after it may be frozen.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.observability import logger

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
INTERNAL_ERROR = {"type": "error", "code": "internal_error", "message": "Something went wrong on our side"}

# One event to send: its SSE `id` (None: the event has none) and its JSON data.
SseEvent = tuple[str | None, dict[str, Any]]
EventSource = Callable[[], AbstractAsyncContextManager[AsyncIterator[SseEvent]]]


def encode(event_id: str | None, data: dict[str, Any]) -> bytes:
    """One server-sent event: an `id:` line when it has one, then its data as one JSON `data:` line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data, default=str)}\n\n".encode()


class EventStream(Response):
    """`source()` opens the events (an async context manager, entered when the response is sent, so that what it
    does on leaving, such as storing the reply, ends before the response does); each is sent while the client is
    there, and consumed to the end either way. A failure mid-stream becomes one `internal_error` event."""

    media_type = "text/event-stream"

    def __init__(self, source: EventSource, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=200, headers={**SSE_HEADERS, **(headers or {})}, media_type=self.media_type)
        # The body is streamed: the `content-length: 0` of an empty Response would end it before its first event.
        self.raw_headers = [(name, value) for name, value in self.raw_headers if name != b"content-length"]
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = _Client(send)
        await client.send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with anyio.create_task_group() as watching:
            watching.start_soon(client.watch_for_disconnect, receive)
            try:
                async with self.source() as events:
                    async for event_id, data in events:
                        await client.send_body(encode(event_id, data))
            except Exception:
                logger.exception("event stream failed")
                await client.send_body(encode(None, INTERNAL_ERROR))
            finally:
                watching.cancel_scope.cancel()
        await client.send({"type": "http.response.body", "body": b"", "more_body": False})


class _Client:
    """The client end of a response: sends while it is there, and remembers when it went away."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.gone = False

    async def watch_for_disconnect(self, receive: Receive) -> None:
        while not self.gone:
            if (await receive())["type"] == "http.disconnect":
                self.gone = True

    async def send_body(self, body: bytes) -> None:
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone:
            return
        try:
            await self._send(message)
        except OSError:  # the ASGI server's word for a client gone mid-send
            self.gone = True
