"""The compatible routes on the chat app: OpenAI's `POST /v1/chat/completions` and `GET /v1/models`, Anthropic's
`POST /v1/messages`. Each answers its errors in its own API's shape and status (never Stratus's, never FastAPI's
422), so the SDKs raise their usual exceptions; so the routes sit on a public router and verify the caller
themselves. Their contract is OpenAI's and Anthropic's own: they stay out of Stratus's OpenAPI document."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from functions.chat import reply
from functions.chat.compat import anthropic_api, openai_api, service
from functions.chat.sse import EventStream, SseWire
from shared.errors import DomainError

router = APIRouter(prefix="/v1", tags=["compatible"], include_in_schema=False)

ErrorResponse = Callable[[DomainError], tuple[int, dict[str, Any], dict[str, str]]]


def _anthropic_event(_: str | None, data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, default=str)}\n\n".encode()


_INTERNAL = "Something went wrong on our side"
OPENAI_WIRE = SseWire(
    failure={"error": {"message": _INTERNAL, "type": "api_error", "param": None, "code": "internal_error"}},
    end=f"data: {openai_api.DONE}\n\n".encode(),
)
ANTHROPIC_WIRE = SseWire(
    encode=_anthropic_event, failure={"type": "error", "error": {"type": "api_error", "message": _INTERNAL}}
)


async def _answered(error_response: ErrorResponse, answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except DomainError as error:
        status, body, headers = error_response(error)
        return JSONResponse(body, status_code=status, headers=headers)


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions: `chat.completion.chunk`s ending with `data: [DONE]`, or one `chat.completion`."""
    return await _answered(openai_api.error_response, _chat_completion(request))


async def _chat_completion(request: Request) -> Response:
    principal = await service.caller(request)
    call = openai_api.parse_request(await service.json_body(request))
    storing = service.Storing.from_headers(request)
    prepared = await service.prepared_reply(principal, call, source="openai", storing=storing)
    headers = _conversation_header(prepared)
    if not call.stream:
        outcome = await service.whole_reply(prepared)
        return JSONResponse(openai_api.completion(outcome), headers=headers)
    chunks = openai_api.CompletionChunks(include_usage=call.include_usage, created=int(time.time()))
    source = await service.streamed_reply(prepared, chunks.take)
    return EventStream(source, headers=headers, wire=OPENAI_WIRE)


@router.get("/models")
async def models(request: Request) -> Response:
    """The models the caller may use, in OpenAI's list shape (`stratus-auto` first: the caller's default)."""
    return await _answered(openai_api.error_response, _models(request))


async def _models(request: Request) -> Response:
    from shared.llm import registry

    await service.caller(request)
    return JSONResponse(openai_api.model_list(registry.servable_models()))


@router.post("/messages")
async def messages(request: Request) -> Response:
    """Anthropic Messages: its stream events (`message_start` ... `message_stop`), or one `message`."""
    return await _answered(anthropic_api.error_response, _message(request))


async def _message(request: Request) -> Response:
    principal = await service.caller(request)
    call = anthropic_api.parse_request(await service.json_body(request))
    storing = service.Storing.from_headers(request)
    prepared = await service.prepared_reply(principal, call, source="anthropic", storing=storing)
    headers = _conversation_header(prepared)
    if not call.stream:
        outcome = await service.whole_reply(prepared)
        return JSONResponse(anthropic_api.message(outcome), headers=headers)
    events = anthropic_api.MessageEvents()
    source = await service.streamed_reply(prepared, events.take)
    return EventStream(source, headers=headers, wire=ANTHROPIC_WIRE)


def _conversation_header(prepared: reply.PreparedReply) -> dict[str, str]:
    """Which conversation the exchange is stored in, when the client asked for one."""
    if prepared.conversation_id is None:
        return {}
    return {service.CONVERSATION_HEADER: prepared.conversation_id}
