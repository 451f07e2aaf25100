"""Chat routes: the SSE stream, the buffered reply, the model catalog and provider health.

This app runs under uvicorn: behind the Lambda Web Adapter in response-stream mode in AWS, mounted by the local
gateway at `/api/v1/ai` in local mode. No API Gateway authorizer sits in front of it, so every route verifies
the caller itself with the shared verification (the app factory's `protected` routers).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from functions.chat import enhance_api, reply
from functions.chat.models import (
    ChatReplyMessage,
    ChatRequest,
    ChatResponse,
    ChatStreamEvent,
    ChatUsage,
    ModelPublic,
    ProviderHealth,
    ToolApprovalAnswer,
    ToolApprovalAnswered,
)
from shared.errors import ProviderFailed
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import event_stream, refusals
from shared.observability import logger

router = APIRouter(prefix="/api/v1/ai", tags=["chat"])

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ReplyEventStream(StreamingResponse):
    """A reply as server-sent events. Sending it ends only once the user's message and the reply so far are stored,
    however it ends: the reply's end, or the client gone and the request cancelled (under the Lambda Web Adapter,
    work left running after the response may be frozen, so none is left)."""

    def __init__(self, prepared: reply.PreparedReply) -> None:
        # The body is the reply's events, attached when the response is sent (inside `reply.streaming`).
        super().__init__((), media_type="text/event-stream", headers=SSE_HEADERS)
        self.prepared = prepared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with reply.streaming(self.prepared) as events, aclosing(_sse(events)) as body:
            self.body_iterator = body
            await super().__call__(scope, receive, send)


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            ChatStreamEvent,
            "The reply as server-sent events: `start`, then `content`, `tool_use`, "
            "`tool_result`, then `usage`, an `error` if the provider failed, and `end`",
        ),
        **refusals(403, 404, 429),
    },
)
async def chat_stream(principal: CurrentPrincipal, body: ChatRequest) -> StreamingResponse:
    """The reply as server-sent events; refusals (limits, access) answer before the stream starts."""
    return ReplyEventStream(await reply.prepare(principal, body))


@router.post("/chat", response_model=ChatResponse, responses=refusals(403, 404, 429, 502))
async def chat(principal: CurrentPrincipal, body: ChatRequest) -> ChatResponse:
    """The same reply, buffered. A provider failure before any content is a 502. Nobody can be asked to approve
    a tool call here: a call that needs approval is refused at once, and the model is told so."""
    prepared = await reply.prepare(principal, body, interactive=False)
    content: list[str] = []
    start: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    end: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    async with reply.streaming(prepared) as events:
        async for event in events:
            kind = event["type"]
            if kind == "start":
                start = event
            elif kind == "content":
                content.append(event["delta"])
            elif kind == "usage":
                usage = event
            elif kind == "error":
                error = event
            elif kind == "end":
                end = event
    if error is not None and not content:
        raise ProviderFailed(error["message"], code="provider_error")
    return ChatResponse(
        conversation_id=prepared.conversation_id,
        message=ChatReplyMessage(
            id=prepared.message_id,
            role="assistant",
            content="".join(content),
            model=start.get("model"),
            provider=start.get("provider"),
            stop_reason=end.get("stopReason"),
            incomplete=error is not None,
        ),
        usage=ChatUsage(input_tokens=usage["inputTokens"], output_tokens=usage["outputTokens"], cost=usage["cost"]),
    )


@router.post("/chat/{messageId}/tool-approvals", response_model=ToolApprovalAnswered, responses=refusals(403, 404, 409))
def answer_tool_approval(
    principal: CurrentPrincipal,
    message_id: Annotated[str, Path(alias="messageId", max_length=26)],
    body: ToolApprovalAnswer,
) -> ToolApprovalAnswered:
    """Approve or refuse a tool call a streaming reply waits on (its `tool_approval` event)."""
    from functions.chat import service

    answer = service.answer_tool_approval(principal, message_id, body.tool_call_id, approved=body.approved)
    return ToolApprovalAnswered.model_validate(answer)


@router.get("/models", response_model=Page[ModelPublic])
def models(_: CurrentPrincipal) -> Page[ModelPublic]:
    """The models of the providers this stage has configured, with their prices (USD per million tokens)."""
    from shared.llm import catalog, registry

    configured = set(registry.providers())
    items = [
        ModelPublic(
            id=info.id,
            provider=info.provider,
            display_name=info.display_name or info.id,
            context_window=info.context_window,
            input_price=info.input_price,
            output_price=info.output_price,
            cache_read_price=info.cache_read_price,
            cache_write_price=info.cache_write_price,
        )
        for info in catalog.catalog().values()
        if info.provider in configured
    ]
    return Page(items=items)


@router.get("/health", response_model=Page[ProviderHealth])
async def provider_health(_: CurrentPrincipal) -> Page[ProviderHealth]:
    """Whether each configured provider answers, and how fast."""
    import anyio

    from shared.llm import registry
    from shared.llm.types import ProviderError

    results: list[ProviderHealth] = []

    async def probe(name: str, provider: Any) -> None:
        started = time.perf_counter()
        try:
            await provider.check()
        except ProviderError as error:
            results.append(ProviderHealth(provider=name, reachable=False, latency_ms=_ms(started), error=str(error)))
        else:
            results.append(ProviderHealth(provider=name, reachable=True, latency_ms=_ms(started)))

    async with anyio.create_task_group() as group:
        for name, provider in registry.providers().items():
            group.start_soon(probe, name, provider)
    return Page(items=sorted(results, key=lambda health: health.provider))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[bytes, None]:
    """Server-sent events, one JSON object per `data:` line; a failure mid-stream becomes an `error` event."""
    try:
        async for event in events:
            yield f"data: {json.dumps(event, default=str)}\n\n".encode()
    except Exception:
        logger.exception("reply stream failed")
        failure = {"type": "error", "code": "internal_error", "message": "Something went wrong on our side"}
        yield f"data: {json.dumps(failure)}\n\n".encode()


app = create_app(title="Stratus chat", public=[enhance_api.stream_router], protected=[router, enhance_api.router])
