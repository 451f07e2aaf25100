"""The offline model: a deterministic local stand-in that answers when no provider is configured (`make dev`,
tests), saying plainly what it is and quoting the last user message, streamed word by word."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from shared.llm.catalog import OFFLINE_MODEL, OFFLINE_PROVIDER
from shared.llm.providers import (
    STOP_END_TURN,
    STOP_MAX_TOKENS,
    STOP_SEQUENCE,
    cut_at_stop_sequence,
    estimate_tokens,
    prompt_text,
)
from shared.llm.types import Finished, ModelRequest, ProviderEvent, TextDelta, UsageReport

QUOTE_CHARS = 80


def offline_reply(request: ModelRequest) -> str:
    """The whole reply for `request`: the same request always gets the same words."""
    last_user = next((message.content for message in reversed(request.messages) if message.role == "user"), "")
    quote = " ".join(last_user.split())
    if len(quote) > QUOTE_CHARS:
        quote = quote[: QUOTE_CHARS - 1].rstrip() + "…"
    model = "" if request.model in ("", OFFLINE_MODEL) else f" (you asked for {request.model})"
    reply = (
        f"This is the Stratus offline model{model}: no AI provider is configured for this deployment, "
        "so no real model can answer."
    )
    if quote:
        reply += f' You said: "{quote}"'
    return reply


class OfflineProvider:
    """Serves any model id without a network: usage is estimated at one token per four characters."""

    name = OFFLINE_PROVIDER

    def __init__(self, *, word_delay: float = 0.0) -> None:
        self._word_delay = word_delay

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        reply, stop_sequence = cut_at_stop_sequence(offline_reply(request), request.stop_sequences)
        words = re.findall(r"\S+\s*|\s+", reply)
        budget = request.max_tokens
        sent: list[str] = []
        stop_reason = STOP_END_TURN if stop_sequence is None else STOP_SEQUENCE
        for word in words:
            if estimate_tokens("".join(sent) + word) > budget:
                stop_reason, stop_sequence = STOP_MAX_TOKENS, None
                break
            sent.append(word)
            yield TextDelta(word)
            # Yield to the loop between words, as a network stream would.
            await asyncio.sleep(self._word_delay)
        yield UsageReport(estimate_tokens(prompt_text(request)), estimate_tokens("".join(sent)))
        yield Finished(stop_reason, stop_sequence)

    async def check(self) -> None:
        return None
