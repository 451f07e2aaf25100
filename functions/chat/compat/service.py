"""Serving a compatible API's request: who is calling, who may serve the model, admission against the limits,
then the one reply generator, stateless, with the request's tools, tool choice and stop sequences."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request

from functions.chat import limits, reply
from functions.chat.compat.neutral import CompatibleRequest, Event, ReplyOutcome, bad_request
from functions.chat.sse import SseEvent
from shared.auth.principal import Principal
from shared.errors import ProviderFailed, ValidationFailed
from shared.ids import new_id

if TYPE_CHECKING:
    from functions.conversations.service import ReplyThread
    from functions.identity.models import UserSettings

# Opt-ins a compatible call may send: store the exchange in a conversation (`new` or its id; the response names it
# in the same header), and put the caller's memories in the prompt (`on`).
CONVERSATION_HEADER = "x-stratus-conversation"
MEMORIES_HEADER = "x-stratus-memories"
NEW_CONVERSATION = "new"

# Where the reply stops being held back: the first output, or the end of a reply that had none.
_FIRST_OUTPUT = frozenset({"content", "tool_use", "error", "end"})


async def caller(request: Request) -> Principal:
    """The verified caller, by `Authorization: Bearer` or (Anthropic's clients) `x-api-key`, holding `ai.chat`."""
    from shared.http.deps import authenticate

    api_key = request.headers.get("x-api-key")
    if request.headers.get("authorization") is None and api_key:
        from starlette.concurrency import run_in_threadpool

        from shared.auth.verify import verify_credential

        principal = await run_in_threadpool(verify_credential, api_key)
    else:
        principal = await authenticate(request)
    principal.require("ai.chat")
    return principal


async def json_body(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("the request body is not valid JSON") from None


@dataclass(frozen=True)
class Storing:
    """What the client opted in to: the exchange stored in a conversation (`new`, or one it names) and the
    caller's memories in the prompt. Both off: the call is stateless."""

    conversation: str | None = None
    memories: bool = False

    @classmethod
    def from_headers(cls, request: Request) -> Storing:
        conversation = request.headers.get(CONVERSATION_HEADER, "").strip() or None
        memories = request.headers.get(MEMORIES_HEADER, "").strip().lower()
        if memories not in ("", "on", "off"):
            raise bad_request(f"{MEMORIES_HEADER} is on or off", MEMORIES_HEADER)
        return cls(conversation, memories == "on")


async def prepared_reply(
    principal: Principal, call: CompatibleRequest, *, source: str, storing: Storing = Storing()
) -> reply.PreparedReply:
    """The reply to `call`. What may refuse it without counting against the limits comes first: a model the stage
    cannot serve, a conversation the caller cannot see (404) or may only read (403). Then admission (429 before
    anything streams), with the reads that cannot refuse (the caller's default model, their memories) alongside it:
    the time before the first token is the slowest of them, not their sum."""
    from functions.identity import service as identity
    from functions.memories import service as memories
    from shared.concurrency import together

    model, provider = call.model_and_provider()
    named = model is not None or provider is not None
    attempts = reply.chain_for(model, provider) if named else None
    thread = await _conversation(principal, storing.conversation)
    reads: list[Callable[[], Any]] = [lambda: limits.admit(principal.user_id)]
    if not named:
        reads.append(lambda: identity.user_settings(principal.user_id))
    if storing.memories:
        reads.append(lambda: memories.memories_for_prompt(principal.user_id, reply.MEMORY_TOKENS))
    admission, *found = await anyio.to_thread.run_sync(lambda: together(*reads))
    if attempts is None:
        attempts = _default_attempts(found.pop(0))
    system = call.system
    if storing.memories:
        system = "\n\n".join(part for part in (system, memories.format_memories_for_prompt(found.pop(0))) if part)
    prepared = reply.stateless_reply(
        principal,
        admission,
        attempts,
        messages=call.messages,
        system=system or None,
        temperature=call.temperature,
        max_tokens=call.max_tokens,
        source=source,
    )
    # The client's own tools: a call to one ends the reply (`tool_use`), for the client to run and answer.
    prepared.model_request = replace(
        prepared.model_request, tools=call.tools, tool_choice=call.tool_choice, stop_sequences=call.stop_sequences
    )
    if storing.conversation is not None:
        _store_in_conversation(prepared, thread, call.messages[-1].content)
    return prepared


def _default_attempts(preferences: UserSettings) -> list[reply.Attempt]:
    """`stratus-auto`: the caller's default model and provider, or the stage's own chain when the stage cannot
    serve their saved default."""
    try:
        return reply.chain_for(preferences.default_model, preferences.default_provider)
    except ValidationFailed:
        return reply.chain_for(None, None)


async def _conversation(principal: Principal, asked: str | None) -> ReplyThread | None:
    """The conversation named by the header, checked (None for `new`, or for none asked)."""
    if asked is None or asked == NEW_CONVERSATION:
        return None
    from functions.conversations import service as conversations

    return await anyio.to_thread.run_sync(lambda: conversations.conversation_for_reply(principal, asked, 1))


def _store_in_conversation(prepared: reply.PreparedReply, thread: ReplyThread | None, said: str) -> None:
    """Store the exchange: the client's last user message, then (as chat does) the reply after it."""
    from functions.conversations import service as conversations
    from functions.conversations.models import ConversationCreate

    conversation_id = thread.conversation.id if thread is not None else new_id()

    def store_user_message() -> ReplyThread:
        nonlocal thread
        if thread is None:
            title = " ".join(said.split())[: reply.TITLE_CHARS] or "New conversation"
            create = ConversationCreate(title=title, model=prepared.model_request.model, system_prompt=None)
            thread = conversations.start_conversation(prepared.principal, create, conversation_id=conversation_id)
        if said:  # a turn of tool results only has nothing the user said
            thread.append("user", said)
        return thread

    prepared.conversation_id = conversation_id
    prepared.store_user_message = store_user_message


async def whole_reply(prepared: reply.PreparedReply) -> ReplyOutcome:
    """The reply read to its end (a buffered response)."""
    outcome = ReplyOutcome()
    async with reply.streaming(prepared) as events:
        async for event in events:
            outcome.take(event)
    return outcome


async def streamed_reply(
    prepared: reply.PreparedReply, translate: Callable[[Event], list[dict[str, Any]]]
) -> Callable[[], AbstractAsyncContextManager[AsyncIterator[SseEvent]]]:
    """The reply as an `EventStream` source of `translate`d events. The reply is read up to its first output
    first: one that every provider failed before any output raises `ProviderFailed`, so that the client gets the
    API's 502 instead of a stream that only says so."""
    stack = AsyncExitStack()
    events = await stack.enter_async_context(reply.streaming(prepared))
    head: list[Event] = []
    try:
        async for event in events:
            head.append(event)
            if event["type"] in _FIRST_OUTPUT:
                break
        if head and head[-1]["type"] == "error":
            async for _ in events:  # its usage and end: the reply is settled before the refusal
                pass
            raise ProviderFailed(str(head[-1]["message"]))
    except BaseException:
        await stack.aclose()
        raise

    async def translated() -> AsyncIterator[SseEvent]:
        for event in head:
            for out in translate(event):
                yield None, out
        async for event in events:
            for out in translate(event):
                yield None, out

    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[SseEvent]]:
        async with stack:
            yield translated()

    return source
