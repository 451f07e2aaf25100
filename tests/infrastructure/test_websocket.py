"""The WebSocket API: routes by action, the token authorizer on `$connect` only, a logged auto-deployed stage,
and the realtime functions granted exactly the management API, the worker invocation and their tables."""

from __future__ import annotations

from typing import Any

import pytest

from infra.catalog import (
    CHAT_FUNCTION,
    WEBSOCKET_ACTIONS,
    WEBSOCKET_AUTHORIZER_FUNCTION,
    WEBSOCKET_FUNCTIONS,
    WEBSOCKET_HANDLER_FUNCTION,
    WEBSOCKET_WORKER_FUNCTION,
    FunctionSpec,
)
from infra.nag import nag_resource
from shared.tables import REALTIME
from tests.infrastructure.conftest import Synthesized
from tests.infrastructure.test_permissions import (
    READ_ACTIONS,
    SECRET_READ_ACTIONS,
    WRITE_ACTIONS,
    _grants,
    _listed,
    _statements,
)

pytestmark = pytest.mark.infra


def _name(spec: FunctionSpec) -> str:
    return spec.name


def _api_id(synth: Synthesized) -> str:
    (api_id,) = (
        lid
        for lid, api in synth.of_type("AWS::ApiGatewayV2::Api").items()
        if api["Properties"]["ProtocolType"] == "WEBSOCKET"
    )
    return api_id


def _of_api(synth: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    api_id = _api_id(synth)
    return {
        lid: r["Properties"]
        for lid, r in synth.of_type(resource_type).items()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    }


def test_messages_are_routed_by_their_action(synth: Synthesized) -> None:
    api = synth.resources[_api_id(synth)]["Properties"]
    routes = {route["RouteKey"] for route in _of_api(synth, "AWS::ApiGatewayV2::Route").values()}

    assert api["RouteSelectionExpression"] == "$request.body.action"
    assert routes == {"$connect", "$disconnect", "$default", *WEBSOCKET_ACTIONS}


def test_every_route_integrates_the_realtime_handler(synth: Synthesized) -> None:
    handler_id, _ = synth.function(WEBSOCKET_HANDLER_FUNCTION)
    integrations = _of_api(synth, "AWS::ApiGatewayV2::Integration")
    routes = _of_api(synth, "AWS::ApiGatewayV2::Route").values()

    (integration_id,) = integrations
    assert integrations[integration_id]["IntegrationType"] == "AWS_PROXY"
    assert {"Fn::GetAtt": [handler_id, "Arn"]} in integrations[integration_id]["IntegrationUri"]["Fn::Join"][1]
    for route in routes:
        assert route["Target"]["Fn::Join"][1] == ["integrations/", {"Ref": integration_id}]


def test_only_connect_is_authorized_by_the_token_in_the_query_string(synth: Synthesized) -> None:
    authorizer_function_id, _ = synth.function(WEBSOCKET_AUTHORIZER_FUNCTION)
    ((authorizer_id, authorizer),) = _of_api(synth, "AWS::ApiGatewayV2::Authorizer").items()
    routes = {route["RouteKey"]: route for route in _of_api(synth, "AWS::ApiGatewayV2::Route").values()}

    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    assert {"Fn::GetAtt": [authorizer_function_id, "Arn"]} in authorizer["AuthorizerUri"]["Fn::Join"][1]
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert routes["$connect"]["AuthorizerId"] == {"Ref": authorizer_id}
    assert {key: route["AuthorizationType"] for key, route in routes.items() if key != "$connect"} == {
        key: "NONE" for key in routes if key != "$connect"
    }


def test_the_stage_deploys_itself_logs_access_and_is_an_output(synth: Synthesized) -> None:
    ((_, stage),) = _of_api(synth, "AWS::ApiGatewayV2::Stage").items()
    output = synth.template.to_json()["Outputs"]["WebSocketUrl"]["Value"]["Fn::Join"][1]

    assert stage["StageName"] == synth.stage
    assert stage["AutoDeploy"] is True
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert output[0] == "wss://"
    assert output[1] == {"Ref": _api_id(synth)}
    assert output[-1] == f"/{synth.stage}"


@pytest.mark.parametrize("spec", WEBSOCKET_FUNCTIONS, ids=_name)
def test_only_the_functions_that_post_may_manage_connections(synth: Synthesized, spec: FunctionSpec) -> None:
    statements = [
        s for s in _statements(synth, spec) if any(a.startswith("execute-api:") for a in _listed(s["Action"]))
    ]
    if spec is WEBSOCKET_AUTHORIZER_FUNCTION:
        assert statements == []
        return
    (statement,) = statements
    arn = statement["Resource"]["Fn::Join"][1]
    assert statement["Action"] == "execute-api:ManageConnections"
    assert {"Ref": _api_id(synth)} in arn
    assert arn[-1] == f"/{synth.stage}/*/@connections/*"


@pytest.mark.parametrize(
    ("stage", "region", "account"),
    [("dev", "<AWS::Region>", "<AWS::AccountId>"), ("acme", "eu-west-1", "123456789012")],
)
def test_connections_are_managed_in_the_region_and_account_the_stage_deploys_to(
    request: pytest.FixtureRequest, stage: str, region: str, account: str
) -> None:
    synth: Synthesized = request.getfixturevalue(stage)
    (statement,) = (
        s
        for s in _statements(synth, WEBSOCKET_HANDLER_FUNCTION)
        if any(a.startswith("execute-api:") for a in _listed(s["Action"]))
    )

    assert nag_resource(statement["Resource"]) == (
        f"arn:<AWS::Partition>:execute-api:{region}:{account}:<{_api_id(synth)}>/{stage}/*/@connections/*"
    )


@pytest.mark.parametrize("spec", WEBSOCKET_FUNCTIONS, ids=_name)
def test_only_the_handler_invokes_and_only_the_worker(synth: Synthesized, spec: FunctionSpec) -> None:
    worker_id, _ = synth.function(WEBSOCKET_WORKER_FUNCTION)
    _, function = synth.function(spec)
    grants = _grants(synth, spec, "lambda")

    if spec is WEBSOCKET_HANDLER_FUNCTION:
        assert grants == {worker_id: {"lambda:InvokeFunction"}}
        assert function["Environment"]["Variables"]["WORKER_FUNCTION"] == {"Ref": worker_id}
    else:
        assert grants == {}


@pytest.mark.parametrize("spec", WEBSOCKET_FUNCTIONS, ids=_name)
def test_realtime_functions_reach_only_their_tables(synth: Synthesized, spec: FunctionSpec) -> None:
    grants = _grants(synth, spec, "dynamodb")
    writable = {synth.table_id(table) for table in spec.tables}
    readable = {synth.table_id(table) for table in spec.read_only_tables}

    assert set(grants) == writable | readable
    assert all(grants[table] >= WRITE_ACTIONS | READ_ACTIONS for table in writable)
    assert all(not grants[table] & WRITE_ACTIONS for table in readable)
    assert all("dynamodb:Scan" not in actions for actions in grants.values())
    assert (synth.table_id(REALTIME) in writable) == (spec is not WEBSOCKET_AUTHORIZER_FUNCTION)


def test_the_worker_may_do_what_chat_does_to_produce_a_reply(dev: Synthesized, acme: Synthesized) -> None:
    worker = WEBSOCKET_WORKER_FUNCTION
    assert set(worker.tables) >= set(CHAT_FUNCTION.tables)
    assert worker.read_only_tables == CHAT_FUNCTION.read_only_tables
    # The provider keys, not the token-signing keys: it verifies no token.
    assert _grants(dev, worker, "secretsmanager") == {dev.provider_keys_secret_id: SECRET_READ_ACTIONS}
    _, function = acme.function(worker)
    assert function["Environment"]["Variables"]["BEDROCK_ENABLED"] == "true"
    assert "AWS_LWA_INVOKE_MODE" not in function["Environment"]["Variables"]  # a plain function, no web adapter


def test_a_failed_worker_invocation_is_not_retried(synth: Synthesized) -> None:
    worker_id, _ = synth.function(WEBSOCKET_WORKER_FUNCTION)
    (config,) = synth.of_type("AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": worker_id}
    assert config["Properties"]["MaximumRetryAttempts"] == 0
