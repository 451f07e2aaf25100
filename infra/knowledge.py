"""Agents' knowledge pipeline: the document processor, invoked by the documents bucket's ObjectCreated
notification on `documents/` and, asynchronously, by the agents function (a reprocess) and by itself (an embedder
change hands the agent's other documents back to it)."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from functions.agents import DOCUMENTS_PREFIX
from infra.catalog import AGENTS_PROCESSOR_FUNCTION
from infra.functions import Functions
from infra.nag import acknowledge_bucket_notifications_handler, acknowledge_wildcard_resource
from infra.stage import StageConfig, StageConstruct


class Knowledge(StageConstruct):
    """The processor and what invokes it; `agents` is the agents function (it reprocesses documents)."""

    def __init__(
        self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions, agents: lambda_.Function
    ) -> None:
        super().__init__(scope, construct_id, config)
        self.processor = functions.catalog_function(AGENTS_PROCESSOR_FUNCTION)
        # Processing is idempotent, so Lambda's own retries of a failed run are safe; two are its default.
        bucket = functions.storage.documents_bucket
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.processor),
            s3.NotificationKeyFilter(prefix=DOCUMENTS_PREFIX),
        )
        acknowledge_bucket_notifications_handler(self.stack)
        self.processor.grant_invoke(agents)
        agents.add_environment("PROCESSOR_FUNCTION", self.processor.function_name)
        self._acknowledge_invoke(agents, "The agents function invokes the document processor only (a reprocess)")
        # Its own name comes from AWS_LAMBDA_FUNCTION_NAME. A policy of its own, not on the role: the function
        # depends on its role, so a statement there naming the function would be a cycle.
        role = self.processor.role
        assert role is not None
        iam.Policy(
            self.stack,
            "AgentsProcessorSelfInvoke",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[self.processor.function_arn],
                )
            ],
        )

    def _acknowledge_invoke(self, function: lambda_.Function, reason: str) -> None:
        role = function.role
        assert role is not None
        # grant_invoke names the function's ARN and every version and alias of it (ARN:*).
        acknowledge_wildcard_resource(
            role, f"{self.processor.function_arn}:*", f"{reason}; the wildcard is its versions."
        )
