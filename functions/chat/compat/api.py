"""The compatible routes on the chat app: OpenAI's `POST /v1/chat/completions` and `GET /v1/models`, Anthropic's
`POST /v1/messages`. Each answers its errors in its own API's shape and status (never Stratus's, never FastAPI's
422), so the SDKs raise their usual exceptions; so the routes sit on a public router and verify the caller
themselves. Their contract is OpenAI's and Anthropic's own: they stay out of Stratus's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from functions.chat import reply
from functions.chat.compat import service
from functions.chat.compat.neutral import CompatibleRequest, Event, ReplyOutcome
from functions.chat.sse import EventStream, SseWire
from shared.errors import DomainError

router = APIRouter(prefix="/v1", tags=["compatible"], include_in_schema=False)

ErrorResponse = Callable[[DomainError], tuple[int, dict[str, Any], dict[str, str]]]


def _anthropic_event(_: str | None, data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, default=str)}\n\n".encode()


_INTERNAL = "Something went wrong on our side"


async def _answered(error_response: ErrorResponse, answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except DomainError as error:
        status, body, headers = error_response(error)
        return JSONResponse(body, status_code=status, headers=headers)


@dataclass(frozen=True)
class CompatibleApi:
    """What tells the two APIs apart once a request is in neutral terms: how a body is read, what the usage
    record calls its calls, how a reply is written, whole or streamed, and how a refusal is answered."""

    source: str
    parse: Callable[[object], CompatibleRequest]
    whole: Callable[[ReplyOutcome], dict[str, Any]]
    translator: Callable[[CompatibleRequest], Callable[[Event], list[dict[str, Any]]]]
    wire: SseWire
    error_response: ErrorResponse


# Each API's request and response models load with its first call, not with the chat function's cold start.
@cache
def openai() -> CompatibleApi:
    from functions.chat.compat import openai_api

    return CompatibleApi(
        source="openai",
        parse=openai_api.parse_request,
        whole=openai_api.completion,
        translator=lambda call: openai_api.CompletionChunks(include_usage=call.include_usage).take,
        wire=SseWire(
            failure={"error": {"message": _INTERNAL, "type": "api_error", "param": None, "code": "internal_error"}},
            end=f"data: {openai_api.DONE}\n\n".encode(),
        ),
        error_response=openai_api.error_response,
    )


@cache
def anthropic() -> CompatibleApi:
    from functions.chat.compat import anthropic_api

    return CompatibleApi(
        source="anthropic",
        parse=anthropic_api.parse_request,
        whole=anthropic_api.message,
        translator=lambda _: anthropic_api.MessageEvents().take,
        wire=SseWire(
            encode=_anthropic_event, failure={"type": "error", "error": {"type": "api_error", "message": _INTERNAL}}
        ),
        error_response=anthropic_api.error_response,
    )


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions: `chat.completion.chunk`s ending with `data: [DONE]`, or one `chat.completion`."""
    api = openai()
    return await _answered(api.error_response, _reply(request, api))


@router.get("/models")
async def models(request: Request) -> Response:
    """The models the caller may use, in OpenAI's list shape (`stratus-auto` first: the caller's default)."""
    return await _answered(openai().error_response, _models(request))


@router.post("/messages")
async def messages(request: Request) -> Response:
    """Anthropic Messages: its stream events (`message_start` ... `message_stop`), or one `message`."""
    api = anthropic()
    return await _answered(api.error_response, _reply(request, api))


async def _reply(request: Request, api: CompatibleApi) -> Response:
    principal = await service.caller(request)
    call = api.parse(await service.json_body(request))
    storing = service.Storing.from_headers(request)
    prepared = await service.prepared_reply(principal, call, source=api.source, storing=storing)
    headers = _conversation_header(prepared)
    if not call.stream:
        return JSONResponse(api.whole(await service.whole_reply(prepared)), headers=headers)
    source = await service.streamed_reply(prepared, api.translator(call))
    return EventStream(source, headers=headers, wire=api.wire)


async def _models(request: Request) -> Response:
    from functions.chat.compat import openai_api
    from shared.llm import registry

    await service.caller(request)
    return JSONResponse(openai_api.model_list(registry.servable_models()))


def _conversation_header(prepared: reply.PreparedReply) -> dict[str, str]:
    """Which conversation the exchange is stored in, when the client asked for one."""
    if prepared.conversation_id is None:
        return {}
    return {service.CONVERSATION_HEADER: prepared.conversation_id}
