"""The streaming functions (`STREAMING_FUNCTIONS`): each runs its ASGI app under the Lambda Web Adapter and answers
through a Function URL in response-stream mode, since API Gateway HTTP APIs cannot stream."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.catalog import STREAMING_FUNCTIONS, FunctionSpec, pascal
from infra.functions import Functions
from infra.stage import StageConfig, StageConstruct
from shared.http import cors

# The Lambda Web Adapter (AWS-published layer): runs a web app in Lambda and streams its responses.
WEB_ADAPTER_LAYER = "arn:aws:lambda:{region}:753240598075:layer:LambdaAdapterLayerArm64:25"
WEB_ADAPTER_PORT = "8080"
WEB_ADAPTER_ENVIRONMENT = {
    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
    "AWS_LWA_INVOKE_MODE": "response_stream",
    "AWS_LWA_PORT": WEB_ADAPTER_PORT,
}


class StreamingFunctions(StageConstruct):
    """A function and its Function URL (an output: its routes live under it) per streaming spec."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions) -> None:
        super().__init__(scope, construct_id, config)
        self.functions = {spec.name: self._function(spec, functions) for spec in STREAMING_FUNCTIONS}
        self.urls = {spec.name: self._url(spec) for spec in STREAMING_FUNCTIONS}

    def _function(self, spec: FunctionSpec, functions: Functions) -> lambda_.Function:
        adapter = lambda_.LayerVersion.from_layer_version_arn(
            self.stack, f"{pascal(spec.name)}WebAdapter", WEB_ADAPTER_LAYER.format(region=Aws.REGION)
        )
        return functions.catalog_function(spec, extra_layers=(adapter,), extra_environment=WEB_ADAPTER_ENVIRONMENT)

    def _url(self, spec: FunctionSpec) -> str:
        url = self.functions[spec.name].add_function_url(
            # No IAM auth: the app verifies every request's bearer credential with the shared verification.
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
            cors=lambda_.FunctionUrlCorsOptions(
                allowed_origins=self.config.cors_origins,
                # The methods of the function's routes (playground and enhancement sessions are deleted).
                allowed_methods=[lambda_.HttpMethod.GET, lambda_.HttpMethod.POST, lambda_.HttpMethod.DELETE],
                allowed_headers=list(cors.ALLOWED_HEADERS),
                exposed_headers=list(cors.EXPOSED_HEADERS),
                allow_credentials=self.config.cors_allows_credentials,
                max_age=Duration.hours(1),
            ),
        )
        CfnOutput(
            self.stack,
            f"{pascal(spec.name)}Url",
            value=url.url,
            description=f"Base URL of the {spec.name} function (response streaming): its routes live under it",
        )
        return url.url
