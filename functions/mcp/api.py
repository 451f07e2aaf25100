"""MCP's routes: the server registry, and live health, listings, reads, prompts and tool calls of one server.

Every route is one service call; the live ones run on a worker thread (sync routes), each with its own event loop
for the MCP session.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from functions.mcp import service
from functions.mcp.models import (
    Listing,
    PromptRender,
    ServerCreate,
    ServerHealth,
    ServerPublic,
    ServerUpdate,
    ToolCall,
    ToolResult,
)
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
ServerId = Annotated[str, Path(alias="serverId", max_length=26)]
ToolName = Annotated[str, Path(alias="toolName", max_length=128)]
PromptName = Annotated[str, Path(alias="promptName", max_length=128)]
ResourceUri = Annotated[str, Query(min_length=1, max_length=2048)]

_LIVE = {
    422: "The server's URL or command is no longer allowed on this stage (`url_not_allowed`, `stdio_not_allowed`), "
    "or the server redirected elsewhere",
    502: "The MCP server could not be reached, broke the protocol or refused the request (`mcp_unavailable`)",
    504: "The MCP server did not answer in time (`mcp_timeout`)",
}
_REGISTRATION = {
    422: "Not valid: `validation_error`, or refused: `url_not_allowed` (the URL reaches an address Stratus does "
    "not call, or is not https outside dev stages), `stdio_not_allowed` (not in the stage's allow-list), "
    "`config_mismatch`, `unknown_secret` (a masked value with nothing stored under its name)",
    409: "Another server you would see already has this name (`mcp_server_name_taken`)",
}
LIVE = refusals(403, 404, 422, 502, 504, meaning=_LIVE)

router = APIRouter(prefix="/api/v1/mcp/servers", tags=["mcp"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ServerPublic,
    responses=refusals(403, 409, 422, meaning=_REGISTRATION),
)  # fmt: skip
def create_server(principal: CurrentPrincipal, body: ServerCreate) -> ServerPublic:
    return service.create_server(principal, body)


@router.get("", response_model=Page[ServerPublic], responses=refusals(400, 403))
def list_servers(principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Any]:
    items, next_cursor = service.list_servers(principal, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{serverId}", response_model=ServerPublic, responses=refusals(403, 404))
def get_server(principal: CurrentPrincipal, server_id: ServerId) -> ServerPublic:
    return service.get_server(principal, server_id)


@router.put("/{serverId}", response_model=ServerPublic, responses=refusals(403, 404, 422, meaning=_REGISTRATION))
def update_server(principal: CurrentPrincipal, server_id: ServerId, body: ServerUpdate) -> ServerPublic:
    return service.update_server(principal, server_id, body)


@router.delete(
    "/{serverId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_server(principal: CurrentPrincipal, server_id: ServerId) -> Response:
    service.delete_server(principal, server_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{serverId}/health", response_model=ServerHealth, responses=refusals(403, 404))
def server_health(principal: CurrentPrincipal, server_id: ServerId) -> ServerHealth:
    return service.health(principal, server_id)


@router.get("/{serverId}/tools", response_model=Listing, responses=LIVE)
def list_tools(principal: CurrentPrincipal, server_id: ServerId) -> Listing:
    return Listing(items=service.list_tools(principal, server_id))


@router.get("/{serverId}/resources", response_model=Listing, responses=LIVE)
def list_resources(principal: CurrentPrincipal, server_id: ServerId) -> Listing:
    return Listing(items=service.list_resources(principal, server_id))


@router.get("/{serverId}/resources/read", responses=LIVE)
def read_resource(principal: CurrentPrincipal, server_id: ServerId, uri: ResourceUri) -> dict[str, Any]:
    return service.read_resource(principal, server_id, uri)


@router.get("/{serverId}/prompts", response_model=Listing, responses=LIVE)
def list_prompts(principal: CurrentPrincipal, server_id: ServerId) -> Listing:
    return Listing(items=service.list_prompts(principal, server_id))


@router.post("/{serverId}/prompts/{promptName}/get", responses=LIVE)
def get_prompt(
    principal: CurrentPrincipal, server_id: ServerId, prompt_name: PromptName, body: PromptRender
) -> dict[str, Any]:
    return service.get_prompt(principal, server_id, prompt_name, body.arguments)


@router.post(
    "/{serverId}/tools/{toolName}/call", response_model=ToolResult, response_model_exclude_none=True, responses=LIVE
)
def call_tool(principal: CurrentPrincipal, server_id: ServerId, tool_name: ToolName, body: ToolCall) -> ToolResult:
    return service.call_tool(principal, server_id, tool_name, body.arguments)


app = create_app(title="Stratus MCP", protected=[router])
