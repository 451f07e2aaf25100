"""The channels' inbound queue in CDK: FIFO with a dead-letter queue, encrypted, TLS only; the webhook function may
only send to it, the worker consumes it through an event source that reports failed items."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.catalog import (
    CHANNEL_WEBHOOKS_FUNCTION,
    CHANNELS_FUNCTION,
    CHANNELS_QUEUE,
    CHANNELS_WORKER_FUNCTION,
    QUEUES,
    QueueSpec,
)
from tests.infrastructure.conftest import Synthesized
from tests.infrastructure.test_permissions import _statements

pytestmark = pytest.mark.infra


def _queues(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        resource["Properties"]["QueueName"]: {"id": resource_id, **resource["Properties"]}
        for resource_id, resource in synth.of_type("AWS::SQS::Queue").items()
    }


def _sqs_actions(synth: Synthesized, spec: Any, queue: QueueSpec = CHANNELS_QUEUE) -> set[str]:
    """What `spec`'s role may do to `queue` (every function that publishes events may also send to the events
    queue: tests/infrastructure/test_permissions)."""
    (queue_id,) = (
        lid
        for lid, resource in synth.of_type("AWS::SQS::Queue").items()
        if resource["Properties"]["QueueName"] == queue.physical_name(synth.stage)
    )
    actions: set[str] = set()
    for statement in _statements(synth, spec):
        if queue_id not in json.dumps(statement["Resource"]):
            continue
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        actions |= {action for action in listed if action.startswith("sqs:")}
    return actions


def test_the_inbound_queue_is_fifo_encrypted_with_a_dead_letter_queue(synth: Synthesized) -> None:
    queues = _queues(synth)
    inbound = next(q for name, q in queues.items() if name.endswith(f"-{CHANNELS_QUEUE.name}.fifo"))
    dead = next(q for name, q in queues.items() if name.endswith(f"-{CHANNELS_QUEUE.name}-dlq.fifo"))
    assert inbound["FifoQueue"] is True
    assert inbound["ContentBasedDeduplication"] is False
    assert inbound["SqsManagedSseEnabled"] is True
    assert dead["SqsManagedSseEnabled"] is True
    assert inbound["VisibilityTimeout"] >= 6 * CHANNELS_WORKER_FUNCTION.timeout_seconds
    assert inbound["RedrivePolicy"]["maxReceiveCount"] == CHANNELS_QUEUE.max_receive_count
    assert inbound["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead["id"], "Arn"]}
    policies = [p["Properties"] for p in synth.of_type("AWS::SQS::QueuePolicy").values()]
    tls_only = [
        statement
        for policy in policies
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_only) == 2 * len(QUEUES)


def test_the_webhook_function_may_only_send_and_the_worker_only_consume(synth: Synthesized) -> None:
    assert _sqs_actions(synth, CHANNEL_WEBHOOKS_FUNCTION) == {"sqs:SendMessage"}
    assert _sqs_actions(synth, CHANNELS_FUNCTION) == set()
    consumed = _sqs_actions(synth, CHANNELS_WORKER_FUNCTION)
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= consumed
    assert "sqs:SendMessage" not in consumed
    assert "sqs:PurgeQueue" not in consumed


def test_the_worker_is_the_queues_event_source_reporting_failed_items(synth: Synthesized) -> None:
    function_id, _ = synth.function(CHANNELS_WORKER_FUNCTION)
    (mapping,) = [
        resource["Properties"]
        for resource in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    inbound = next(q for name, q in _queues(synth).items() if name.endswith(f"-{CHANNELS_QUEUE.name}.fifo"))
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [inbound["id"], "Arn"]}
