"""A tool runner scripted by a test: a function answers the calls, as chat's MCP runner would."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.llm.types import ToolCall, ToolResult, ToolSpec


@dataclass
class ScriptedToolRunner:
    answer: Callable[[Sequence[ToolCall]], Awaitable[Sequence[ToolResult]]]
    specs: tuple[ToolSpec, ...] = ()
    closed: bool = False

    async def run(self, calls: Sequence[ToolCall]) -> AsyncGenerator[dict[str, Any] | ToolResult, None]:
        for result in await self.answer(calls):
            yield result

    def approval_of(self, tool_call_id: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        self.closed = True
