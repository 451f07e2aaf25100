"""The MCP registry's request and response bodies. Stored records never leave the service: these are built from them,
and no model here can carry a secret value out (headers and env are shown masked)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from shared.http.models import ApiModel, JsonBool

ServerType = Literal["http", "stdio"]
Scope = Literal["stage", "user"]

# A server's name prefixes its tools' names toward every provider (`<server>__<tool>`): letters, digits, `_` and
# `-`, at most 32, and no `__` (nor a `_` at either end) so the prefix splits off unambiguously.
MAX_NAME_CHARS = 32
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_SECRETS = 20
MAX_SECRET_VALUE_CHARS = 2048
MAX_ARGS = 32
# Header names (RFC 9110 tokens); those the transport sets itself may not be given.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "accept", "mcp-session-id",
     "mcp-protocol-version"}
)  # fmt: skip
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

ServerName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SecretValue = Annotated[str, StringConstraints(max_length=MAX_SECRET_VALUE_CHARS)]
RequireApproval = JsonBool | Annotated[list[ToolName], Field(max_length=200)]


def _valid_name(name: str) -> str:
    if not _NAME.match(name) or "__" in name or name.startswith("_") or name.endswith("_"):
        raise ValueError("must be 1 to 32 letters, digits, '_' or '-', without '__' and not starting or ending in '_'")
    return name


class HttpConfig(ApiModel):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    # Secrets: stored sealed, shown masked. On update, a header sent as the mask keeps its stored value.
    headers: Annotated[dict[str, SecretValue], Field(max_length=MAX_SECRETS)] | None = None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        for name, value in (headers or {}).items():
            if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
                raise ValueError("header names must be HTTP tokens the transport does not set itself")
            if "\r" in value or "\n" in value:
                raise ValueError("header values may not hold line breaks")
        return headers


class StdioConfig(ApiModel):
    command: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    args: Annotated[list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=MAX_ARGS)] = []
    # Secrets like headers: stored sealed, shown masked.
    env: Annotated[dict[str, SecretValue], Field(max_length=MAX_SECRETS)] | None = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        if any(not _ENV_NAME.match(name) for name in env or {}):
            raise ValueError("environment variable names must be letters, digits and '_'")
        return env


ServerConfig = HttpConfig | StdioConfig


def _config_of_type(server_type: str, config: ServerConfig) -> None:
    if isinstance(config, HttpConfig) != (server_type == "http"):
        raise ValueError(f"config must be {'{url, headers?}' if server_type == 'http' else '{command, args?, env?}'}")


class ServerCreate(ApiModel):
    name: ServerName
    display_name: DisplayName | None = None
    type: ServerType
    config: ServerConfig
    scope: Scope = "user"
    require_approval: RequireApproval = False
    enabled: JsonBool = True

    _name_is_a_tool_prefix = field_validator("name")(_valid_name)

    @model_validator(mode="after")
    def _config_matches_type(self) -> ServerCreate:
        _config_of_type(self.type, self.config)
        return self


class ServerUpdate(ApiModel):
    """Fields to change; those left out keep their value. `name`, `type` and `scope` are fixed at registration:
    the name prefixes the tool names stored in conversations. In `config`, `headers` (or `env`) left out keeps the
    stored ones; sent, it replaces them, where a value equal to the mask keeps that one's stored value."""

    display_name: DisplayName | None = None
    config: ServerConfig | None = None
    require_approval: RequireApproval | None = None
    enabled: JsonBool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ServerUpdate:
        for name in type(self).model_fields:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{type(self).model_fields[name].alias} cannot be null")
        return self


class ServerPublic(ApiModel):
    id: str
    name: str
    display_name: str
    type: ServerType
    scope: Scope
    # http: {url, headers: {name: "••••••"}}; stdio: {command, args, env: {name: "••••••"}}.
    config: dict[str, Any]
    require_approval: bool | list[str]
    enabled: bool
    owner_id: str | None
    created_at: datetime
    updated_at: datetime


class ServerHealth(ApiModel):
    reachable: bool
    latency_ms: float
    protocol_version: str | None
    server_info: dict[str, Any] | None
    tools: int
    error: dict[str, str] | None = None


class Listing(ApiModel):
    """What the server listed, as it sent it (name, description, inputSchema / uri, mimeType / arguments)."""

    items: list[dict[str, Any]]


class ToolCall(ApiModel):
    arguments: dict[str, Any] = {}


class PromptRender(ApiModel):
    arguments: dict[str, Annotated[str, StringConstraints(max_length=10_000)]] = {}


class ToolResult(ApiModel):
    content: list[dict[str, Any]]
    structured_content: dict[str, Any] | None = None
    is_error: bool
