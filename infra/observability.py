"""Where a stage writes what happened: log groups kept as long as the stage keeps its data, JSON access logs for
its APIs, and the metrics namespace its functions publish to."""

from __future__ import annotations

import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs

from infra.stage import StageConstruct

METRICS_NAMESPACE = "Stratus"
WRITE_LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


def log_group(owner: StageConstruct, construct_id: str) -> logs.LogGroup:
    """A log group of the stage, retained (and kept on stack deletion) as its stage's data is."""
    config = owner.config
    return logs.LogGroup(
        owner.stack, construct_id, retention=config.log_retention, removal_policy=config.removal_policy
    )


@jsii.implements(apigwv2.IAccessLogSettings)
class JsonAccessLogs:
    """API Gateway access logs as one JSON object per request, to a log group of the stage."""

    def __init__(self, owner: StageConstruct, construct_id: str) -> None:
        self._log_group = log_group(owner, construct_id)

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
