"""A fake Anthropic API speaking the real Messages streaming wire format, so the real `anthropic` SDK runs against
it: `POST /v1/messages` (SSE when `stream` is true, JSON otherwise) and `GET /v1/models`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.scripted import (
    DroppedConnection,
    Fail,
    FailMidStream,
    Hang,
    Reply,
    ScriptedServer,
    ToolCallReply,
    block_text,
    json_response,
    retry_headers,
    sse,
    using_tool_result,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


class FakeAnthropic(ScriptedServer):
    """`base_url` is what `ANTHROPIC_BASE_URL` (or the client's `base_url`) takes."""

    default = Reply("Hello from the fake Anthropic API.")

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self.messages, methods=["POST"]), Route("/v1/models", self.models)]

    async def models(self, request: Request) -> Response:
        await self.record(request)
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Fail | Hang):
            return await self._failure(behaviour)
        model = {
            "type": "model",
            "id": "claude-haiku-4-5",
            "display_name": "Claude Haiku 4.5",
            "created_at": "2025-10-01T00:00:00Z",
        }
        return json_response(200, {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]})

    async def messages(self, request: Request) -> Response:
        body = await self.record(request) or {}
        behaviour = using_tool_result(self.next_behaviour(), last_tool_result(body))
        if isinstance(behaviour, Fail | Hang):
            return await self._failure(behaviour)
        model = str(body.get("model", "claude"))
        if not body.get("stream"):
            return json_response(200, self._message(model, behaviour))
        return StreamingResponse(self.watched(self._events(model, behaviour)), media_type="text/event-stream")

    async def _failure(self, behaviour: Fail | Hang) -> Response:
        if isinstance(behaviour, Hang):
            await self.wait(behaviour.seconds)
            return json_response(504, error_body(500, "the fake hung up"))
        headers = {"request-id": "req_fake", **retry_headers(behaviour)}
        return json_response(behaviour.status, error_body(behaviour.status, behaviour.message), headers)

    async def _events(self, model: str, behaviour: Reply | ToolCallReply | FailMidStream) -> AsyncIterator[bytes]:
        input_tokens = behaviour.input_tokens if not isinstance(behaviour, FailMidStream) else 10
        cache_read = behaviour.cache_read_tokens if isinstance(behaviour, Reply) else 0
        cache_write = behaviour.cache_write_tokens if isinstance(behaviour, Reply) else 0
        start: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": cache_write,
            },
        }
        yield _event("message_start", {"message": start})
        yield _event("ping", {})
        if isinstance(behaviour, FailMidStream):
            yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for chunk in Reply(behaviour.text).chunks()[: behaviour.after_chunks]:
                yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": chunk}})
            if behaviour.drop:
                raise DroppedConnection
            yield _event("error", error_body(behaviour.error_status, "Overloaded"))
            return
        index = 0
        text = behaviour.text
        if text:
            yield _event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            chunks = behaviour.chunks() if isinstance(behaviour, Reply) else [text]
            for chunk in chunks:
                if isinstance(behaviour, Reply) and behaviour.chunk_delay:
                    await self.wait(behaviour.chunk_delay)
                yield _event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": chunk}})
            yield _event("content_block_stop", {"index": index})
            index += 1
        if isinstance(behaviour, ToolCallReply):
            block = {"type": "tool_use", "id": behaviour.id, "name": behaviour.name, "input": {}}
            yield _event("content_block_start", {"index": index, "content_block": block})
            arguments = json.dumps(behaviour.input)
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                yield _event(
                    "content_block_delta",
                    {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}},
                )
            yield _event("content_block_stop", {"index": index})
            stop_reason, output_tokens = "tool_use", behaviour.output_tokens
        else:
            stop_reason, output_tokens = behaviour.stop_reason, behaviour.billed_output_tokens
        yield _event(
            "message_delta",
            {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}},
        )
        yield _event("message_stop", {})

    def _message(self, model: str, behaviour: Reply | ToolCallReply | FailMidStream) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": behaviour.text}] if behaviour.text else []
        stop_reason, output_tokens = "end_turn", 1
        if isinstance(behaviour, ToolCallReply):
            content.append({"type": "tool_use", "id": behaviour.id, "name": behaviour.name, "input": behaviour.input})
            stop_reason, output_tokens = "tool_use", behaviour.output_tokens
        elif isinstance(behaviour, Reply):
            stop_reason, output_tokens = behaviour.stop_reason, behaviour.billed_output_tokens
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": getattr(behaviour, "input_tokens", 10), "output_tokens": output_tokens},
        }


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The content of the last `tool_result` block of the request's messages."""
    for message in reversed(body.get("messages", [])):
        content = message.get("content")
        for block in reversed(content if isinstance(content, list) else []):
            if block.get("type") == "tool_result":
                return block_text(block.get("content"))
    return None


def _event(name: str, data: dict[str, Any]) -> bytes:
    return sse(name, json.dumps({"type": name, **data}))
