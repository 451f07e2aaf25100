"""The HTTP API: a route for each catalog route, on the function that serves it, behind the token authorizer unless
the catalog makes it public; CORS for the stage's frontends, JSON access logs, a throttle."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_authorizers import HttpLambdaAuthorizer, HttpLambdaResponseType
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.catalog import API_PREFIX, AUTHORIZER_CACHE_SECONDS, AUTHORIZER_FUNCTION, HTTP_FUNCTIONS, pascal
from infra.functions import Functions
from infra.nag import acknowledge
from infra.observability import JsonAccessLogs
from infra.stage import StageConfig, StageConstruct
from shared.http import cors

CORS_METHODS = (
    apigwv2.CorsHttpMethod.GET,
    apigwv2.CorsHttpMethod.POST,
    apigwv2.CorsHttpMethod.PUT,
    apigwv2.CorsHttpMethod.PATCH,
    apigwv2.CorsHttpMethod.DELETE,
)


class _FunctionIntegration(HttpLambdaIntegration):
    """A function's integration, shared by all its routes, without the invoke permission CDK adds for every route:
    a context with twenty routes would cost twenty `AWS::Lambda::Permission` resources of the stack's 500. The one
    permission per function is `HttpApi._allow_invocations`."""

    def _complete_bind(self, *, route: apigwv2.IHttpRoute, scope: Construct) -> None:
        return None


class HttpApi(StageConstruct):
    """The catalog's `HTTP_FUNCTIONS` and their routes, and the authorizer function in front of them."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions) -> None:
        super().__init__(scope, construct_id, config)
        self.functions: dict[str, lambda_.Function] = {
            spec.name: functions.catalog_function(spec) for spec in (*HTTP_FUNCTIONS, AUTHORIZER_FUNCTION)
        }
        self.api = self._api()
        self.stage = apigwv2.HttpStage(
            self.stack,
            "HttpApiDefaultStage",
            http_api=self.api,
            auto_deploy=True,
            access_log_settings=JsonAccessLogs(self, "HttpApiAccessLogs"),
            throttle=config.throttle,
        )
        self._add_routes()
        # Channels build their webhook URLs on the API's own.
        public_url = self.stage.url + API_PREFIX.lstrip("/")
        for spec in HTTP_FUNCTIONS:
            if spec.names_public_url:
                self.functions[spec.name].add_environment("PUBLIC_API_URL", public_url)
        CfnOutput(
            self.stack,
            "HttpApiUrl",
            value=self.stage.url + API_PREFIX.lstrip("/"),
            description="Base URL of the HTTP API; every route in the catalog lives under it",
        )

    def _api(self) -> apigwv2.HttpApi:
        authorizer = HttpLambdaAuthorizer(
            "Authorizer",
            self.functions[AUTHORIZER_FUNCTION.name],
            response_types=[HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS),
            identity_source=["$request.header.Authorization"],
        )
        stage = self.config.stage
        return apigwv2.HttpApi(
            self.stack,
            "HttpApi",
            api_name=f"stratus-{stage}",
            description=f"Stratus {stage} HTTP API",
            # Protected unless a route is public by contract: a route added without thought needs a token.
            default_authorizer=authorizer,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=self.config.cors_origins,
                allow_methods=list(CORS_METHODS),
                allow_headers=list(cors.ALLOWED_HEADERS),
                expose_headers=list(cors.EXPOSED_HEADERS),
                allow_credentials=self.config.cors_allows_credentials,
                max_age=Duration.hours(1),
            ),
            create_default_stage=False,
        )

    def _allow_invocations(self, function: lambda_.Function) -> None:
        """This API, and no other caller, may invoke `function`, on any of its routes: which function a route
        reaches is the API's integration, so a source ARN per route would restrict nothing more."""
        function.add_permission(
            "HttpApiInvoke",
            principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
            source_arn=self.stack.format_arn(service="execute-api", resource=self.api.api_id, resource_name="*/*"),
        )

    def _add_routes(self) -> None:
        for spec in HTTP_FUNCTIONS:
            function = self.functions[spec.name]
            integration = _FunctionIntegration(f"{pascal(spec.name)}Integration", function)
            self._allow_invocations(function)
            for route in spec.routes:
                (http_route,) = self.api.add_routes(
                    path=route.path,
                    methods=[apigwv2.HttpMethod(route.method)],
                    integration=integration,
                    authorizer=apigwv2.HttpNoneAuthorizer() if route.public else None,
                )
                if route.public:
                    acknowledge(
                        http_route,
                        "AwsSolutions-APIG4",
                        f"{route.route_key} is public by contract (catalog Route.public): it is how a caller "
                        "gets a credential, or health and key discovery that need none.",
                    )
