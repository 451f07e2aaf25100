"""One stage of Stratus in AWS: the tables, the signing-key secret, the functions and the HTTP API.

Everything is built from the two catalogs (`shared.tables` and `infra.catalog`), so a table, route or
permission exists here exactly when the catalog says so; local mode serves the same catalogs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import (
    Acknowledgment,
    Aws,
    CfnElement,
    CfnOutput,
    CustomResource,
    Duration,
    IgnoreMode,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from aws_cdk.aws_apigatewayv2_authorizers import (
    HttpLambdaAuthorizer,
    HttpLambdaResponseType,
    WebSocketLambdaAuthorizer,
)
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration, WebSocketLambdaIntegration
from constructs import Construct, IConstruct
from pydantic import ValidationError

from infra.catalog import (
    API_PREFIX,
    AUTHORIZER_CACHE_SECONDS,
    AUTHORIZER_FUNCTION,
    HTTP_FUNCTIONS,
    STREAMING_FUNCTIONS,
    WEBSOCKET_ACTIONS,
    WEBSOCKET_AUTHORIZER_FUNCTION,
    WEBSOCKET_FUNCTIONS,
    WEBSOCKET_HANDLER_FUNCTION,
    WEBSOCKET_ROUTE_SELECTION,
    WEBSOCKET_WORKER_FUNCTION,
    FunctionSpec,
)
from shared.auth.api_keys import API_KEY_RESOLUTION_ATTRIBUTES, API_KEY_RESOLUTION_PARTITIONS
from shared.auth.revocations import REVOCATIONS_PARTITION
from shared.settings import Settings
from shared.tables import IDENTITY, TABLES, TableSpec

REPO_ROOT = Path(__file__).resolve().parent.parent

# Gitignore syntax, read as an allowlist: the function asset is `functions/` and `shared/`, nothing else, so a
# new top-level folder (or a developer's .venv, cdk.out, layer builds) can never leak into a deployment.
CODE_ASSET_EXCLUDE = ("/*", "!/functions/", "!/shared/", "__pycache__/", "*.py[cod]", "*.md")

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
METRICS_NAMESPACE = "Stratus"
# Dev stages hash passwords at a lower scrypt cost so sign-ups in demos and end-to-end runs stay fast;
# Settings refuses anything below its deployed minimum outside dev stages.
DEV_PASSWORD_HASH_COST = 14
DEFAULT_THROTTLE_RATE = 100
DEFAULT_THROTTLE_BURST = 200
CORS_METHODS = (
    apigwv2.CorsHttpMethod.GET,
    apigwv2.CorsHttpMethod.POST,
    apigwv2.CorsHttpMethod.PUT,
    apigwv2.CorsHttpMethod.PATCH,
    apigwv2.CorsHttpMethod.DELETE,
)
CORS_HEADERS = ("authorization", "content-type", "x-request-id")
WRITE_LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
# Exact DynamoDB actions instead of CDK's grant_read_data/grant_read_write_data, which include Scan: no request
# path may scan a table (DESIGN), so no function role can.
TABLE_READ_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query")
TABLE_WRITE_ACTIONS = ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# The Lambda Web Adapter (AWS-published layer): runs a web app in Lambda and streams its responses.
WEB_ADAPTER_LAYER = "arn:aws:lambda:{region}:753240598075:layer:LambdaAdapterLayerArm64:25"
WEB_ADAPTER_PORT = "8080"
# Large message bodies live under this prefix of the payload bucket; it is all a function may touch there.
PAYLOAD_PREFIX = "conversations/"

SIGNING_KEYS_FUNCTION = FunctionSpec(
    name="signing-keys",
    handler="functions.identity.signing_keys.on_event",
    description="Custom resource: puts the stage's first token signing key into its secret",
    memory_mb=256,
    timeout_seconds=60,
)


class ConfigurationError(Exception):
    """The stage or its context values cannot make a safe deployment; the message says what to pass."""


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """API Gateway access logs as one JSON object per request, to a log group this stack owns."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._log_group = log_group

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return apigwv2.LogGroupLogDestination(self._log_group)

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(
            '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
            '"requestTime":"$context.requestTime","routeKey":"$context.routeKey",'
            '"status":"$context.status","latency":"$context.responseLatency",'
            '"integrationLatency":"$context.integrationLatency",'
            '"integrationError":"$context.integrationErrorMessage",'
            '"authorizerError":"$context.authorizer.error","responseLength":"$context.responseLength"}'
        )


class StratusStack(Stack):
    """Stratus for one stage (one tenant). Context: `corsOrigins` (required outside dev stages),
    `throttleRateLimit` and `throttleBurstLimit` (requests per second across the API), `bedrock` (true lets chat
    call Bedrock)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        layer_dirs: Mapping[str, Path],
        **kwargs: Any,
    ) -> None:
        # Checked before the stack exists, so a bad stage fails with our message, not a naming error.
        settings = deployment_settings(stage, scope.node.try_get_context("corsOrigins"))
        if "base" not in layer_dirs:
            raise ConfigurationError("the base layer is required: run `make layers`")
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.stage = stage
        # `-c bedrock=true`: the chat function may call Bedrock with its own role (no key needed).
        self.bedrock_enabled = str(scope.node.try_get_context("bedrock") or "").lower() == "true"
        dev = self.settings.is_dev_stage
        self._removal_policy = RemovalPolicy.DESTROY if dev else RemovalPolicy.RETAIN
        self._log_retention = logs.RetentionDays.ONE_MONTH if dev else logs.RetentionDays.ONE_YEAR

        self.tables = {spec.context: self._table(spec) for spec in TABLES}
        self.signing_keys = secretsmanager.Secret(
            self,
            "SigningKeys",
            secret_name=f"stratus/{stage}/signing-keys",
            description=f"Stratus {stage}: ES256 key ring that signs and verifies access and refresh tokens",
            removal_policy=self._removal_policy,
        )
        _acknowledge(
            self.signing_keys,
            "AwsSolutions-SMG4",
            "The key ring rotates by adding a key in front (every listed key still verifies) and dropping "
            "the oldest later; a scheduled rotation Lambda is future work.",
        )

        self.payload_bucket = self._payload_bucket()
        self.code = lambda_.Code.from_asset(
            str(REPO_ROOT), exclude=list(CODE_ASSET_EXCLUDE), ignore_mode=IgnoreMode.GIT
        )
        # Every function gets the base layer. The AI layer (provider SDKs, mcp) is only for functions that call
        # models, none in the catalog yet: its imports cost seconds of cold start.
        self.layers = {name: self._layer(name, path) for name, path in layer_dirs.items()}

        initial_key = self._signing_keys_initializer()
        self.provider_keys = secretsmanager.Secret(
            self,
            "ProviderKeys",
            secret_name=f"stratus/{stage}/provider-keys",
            description=f"Stratus {stage}: LLM provider API keys, JSON by provider name; set by the operator",
            removal_policy=self._removal_policy,
        )
        _acknowledge(
            self.provider_keys,
            "AwsSolutions-SMG4",
            "Provider API keys are issued by the providers and rotated in their consoles; the operator updates the "
            "secret, which chat reads on its next cold start.",
        )
        self.functions = {
            spec.name: self._catalog_function(spec, initial_key)
            for spec in (*HTTP_FUNCTIONS, AUTHORIZER_FUNCTION, *STREAMING_FUNCTIONS, *WEBSOCKET_FUNCTIONS)
        }
        self.chat_url = self._streaming_endpoints()
        self.http_api, self.http_stage = self._http_api()
        self.websocket_api, self.websocket_stage = self._websocket_api()

        CfnOutput(
            self,
            "HttpApiUrl",
            value=self.http_stage.url + API_PREFIX.lstrip("/"),
            description="Base URL of the HTTP API; every route in the catalog lives under it",
        )
        CfnOutput(
            self,
            "WebSocketUrl",
            value=self.websocket_stage.url,
            description="WebSocket URL: connect with ?token=<access token or API key>",
        )
        CfnOutput(
            self,
            "SigningKeysSecretArn",
            value=self.signing_keys.secret_arn,
            description="Secret holding the token signing key ring",
        )
        for spec in TABLES:
            CfnOutput(
                self,
                f"{_pascal(spec.context)}TableName",
                value=self.tables[spec.context].table_name,
                description=f"DynamoDB table of the {spec.context} context",
            )

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            f"{_pascal(spec.context)}Table",
            table_name=spec.physical_name(self.stage),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=spec.sort_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if spec.stream else None,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # AWS managed key: its use shows in CloudTrail and there is no key policy to maintain. A customer
            # managed key would add cost and a policy without narrowing who may read: grants are per table.
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=not self.settings.is_dev_stage,
            removal_policy=self._removal_policy,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _payload_bucket(self) -> s3.Bucket:
        """Message bodies too large for a DynamoDB item: private, encrypted, TLS only."""
        bucket = s3.Bucket(
            self,
            "PayloadBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=self._removal_policy,
        )
        _acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Objects are reached only through the conversations function, whose every call is logged with its "
            "request id; server access logs would add a second bucket without a reader.",
        )
        return bucket

    def _layer(self, name: str, path: Path) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            f"{_pascal(name)}Layer",
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"Stratus {name} dependencies (layers/{name}/requirements.txt)",
            removal_policy=self._removal_policy,
        )

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(self, construct_id, retention=self._log_retention, removal_policy=self._removal_policy)

    def _function(
        self, spec: FunctionSpec, environment: Mapping[str, str], extra_layers: tuple[lambda_.ILayerVersion, ...] = ()
    ) -> lambda_.Function:
        """A function with its own role that may write its own log group and traces, and nothing else yet."""
        construct_id = _pascal(spec.name)
        log_group = self._log_group(f"{construct_id}Logs")
        # Our own role instead of the default's AWSLambdaBasicExecutionRole, which may write any log group.
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Stratus {self.stage} {spec.name} function",
        )
        role.add_to_policy(iam.PolicyStatement(actions=list(WRITE_LOG_ACTIONS), resources=[log_group.log_group_arn]))
        function = lambda_.Function(
            self,
            f"{construct_id}Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=self.code,
            handler=spec.handler,
            layers=[self.layers[name] for name in spec.layers if name in self.layers] + list(extra_layers),
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_seconds),
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "STAGE": self.stage,
                "POWERTOOLS_SERVICE_NAME": spec.name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                **environment,
            },
        )
        _acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.",
        )
        _acknowledge(
            function,
            "AwsSolutions-L1",
            "The project pins python3.12 (DESIGN decision 1): its layers are built for 3.12 and the code is "
            "tested on it; moving runtime is a deliberate upgrade of layers and tests together.",
        )
        return function

    def _catalog_function(self, spec: FunctionSpec, initial_key: CustomResource) -> lambda_.Function:
        """A catalog function, granted exactly the tables, secrets and bucket its spec lists."""
        extra_layers: tuple[lambda_.ILayerVersion, ...] = ()
        if spec.streaming:
            extra_layers = (
                lambda_.LayerVersion.from_layer_version_arn(
                    self, f"{_pascal(spec.name)}WebAdapter", WEB_ADAPTER_LAYER.format(region=Aws.REGION)
                ),
            )
        function = self._function(spec, self._environment(spec), extra_layers)
        self._grant_tables(spec, function)
        if spec.uses_payload_bucket:
            self._grant_payloads(function)
        if spec.reads_signing_keys:
            self.signing_keys.grant_read(function)
            # The first request must find a key ring, not the placeholder CloudFormation created.
            function.node.add_dependency(initial_key)
        elif spec.describes_signing_keys:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=[self.signing_keys.secret_arn])
            )
        if spec.calls_models:
            self.provider_keys.grant_read(function)
            if self.bedrock_enabled:
                self._grant_bedrock(function)
        if spec.checks_revocations:
            self._grant_revocation_reads(function)
        return function

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        """What a function needs to find its resources, named as `shared.settings` and `shared.tables` read them."""
        environment = {
            "CORS_ALLOW_ORIGINS": ",".join(self.settings.cors_allow_origins),
            **{
                table.env_var: self.tables[table.context].table_name
                for table in (*spec.tables, *spec.read_only_tables, *spec.described_tables)
            },
        }
        if spec.reads_signing_keys or spec.describes_signing_keys:
            environment["SIGNING_KEYS_SECRET"] = self.signing_keys.secret_arn
        if spec.uses_payload_bucket:
            environment["PAYLOAD_BUCKET"] = self.payload_bucket.bucket_name
        if self.settings.is_dev_stage:
            environment["PASSWORD_HASH_COST"] = str(DEV_PASSWORD_HASH_COST)
        if spec.streaming:
            environment |= {
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
                "AWS_LWA_INVOKE_MODE": "response_stream",
                "AWS_LWA_PORT": WEB_ADAPTER_PORT,
            }
        if spec.calls_models:
            environment["PROVIDER_KEYS_SECRET"] = self.provider_keys.secret_arn
            if self.bedrock_enabled:
                environment["BEDROCK_ENABLED"] = "true"
        return environment

    def _grant_tables(self, spec: FunctionSpec, function: lambda_.Function) -> None:
        for table in spec.tables:
            self.tables[table.context].grant(function, *TABLE_READ_ACTIONS, *TABLE_WRITE_ACTIONS)
        for table in spec.read_only_tables:
            self.tables[table.context].grant(function, *TABLE_READ_ACTIONS)
        if spec.described_tables:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:DescribeTable"],
                    resources=[self.tables[table.context].table_arn for table in spec.described_tables],
                )
            )
        role = function.role
        assert role is not None  # _function gives every function its own role
        for context in sorted({table.context for table in (*spec.tables, *spec.read_only_tables)}):
            table_id = self.get_logical_id(_cfn(self.tables[context]))
            _acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{table_id}.Arn>/index/*]",
                "Queries the GSIs of a table its spec lists; index ARNs are the table ARN plus /index/*.",
            )

    def _grant_revocation_reads(self, function: lambda_.Function) -> None:
        """Query the identity table's revocation partition only, and get the items an API key resolves through
        (the key, its owner's roles and status, their roles), nothing else of that table (shared.auth.revocations)."""
        identity = self.tables[IDENTITY.context]
        function.add_environment(IDENTITY.env_var, identity.table_name)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[identity.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [REVOCATIONS_PARTITION]}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"],
                resources=[identity.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(API_KEY_RESOLUTION_PARTITIONS)},
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(API_KEY_RESOLUTION_ATTRIBUTES)},
                    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
                },
            )
        )

    def _grant_bedrock(self, function: lambda_.Function) -> None:
        """Stream replies from Bedrock's models, on demand or through cross-region inference profiles."""
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModelWithResponseStream"],
                resources=[
                    f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/*",
                    f"arn:{Aws.PARTITION}:bedrock:*:{Aws.ACCOUNT_ID}:inference-profile/*",
                ],
            )
        )
        role = function.role
        assert role is not None
        _acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/*]",
            "The stage may use any model the operator enables in Bedrock; invocation is the only action granted.",
        )
        _acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*:<AWS::AccountId>:inference-profile/*]",
            "Cross-region inference profiles route a model to any region of the profile; invocation only.",
        )

    def _grant_payloads(self, function: lambda_.Function) -> None:
        """Get, put and delete objects under the payload prefix, and list that prefix: nothing else."""
        objects = self.payload_bucket.arn_for_objects(f"{PAYLOAD_PREFIX}*")
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[objects])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.payload_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{PAYLOAD_PREFIX}*"]}},
            )
        )
        bucket_id = self.get_logical_id(_cfn(self.payload_bucket))
        role = function.role
        assert role is not None
        _acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{PAYLOAD_PREFIX}*]",
            "Message payload objects are named by conversation and message id under one prefix.",
        )

    def _signing_keys_initializer(self) -> CustomResource:
        """Puts the first key into the secret on create; later deploys leave the key ring alone."""
        function = self._function(SIGNING_KEYS_FUNCTION, {})
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                resources=[self.signing_keys.secret_arn],
            )
        )
        framework_logs = self._log_group("SigningKeysProviderLogs")
        framework_role = iam.Role(
            self,
            "SigningKeysProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Stratus {self.stage} custom resource framework for the signing keys",
        )
        framework_role.add_to_policy(
            iam.PolicyStatement(actions=list(WRITE_LOG_ACTIONS), resources=[framework_logs.log_group_arn])
        )
        provider = cr.Provider(
            self,
            "SigningKeysProvider",
            on_event_handler=function,
            framework_on_event_role=framework_role,
            log_group=framework_logs,
        )
        _acknowledge(
            framework_role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(_cfn(function))}.Arn>:*]",
            "The CDK Provider framework may invoke any version of its on_event handler (ARN:*).",
        )
        return CustomResource(
            self,
            "SigningKeysInitialKey",
            service_token=provider.service_token,
            resource_type="Custom::SigningKeys",
            properties={"SecretId": self.signing_keys.secret_arn},
        )

    def _streaming_endpoints(self) -> dict[str, str]:
        """A Function URL in response-stream mode for each streaming function; the app checks credentials."""
        urls = {}
        origins = list(self.settings.cors_allow_origins)
        for spec in STREAMING_FUNCTIONS:
            url = self.functions[spec.name].add_function_url(
                # API Gateway HTTP APIs cannot stream: the app verifies every request's bearer credential itself.
                auth_type=lambda_.FunctionUrlAuthType.NONE,
                invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
                cors=lambda_.FunctionUrlCorsOptions(
                    allowed_origins=origins,
                    allowed_methods=[lambda_.HttpMethod.GET, lambda_.HttpMethod.POST],
                    allowed_headers=list(CORS_HEADERS),
                    allow_credentials="*" not in origins,
                    max_age=Duration.hours(1),
                ),
            )
            CfnOutput(
                self,
                f"{_pascal(spec.name)}Url",
                value=url.url,
                description=f"Base URL of the {spec.name} function (response streaming): its routes live under it",
            )
            urls[spec.name] = url.url
        return urls

    def _http_api(self) -> tuple[apigwv2.HttpApi, apigwv2.HttpStage]:
        origins = list(self.settings.cors_allow_origins)
        authorizer = HttpLambdaAuthorizer(
            "Authorizer",
            self.functions[AUTHORIZER_FUNCTION.name],
            response_types=[HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS),
            identity_source=["$request.header.Authorization"],
        )
        api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"stratus-{self.stage}",
            description=f"Stratus {self.stage} HTTP API",
            # Protected unless a route is public by contract: a route added without thought needs a token.
            default_authorizer=authorizer,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=origins,
                allow_methods=list(CORS_METHODS),
                allow_headers=list(CORS_HEADERS),
                expose_headers=["x-request-id"],
                # Browsers refuse credentials with a wildcard origin, so only named origins get them.
                allow_credentials="*" not in origins,
                max_age=Duration.hours(1),
            ),
            create_default_stage=False,
        )
        stage = apigwv2.HttpStage(
            self,
            "HttpApiDefaultStage",
            http_api=api,
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(self._log_group("HttpApiAccessLogs")),
            throttle=apigwv2.ThrottleSettings(
                rate_limit=float(self.node.try_get_context("throttleRateLimit") or DEFAULT_THROTTLE_RATE),
                burst_limit=int(self.node.try_get_context("throttleBurstLimit") or DEFAULT_THROTTLE_BURST),
            ),
        )

        for spec in HTTP_FUNCTIONS:
            integration = HttpLambdaIntegration(f"{_pascal(spec.name)}Integration", self.functions[spec.name])
            for route in spec.routes:
                (http_route,) = api.add_routes(
                    path=route.path,
                    methods=[apigwv2.HttpMethod(route.method)],
                    integration=integration,
                    authorizer=apigwv2.HttpNoneAuthorizer() if route.public else None,
                )
                if route.public:
                    _acknowledge(
                        http_route,
                        "AwsSolutions-APIG4",
                        f"{route.route_key} is public by contract (catalog Route.public): it is how a caller "
                        "gets a credential, or health and key discovery that need none.",
                    )
        return api, stage

    def _websocket_api(self) -> tuple[apigwv2.WebSocketApi, apigwv2.WebSocketStage]:
        """The WebSocket API: `$connect` behind the token authorizer, every other route on the realtime handler,
        which hands chat replies to the worker; both post back through the stage's management API."""
        handler = self.functions[WEBSOCKET_HANDLER_FUNCTION.name]
        worker = self.functions[WEBSOCKET_WORKER_FUNCTION.name]
        # Invoked asynchronously: a retry would stream (and pay for) the whole reply again. A failed reply ends
        # with an error frame and is kept incomplete instead.
        worker.configure_async_invoke(retry_attempts=0)
        authorizer = WebSocketLambdaAuthorizer(
            "WebSocketAuthorizer",
            self.functions[WEBSOCKET_AUTHORIZER_FUNCTION.name],
            identity_source=["route.request.querystring.token"],
        )
        integration = WebSocketLambdaIntegration("RealtimeIntegration", handler)
        api = apigwv2.WebSocketApi(
            self,
            "WebSocketApi",
            api_name=f"stratus-{self.stage}-realtime",
            description=f"Stratus {self.stage} WebSocket API",
            route_selection_expression=WEBSOCKET_ROUTE_SELECTION,
            connect_route_options=apigwv2.WebSocketRouteOptions(integration=integration, authorizer=authorizer),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            default_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
        )
        for action in WEBSOCKET_ACTIONS:
            api.add_route(action, integration=integration)
        for route in api.node.children:
            if isinstance(route, apigwv2.WebSocketRoute) and route.node.id != "$connect-Route":
                _acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "WebSocket APIs authorize once, on $connect (the token authorizer); every later route runs on "
                    "that authorized connection, and the handler acts as the user stored with it.",
                )
        stage = apigwv2.WebSocketStage(
            self,
            "WebSocketStage",
            web_socket_api=api,
            stage_name=self.stage,
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(self._log_group("WebSocketApiAccessLogs")),
            throttle=apigwv2.ThrottleSettings(
                rate_limit=float(self.node.try_get_context("throttleRateLimit") or DEFAULT_THROTTLE_RATE),
                burst_limit=int(self.node.try_get_context("throttleBurstLimit") or DEFAULT_THROTTLE_BURST),
            ),
        )
        api_id = self.get_logical_id(_cfn(api))
        for function in (handler, worker):
            stage.grant_management_api_access(function)
            role = function.role
            assert role is not None
            _acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
                f"<{api_id}>/{self.stage}/*/@connections/*]",
                "execute-api:ManageConnections on this stage's @connections only: connection ids are made at "
                "connect time, so no narrower resource can be named.",
            )
        worker.grant_invoke(handler)
        handler_role = handler.role
        assert handler_role is not None
        _acknowledge(
            handler_role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(_cfn(worker))}.Arn>:*]",
            "lambda:InvokeFunction on the chat worker only; the wildcard is that function's versions and aliases.",
        )
        handler.add_environment("WORKER_FUNCTION", worker.function_name)
        return api, stage


def deployment_settings(stage: str, cors_origins: str | None) -> Settings:
    """The stage and CORS origins, validated by the same rules the functions apply at cold start."""
    try:
        dev = Settings(stage=stage).is_dev_stage
        if not cors_origins and not dev:
            raise ConfigurationError(
                f"stage {stage!r} needs its frontends' origins: -c corsOrigins=https://app.example.com[,...]"
            )
        return Settings(stage=stage, cors_allow_origins=cors_origins or "*")
    except ValidationError as error:
        problem = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"stage {stage!r}: {problem}") from None


def _acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept a cdk-nag finding on `scope` and everything under it, with the reason an auditor reads."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def _cfn(construct: IConstruct) -> CfnElement:
    """The CloudFormation resource behind an L2 construct, for its logical id."""
    return cast(CfnElement, construct.node.default_child)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
