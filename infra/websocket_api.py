"""The WebSocket API: `$connect` behind the token authorizer, every other route on the realtime handler, which
hands chat replies to the worker; both post back to connections through the stage's management API."""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_authorizers import WebSocketLambdaAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import WebSocketLambdaIntegration
from constructs import Construct

from infra.catalog import (
    WEBSOCKET_ACTIONS,
    WEBSOCKET_AUTHORIZER_FUNCTION,
    WEBSOCKET_FUNCTIONS,
    WEBSOCKET_HANDLER_FUNCTION,
    WEBSOCKET_ROUTE_SELECTION,
    WEBSOCKET_WORKER_FUNCTION,
)
from infra.functions import Functions
from infra.nag import acknowledge, acknowledge_wildcard_resource
from infra.observability import JsonAccessLogs
from infra.stage import StageConfig, StageConstruct


class WebSocketApi(StageConstruct):
    """The catalog's `WEBSOCKET_FUNCTIONS`, a route per client action and an auto-deployed stage named as the
    stage (an output: clients connect with `?token=`)."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions) -> None:
        super().__init__(scope, construct_id, config)
        self.functions: dict[str, lambda_.Function] = {
            spec.name: functions.catalog_function(spec) for spec in WEBSOCKET_FUNCTIONS
        }
        handler = self.functions[WEBSOCKET_HANDLER_FUNCTION.name]
        worker = self.functions[WEBSOCKET_WORKER_FUNCTION.name]
        # Invoked asynchronously: a retry would stream (and pay for) the whole reply again. A failed reply ends
        # with an error frame and is kept incomplete instead.
        worker.configure_async_invoke(retry_attempts=0)
        self.api = self._api(handler)
        self.stage = apigwv2.WebSocketStage(
            self.stack,
            "WebSocketStage",
            web_socket_api=self.api,
            stage_name=config.stage,
            auto_deploy=True,
            access_log_settings=JsonAccessLogs(self, "WebSocketApiAccessLogs"),
            throttle=config.throttle,
        )
        self._grant_posting(handler, worker)
        CfnOutput(
            self.stack,
            "WebSocketUrl",
            value=self.stage.url,
            description="WebSocket URL: connect with ?token=<access token or API key>",
        )

    def _api(self, handler: lambda_.Function) -> apigwv2.WebSocketApi:
        authorizer = WebSocketLambdaAuthorizer(
            "WebSocketAuthorizer",
            self.functions[WEBSOCKET_AUTHORIZER_FUNCTION.name],
            identity_source=["route.request.querystring.token"],
        )
        integration = WebSocketLambdaIntegration("RealtimeIntegration", handler)
        stage = self.config.stage
        api = apigwv2.WebSocketApi(
            self.stack,
            "WebSocketApi",
            api_name=f"stratus-{stage}-realtime",
            description=f"Stratus {stage} WebSocket API",
            route_selection_expression=WEBSOCKET_ROUTE_SELECTION,
            connect_route_options=apigwv2.WebSocketRouteOptions(integration=integration, authorizer=authorizer),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            default_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
        )
        for action in WEBSOCKET_ACTIONS:
            api.add_route(action, integration=integration)
        for route in api.node.children:
            if isinstance(route, apigwv2.WebSocketRoute) and route.node.id != "$connect-Route":
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "WebSocket APIs authorize once, on $connect (the token authorizer); every later route runs on "
                    "that authorized connection, and the handler acts as the user stored with it.",
                )
        return api

    def _grant_posting(self, handler: lambda_.Function, worker: lambda_.Function) -> None:
        """Both post to this stage's connections; only the handler invokes, and only the worker."""
        # What WebSocketStage.grant_management_api_access grants, written out so that its acknowledgement names
        # the same ARN in whatever account and region the stage resolves to.
        management_api = self.stack.format_arn(service="execute-api", resource=self.api.api_id)
        connections = f"{management_api}/{self.stage.stage_name}/*/@connections/*"
        for function in (handler, worker):
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=[connections])
            )
            role = function.role
            assert role is not None
            acknowledge_wildcard_resource(
                role,
                connections,
                "execute-api:ManageConnections on this stage's @connections only: connection ids are made at "
                "connect time, so no narrower resource can be named.",
            )
        worker.grant_invoke(handler)
        handler_role = handler.role
        assert handler_role is not None
        # grant_invoke names the function's ARN and every version and alias of it (ARN:*).
        acknowledge_wildcard_resource(
            handler_role,
            f"{worker.function_arn}:*",
            "lambda:InvokeFunction on the chat worker only; the wildcard is that function's versions and aliases.",
        )
        handler.add_environment("WORKER_FUNCTION", worker.function_name)
