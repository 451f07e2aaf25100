"""The provider-neutral side both compatible APIs translate to and from: the request a reply is made for, the
conversation rules every provider needs, what a reply's typed events add up to, and which status a Stratus error
takes in a compatible API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.errors import BadRequest, DomainError, NotFound, ValidationFailed
from shared.llm.types import Message, ToolCall, ToolChoice, ToolSpec

# The model name that means "the caller's default, with the stage's failover".
AUTO_MODEL = "stratus-auto"

Event = dict[str, Any]


@dataclass(frozen=True)
class CompatibleRequest:
    """A compatible API's request in provider-neutral terms. `model` is as the client named it."""

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    stop_sequences: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False

    def model_and_provider(self) -> tuple[str | None, str | None]:
        """The (model, provider) to build the failover chain for: `stratus-auto` is the caller's default, and a
        `provider/model` name asks that provider for that model."""
        if self.model == AUTO_MODEL:
            return None, None
        provider, slash, model = self.model.partition("/")
        if slash and provider and model:
            return model, provider
        return self.model, None


@dataclass(frozen=True)
class Turn:
    """One message of a compatible request in neutral terms, with where it was (for the error that names it)."""

    message: Message
    where: str


def bad_request(message: str, param: str | None = None) -> BadRequest:
    """A malformed or unsupported request; `param` names the field at fault (OpenAI's `param`)."""
    return BadRequest(message, code="invalid_request_error", details=[{"param": param}] if param else None)


def invalid_body(error: ValidationError) -> BadRequest:
    """The first validation failure of a request body, naming the field at fault (`messages[2]`), never echoing
    its value."""
    first = error.errors(include_url=False, include_input=False)[0]
    location = list(first["loc"])
    param = str(location[0]) if location else None
    if param is not None and len(location) > 1 and isinstance(location[1], int):
        param += f"[{location[1]}]"
    return bad_request(f"{param}: {first['msg']}" if param else str(first["msg"]), param)


def conversation(turns: list[Turn]) -> tuple[Message, ...]:
    """The turns as one conversation every provider accepts: consecutive turns of one role merged, each tool call
    answered by a result before the user says more or the model answers again (and every result answering a call
    of the model's last turn), starting and ending with the user. A request breaking these is a bad request naming
    the message at fault."""
    merged: list[Message] = []
    pending: list[str] = []  # the calls of the model's last turn still waiting for their results
    for turn in turns:
        message = turn.message
        starts_turn = not merged or merged[-1].role != message.role
        if message.role == "assistant":
            if starts_turn and pending:
                raise bad_request(f"{turn.where} follows a tool call without its result: {pending[0]}", turn.where)
            pending += [call.id for call in message.tool_calls]
        else:
            for result in message.tool_results:
                if result.tool_call_id not in pending:
                    raise bad_request(f"{turn.where} answers no pending tool call: {result.tool_call_id}", turn.where)
                pending.remove(result.tool_call_id)
            if message.content and pending:
                raise bad_request(f"{turn.where} lacks the result of tool call {pending[0]}", turn.where)
        merged.append(message if starts_turn else _merge(merged.pop(), message))
    if not merged or merged[0].role != "user":
        raise bad_request("the conversation must start with a user message", "messages")
    if merged[-1].role != "user":
        raise bad_request("the conversation must end with a user message (or tool results)", "messages")
    if pending:
        raise bad_request(f"the conversation lacks the result of tool call {pending[0]}", "messages")
    return tuple(merged)


def _merge(first: Message, second: Message) -> Message:
    content = "\n\n".join(text for text in (first.content, second.content) if text)
    return Message(
        first.role,
        content,
        tool_calls=first.tool_calls + second.tool_calls,
        tool_results=first.tool_results + second.tool_results,
    )


@dataclass
class ReplyOutcome:
    """What one reply's typed events add up to: who answered, its text runs and tool calls in order, its usage,
    why it stopped, and the failure that ended it (if one did)."""

    message_id: str = ""
    model: str = ""
    blocks: list[str | ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    failure: str | None = None

    def take(self, event: Event) -> None:
        kind = event["type"]
        if kind == "start":
            self.message_id, self.model = str(event["messageId"]), str(event["model"])
        elif kind == "content":
            if self.blocks and isinstance(self.blocks[-1], str):
                self.blocks[-1] += event["delta"]
            else:
                self.blocks.append(event["delta"])
        elif kind == "tool_use":
            self.blocks.append(ToolCall(event["toolCallId"], event["toolName"], event["toolInput"]))
        elif kind == "usage":
            self.input_tokens, self.output_tokens = int(event["inputTokens"]), int(event["outputTokens"])
        elif kind == "error":
            self.failure = str(event["message"])
        elif kind == "end":
            self.stop_reason = str(event["stopReason"])
            self.stop_sequence = event.get("stopSequence")

    @property
    def text(self) -> str:
        return "".join(block for block in self.blocks if isinstance(block, str))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [block for block in self.blocks if isinstance(block, ToolCall)]

    @property
    def produced(self) -> bool:
        return bool(self.blocks)


def compatible_status(error: DomainError) -> int:
    """The status a Stratus error takes in a compatible API: a model the stage cannot serve is not found (as the
    APIs say of an unknown model), and any other invalid request is a 400 (they know no 422)."""
    if isinstance(error, ValidationFailed):
        return NotFound.status if error.error_code == "model_unavailable" else BadRequest.status
    return error.status


def error_param(error: DomainError) -> str | None:
    """The field a bad request names, if it names one."""
    for detail in error.details or ():
        if isinstance(detail.get("param"), str):
            return str(detail["param"])
    return None
