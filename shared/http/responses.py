"""What a route can answer besides its success, for the OpenAPI document: the error shape and the refusals.

The app factory documents on every route what any route can answer (the body limit, an unexpected failure; a
malformed body and invalid parameters where the route takes them; a refused credential on protected routes).
A route names the refusals its own service raises with `refusals(404, 409)`, next to its decorator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from shared.http.models import ApiModel

if TYPE_CHECKING:
    from fastapi.routing import APIRoute


class ErrorInfo(ApiModel):
    code: str = Field(description="What went wrong, for programs: `not_found`, `invalid_cursor`, `rate_limited`, ...")
    message: str = Field(description="What went wrong, for people; never echoes the input")
    request_id: str = Field(description="The request's id, also in the `x-request-id` header")
    details: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Present on some errors: each invalid field (`field`, `message`), or the limit hit "
        "(`limit`, `retryAfter`)",
    )


class ErrorBody(ApiModel):
    """Every error the API itself answers: `{"error": {code, message, requestId, details?}}`."""

    error: ErrorInfo


# What each status means in this API, with the codes a client may see.
_MEANINGS: dict[int, str] = {
    400: "The request is malformed: `malformed_json`, `invalid_cursor` (a cursor this API did not issue), or "
    "another `bad_request`",
    401: "The credential is missing or not valid: `missing_credentials`, `invalid_token`, `token_expired`, "
    "`invalid_api_key`, `session_revoked`, `token_revoked`, `account_gone`, `account_inactive`",
    403: "The caller may not do this: `permission_denied`, `read_only`, `owner_only`, `api_key_not_allowed`",
    404: "Nothing the caller can see has this id (another user's item is not found either)",
    409: "The request conflicts with what is stored: taken, at a limit, or changed at the same time",
    413: "The request body is larger than the function accepts (`payload_too_large`)",
    422: "The request is well-formed but not valid: `validation_error` with each field in `details`, or a "
    "refusal such as `weak_password`, `unknown_permission`, `unknown_role`, `model_unavailable`",
    429: "A limit was hit (`rate_limited`): `details` names it; retry after `Retry-After` seconds",
    500: "Something went wrong on the server (`internal_error`)",
    502: "No model provider produced a reply (`provider_error`)",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def refusals(*statuses: int, meaning: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for the refusals its service raises, each in the error shape; `meaning`
    says what a status means on this route where the API-wide meaning would not tell."""
    meaning = meaning or {}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = meaning.get(status) or _MEANINGS.get(status)
        if description is None:
            raise ValueError(f"no meaning is written for status {status}: add it to _MEANINGS")
        response: dict[str, Any] = {"model": ErrorBody, "description": description}
        if status == 429:
            response["headers"] = _RETRY_AFTER
        responses[status] = response
    return responses


# Event types of the streams routes declare, by the placeholder their responses carry until the document is built.
_EVENT_STREAMS: dict[str, Any] = {}
_EVENT_STREAM_KEY = "x-event-stream"


def event_stream(event: Any, description: str) -> dict[str, Any]:
    """A success response of server-sent events, each `data:` line one JSON `event` (a model or a union).

    The schema is filled in when the OpenAPI document is built (`fill_event_streams`), not at import: building
    it takes milliseconds a cold start should not spend.
    """
    name = repr(event)  # unique per type; `__name__` of an Annotated union is just "Annotated"
    _EVENT_STREAMS[name] = event
    return {"description": description, "content": {"text/event-stream": {"schema": {_EVENT_STREAM_KEY: name}}}}


def fill_event_streams(document: dict[str, Any]) -> None:
    """Replace each event-stream placeholder of `document` with the schema of one event.

    OpenAPI 3.1 describes each event of a `text/event-stream` by its `schema`: an object whose `data` is a
    string holding JSON of the event's own schema (inlined: a response's content cannot name components).
    """
    from pydantic import TypeAdapter

    for item in (document.get("paths") or {}).values():
        for operation in item.values():
            for response in (operation.get("responses") or {}).values() if isinstance(operation, dict) else ():
                stream = (response.get("content") or {}).get("text/event-stream") or {}
                name = (stream.get("schema") or {}).get(_EVENT_STREAM_KEY)
                if name is None:
                    continue
                schema = TypeAdapter(_EVENT_STREAMS[name]).json_schema(by_alias=True, mode="serialization")
                schema.pop("discriminator", None)  # its mapping names `$defs`, gone once inlined; `const` tells
                data = {"type": "string", "contentMediaType": "application/json"}
                data["contentSchema"] = _inlined(schema, schema.pop("$defs", {}))
                stream["schema"] = {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": data, "event": {"type": "string"}, "id": {"type": "string"}},
                }


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `#/$defs/...` reference replaced by its definition (event models do not recurse)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


def document_common_refusals(route: APIRoute, *, protected: bool) -> None:
    """Add to `route` the refusals any route of its kind can answer; what the route documents itself stays."""
    from fastapi.dependencies.utils import get_flat_params

    takes_parameters = bool(get_flat_params(route.dependant))
    statuses = [413, 500]
    if route.body_field is not None:
        statuses.append(400)  # a body that is not JSON
    if takes_parameters or route.body_field is not None:
        statuses.append(422)  # FastAPI's validation, answered in the error shape
    if protected:
        statuses.append(401)
    route.responses = {**refusals(*sorted(statuses)), **route.responses}
