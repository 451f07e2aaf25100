"""The provider implementations and what they share: how a failure becomes a `ProviderError`, token estimates.

Each provider module imports its SDK only when it first builds a client, so importing a provider costs nothing.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from shared.llm.types import ModelRequest, ProviderError

# Statuses worth another provider: timeouts, conflicts on their side, rate limits, server errors and 529
# (Anthropic's "overloaded"). 400/401/403/404/413/422 would fail the same way anywhere.
_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

STOP_END_TURN = "end_turn"
STOP_MAX_TOKENS = "max_tokens"
STOP_TOOL_USE = "tool_use"
STOP_SEQUENCE = "stop_sequence"

ClientT = TypeVar("ClientT")


def is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """The wait a response asks for: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    if (milliseconds := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def status_error(provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    return ProviderError(
        f"{provider} answered {status}: {detail}",
        provider=provider,
        retryable=is_retryable_status(status),
        status=status,
        retry_after=retry_after_seconds(headers),
    )


def transport_error(provider: str, what: str) -> ProviderError:
    """A timeout, a refused or dropped connection: the next provider may well answer."""
    return ProviderError(f"{provider}: {what}", provider=provider, retryable=True)


def estimate_tokens(text: str) -> int:
    """About four characters a token: good enough to meter a model that reports no usage."""
    return math.ceil(len(text) / 4)


def cut_at_stop_sequence(text: str, stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """`text` up to the first of `stop_sequences` it contains (which is left out, as a model leaves it out), and
    that sequence; `text` whole and None if it contains none."""
    found = [(text.find(sequence), sequence) for sequence in stop_sequences if sequence and sequence in text]
    if not found:
        return text, None
    index, sequence = min(found, key=lambda hit: hit[0])
    return text[:index], sequence


def prompt_text(request: ModelRequest) -> str:
    """Everything a request sends the model as text: what an input-token estimate counts."""
    return "\n".join([request.system or "", *(message.content for message in request.messages)])


class LoopBound(Generic[ClientT]):
    """One SDK client per event loop: an async HTTP client's pooled connections belong to the loop that opened
    them. Lambda runs one loop, so one client per provider per container; tests may run many loops.

    A client is built with an HTTP client of its own (the SDK's `DefaultAsyncHttpxClient`) rather than the SDK's
    wrapper, whose finaliser schedules its close on whatever loop runs when it is collected: the client of an
    ended loop would then close sockets of that closed loop from a task of the running one, and fail there."""

    def __init__(self, build: Callable[[], ClientT]) -> None:
        self._build = build
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = weakref.WeakKeyDictionary()

    def get(self) -> ClientT:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._build()
        return client


def parse_tool_input(provider: str, raw: str) -> dict[str, Any]:
    """A tool call's streamed JSON arguments as an object; a malformed one is the provider's failure."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise ProviderError(
            f"{provider} sent a tool call with malformed input", provider=provider, retryable=True
        ) from None
    if not isinstance(value, dict):
        raise ProviderError(
            f"{provider} sent a tool call whose input is not an object", provider=provider, retryable=True
        )
    return value
