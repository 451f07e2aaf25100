"""The MCP registry's logic: who may register, see and change which servers, the checks a server passes before it is
stored (its URL by the outbound guard, its command by the stage's allow-list), the live routes, and the servers
chat's tool runner connects to (`servers_for_chat`).

Visibility: a stage server is seen by every user with `mcp.use`; a user's server by its owner alone (an admin
included: personal means personal), so to anyone else it does not exist (404). Registering or changing a stage
server, or any stdio server, needs `mcp.manage`. Every connection goes through `shared.mcp_client`; secrets are
sealed with `shared.secrets` and unsealed only to connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from functions.mcp.models import (
    HttpConfig,
    ServerConfig,
    ServerCreate,
    ServerHealth,
    ServerPublic,
    ServerUpdate,
    ToolResult,
)
from shared import audit
from shared.audit import Target
from shared.auth.principal import Principal
from shared.errors import Conflict, ValidationFailed
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.mcp_client import (
    HttpServer,
    McpLimits,
    McpServer,
    StdioServer,
    ToolServer,
    mcp_session,
    outbound_policy,
    server_health,
    stdio_argv,
)
from shared.observability import logger
from shared.outbound import Resolver, checked_destination, system_resolver
from shared.secrets import MASK, SecretUnreadable, masked, merged_secrets, seal, unseal
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from functions.mcp import store
    from functions.mcp.store import ServerRecord
    from shared.mcp_client import McpSession
else:
    store = LazyModule("functions.mcp.store")

SECRET_CONTEXT = "mcp"
USE, MANAGE = "mcp.use", "mcp.manage"
# The live routes answer within API Gateway's 30 s: a connect and one call, each under its own deadline, leave time
# for the request's own work, so a slow server gets a 504 `mcp_timeout` with a reason rather than a bare 503.
ROUTE_CONNECT_SECONDS = 8.0
ROUTE_CALL_SECONDS = 18.0
# Ids `servers_for_chat` takes at most: two keys each fill one BatchGetItem.
MAX_CHAT_SERVERS = 50

T = TypeVar("T")
_resolver: Resolver = system_resolver


def use_resolver(resolver: Resolver) -> Resolver:
    """Resolve server hostnames with `resolver` (tests); returns the one in use before."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


# The registry -----------------------------------------------------------------------------------------------


def create_server(principal: Principal, request: ServerCreate) -> ServerPublic:
    details = {"name": request.name, "scope": request.scope, "type": request.type}
    with audit.recorded("mcp_server.created", actor=principal, details=details) as entry:
        created = _create_server(principal, request)
        entry.target = Target("mcp_server", created.id)
    return created


def _create_server(principal: Principal, request: ServerCreate) -> ServerPublic:
    principal.require(USE)
    if request.scope == "stage" or request.type == "stdio":
        principal.require(MANAGE)
    settings = get_settings()
    _check_reachable_config(request.config, settings)
    server_id = new_id()
    # Nothing is stored yet, so a masked value (copied from another server's answer) is refused.
    secrets = merged_secrets({}, _secrets_sent(request.config) or {})
    record = store.new_server(
        server_id=server_id, owner_id=None if request.scope == "stage" else principal.user_id,
        created_by=principal.user_id, name=request.name, display_name=request.display_name or request.name,
        server_type=request.type, config=_plain_config(request.config), secret_names=sorted(secrets),
        sealed_secrets=_sealed(secrets, server_id), require_approval=request.require_approval,
        enabled=request.enabled,
    )  # fmt: skip
    try:
        store.add_server(record)
    except store.NameTakenError:
        raise Conflict(
            "An MCP server with this name is already registered where you would see it", code="mcp_server_name_taken"
        ) from None
    logger.info("MCP server registered", extra={"serverId": server_id, "scope": request.scope, "type": request.type})
    return public_server(record)


def list_servers(principal: Principal, limit: int, cursor: str | None) -> tuple[list[ServerPublic], str | None]:
    """The servers the caller may use: the stage's, then their own."""
    principal.require(USE)
    records, next_cursor = store.servers_page(principal.user_id, limit=limit, cursor=cursor)
    return [public_server(record) for record in records], next_cursor


def get_server(principal: Principal, server_id: str) -> ServerPublic:
    return public_server(_visible(principal, server_id))


def update_server(principal: Principal, server_id: str, update: ServerUpdate) -> ServerPublic:
    # The fields sent, by name: what a config or a header secret holds is never recorded.
    details = {"fields": " ".join(sorted(update.model_fields_set))}
    with audit.recorded("mcp_server.updated", actor=principal, target=Target("mcp_server", server_id), details=details):
        return _update_server(principal, server_id, update)


def _update_server(principal: Principal, server_id: str, update: ServerUpdate) -> ServerPublic:
    record = _changeable(principal, server_id)
    changes: dict[str, Any] = {}
    if update.display_name is not None:
        changes["display_name"] = update.display_name
    if update.enabled is not None:
        changes["enabled"] = update.enabled
    if update.require_approval is not None:
        changes["require_approval"] = update.require_approval
    if update.config is not None:
        if isinstance(update.config, HttpConfig) != (record.type == "http"):
            raise ValidationFailed(f"config must suit a {record.type} server", code="config_mismatch")
        _check_reachable_config(update.config, get_settings())
        changes["config"] = _plain_config(update.config)
        sent = _secrets_sent(update.config)
        if sent is not None:
            stored = _unsealed(record) if MASK in sent.values() else {}
            secrets = merged_secrets(stored, sent)
            changes["secret_names"] = sorted(secrets)
            changes["sealed_secrets"] = _sealed(secrets, record.server_id)
    if not changes:
        return public_server(record)
    updated = store.update_server(record, changes)
    logger.info("MCP server changed", extra={"serverId": server_id, "fields": sorted(changes)})
    return public_server(updated)


def delete_server(principal: Principal, server_id: str) -> None:
    with audit.recorded("mcp_server.deleted", actor=principal, target=Target("mcp_server", server_id)):
        store.delete_server(_changeable(principal, server_id))
    logger.info("MCP server deleted", extra={"serverId": server_id})


def _visible(principal: Principal, server_id: str) -> ServerRecord:
    principal.require(USE)
    if not is_id(server_id):
        raise store.server_not_found()
    return store.visible_server(principal.user_id, server_id)


def _changeable(principal: Principal, server_id: str) -> ServerRecord:
    """A server the caller sees and may change: their own http server, or any with `mcp.manage`."""
    record = _visible(principal, server_id)
    if record.scope == "stage" or record.type == "stdio":
        principal.require(MANAGE)
    return record


def _check_reachable_config(config: ServerConfig, settings: Settings) -> None:
    """The checks every connect makes, made before the server is stored: 422 `url_not_allowed` or
    `stdio_not_allowed`."""
    if isinstance(config, HttpConfig):
        asyncio.run(checked_destination(config.url, outbound_policy(settings), resolver=_resolver))
    else:
        stdio_argv(StdioServer(config.command, tuple(config.args), config.env or {}), settings.mcp_stdio_allowed)


def _secrets_sent(config: ServerConfig) -> dict[str, str] | None:
    return config.headers if isinstance(config, HttpConfig) else config.env


def _plain_config(config: ServerConfig) -> dict[str, Any]:
    if isinstance(config, HttpConfig):
        return {"url": config.url}
    return {"command": config.command, "args": list(config.args)}


def _sealed(secrets: Mapping[str, str], server_id: str) -> str | None:
    return seal(dict(secrets), context=SECRET_CONTEXT, record=server_id) if secrets else None


def _unsealed(record: ServerRecord) -> dict[str, str]:
    if not record.sealed_secrets:
        return {}
    value = unseal(record.sealed_secrets, context=SECRET_CONTEXT, record=record.server_id)
    return {str(name): str(secret) for name, secret in dict(value).items()}


def public_server(record: ServerRecord) -> ServerPublic:
    config = dict(record.config)
    shown = masked(record.secret_names)
    config["headers" if record.type == "http" else "env"] = shown
    return ServerPublic(
        id=record.server_id, name=record.name, display_name=record.display_name, type=record.type,
        scope=record.scope, config=config, require_approval=record.require_approval, enabled=record.enabled,
        owner_id=record.owner_id, created_at=record.created_at, updated_at=record.updated_at,
    )  # fmt: skip


# Live: health, listings, reads, prompts and calls -------------------------------------------------------------


def route_limits(settings: Settings) -> McpLimits:
    return McpLimits(
        connect_timeout_seconds=ROUTE_CONNECT_SECONDS,
        call_timeout_seconds=min(settings.mcp_call_timeout_seconds, ROUTE_CALL_SECONDS),
    )


def connection_of(record: ServerRecord) -> McpServer:
    """How to reach a stored server, its secrets unsealed."""
    secrets = _unsealed(record)
    if record.type == "http":
        return HttpServer(str(record.config["url"]), headers=secrets)
    return StdioServer(str(record.config["command"]), tuple(record.config.get("args") or ()), env=secrets)


def _in_session(principal: Principal, server_id: str, action: Callable[[McpSession], Awaitable[T]]) -> T:
    server = connection_of(_visible(principal, server_id))
    settings = get_settings()

    async def run() -> T:
        async with mcp_session(server, settings=settings, limits=route_limits(settings), resolver=_resolver) as session:
            return await action(session)

    return asyncio.run(run())


def health(principal: Principal, server_id: str) -> ServerHealth:
    server = connection_of(_visible(principal, server_id))
    settings = get_settings()
    report = asyncio.run(server_health(server, settings=settings, limits=route_limits(settings), resolver=_resolver))
    return ServerHealth.model_validate(report)


def list_tools(principal: Principal, server_id: str) -> list[dict[str, Any]]:
    return _in_session(principal, server_id, lambda session: session.list_tools())


def list_resources(principal: Principal, server_id: str) -> list[dict[str, Any]]:
    return _in_session(principal, server_id, lambda session: session.list_resources())


def list_prompts(principal: Principal, server_id: str) -> list[dict[str, Any]]:
    return _in_session(principal, server_id, lambda session: session.list_prompts())


def read_resource(principal: Principal, server_id: str, uri: str) -> dict[str, Any]:
    return _in_session(principal, server_id, lambda session: session.read_resource(uri))


def get_prompt(principal: Principal, server_id: str, name: str, arguments: Mapping[str, str]) -> dict[str, Any]:
    return _in_session(principal, server_id, lambda session: session.get_prompt(name, arguments))


def call_tool(principal: Principal, server_id: str, name: str, arguments: Mapping[str, Any]) -> ToolResult:
    result = _in_session(principal, server_id, lambda session: session.call_tool(name, arguments))
    return ToolResult.model_validate(result)


# For chat -----------------------------------------------------------------------------------------------------


def stage_server_ids(server_ids: Sequence[str]) -> set[str]:
    """Those of `server_ids` that name the stage's own servers (not a user's): what an agent may use. One
    BatchGetItem."""
    if not all(is_id(server_id) for server_id in server_ids):
        return set()
    return {record.server_id for record in store.stage_servers(server_ids)}


def servers_for_chat(principal: Principal, server_ids: Sequence[str]) -> list[ToolServer]:
    """The enabled servers among `server_ids` this principal may use, ready to connect (secrets unsealed), in the
    order given. Unknown, invisible and disabled ids are skipped silently; so is a server whose secrets do not
    open (logged). One BatchGetItem; synchronous (chat calls it on a worker thread)."""
    if not principal.can(USE):
        return []
    ids = [server_id for server_id in dict.fromkeys(server_ids) if is_id(server_id)][:MAX_CHAT_SERVERS]
    servers: list[ToolServer] = []
    for record in store.visible_servers(principal.user_id, ids):
        if not record.enabled:
            continue
        try:
            connection = connection_of(record)
        except SecretUnreadable:
            logger.warning("MCP server left out: its secrets do not open", extra={"serverId": record.server_id})
            continue
        approval = record.require_approval
        servers.append(
            ToolServer(
                id=record.server_id,
                name=record.name,
                server=connection,
                require_approval=frozenset(approval) if isinstance(approval, list) else bool(approval),
                version=record.updated_at.isoformat(),
            )
        )
    return servers
