"""One OpenAPI document for the whole API, merged from every context's FastAPI app, and Swagger UI over it.

Each context's app knows its own operations and what its function answers; only the catalog knows which of
them API Gateway routes and which sit behind the authorizer. So the merge keeps the operations the catalog
routes, marks the protected ones with a bearer security requirement, adds what API Gateway answers itself
on the routes it serves (see `GATEWAY_ANSWERS`), and merges the component schemas: a name two apps define
identically is shared, a name they define differently is prefixed with the later context's name (and its
`$ref`s rewritten), and anything still colliding fails loudly rather than documenting the wrong shape.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from infra.catalog import FunctionSpec, Route

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

log = logging.getLogger("stratus.local")

SECURITY_SCHEME = "bearerAuth"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_SCHEMA_REF = "#/components/schemas/"

GATEWAY_ERROR = "GatewayError"
_GATEWAY_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": GATEWAY_ERROR,
    "description": "API Gateway's own answer, sent without (or instead of) the function's",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
    "additionalProperties": False,
}
# What the HTTP API answers itself, whatever the function would: status → (when, routes it applies to).
# `{"message": "Unauthorized"}` for a missing Authorization header never reaches the authorizer.
GATEWAY_ANSWERS: dict[int, tuple[str, str]] = {
    401: ('No Authorization header: API Gateway answers `{"message": "Unauthorized"}` itself', "protected"),
    413: ('A body over 10 MB: API Gateway answers `{"message": "Request Entity Too Large"}`', "all"),
    500: ('The function failed or timed out: `{"message": "Internal Server Error"}`', "all"),
    503: ('The function did not answer within 30 s: `{"message": "Service Unavailable"}`', "all"),
}


class OpenApiMergeError(RuntimeError):
    """Two contexts' documents cannot be merged without misdocumenting one of them."""


def load_app_openapi(app_path: str) -> dict[str, Any]:
    """`module:attribute` of a FastAPI app → its OpenAPI document."""
    module_name, _, attribute = app_path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"app {app_path!r} is not 'module:attribute'")
    app = getattr(importlib.import_module(module_name), attribute)
    # FastAPI builds the document even with openapi_url=None (the apps turn their own docs off).
    document: dict[str, Any] = app.openapi()
    return document


def merge_openapi(
    documents: Sequence[tuple[FunctionSpec, dict[str, Any]]], *, title: str, version: str
) -> dict[str, Any]:
    """Merge each function's app document into one, keeping only the routes the catalog serves."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every route of the HTTP API, merged from each bounded context's app.",
        },
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token (JWT) or an API key",
                }
            },
        },
    }
    tags: dict[str, dict[str, Any]] = {}
    for function, original in documents:
        document = _resolve_schema_names(function, copy.deepcopy(original), merged["components"]["schemas"])
        _merge_components(function, document.get("components") or {}, merged["components"])
        routes = {(route.method.lower(), route.path): route for route in function.routes}
        served: set[tuple[str, str]] = set()
        for path, item in (document.get("paths") or {}).items():
            for method, operation in item.items():
                if method not in _HTTP_METHODS:
                    continue
                route = routes.get((method, path))
                if route is None:
                    log.warning(
                        "%s serves %s %s, but the catalog routes no such request: left out",
                        *(function.name, method.upper(), path),
                    )
                    continue
                target = merged["paths"].setdefault(path, {})
                if method in target:
                    raise OpenApiMergeError(f"{method.upper()} {path} is documented by two functions")
                target[method] = _as_served(function, route, operation)
                served.add((method, path))
            # Path-level fields (summary, parameters) travel with the path.
            for key, value in item.items():
                if key not in _HTTP_METHODS and path in merged["paths"]:
                    merged["paths"][path].setdefault(key, value)
        for method, path in sorted(key for key in set(routes) - served if routes[key].documented):
            log.warning(
                "the catalog routes %s %s to %s, whose app does not document it",
                *(method.upper(), path, function.name),
            )
        for tag in document.get("tags") or []:
            tags.setdefault(tag["name"], tag)
    if tags:
        merged["tags"] = list(tags.values())
    if GATEWAY_ERROR in merged["components"]["schemas"]:
        raise OpenApiMergeError(f"schema {GATEWAY_ERROR!r} is the gateway's own: rename the app's")
    merged["components"]["schemas"][GATEWAY_ERROR] = _GATEWAY_ERROR_SCHEMA
    return merged


def _as_served(function: FunctionSpec, route: Route, operation: dict[str, Any]) -> dict[str, Any]:
    """The operation as the deployed API serves it: behind the authorizer unless public, and through API
    Gateway unless the function streams from its own URL."""
    if not route.public:
        operation["security"] = [{SECURITY_SCHEME: []}]
    if not function.streaming:
        _add_gateway_answers(operation, protected=not route.public)
    return operation


def _add_gateway_answers(operation: dict[str, Any], *, protected: bool) -> None:
    """Document beside the function's own answers what API Gateway answers itself on this route: where the
    function documents the same status, the body is either shape."""
    responses = operation.setdefault("responses", {})
    gateway_schema = {"$ref": _SCHEMA_REF + GATEWAY_ERROR}
    for status, (when, applies_to) in GATEWAY_ANSWERS.items():
        if applies_to == "protected" and not protected:
            continue
        response = responses.setdefault(str(status), {"description": when})
        content = response.setdefault("content", {}).setdefault("application/json", {})
        own = content.get("schema")
        content["schema"] = {"anyOf": [own, gateway_schema]} if own else gateway_schema
        if response["description"] != when:
            response["description"] = f"{response['description']}. Or: {when}"


def _resolve_schema_names(
    function: FunctionSpec, document: dict[str, Any], merged_schemas: dict[str, Any]
) -> dict[str, Any]:
    """Rename this document's schemas that clash with different ones already merged; rewrite its refs."""
    schemas: dict[str, Any] = (document.get("components") or {}).get("schemas") or {}
    renames: dict[str, str] = {}
    prefix = function.name[:1].upper() + function.name[1:]
    for name, schema in schemas.items():
        if name in merged_schemas and merged_schemas[name] != schema:
            renamed = f"{prefix}{name}"
            if renamed in schemas or renamed in merged_schemas:
                raise OpenApiMergeError(
                    f"schema {name!r} of {function.name} differs from another context's, "
                    f"and the fallback name {renamed!r} is taken too: rename one of them"
                )
            renames[name] = renamed
    if not renames:
        return document
    document = _rewrite_refs(document, renames)
    components = document["components"]
    components["schemas"] = {renames.get(name, name): schema for name, schema in components["schemas"].items()}
    return document


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        rewritten = {key: _rewrite_refs(value, renames) for key, value in node.items()}
        ref = rewritten.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF) and ref[len(_SCHEMA_REF) :] in renames:
            rewritten["$ref"] = _SCHEMA_REF + renames[ref[len(_SCHEMA_REF) :]]
        return rewritten
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _merge_components(function: FunctionSpec, components: dict[str, Any], merged: dict[str, Any]) -> None:
    for section, entries in components.items():
        target = merged.setdefault(section, {})
        for name, value in (entries or {}).items():
            if name in target and target[name] != value:
                raise OpenApiMergeError(f"components.{section}.{name} of {function.name} differs from another's")
            target[name] = value


class ApiDocs:
    """Serves `/openapi.json` (built on first request: it imports every app) and Swagger UI at `/docs`."""

    def __init__(
        self,
        functions: Sequence[FunctionSpec],
        *,
        title: str = "Stratus API",
        version: str = "0.1.0",
        load: Callable[[str], dict[str, Any]] = load_app_openapi,
    ) -> None:
        self.functions = [function for function in functions if function.app]
        self.title = title
        self.version = version
        self._load = load
        self._document: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def build(self) -> dict[str, Any]:
        documents = [(function, self._load(function.app or "")) for function in self.functions]
        return merge_openapi(documents, title=self.title, version=self.version)

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._document is None:
                # Importing the apps takes a second or more: keep it off the event loop.
                self._document = await asyncio.get_running_loop().run_in_executor(None, self.build)
            return self._document

    async def serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.responses import JSONResponse, Response

        response: Response
        if path == "/docs":
            from fastapi.openapi.docs import get_swagger_ui_html

            response = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{self.title} (local)")
        else:
            try:
                response = JSONResponse(await self.document())
            except Exception as error:
                # Not cached: fix the app and reload the page.
                log.exception("building the merged OpenAPI document failed")
                response = JSONResponse({"message": f"OpenAPI document unavailable: {error}"}, status_code=500)
        await response(scope, receive, send)
