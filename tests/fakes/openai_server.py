"""A fake OpenAI (or OpenAI-compatible) API speaking the real Chat Completions streaming wire format, so the real
`openai` SDK runs against it: `POST /v1/chat/completions` (`data:` chunks then `data: [DONE]`, or JSON),
`POST /v1/embeddings` (deterministic vectors: the hashing embedder's at the requested dimension, 1,536 by default,
as floats or as the base64 the SDK asks for by default) and `GET /v1/models`."""

from __future__ import annotations

import base64
import json
import struct
import time
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
    using_stop_sequences,
    using_tool_result,
)

EMBEDDING_DIMENSION = 1536
_FINISH_REASONS = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
_ERROR_TYPES = {429: "rate_limit_exceeded", 401: "invalid_api_key", 400: "invalid_request_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The content of the request's last `role: tool` message."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "tool":
            return block_text(message.get("content"))
    return None


class FakeOpenAI(ScriptedServer):
    """`base_url` ends in /v1, as `OPENAI_BASE_URL` (or a compatible provider's baseUrl) does."""

    default = Reply("Hello from the fake OpenAI API.")
    models_served: tuple[str, ...] = ("gpt-5", "gpt-5-mini")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models),
        ]

    async def models(self, request: Request) -> Response:
        await self.record(request)
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Fail | Hang):
            return await self._failure(behaviour)
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "fake"} for model in self.models_served]
        return json_response(200, {"object": "list", "data": data})

    async def embeddings(self, request: Request) -> Response:
        from shared.llm.embeddings import hashing_embedder
        from shared.llm.providers import estimate_tokens

        body = await self.record(request) or {}
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Fail | Hang):
            return await self._failure(behaviour)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
            return json_response(400, error_body(400, "input must be a string or a non-empty list of strings"))
        embedder = hashing_embedder(int(body.get("dimensions") or EMBEDDING_DIMENSION))
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for position, vector in enumerate(embedder.embed_documents(texts)):
            encoded: Any = vector
            if as_base64:  # little-endian float32, as OpenAI sends it
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": position, "embedding": encoded})
        tokens = sum(estimate_tokens(text) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_response(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def completions(self, request: Request) -> Response:
        body = await self.record(request) or {}
        behaviour = using_tool_result(self.next_behaviour(model=body.get("model")), last_tool_result(body))
        behaviour, _ = using_stop_sequences(behaviour, body.get("stop"))
        if isinstance(behaviour, Fail | Hang):
            return await self._failure(behaviour)
        model = str(body.get("model", "gpt"))
        if not body.get("stream"):
            return json_response(200, self._completion(model, behaviour))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._chunks(model, behaviour, include_usage), media_type="text/event-stream")

    async def _failure(self, behaviour: Fail | Hang) -> Response:
        if isinstance(behaviour, Hang):
            await self.wait(behaviour.seconds)
            return json_response(504, error_body(504, "the fake hung up"))
        return json_response(
            behaviour.status, error_body(behaviour.status, behaviour.message), retry_headers(behaviour)
        )

    async def _chunks(
        self, model: str, behaviour: Reply | ToolCallReply | FailMidStream, include_usage: bool
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model}
            return sse(None, json.dumps({**payload, "choices": [choice]}))

        yield chunk({"role": "assistant", "content": ""})
        if isinstance(behaviour, FailMidStream):
            for piece in Reply(behaviour.text).chunks()[: behaviour.after_chunks]:
                yield chunk({"content": piece})
            if behaviour.drop:
                raise DroppedConnection
            yield sse(None, json.dumps(error_body(behaviour.error_status, "The server had an error")))
            return
        if isinstance(behaviour, Reply):
            for piece in behaviour.chunks():
                if behaviour.chunk_delay:
                    await self.wait(behaviour.chunk_delay)
                yield chunk({"content": piece})
            finish_reason = _FINISH_REASONS.get(behaviour.stop_reason, "stop")
            prompt_tokens = behaviour.input_tokens + behaviour.cache_read_tokens
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": behaviour.billed_output_tokens,
                "total_tokens": prompt_tokens + behaviour.billed_output_tokens,
                "prompt_tokens_details": {"cached_tokens": behaviour.cache_read_tokens},
            }
        else:
            if behaviour.text:
                yield chunk({"content": behaviour.text})
            arguments = json.dumps(behaviour.input)
            call = {
                "index": 0,
                "id": behaviour.id,
                "type": "function",
                "function": {"name": behaviour.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [call]})
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            finish_reason = "tool_calls"
            usage = {
                "prompt_tokens": behaviour.input_tokens,
                "completion_tokens": behaviour.output_tokens,
                "total_tokens": behaviour.input_tokens + behaviour.output_tokens,
            }
        yield chunk({}, finish_reason)
        if include_usage:
            payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model}
            yield sse(None, json.dumps({**payload, "choices": [], "usage": usage}))
        yield sse(None, "[DONE]")

    def _completion(self, model: str, behaviour: Reply | ToolCallReply | FailMidStream) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": behaviour.text or None}
        finish_reason = "stop"
        if isinstance(behaviour, ToolCallReply):
            message["tool_calls"] = [
                {
                    "id": behaviour.id,
                    "type": "function",
                    "function": {"name": behaviour.name, "arguments": json.dumps(behaviour.input)},
                }
            ]
            finish_reason = "tool_calls"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
