"""HTTP API: the catalog's routes and nothing else, the authorizer on every non-public route, CORS, logs, outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.catalog import (
    AUTHORIZER_CACHE_SECONDS,
    AUTHORIZER_FUNCTION,
    HTTP_FUNCTIONS,
    FunctionSpec,
    Route,
    all_routes,
)
from shared.tables import TABLES
from tests.infrastructure.conftest import ACME_ORIGINS, Synthesized

pytestmark = pytest.mark.infra

ROUTES = [pytest.param(route, spec, id=route.route_key) for route, spec in all_routes()]


def _http(synth: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    """The HTTP API's resources of a type (the stack also has a WebSocket API: tests/infrastructure/test_websocket)."""
    apis = synth.of_type("AWS::ApiGatewayV2::Api")
    (http_id,) = (lid for lid, api in apis.items() if api["Properties"]["ProtocolType"] == "HTTP")
    if resource_type == "AWS::ApiGatewayV2::Api":
        return {http_id: apis[http_id]}
    return {lid: r for lid, r in synth.of_type(resource_type).items() if r["Properties"]["ApiId"] == {"Ref": http_id}}


def _routes(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        route["Properties"]["RouteKey"]: route["Properties"]
        for route in _http(synth, "AWS::ApiGatewayV2::Route").values()
    }


def _authorizer(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, authorizer),) = _http(synth, "AWS::ApiGatewayV2::Authorizer").items()
    return logical_id, authorizer["Properties"]


def _api(synth: Synthesized) -> dict[str, Any]:
    (api,) = _http(synth, "AWS::ApiGatewayV2::Api").values()
    return api["Properties"]  # type: ignore[no-any-return]


def test_api_serves_exactly_the_catalog_routes(synth: Synthesized) -> None:
    assert sorted(_routes(synth)) == sorted(route.route_key for route, _ in all_routes())


@pytest.mark.parametrize(("route", "spec"), ROUTES)
def test_route_needs_the_authorizer_unless_public(synth: Synthesized, route: Route, spec: FunctionSpec) -> None:
    deployed = _routes(synth)[route.route_key]
    authorizer_id, _ = _authorizer(synth)

    if route.public:
        assert deployed["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in deployed
    else:
        assert deployed["AuthorizationType"] == "CUSTOM"
        assert deployed["AuthorizerId"] == {"Ref": authorizer_id}


@pytest.mark.parametrize(("route", "spec"), ROUTES)
def test_route_reaches_the_function_that_serves_it(synth: Synthesized, route: Route, spec: FunctionSpec) -> None:
    target = _routes(synth)[route.route_key]["Target"]
    (integration_id,) = (part["Ref"] for part in target["Fn::Join"][1] if isinstance(part, dict))
    function_id, _ = synth.function(spec)

    assert json.dumps({"Fn::GetAtt": [function_id, "Arn"]}) in json.dumps(
        synth.resources[integration_id]["Properties"]["IntegrationUri"]
    )


@pytest.mark.parametrize("spec", HTTP_FUNCTIONS, ids=lambda spec: spec.name)
def test_each_function_has_one_invoke_permission_for_this_api_alone(synth: Synthesized, spec: FunctionSpec) -> None:
    """One permission per function, not one per route: the stack's resources stay far from CloudFormation's 500."""
    function_id, _ = synth.function(spec)
    (http_id,) = _http(synth, "AWS::ApiGatewayV2::Api")
    permissions = [
        permission["Properties"]
        for permission in synth.of_type("AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
        and permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]

    (permission,) = permissions
    assert permission["Action"] == "lambda:InvokeFunction"
    source = json.dumps(permission["SourceArn"])
    assert json.dumps({"Ref": http_id}) in source
    assert source.endswith('"/*/*"]]}')


def test_stack_stays_well_under_cloudformations_resource_limit(synth: Synthesized) -> None:
    # 500 is CloudFormation's limit per stack: the next contexts go into nested stacks before this is reached.
    assert len(synth.resources) < 450


def test_authorizer_is_a_cached_simple_lambda_authorizer_on_the_authorization_header(synth: Synthesized) -> None:
    _, authorizer = _authorizer(synth)
    function_id, _ = synth.function(AUTHORIZER_FUNCTION)

    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["AuthorizerResultTtlInSeconds"] == AUTHORIZER_CACHE_SECONDS == 300
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert json.dumps({"Fn::GetAtt": [function_id, "Arn"]}) in json.dumps(authorizer["AuthorizerUri"])


def test_dev_cors_allows_any_origin_without_credentials(dev: Synthesized) -> None:
    cors = _api(dev)["CorsConfiguration"]

    assert cors["AllowOrigins"] == ["*"]
    assert cors["AllowCredentials"] is False


def test_tenant_cors_allows_only_its_frontends_with_credentials(acme: Synthesized) -> None:
    cors = _api(acme)["CorsConfiguration"]

    assert cors["AllowOrigins"] == ACME_ORIGINS.split(",")
    assert cors["AllowCredentials"] is True
    assert sorted(cors["AllowMethods"]) == ["DELETE", "GET", "PATCH", "POST", "PUT"]
    # Stratus's own headers, a stream's resume, and what the compatible APIs' SDKs send from a browser.
    assert {"authorization", "content-type", "x-request-id", "last-event-id", "x-api-key"} <= set(cors["AllowHeaders"])
    assert {"retry-after", "x-stratus-conversation"} <= set(cors["ExposeHeaders"])


def test_the_streaming_functions_urls_allow_every_method_their_routes_use(acme: Synthesized) -> None:
    from infra.catalog import STREAMING_FUNCTIONS

    methods = {route.method for spec in STREAMING_FUNCTIONS for route in spec.routes}
    (url,) = acme.of_type("AWS::Lambda::Url").values()
    cors = url["Properties"]["Cors"]

    assert set(cors["AllowMethods"]) == methods
    assert cors["AllowOrigins"] == ACME_ORIGINS.split(",")
    assert {"authorization", "last-event-id", "x-api-key", "anthropic-version"} <= set(cors["AllowHeaders"])
    assert {"retry-after", "x-stratus-conversation"} <= set(cors["ExposeHeaders"])


def test_default_stage_writes_json_access_logs_and_throttles(synth: Synthesized) -> None:
    (stage,) = (s["Properties"] for s in _http(synth, "AWS::ApiGatewayV2::Stage").values())
    log_group_id = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    access_log = json.loads(stage["AccessLogSettings"]["Format"])

    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert synth.resources[log_group_id]["Type"] == "AWS::Logs::LogGroup"
    assert {"requestId", "ip", "routeKey", "status", "latency"} <= access_log.keys()
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0


def test_outputs_give_the_frontend_the_api_url(synth: Synthesized) -> None:
    outputs = synth.template.to_json()["Outputs"]
    (api_id,) = _http(synth, "AWS::ApiGatewayV2::Api")
    url = outputs["HttpApiUrl"]["Value"]["Fn::Join"][1]

    assert url[0] == "https://"
    assert {"Ref": api_id} in url
    assert url[-1].endswith("/api/v1")
    assert outputs["SigningKeysSecretArn"]["Value"] == {"Ref": synth.signing_secret_id}


def test_outputs_name_every_table(synth: Synthesized) -> None:
    values = [output["Value"] for output in synth.template.to_json()["Outputs"].values()]

    assert all({"Ref": synth.table_id(spec)} in values for spec in TABLES)
