"""The merged OpenAPI document of local mode: catalog-routed operations only, bearer security on the
protected ones, shared schemas deduplicated, clashing ones renamed with their refs, the rest refused."""

from __future__ import annotations

from typing import Any

import pytest

from infra.catalog import FunctionSpec, Route
from infra.local.openapi import OpenApiMergeError, merge_openapi

ALPHA = FunctionSpec(
    name="alpha",
    handler="alpha.handler",
    description="",
    routes=(Route("GET", "/api/v1/things", public=True), Route("POST", "/api/v1/things")),
)
BETA = FunctionSpec(name="beta", handler="beta.handler", description="", routes=(Route("GET", "/api/v1/other"),))


def operation(schema: str) -> dict[str, Any]:
    return {
        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}}
    }


def document(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def test_merges_routed_operations_and_marks_protected_ones() -> None:
    alpha = document(
        {
            "/api/v1/things": {"get": operation("Thing"), "post": operation("Thing")},
            "/api/v1/unrouted": {"get": operation("Thing")},
        },
        {"Thing": {"type": "object"}, "Error": ERROR},
    )
    beta = document({"/api/v1/other": {"get": operation("Error")}}, {"Error": ERROR})
    merged = merge_openapi([(ALPHA, alpha), (BETA, beta)], title="T", version="1")
    assert set(merged["paths"]) == {"/api/v1/things", "/api/v1/other"}
    assert "security" not in merged["paths"]["/api/v1/things"]["get"]
    assert merged["paths"]["/api/v1/things"]["post"]["security"] == [{"bearerAuth": []}]
    assert merged["paths"]["/api/v1/other"]["get"]["security"] == [{"bearerAuth": []}]
    assert set(merged["components"]["schemas"]) == {"Thing", "Error", "GatewayError"}
    assert merged["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token (JWT) or an API key",
    }
    assert "security" not in alpha["paths"]["/api/v1/things"]["post"]  # inputs are left alone


def test_clashing_schema_is_renamed_with_its_refs() -> None:
    alpha = document({"/api/v1/things": {"get": operation("Item")}}, {"Item": {"type": "object"}})
    beta = document({"/api/v1/other": {"get": operation("Item")}}, {"Item": {"type": "array"}})
    merged = merge_openapi([(ALPHA, alpha), (BETA, beta)], title="T", version="1")
    schemas = merged["components"]["schemas"]
    assert {name: schemas[name] for name in ("Item", "BetaItem")} == {
        "Item": {"type": "object"},
        "BetaItem": {"type": "array"},
    }
    ref = merged["paths"]["/api/v1/other"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/BetaItem"}


def test_unresolvable_clash_fails_loudly() -> None:
    alpha = document({}, {"Item": {"type": "object"}, "BetaItem": {"type": "string"}})
    beta = document({}, {"Item": {"type": "array"}})
    with pytest.raises(OpenApiMergeError, match="Item"):
        merge_openapi([(ALPHA, alpha), (BETA, beta)], title="T", version="1")


def test_one_operation_documented_twice_fails() -> None:
    twin = FunctionSpec(name="twin", handler="t.h", description="", routes=(Route("GET", "/api/v1/other"),))
    beta = document({"/api/v1/other": {"get": operation("Error")}}, {"Error": ERROR})
    with pytest.raises(OpenApiMergeError, match="two functions"):
        merge_openapi([(BETA, beta), (twin, beta)], title="T", version="1")


def gateway_schema(operation: dict[str, Any], status: str) -> Any:
    return operation["responses"][status]["content"]["application/json"]["schema"]


def test_routes_behind_api_gateway_document_its_own_answers() -> None:
    function_401 = {"description": "No credential", "content": {"application/json": {"schema": ERROR_REF}}}
    protected = {"responses": {"200": {"description": "OK"}, "401": function_401}}
    alpha = document({"/api/v1/things": {"get": {"responses": {"200": {"description": "OK"}}}, "post": protected}}, {})
    merged = merge_openapi([(ALPHA, alpha)], title="T", version="1")
    gateway = {"$ref": "#/components/schemas/GatewayError"}
    public, guarded = merged["paths"]["/api/v1/things"]["get"], merged["paths"]["/api/v1/things"]["post"]
    # A missing header is refused by API Gateway before the authorizer: either body on a protected route.
    assert gateway_schema(guarded, "401") == {"anyOf": [ERROR_REF, gateway]}
    assert "401" not in public["responses"]
    for operation in (public, guarded):
        assert gateway_schema(operation, "413") == gateway
        assert gateway_schema(operation, "503") == gateway
    assert merged["components"]["schemas"]["GatewayError"]["required"] == ["message"]


def test_streaming_functions_get_no_gateway_answers() -> None:
    streaming = FunctionSpec(
        name="chat", handler="c.h", description="", routes=(Route("POST", "/api/v1/ai/chat"),), streaming=True
    )
    chat = document({"/api/v1/ai/chat": {"post": {"responses": {"200": {"description": "OK"}}}}}, {})
    merged = merge_openapi([(streaming, chat)], title="T", version="1")
    assert set(merged["paths"]["/api/v1/ai/chat"]["post"]["responses"]) == {"200"}


def test_a_route_of_another_apis_contract_is_left_out_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    chat = FunctionSpec(
        name="chat",
        handler="c.h",
        description="",
        routes=(Route("POST", "/api/v1/ai/chat"), Route("POST", "/v1/chat/completions", documented=False)),
        streaming=True,
    )
    served = document({"/api/v1/ai/chat": {"post": {"responses": {"200": {"description": "OK"}}}}}, {})

    merged = merge_openapi([(chat, served)], title="T", version="1")

    assert set(merged["paths"]) == {"/api/v1/ai/chat"}
    assert "does not document" not in caplog.text
    undocumented = FunctionSpec(name="beta", handler="b.h", description="", routes=(Route("GET", "/api/v1/other"),))
    merge_openapi([(undocumented, document({}, {}))], title="T", version="1")
    assert "does not document" in caplog.text
