"""The functions that consume the stage's queues (`QUEUE_FUNCTIONS`); each one's event source comes with its spec
(`FunctionSpec.queues`, granted in infra/functions.py)."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.catalog import QUEUE_FUNCTIONS
from infra.functions import Functions
from infra.stage import StageConfig, StageConstruct


class QueueWorkers(StageConstruct):
    """The functions that consume queues (`QUEUE_FUNCTIONS`); their event sources come with their specs."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions) -> None:
        super().__init__(scope, construct_id, config)
        self.functions: dict[str, lambda_.Function] = {
            spec.name: functions.catalog_function(spec) for spec in QUEUE_FUNCTIONS
        }
