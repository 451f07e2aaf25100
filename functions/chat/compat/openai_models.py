"""OpenAI Chat Completions requests as this API accepts them. Fields a client may send that change nothing here
(`user`, `seed`, penalties, `top_p`, `parallel_tool_calls`, ...) are ignored; fields whose meaning cannot be
honoured are refused by the translation, never silently dropped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


# Only text: images, audio and files are refused (the neutral messages carry text).
Content = str | list[TextPart]


class FunctionCall(_Body):
    name: str
    arguments: str


class AssistantToolCall(_Body):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Body):
    role: Literal["system", "developer"]
    content: Content


class UserMessage(_Body):
    role: Literal["user"]
    content: Content


class AssistantMessage(_Body):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[AssistantToolCall] | None = None


class ToolMessage(_Body):
    role: Literal["tool"]
    tool_call_id: str = Field(min_length=1)
    content: Content


ChatMessage = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class FunctionDefinition(_Body):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class FunctionTool(_Body):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Body):
    include_usage: bool = False


class ResponseFormat(_Body):
    type: str


class ChatCompletionRequest(_Body):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    stop: str | list[str] | None = None
    # Refused unless they ask for what is done anyway: one choice, no log probabilities, plain text.
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    audio: Any = None
    modalities: list[str] | None = None
