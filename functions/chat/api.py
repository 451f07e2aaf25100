"""Chat routes: the SSE stream, resuming and cancelling it, the buffered reply, the model catalog and provider
health. The reply's events are numbered and logged (`reply.recorded`), so any container can resume or cancel it.

This app runs under uvicorn: behind the Lambda Web Adapter in response-stream mode in AWS, mounted by the local
gateway at `/api/v1/ai` in local mode. No API Gateway authorizer sits in front of it, so every route verifies
the caller itself with the shared verification (the app factory's `protected` routers; the GET stream route's
`StreamCaller` also takes a one-use ticket).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import StreamingResponse

from functions.chat import enhance_api, reply, tickets
from functions.chat.compat.api import router as compatible_router
from functions.chat.models import (
    AgentTestRequest,
    AgentTestResponse,
    ChatReplyMessage,
    ChatRequest,
    ChatResponse,
    ChatStreamEvent,
    ChatUsage,
    ModelPublic,
    ProviderHealth,
    ReplyCancelled,
    ToolApprovalAnswer,
    ToolApprovalAnswered,
)
from functions.chat.playground_api import router as playground_router
from functions.chat.sse import EventSource, EventStream, SseEvent
from functions.chat.tickets import StreamCaller
from shared.errors import ProviderFailed
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import event_stream, refusals

router = APIRouter(prefix="/api/v1/ai", tags=["chat"])
# Trying an agent: the agents context's route, answered here where replies are generated.
agents_router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
# The GET stream routes: their caller is a `StreamCaller` (a credential, or a one-use `?ticket=`).
stream_router = APIRouter(prefix="/api/v1/ai", tags=["chat"])

MessageId = Annotated[str, Path(alias="messageId", max_length=26)]
EVENT_IDS = "Every event has an SSE `id:`, `<messageId>:<seq>`, seq counting from 1 without gaps"


def _numbered(stream_id: str, events: AsyncIterator[tuple[int, dict[str, Any]]]) -> AsyncIterator[SseEvent]:
    from functions.chat.eventlog import event_id

    return ((event_id(stream_id, seq), event) async for seq, event in events)


def _generating(prepared: reply.PreparedReply) -> EventSource:
    """The reply's events as the SSE route sends them: numbered, logged, and generated to the end."""

    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[SseEvent]]:
        async with reply.recorded(prepared) as events:
            yield _numbered(prepared.message_id, events)

    return source


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            ChatStreamEvent,
            "The reply as server-sent events: `start`, `citations` (a reply grounded in an agent's documents), "
            "then `content`, `tool_use`, "
            f"`tool_result`, then `usage`, an `error` if the provider failed, and `end`. {EVENT_IDS}. The reply "
            "runs to its end even if the client goes away: resume it with `GET /ai/chat/stream/{messageId}`",
        ),
        **refusals(403, 404, 409, 429),
    },
)
async def chat_stream(principal: CurrentPrincipal, body: ChatRequest) -> Response:
    """The reply as server-sent events; refusals (limits, access) answer before the stream starts."""
    return EventStream(_generating(await reply.prepare(principal, body)))


@stream_router.get(
    "/chat/stream/{messageId}",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            ChatStreamEvent,
            f"The reply's events after `Last-Event-ID` (or `?after=`), then its live rest until `end`. {EVENT_IDS}",
        ),
        **refusals(401, 403, 404, 422, meaning={401: tickets.REFUSED_STREAM_CALLER}),
    },
)
async def resume_chat_stream(
    caller: StreamCaller,
    message_id: MessageId,
    after: Annotated[int | None, Query(ge=0, description="Resume after this seq (Last-Event-ID wins)")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> Response:
    """Resume a reply (a dropped connection, or a second reader): from any container, while it runs and for 10
    minutes after. An unknown, expired or someone else's reply is a 404."""
    from functions.chat import eventlog, service

    start = eventlog.parse_after(message_id, last_event_id, after)
    events = await service.resumed_reply(caller, message_id, start)

    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[SseEvent]]:
        yield _numbered(message_id, events)

    return EventStream(source)


@router.post(
    "/chat/{messageId}/cancel",
    response_model=ReplyCancelled,
    responses={
        202: {"model": ReplyCancelled, "description": "The reply was running: it ends within a second, cancelled"},
        **refusals(403, 404),
    },
)
def cancel_reply(principal: CurrentPrincipal, message_id: MessageId, response: Response) -> ReplyCancelled:
    """The stop button: the reply ends within a second wherever it is generated, as `stopReason: "cancelled"`,
    its partial text kept. 200 with `cancelled: false` when it had already ended."""
    from functions.chat import service

    cancelled = service.cancel_reply(principal, message_id)
    response.status_code = 202 if cancelled else 200
    return ReplyCancelled(message_id=message_id, cancelled=cancelled)


@router.post("/chat", response_model=ChatResponse, responses=refusals(403, 404, 409, 429, 502))
async def chat(principal: CurrentPrincipal, body: ChatRequest) -> ChatResponse:
    """The same reply, buffered (and, as the stream, logged: it can be cancelled and followed by its messageId).
    A provider failure before any content is a 502. Nobody can be asked to approve a tool call here: a call that
    needs approval is refused at once, and the model is told so."""
    prepared = await reply.prepare(principal, body, interactive=False)
    async with reply.recorded(prepared) as events:
        buffered = await _Buffered.of(seq_event async for _, seq_event in events)
    buffered.raise_for_failure()
    assert prepared.conversation_id is not None
    return ChatResponse(
        conversation_id=prepared.conversation_id,
        message=ChatReplyMessage(
            id=prepared.message_id,
            role="assistant",
            content=buffered.text,
            model=buffered.start.get("model"),
            provider=buffered.start.get("provider"),
            stop_reason=buffered.end.get("stopReason"),
            incomplete=buffered.error is not None or buffered.end.get("stopReason") == "cancelled",
        ),
        usage=buffered.usage(),
        citations=buffered.citations,
    )


@agents_router.post("/{agentId}/test", response_model=AgentTestResponse, responses=refusals(403, 404, 409, 429, 502))
async def test_agent(
    principal: CurrentPrincipal, agent_id: Annotated[str, Path(alias="agentId", max_length=26)], body: AgentTestRequest
) -> AgentTestResponse:
    """How an agent answers one message, grounded in its documents as chat is (needs `agents.manage`). Nothing is
    stored but the reply's usage."""
    prepared = await reply.prepare_agent_test(principal, agent_id, body.message)
    async with reply.streaming(prepared) as events:
        buffered = await _Buffered.of(events)
    buffered.raise_for_failure()
    return AgentTestResponse(answer=buffered.text, citations=buffered.citations, usage=buffered.usage())


class _Buffered:
    """A reply's events gathered into one answer; a provider failure before any content is a 502
    (`raise_for_failure`)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.citations: list[Any] = []
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] = {}
        self.usage_event: dict[str, Any] = {}
        self.error: dict[str, Any] | None = None

    @classmethod
    async def of(cls, events: AsyncIterator[dict[str, Any]]) -> _Buffered:
        buffered = cls()
        async for event in events:
            kind = event["type"]
            if kind == "start":
                buffered.start = event
            elif kind == "citations":
                buffered.citations = event["items"]
            elif kind == "content":
                buffered.content.append(event["delta"])
            elif kind == "usage":
                buffered.usage_event = event
            elif kind == "error":
                buffered.error = event
            elif kind == "end":
                buffered.end = event
        return buffered

    def raise_for_failure(self) -> None:
        """Call it once the reply is stored (out of its `streaming` or `recorded` block)."""
        if self.error is not None and not self.content:
            raise ProviderFailed(self.error["message"], code="provider_error")

    @property
    def text(self) -> str:
        return "".join(self.content)

    def usage(self) -> ChatUsage:
        usage = self.usage_event
        return ChatUsage(input_tokens=usage["inputTokens"], output_tokens=usage["outputTokens"], cost=usage["cost"])


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


app = create_app(
    title="Stratus chat",
    public=[stream_router, enhance_api.stream_router, compatible_router],
    protected=[router, agents_router, tickets.router, playground_router, enhance_api.router],
)
