"""The stage's queues (`infra.catalog.QUEUES`), built with the stage's storage; their consumers are
infra/queue_workers.py.

Each queue is SQS FIFO (when its spec says so) with a dead-letter queue it hands a message to after
`max_receive_count` receives, both encrypted with SQS-managed keys and TLS only. Which function may send to or
consume which queue is its spec's `queues` (granted in infra/functions.py: SendMessage alone for a sender; the
event source mapping, with `ReportBatchItemFailures`, and exactly the consumer's actions for a consumer).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs

from infra.catalog import QUEUES, QueueSpec, pascal
from infra.nag import acknowledge
from infra.stage import StageConstruct


def stage_queues(scope: StageConstruct) -> dict[str, sqs.Queue]:
    """Every catalog queue of the stage, by name, each with its dead-letter queue."""
    return {spec.name: _queue(scope, spec) for spec in QUEUES}


def _queue(scope: StageConstruct, spec: QueueSpec) -> sqs.Queue:
    stage = scope.config.stage
    construct_id = f"{pascal(spec.name)}Queue"
    dead_letter = sqs.Queue(
        scope.stack,
        f"{construct_id}DeadLetters",
        queue_name=spec.physical_name(stage, dead_letter=True),
        fifo=spec.fifo or None,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(spec.dead_letter_retention_days),
        removal_policy=scope.config.removal_policy,
    )
    acknowledge(
        dead_letter,
        "AwsSolutions-SQS3",
        "This is the dead-letter queue: what fails here for good is kept for the operator to inspect or redrive.",
    )
    return sqs.Queue(
        scope.stack,
        construct_id,
        queue_name=spec.physical_name(stage),
        fifo=spec.fifo or None,
        content_based_deduplication=False,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
        retention_period=Duration.days(spec.retention_days),
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=spec.max_receive_count, queue=dead_letter),
        removal_policy=scope.config.removal_policy,
    )
