"""The model playground: one prompt to two to six models at once, their replies merged into one event stream, and
the comparison kept as a session of its user's.

`start_comparison` does everything that may refuse (the permission, every model's chain, the limits, counted all
at once) before anything streams; `Comparison.events` then runs every model through the one reply generator at
the same time, so the stream lasts as long as the slowest model, not the sum. Each model is on its own: one that
fails or passes its timeout ends only its own part. The run goes on to its end if the client goes away, and the
session is stored before the last event.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from functions.chat import limits, reply
from functions.chat.playground_models import ComparisonRequest, ModelChoice
from shared.auth.principal import Principal
from shared.ids import new_id
from shared.llm.types import Message
from shared.observability import logger
from shared.settings import get_settings

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from functions.chat.sse import SseEvent

Event = dict[str, Any]

# After its timeout a model is asked to stop (its reply then ends within moments, keeping what it produced);
# one that still has not ended this much later is cut off.
CUT_OFF_GRACE_SECONDS = 5.0


@dataclass
class ModelRun:
    """One model of a comparison: its reply, and what it produced."""

    index: int
    choice: ModelChoice
    prepared: reply.PreparedReply
    text: list[str] = field(default_factory=list)
    provider: str | None = None
    served_model: str | None = None
    usage: Event | None = None
    error: Event | None = None
    started: float = 0.0
    first_token_at: float | None = None
    ended: float | None = None
    stop_reason: str | None = None
    timed_out: bool = False

    def tagged(self, event: Event) -> Event:
        """A per-model event: `model` as the request named it, `index` its place in the request's list."""
        return {"type": event.pop("type"), "model": self.choice.model, "index": self.index, **event}

    @property
    def status(self) -> str:
        return "error" if self.error is not None else "done"

    def metrics(self) -> Event | None:
        if self.usage is None:
            return None
        ended = self.ended or time.monotonic()
        latency = ended - self.started
        ttft = self.first_token_at - self.started if self.first_token_at is not None else None
        output_tokens = int(self.usage["outputTokens"])
        # Tokens per second of generation, from the first token on (the whole run if it came at once).
        generating = latency - ttft if ttft is not None and latency - ttft > 0 else latency
        return {
            "inputTokens": int(self.usage["inputTokens"]),
            "outputTokens": output_tokens,
            "cost": str(self.usage["cost"]),
            "latencyMs": round(latency * 1000),
            "ttftMs": round(ttft * 1000) if ttft is not None else None,
            "tokensPerSecond": round(output_tokens / generating, 2) if output_tokens and generating > 0 else None,
        }

    def result(self) -> Event:
        return {
            "index": self.index,
            "model": self.choice.model,
            "provider": self.provider,
            "servedModel": self.served_model,
            "temperature": self.choice.temperature,
            "maxTokens": self.choice.max_tokens,
            "status": self.status,
            "response": "".join(self.text),
            "truncated": False,
            "metrics": self.metrics(),
            "error": {"code": self.error["code"], "message": self.error["message"]} if self.error else None,
        }


@dataclass
class Comparison:
    session_id: str
    principal: Principal
    request: ComparisonRequest
    runs: list[ModelRun]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[SseEvent]]:
        """The comparison's events, numbered `<sessionId>:<seq>` (the `EventStream` source). Every model runs in
        a task of its own; leaving the block waits for them all and for the session to be stored."""
        # Unbounded: a model never waits on the client (one that stopped reading leaves the events buffered).
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        try:
            async with anyio.create_task_group() as running:
                running.start_soon(self._run, send)
                yield self._numbered(receive)
        finally:
            receive.close()

    async def _numbered(self, receive: MemoryObjectReceiveStream[Event]) -> AsyncIterator[SseEvent]:
        seq = 0
        async for event in receive:
            seq += 1
            yield f"{self.session_id}:{seq}", event

    async def _run(self, send: MemoryObjectSendStream[Event]) -> None:
        async with send:
            await send.send({"type": "session", "sessionId": self.session_id})
            try:
                async with anyio.create_task_group() as models:
                    for run in self.runs:
                        models.start_soon(self._run_model, run, send)
            finally:
                # Stored even when the request is cancelled: what the models produced is the user's.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._store)
            await send.send({"type": "end", "sessionId": self.session_id})

    async def _run_model(self, run: ModelRun, send: MemoryObjectSendStream[Event]) -> None:
        timeout = get_settings().playground_model_timeout_seconds
        run.started = time.monotonic()
        await send.send(run.tagged({"type": "status", "status": "streaming"}))

        async def stop_when_overdue() -> None:
            await anyio.sleep(timeout)
            run.timed_out = True
            run.prepared.cancel.set()

        try:
            async with anyio.create_task_group() as watch:
                watch.start_soon(stop_when_overdue)
                with anyio.move_on_after(timeout + CUT_OFF_GRACE_SECONDS):
                    async with reply.streaming(run.prepared) as events:
                        async for event in events:
                            for out in self._take(run, event):
                                await send.send(out)
                watch.cancel_scope.cancel()
        except Exception:
            logger.exception("playground model failed", extra={"model": run.choice.model})
            run.error = {"code": "internal_error", "message": "Something went wrong on our side"}
        run.ended = time.monotonic()
        if run.timed_out and run.stop_reason in (None, "cancelled"):
            run.error = {"code": "model_timeout", "message": f"The model did not finish within {timeout:g} seconds"}
        if (metrics := run.metrics()) is not None:
            await send.send(run.tagged({"type": "metrics", **metrics}))
        if run.error is not None:
            await send.send(run.tagged({"type": "error", "code": run.error["code"], "message": run.error["message"]}))
        await send.send(run.tagged({"type": "status", "status": run.status}))

    def _take(self, run: ModelRun, event: Event) -> list[Event]:
        """Record one event of a model's reply; returns the comparison's events for it."""
        kind = event["type"]
        if kind == "start":
            run.provider, run.served_model = event["provider"], event["model"]
        elif kind == "content":
            run.first_token_at = run.first_token_at or time.monotonic()
            run.text.append(event["delta"])
            return [run.tagged({"type": "content", "delta": event["delta"]})]
        elif kind == "usage":
            run.usage = event
        elif kind == "error":
            run.error = event
        elif kind == "end":
            run.stop_reason = event["stopReason"]
        return []

    def _store(self) -> None:
        from functions.chat import playground_store

        results = [run.result() for run in self.runs]
        total = sum((Decimal(result["metrics"]["cost"]) for result in results if result["metrics"]), Decimal(0))
        playground_store.put_session(
            self.principal.user_id,
            {
                "sessionId": self.session_id,
                "prompt": self.request.prompt,
                "systemPrompt": self.request.system_prompt,
                "results": results,
                "totalCost": format(total, "f"),
                "createdAt": self.created_at.isoformat(),
                "completedAt": datetime.now(UTC).isoformat(),
            },
        )


async def start_comparison(principal: Principal, request: ComparisonRequest) -> Comparison:
    """Check everything that may refuse the comparison, in the order that charges nothing for a refusal: the
    permission (403), every model's chain (an unknown or unservable model is a 422), then the limits for all the
    models at once (429). Nothing has been generated or counted when any of them refuses."""
    principal.require("ai.playground")
    choices = request.choices()
    chains = [reply.chain_for(choice.model, choice.provider) for choice in choices]
    admission = await anyio.to_thread.run_sync(lambda: limits.admit(principal.user_id, requests=len(choices)))
    messages = [Message("user", request.prompt)]
    runs = [
        ModelRun(
            index,
            choice,
            reply.stateless_reply(
                principal,
                admission,
                chain,
                messages=messages,
                system=request.system_prompt or None,
                temperature=choice.temperature,
                max_tokens=choice.max_tokens,
                source="playground",
            ),
        )
        for index, (choice, chain) in enumerate(zip(choices, chains, strict=True))
    ]
    return Comparison(new_id(), principal, request, runs)


def get_session(principal: Principal, session_id: str) -> dict[str, Any]:
    from functions.chat import playground_store

    return playground_store.get_session(principal.user_id, session_id)


def list_sessions(principal: Principal, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    from functions.chat import playground_store

    return playground_store.list_sessions(principal.user_id, limit=limit, cursor=cursor)


def delete_session(principal: Principal, session_id: str) -> None:
    from functions.chat import playground_store

    playground_store.delete_session(principal.user_id, session_id)
