"""The one reply generator: SSE, the buffered chat route, the WebSocket worker, the playground and enhancement all
consume `stream`, through `streaming` (or `recorded`, which also numbers and logs the events for resuming).

`prepare` does everything that may refuse the request (limits, access to the conversation); `stream` then yields
the reply as typed events (start, content, tool_use, tool_result, usage, end, error), with the serving provider
chosen by failover, and stores the user's message once the model has answered. Whatever happens then (a provider
failing mid-stream, the client going away), the reply produced so far is kept, marked incomplete. The writes run
where the request's cancellation cannot reach them, and a consumer that stops, however it stops, waits for them
before it goes on: the user's message, the conversation it starts and the reply so far are stored before the
request ends, even when a disconnect cancelled it.

`stateless_reply` is the same reply outside any conversation (nothing but the reply's usage is stored). Any reply
can be cancelled: setting `PreparedReply.cancel` closes the provider's stream (or stops the tool round) at once,
and the reply ends as `cancelled`, keeping what it produced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio

from functions.chat import limits
from functions.chat.models import ChatRequest
from shared import events as shared_events
from shared.auth.principal import Principal
from shared.concurrency import complete_despite_cancellation, together
from shared.errors import Conflict, DomainError, ValidationFailed
from shared.ids import new_id
from shared.llm.providers import estimate_tokens, prompt_text
from shared.llm.types import (
    Finished,
    Message,
    ModelRequest,
    Provider,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolUseRequested,
    UsageReport,
)
from shared.observability import logger

if TYPE_CHECKING:
    from functions.agents.service import ChatAgent
    from functions.chat.grounding import Grounding
    from functions.conversations.service import ReplyThread
    from functions.usage.models import ReplyUsage

Event = dict[str, Any]
# Who may serve a model request: a provider and the model id it knows it by.
Attempt = tuple[Provider, str]
T = TypeVar("T")


class ToolRunner(Protocol):
    """Runs the tools a model asked for (chat's tool loop is pluggable; the user's MCP servers supply one).

    `specs` are the tools it offers the model; `run` yields events to stream (a `tool_approval` that waits for
    the user) and one `ToolResult` per call; `aclose` releases what it holds, once the reply has ended."""

    specs: tuple[ToolSpec, ...]

    def run(self, calls: Sequence[ToolCall]) -> AsyncGenerator[Event | ToolResult, None]: ...

    def approval_of(self, tool_call_id: str) -> bool | None:
        """The user's answer for a call that needed approval (None: none was asked)."""
        ...

    async def aclose(self) -> None: ...


HISTORY_MESSAGES = 200
MAX_TOOL_ROUNDS = 8
OVER_ROUNDS = f"Not run: the reply reached its limit of {MAX_TOOL_ROUNDS} model rounds"
DEFAULT_MAX_TOKENS = 2048
# Tokens of the user's memories a prompt may carry (highest priority first).
MEMORY_TOKENS = 2_000
TITLE_CHARS = 60


@dataclass
class PreparedReply:
    principal: Principal
    admission: limits.Admission
    # None: a reply that belongs to no conversation (`stateless_reply`).
    conversation_id: str | None
    model_request: ModelRequest
    attempts: list[Attempt]
    # Stores the user's message (creating the conversation first when it is new); see `start_storing_user_message`.
    # None: there is none to store.
    store_user_message: Callable[[], ReplyThread] | None
    message_id: str = field(default_factory=new_id)
    tool_runner: ToolRunner | None = None
    # Recorded on the reply's usage: chat, playground, enhance, agent-test.
    source: str = "chat"
    # The sources a grounded reply was given (`functions.chat.grounding`): its `citations` event, after `start`.
    citations: list[Event] = field(default_factory=list)
    # Set it to end the reply now (from any task of the reply's event loop); see `stream`.
    cancel: anyio.Event = field(default_factory=anyio.Event)
    _user_message: asyncio.Future[ReplyThread | None] | None = field(default=None, init=False, repr=False)

    def start_storing_user_message(self) -> asyncio.Future[ReplyThread | None]:
        """Start storing the user's message, once, in a task of its own that no request's cancellation reaches.

        `stream` starts it as soon as it has passed on the model's first event: the model does not need the message
        stored to answer, and the first token should not share the CPU with a write that can wait. The reply is
        stored only after it, so the order in the conversation holds."""
        if self._user_message is None:
            store = self.store_user_message
            stored: asyncio.Future[ReplyThread | None]
            if store is None:
                stored = asyncio.get_running_loop().create_future()
                stored.set_result(None)
            else:
                stored = asyncio.ensure_future(anyio.to_thread.run_sync(store))
            self._user_message = stored
        return self._user_message

    async def user_message_stored(self) -> ReplyThread | None:
        """The conversation to add the reply to, once the user's message is stored (starting it if need be); None
        for a reply outside any conversation. The write ends even if the caller is cancelled meanwhile; the
        cancellation is raised after it."""
        return await complete_despite_cancellation(self.start_storing_user_message())


def chain_for(model: str | None, provider: str | None) -> list[Attempt]:
    """Who may serve a model request, in failover order (both None: the stage's default chain). A model or provider
    this stage cannot serve is a 422 `model_unavailable`; check it before `limits.admit`, so that refusing it
    does not count against the limits."""
    from shared.llm import registry
    from shared.llm.catalog import UnknownModel

    try:
        return registry.chain_for(model, provider)
    except (UnknownModel, registry.ProviderUnavailable) as error:
        raise ValidationFailed(str(error), code="model_unavailable") from None


def stateless_reply(
    principal: Principal,
    admission: limits.Admission,
    attempts: list[Attempt],
    *,
    messages: Sequence[Message],
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    message_id: str | None = None,
    source: str,
    citations: Sequence[Event] = (),
) -> PreparedReply:
    """A reply that belongs to no conversation: the same generator, failover, usage record and limit settlement as
    chat, without a conversation, a stored user message, memories or tools. Call it from the reply's event loop."""
    model_request = ModelRequest(
        model=attempts[0][1],
        messages=tuple(messages),
        system=system,
        temperature=temperature,
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
    )
    return PreparedReply(
        principal,
        admission,
        None,
        model_request,
        attempts,
        None,
        message_id or new_id(),
        source=source,
        citations=list(citations),
    )


async def prepare(
    principal: Principal, request: ChatRequest, tool_runner: ToolRunner | None = None, *, interactive: bool = True
) -> PreparedReply:
    """Admit the request, find or create its conversation, store the user's message and build the model call.

    Raises the API's domain errors (429 over a limit, 404 for a conversation the user cannot see, 403 for one
    they may only read, 404/409 for an unknown/inactive agent, 409 `agent_mismatch` for a conversation that
    answers as another agent) before anything is streamed; a request refused for its agent is not counted.
    Without a `tool_runner`, the user's enabled MCP servers supply the tools (the agent's servers, when it answers
    as an agent); `interactive` False (the buffered route) refuses the calls that would need an approval.

    With an agent (the request's, or the conversation's), the reply is grounded (`functions.chat.grounding`): the
    agent and its sources are read alongside the other reads, its instructions lead the system prompt, its model
    and settings apply unless the request names its own.
    """
    from functions.conversations import service as conversations
    from functions.conversations.models import ConversationCreate
    from functions.memories import service as memory_service
    from shared.llm import catalog

    principal.require("ai.chat")
    # A model or provider the request names is checked first: refusing it must not count against the limits.
    requested = chain_for(request.model, request.provider) if request.model or request.provider else None
    found = await _reply_reads(principal, request, want_servers=tool_runner is None)
    admission: limits.Admission = found["admission"]
    preferences, servers = found["preferences"]
    thread: conversations.ReplyThread | None = found.get("thread")
    grounding: Grounding | None = found.get("grounding")
    agent = grounding.agent if grounding is not None else None
    try:
        if thread is not None and request.agent_id is not None and thread.conversation.agent_id != request.agent_id:
            raise Conflict(
                "This conversation answers as another agent (or none): start a new conversation for this one",
                code="agent_mismatch",
            )
        attempts = requested or _agent_or_preferred_chain(agent, preferences)
    except DomainError:
        await _release(admission)
        raise
    info = catalog.model_info(attempts[0][1])
    servers = found["agent_servers"] if grounding is not None else servers  # an agent's tools replace the user's

    if thread is not None:
        conversation_id = thread.conversation.id
        system_prompt = thread.conversation.system_prompt or preferences.system_prompt
        turns = [
            Message("user" if m.role == "user" else "assistant", m.content)
            for m in thread.history
            if m.role != "system"
        ]
    else:
        conversation_id, system_prompt, turns = new_id(), preferences.system_prompt, []
    turns.append(Message("user", request.message))

    def store_user_message() -> conversations.ReplyThread:
        nonlocal thread
        if thread is None:
            title = " ".join(request.message.split())[:TITLE_CHARS] or "New conversation"
            create = ConversationCreate(title=title, model=attempts[0][1], system_prompt=system_prompt)
            thread = conversations.start_conversation(
                principal, create, conversation_id=conversation_id, agent_id=agent.id if agent is not None else None
            )
        thread.append("user", request.message)
        return thread

    # The request's own settings first, then the agent's, then the user's.
    max_tokens = request.max_tokens or (agent and agent.max_tokens) or preferences.max_tokens or DEFAULT_MAX_TOKENS
    temperature = _first_set(request.temperature, agent and agent.temperature, preferences.temperature)
    use_memories = preferences.memory_enabled if request.use_memories is None else request.use_memories
    memories = memory_service.format_memories_for_prompt(found["memories"]) if use_memories else ""
    system, citations = _system_and_citations(grounding, info.context_window, system_prompt, memories)
    budget = info.context_window - max_tokens - estimate_tokens(system or "")
    messages = fit_history(turns, budget)

    message_id = new_id()
    tool_runner = tool_runner or await _mcp_tool_runner(servers, principal.user_id, message_id, interactive)
    model_request = ModelRequest(
        model=attempts[0][1],
        messages=tuple(messages),
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        tools=(
            *(ToolSpec(t.name, t.description, t.input_schema) for t in request.tools),
            *(tool_runner.specs if tool_runner is not None else ()),
        ),
    )
    return PreparedReply(
        principal,
        admission,
        conversation_id,
        model_request,
        attempts,
        store_user_message,
        message_id,
        tool_runner,
        citations=citations,
    )


async def _reply_reads(principal: Principal, request: ChatRequest, *, want_servers: bool) -> dict[str, Any]:
    """What a reply needs read, read together: the time before the first token is the slowest read, not their
    sum. `admission`, `preferences` (with the user's MCP servers, unless an agent's serve instead), `memories`,
    the conversation's `thread`, and, with an agent, its `grounding` and `agent_servers`. A refusal from any of
    them is raised (the first domain error); the admission is given back when the agent refused (a conversation
    the user cannot reach counts, as it always did: it was read alongside the admission)."""
    from functions.conversations import service as conversations
    from functions.memories import service as memory_service

    found: dict[str, Any] = {}

    async def read(name: str, call: Callable[[], Any]) -> None:
        found[name] = await anyio.to_thread.run_sync(call)

    async def ground(agent_id: str) -> None:
        try:
            found["grounding"], found["agent_servers"] = await _grounding_and_servers(
                principal, agent_id, request.message, want_servers=want_servers
            )
        except DomainError:
            found["agent_refused"] = True
            raise

    async def read_thread(conversation_id: str) -> None:
        await read("thread", lambda: conversations.conversation_for_reply(principal, conversation_id, HISTORY_MESSAGES))
        # A conversation answers as the agent it started with: grounded as soon as the thread says which.
        agent_id = found["thread"].conversation.agent_id
        if agent_id is not None and request.agent_id is None:
            await ground(agent_id)

    try:
        async with anyio.create_task_group() as reads:
            reads.start_soon(read, "admission", lambda: limits.admit(principal.user_id))
            want_user_servers = want_servers and request.agent_id is None
            reads.start_soon(read, "preferences", lambda: _preferences_and_servers(principal, want_user_servers))
            if request.agent_id is not None:
                reads.start_soon(ground, request.agent_id)
            if request.use_memories is not False:
                reads.start_soon(
                    read, "memories", lambda: memory_service.memories_for_prompt(principal.user_id, MEMORY_TOKENS)
                )
            if request.conversation_id:
                reads.start_soon(read_thread, request.conversation_id)
    except BaseExceptionGroup as failures:
        if found.get("agent_refused"):
            await _release(found.get("admission"))
        raise _first_domain_error(failures) from None
    return found


def _system_and_citations(
    grounding: Grounding | None, context_window: int, system_prompt: str | None, memories: str
) -> tuple[str | None, list[Event]]:
    """The system prompt (the agent's instructions and sources around the user's prompt and memories, when it is
    grounded) and the citations of the sources it carries."""
    if grounding is None:
        return "\n\n".join(part for part in (system_prompt, memories) if part) or None, []
    return grounding.system_prompt(context_window, system_prompt, memories), grounding.citations(context_window)


def _first_set(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


async def prepare_agent_test(principal: Principal, agent_id: str, message: str) -> PreparedReply:
    """An agent's answer to one message, grounded as chat grounds it, outside any conversation (`stateless_reply`):
    how its manager tries it. Needs `agents.manage`; an unknown agent is a 404, an inactive one a 409, before
    anything counts against the limits. Nothing is stored but the reply's usage (source `agent-test`)."""
    from shared.llm import catalog

    principal.require("agents.manage")
    found: dict[str, Any] = {}

    async def admit() -> None:
        found["admission"] = await anyio.to_thread.run_sync(limits.admit, principal.user_id)

    async def ground() -> None:
        found["grounding"], _ = await _grounding_and_servers(principal, agent_id, message, want_servers=False)

    try:
        async with anyio.create_task_group() as reads:
            reads.start_soon(admit)
            reads.start_soon(ground)
    except BaseExceptionGroup as failures:
        await _release(found.get("admission"))
        raise _first_domain_error(failures) from None
    grounding: Grounding = found["grounding"]
    agent = grounding.agent
    try:
        attempts = chain_for(agent.model, agent.provider)
    except DomainError:
        await _release(found["admission"])
        raise
    info = catalog.model_info(attempts[0][1])
    return stateless_reply(
        principal,
        found["admission"],
        attempts,
        messages=[Message("user", message)],
        system=grounding.system_prompt(info.context_window),
        temperature=agent.temperature,
        max_tokens=agent.max_tokens,
        source="agent-test",
        citations=grounding.citations(info.context_window),
    )


@asynccontextmanager
async def streaming(prepared: PreparedReply) -> AsyncIterator[AsyncIterator[Event]]:
    """The reply's events, for one consumer. Leaving the block, however it is left (the reply's end, a consumer
    that stops early, an error, the consumer's task cancelled), closes the stream and waits until the user's
    message and the reply so far are stored, even if the user's message never reached the model; then whatever
    ended the block goes on."""
    events = stream(prepared)
    try:
        yield events
    finally:
        try:
            await events.aclose()  # a stream cut short stores what it produced, marked incomplete
        finally:
            try:
                if prepared.tool_runner is not None:
                    await prepared.tool_runner.aclose()  # its MCP sessions end with the reply
            finally:
                try:
                    await prepared.user_message_stored()
                finally:
                    # The chat app and the WebSocket and channels workers are no HTTP handler that flushes: what
                    # storing the messages published (`message.created`...) and the reply's `reply.completed` are on
                    # the queue before the reply ends.
                    await complete_despite_cancellation(asyncio.to_thread(shared_events.flush))


@asynccontextmanager
async def recorded(prepared: PreparedReply, *, kind: str = "chat") -> AsyncIterator[AsyncIterator[tuple[int, Event]]]:
    """The reply's events numbered from 1, and logged for resuming, following and cancelling from any container
    (`functions.chat.eventlog`). Leaving the block, however it is left, stores the reply (as `streaming` does),
    then flushes every event and marks the log ended, even if the consumer is cancelled."""
    from functions.chat import eventlog

    log = eventlog.ReplyLog(prepared.message_id, prepared.principal.user_id, kind)
    async with log.running(prepared.cancel), streaming(prepared) as events:
        yield log.numbered(events)


async def stream(prepared: PreparedReply) -> AsyncGenerator[Event, None]:
    """The reply as events. A provider failure is an `error` event, never an exception; a cancel (`prepared.cancel`
    set) ends it as `cancelled`. Consume it through `streaming`, which also keeps the user's message when the stream
    is never read."""
    progress = _Progress(prepared)
    failure: ProviderError | None = None
    try:
        async with aclosing(_model_rounds(prepared, progress)) as events:
            async for event in events:
                yield event
    except ProviderError as error:  # before any content, or mid-stream (StreamInterrupted)
        failure = error
        progress.stop_reason = "error"
    except BaseException:
        # The client went away (cancellation, or the stream closed) or something broke: keep what was produced,
        # then let it propagate.
        progress.stop_reason = progress.stop_reason or "client_disconnected"
        await progress.persist(incomplete=True)
        raise

    # Stored before anything more is yielded: a consumer that stops at the next event has nothing left to store.
    cancelled = progress.stop_reason == "cancelled"
    cost = await progress.persist(incomplete=failure is not None or cancelled)
    if failure is not None:
        logger.warning("reply failed", extra={"provider": failure.provider, "status": failure.status})
    if not progress.announced:
        for event in progress.opening_events():
            yield event
    usage = progress.usage
    yield {
        "type": "usage",
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cost": format(cost, "f"),
    }
    if failure is not None:
        kept = " mid-reply; the partial reply was kept" if progress.text else ""
        yield {"type": "error", "code": "provider_error", "message": f"The model provider failed{kept}"}
    end: Event = {"type": "end", "stopReason": progress.stop_reason or "end_turn"}
    if progress.stop_sequence is not None and progress.stop_reason == "stop_sequence":
        end["stopSequence"] = progress.stop_sequence
    yield end


async def _model_rounds(prepared: PreparedReply, progress: _Progress) -> AsyncGenerator[Event, None]:
    """The model's rounds, each followed by the round of tool calls it asked for, until it stops asking (or the
    rounds run out, or the reply is cancelled)."""
    from shared.llm.failover import stream_with_failover

    request = prepared.model_request
    for model_round in range(1, MAX_TOOL_ROUNDS + 1):
        calls: list[ToolCall] = []
        round_start = len(progress.text)
        progress.start_round(request)
        # Closing this generator (a client that went away, or the reply cancelled) closes the provider's stream.
        provider_stream = _unless_cancelled(stream_with_failover(request, prepared.attempts), prepared.cancel)
        async with aclosing(provider_stream) as provider_events:
            async for provider_event in provider_events:
                for event in progress.take(provider_event, calls):
                    yield event
                if progress.announced:
                    prepared.start_storing_user_message()
        if prepared.cancel.is_set() and progress.stop_reason is None:  # cut off before the model finished
            progress.stop_reason = "cancelled"
        if progress.stop_reason != "tool_use" or not calls or prepared.tool_runner is None:
            return
        results: list[ToolResult] = []
        tool_round = _tool_round(prepared.tool_runner, progress, calls, results, model_round)
        async with aclosing(_unless_cancelled(tool_round, prepared.cancel)) as events:
            async for event in events:
                yield event
        if prepared.cancel.is_set():
            progress.stop_reason = "cancelled"
            return
        if model_round == MAX_TOOL_ROUNDS:
            return
        round_text = "".join(progress.text[round_start:])
        request = replace(
            request,
            messages=(
                *request.messages,
                Message("assistant", round_text, tool_calls=tuple(calls)),
                Message("user", "", tool_results=tuple(results)),
            ),
        )


async def _unless_cancelled(events: AsyncGenerator[T, None], cancel: anyio.Event) -> AsyncGenerator[T, None]:
    """`events` until `cancel` is set. A cancel that comes while an item is awaited interrupts that wait at once
    (the consuming task is cancelled there, and only there), which ends `events` (a provider's stream then closes
    its connection, a tool round stops its calls); one that comes while the consumer has an item ends it before
    the next read. Reading an item costs no task and no extra turn of the event loop."""
    if cancel.is_set():
        await events.aclose()
        return
    consumer = asyncio.current_task()
    assert consumer is not None
    reading = interrupted = False

    def interrupt(_: object) -> None:
        nonlocal interrupted
        if reading and not interrupted:
            interrupted = True
            consumer.cancel()

    watcher = asyncio.ensure_future(cancel.wait())
    watcher.add_done_callback(interrupt)
    try:
        while not cancel.is_set():
            reading = True
            try:
                item = await anext(events)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours alone: the reply ends as cancelled. Any other cancellation of the task goes on.
                if interrupted and consumer.uncancel() == 0:
                    return
                raise
            finally:
                reading = False
            yield item
    finally:
        watcher.remove_done_callback(interrupt)
        watcher.cancel()
        await complete_despite_cancellation(events.aclose())


async def _tool_round(
    runner: ToolRunner, progress: _Progress, calls: list[ToolCall], results: list[ToolResult], model_round: int
) -> AsyncGenerator[Event, None]:
    """Run a round's tool calls, yielding their events (and collecting their results). After the last round the
    model could not read the results, so the calls are not run."""
    if model_round == MAX_TOOL_ROUNDS:
        for call in calls:
            yield progress.take_result(ToolResult(call.id, OVER_ROUNDS, is_error=True))
        progress.stop_reason = "max_tool_rounds"
        return
    async with aclosing(runner.run(calls)) as outcomes:
        async for outcome in outcomes:
            if isinstance(outcome, ToolResult):
                results.append(outcome)
                yield progress.take_result(outcome)
            else:
                yield outcome


@dataclass
class _Progress:
    """What a reply has produced so far, and who is producing it."""

    prepared: PreparedReply
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    served: tuple[str, str] | None = None
    announced: bool = False
    text: list[str] = field(default_factory=list)
    usage: UsageReport = field(default_factory=lambda: UsageReport(0, 0))
    stop_reason: str | None = None
    # Which of the request's stop sequences ended it, when the provider says.
    stop_sequence: str | None = None
    # The model round under way: its request, where its text starts, whether it produced anything, and whether
    # the provider reported its usage (providers report at the end: a cut-off round has not).
    round_request: ModelRequest | None = None
    round_text_start: int = 0
    round_produced: bool = False
    round_reported: bool = False
    # The tool calls of every round, with their results, as the reply's metadata keeps them.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def start_round(self, request: ModelRequest) -> None:
        self.round_request, self.round_text_start = request, len(self.text)
        self.round_produced = self.round_reported = False
        self.stop_reason = None

    def metered_usage(self) -> UsageReport:
        """What was used: the providers' reports, plus an estimate for a round cut off before its report, so an
        interrupted reply still counts against the limits (a round that produced nothing counts nothing)."""
        if self.round_request is None or self.round_reported or not self.round_produced:
            return self.usage
        output = "".join(self.text[self.round_text_start :])
        estimate = UsageReport(estimate_tokens(prompt_text(self.round_request)), estimate_tokens(output))
        return _add_usage(self.usage, estimate)

    def take(self, event: object, calls: list[ToolCall]) -> list[Event]:
        """Record one provider event; returns the events to stream for it."""
        from shared.llm.failover import AttemptStarted

        if isinstance(event, AttemptStarted):
            self.served = (event.provider, event.model)
            return []
        out = [] if self.announced else self.opening_events()
        self.announced = True
        if isinstance(event, TextDelta):
            self.first_token_at = self.first_token_at or time.monotonic()
            self.round_produced = True
            self.text.append(event.text)
            out.append({"type": "content", "delta": event.text})
        elif isinstance(event, ToolUseRequested):
            self.first_token_at = self.first_token_at or time.monotonic()
            self.round_produced = True
            calls.append(event.call)
            self.tool_calls.append({"toolCallId": event.call.id, "toolName": event.call.name,
                                    "toolInput": event.call.input})  # fmt: skip
            out.append({"type": "tool_use", "toolCallId": event.call.id, "toolName": event.call.name,
                        "toolInput": event.call.input})  # fmt: skip
        elif isinstance(event, UsageReport):
            self.round_reported = True
            self.usage = _add_usage(self.usage, event)
        elif isinstance(event, Finished):
            self.stop_reason, self.stop_sequence = event.stop_reason, event.stop_sequence
        return out

    def take_result(self, result: ToolResult) -> Event:
        """Record a tool call's result; returns its event."""
        runner = self.prepared.tool_runner
        approved = runner.approval_of(result.tool_call_id) if runner is not None else None
        for record in self.tool_calls:
            if record["toolCallId"] == result.tool_call_id and "content" not in record:
                record.update({"content": result.content, "isError": result.is_error})
                if approved is not None:
                    record["approved"] = approved
                break
        return {"type": "tool_result", "toolCallId": result.tool_call_id, "content": result.content,
                "isError": result.is_error}  # fmt: skip

    def opening_events(self) -> list[Event]:
        """`start`, then the reply's sources when it has any."""
        citations = self.prepared.citations
        return [self.start_event(), *([{"type": "citations", "items": citations}] if citations else [])]

    def start_event(self) -> Event:
        provider, model = self.served or (self.prepared.attempts[0][0].name, self.prepared.model_request.model)
        return {
            "type": "start",
            "conversationId": self.prepared.conversation_id,
            "messageId": self.prepared.message_id,
            "model": model,
            "provider": provider,
        }

    async def persist(self, *, incomplete: bool) -> Decimal:
        """Store the reply (if anything was produced), its usage, and its cost against the limits. The writes end
        even if the caller is cancelled meanwhile; the cancellation is raised after them."""
        return await complete_despite_cancellation(self._store(incomplete=incomplete))

    async def _store(self, *, incomplete: bool) -> Decimal:
        from functions.usage import service as usage
        from functions.usage.models import ReplyUsage
        from shared.llm import catalog

        prepared = self.prepared
        provider, model = self.served or (prepared.attempts[0][0].name, prepared.model_request.model)
        self.usage, self.round_reported = self.metered_usage(), True
        # The offline model answers under any model's name, and costs nothing.
        free = provider == catalog.OFFLINE_PROVIDER
        cost = Decimal(0) if free else catalog.cost_usd(catalog.model_info(model), self.usage)
        content = "".join(self.text)
        metadata = {
            "provider": provider, "model": model, "inputTokens": self.usage.input_tokens,
            "outputTokens": self.usage.output_tokens, "cost": format(cost, "f"), "stopReason": self.stop_reason,
            "incomplete": incomplete,
        }  # fmt: skip
        if prepared.citations:
            metadata["citations"] = prepared.citations
        if self.tool_calls:
            from functions.chat.tools import stored_tool_calls

            metadata.update(stored_tool_calls(self.tool_calls))
        now = time.monotonic()
        reply_usage = ReplyUsage(
            user_id=prepared.principal.user_id,
            provider=provider,
            model=model,
            input_tokens=self.usage.input_tokens,
            output_tokens=self.usage.output_tokens,
            cache_read_tokens=self.usage.cache_read_tokens,
            cache_write_tokens=self.usage.cache_write_tokens,
            cost_usd=cost,
            latency_ms=int((now - self.started) * 1000),
            time_to_first_token_ms=int((self.first_token_at - self.started) * 1000) if self.first_token_at else None,
            conversation_id=prepared.conversation_id,
            message_id=prepared.message_id,
            status="incomplete" if incomplete else "complete",
            source=prepared.source,
        )

        thread = await prepared.user_message_stored()

        stored_seq: list[int] = []

        def store_reply() -> None:
            assert thread is not None
            message = thread.append("assistant", content or " ", metadata=metadata, message_id=prepared.message_id)
            stored_seq.append(message.seq)

        def write() -> None:
            spent = self.usage.input_tokens + self.usage.output_tokens
            together(
                *([store_reply] if thread is not None and (content or not incomplete) else []),
                lambda: usage.record_reply(reply_usage),
                lambda: limits.settle(prepared.admission, tokens=spent, cost_usd=cost),
            )

        await anyio.to_thread.run_sync(write)
        _publish_completed(reply_usage, self.stop_reason, thread, stored_seq[0] if stored_seq else None, prepared)
        return cost


def _publish_completed(
    reply_usage: ReplyUsage,
    stop_reason: str | None,
    thread: ReplyThread | None,
    message_count: int | None,
    prepared: PreparedReply,
) -> None:
    """`reply.completed` for the analytics counters (an internal event, never delivered to webhooks): what the
    reply used and how it went, where it came from (agent, channel), and its conversation's length."""
    from shared import events

    conversation = thread.conversation if thread is not None else None
    source = conversation.source if conversation is not None else None
    events.publish(
        "reply.completed",
        {
            "conversationId": prepared.conversation_id, "messageId": prepared.message_id,
            "provider": reply_usage.provider, "model": reply_usage.model, "source": prepared.source,
            "inputTokens": reply_usage.input_tokens, "outputTokens": reply_usage.output_tokens,
            "cost": format(reply_usage.cost_usd, "f"), "latencyMs": reply_usage.latency_ms,
            "timeToFirstTokenMs": reply_usage.time_to_first_token_ms,
            "agentId": conversation.agent_id if conversation is not None else None,
            "channel": source.type if source is not None else None,
            "citations": len(prepared.citations), "failed": stop_reason == "error", "stopReason": stop_reason,
            "messageCount": message_count,
        },
        user_id=prepared.principal.user_id,
    )  # fmt: skip


def _preferences_and_servers(principal: Principal, want_servers: bool) -> tuple[Any, list[Any]]:
    """The user's settings, then (as soon as they are read, in the same read) the MCP servers they enable."""
    from functions.chat import tools
    from functions.identity import service as identity

    preferences = identity.user_settings(principal.user_id)
    servers = tools.servers_for(principal, preferences.enabled_mcp_servers) if want_servers else []
    return preferences, servers


async def _grounding_and_servers(
    principal: Principal, agent_id: str, message: str, *, want_servers: bool
) -> tuple[Grounding, list[Any]]:
    """The agent and its sources for `message`, then (as soon as it is known) the MCP servers it uses."""
    from functions.chat import grounding, tools

    found = await grounding.ground(principal, agent_id, message)
    if not want_servers or not found.agent.mcp_servers:
        return found, []
    return found, await anyio.to_thread.run_sync(tools.servers_for, principal, found.agent.mcp_servers)


async def _release(admission: limits.Admission | None) -> None:
    """A request refused for its agent (unknown, inactive, another conversation's, a model the stage cannot serve)
    is not counted: give its admission back (if it was admitted before the refusal)."""
    if admission is not None:
        await complete_despite_cancellation(anyio.to_thread.run_sync(limits.release, admission))


async def _mcp_tool_runner(servers: list[Any], user_id: str, message_id: str, interactive: bool) -> ToolRunner | None:
    from functions.chat import tools

    return await tools.tool_runner(servers, user_id, message_id, interactive=interactive)


def _first_domain_error(failures: BaseExceptionGroup) -> BaseException:
    """The refusal to answer with when concurrent reads failed: a domain error (429, 404, ...) if there is one."""
    errors = list(_leaves(failures))
    return next((error for error in errors if isinstance(error, DomainError)), errors[0])


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error


def _agent_or_preferred_chain(agent: ChatAgent | None, preferences: Any) -> list[Attempt]:
    """Who may serve a request that names no model: the agent's model or provider when it names one (422
    `model_unavailable` if this stage cannot serve it), else the user's preference (`_preferred_chain`)."""
    if agent is not None and (agent.model or agent.provider):
        return chain_for(agent.model, agent.provider)
    return _preferred_chain(preferences.default_model, preferences.default_provider)


def _preferred_chain(preferred_model: str | None, preferred_provider: str | None) -> list[Attempt]:
    """Who may serve a request that names no model: the user's saved preference, or, when this stage cannot serve
    it, the stage's own chain."""
    from shared.llm import registry
    from shared.llm.catalog import UnknownModel

    try:
        return registry.chain_for(preferred_model, preferred_provider)
    except (UnknownModel, registry.ProviderUnavailable):
        return registry.chain_for(None, None)


def fit_history(messages: list[Message], budget_tokens: int) -> list[Message]:
    """The newest messages that fit in `budget_tokens`, oldest first; the last (the user's turn) always stays."""
    kept: list[Message] = []
    spent = 0
    for message in reversed(messages):
        cost = estimate_tokens(message.content) + 4
        if kept and spent + cost > budget_tokens:
            break
        kept.append(message)
        spent += cost
    kept.reverse()
    # A conversation sent to a model starts with the user.
    while len(kept) > 1 and kept[0].role != "user":
        kept.pop(0)
    return kept


def _add_usage(total: UsageReport, more: UsageReport) -> UsageReport:
    return UsageReport(
        total.input_tokens + more.input_tokens,
        total.output_tokens + more.output_tokens,
        total.cache_read_tokens + more.cache_read_tokens,
        total.cache_write_tokens + more.cache_write_tokens,
    )
