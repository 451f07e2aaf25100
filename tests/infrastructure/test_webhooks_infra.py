"""Outbound webhooks in CDK: the subscriptions function, the events function's fan-out and the delivery worker may
touch the webhooks table, their queues and the secrets key's "webhooks" context, and nothing else of them."""

from __future__ import annotations

from typing import Any

import pytest

from infra.catalog import (
    EVENTS_FUNCTION,
    EVENTS_QUEUE,
    HTTP_FUNCTIONS,
    JOB_TASK_FUNCTIONS,
    QUEUE_FUNCTIONS,
    WEBHOOK_DELIVERIES_QUEUE,
    WEBHOOK_DELIVERY_FUNCTION,
    WEBHOOKS_FUNCTION,
    FunctionSpec,
)
from shared.tables import WEBHOOKS
from tests.infrastructure.conftest import Synthesized
from tests.infrastructure.test_channels_queue import _sqs_actions
from tests.infrastructure.test_permissions import _grants, _listed, _statements

pytestmark = pytest.mark.infra

CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}


def _kms(synth: Synthesized, spec: FunctionSpec) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    return {
        (tuple(sorted(_listed(statement["Action"]))),
         tuple(statement["Condition"]["StringEquals"]["kms:EncryptionContext:context"]))
        for statement in _statements(synth, spec)
        if any(action.startswith("kms:") for action in _listed(statement["Action"]))
    }  # fmt: skip


def _tables_reached(synth: Synthesized, spec: FunctionSpec) -> set[str]:
    ids = {synth.table_id(table): table.context for table in (WEBHOOKS,)}
    return {ids.get(target, target) for target in _grants(synth, spec, "dynamodb")}


def test_the_subscriptions_function_seals_webhook_secrets_and_touches_only_its_table(synth: Synthesized) -> None:
    assert WEBHOOKS_FUNCTION in HTTP_FUNCTIONS
    assert _kms(synth, WEBHOOKS_FUNCTION) == {(("kms:Decrypt", "kms:Encrypt"), ("webhooks",))}
    assert "webhooks" in _tables_reached(synth, WEBHOOKS_FUNCTION)
    assert _sqs_actions(synth, WEBHOOKS_FUNCTION, WEBHOOK_DELIVERIES_QUEUE) == set()
    assert _sqs_actions(synth, WEBHOOKS_FUNCTION, EVENTS_QUEUE) == {"sqs:SendMessage"}


def test_the_fan_out_may_only_send_deliveries_and_never_open_a_secret(synth: Synthesized) -> None:
    assert _sqs_actions(synth, EVENTS_FUNCTION, WEBHOOK_DELIVERIES_QUEUE) == {"sqs:SendMessage"}
    # The audit writer seals its users' data keys ("audit"); no webhook secret opens there.
    assert all("webhooks" not in contexts for _, contexts in _kms(synth, EVENTS_FUNCTION))
    grants = _grants(synth, EVENTS_FUNCTION, "dynamodb")
    assert "dynamodb:Scan" not in grants.get(synth.table_id(WEBHOOKS), set())


def test_the_delivery_worker_consumes_its_queue_resends_retries_and_only_unseals(synth: Synthesized) -> None:
    assert WEBHOOK_DELIVERY_FUNCTION in QUEUE_FUNCTIONS
    deliveries = _sqs_actions(synth, WEBHOOK_DELIVERY_FUNCTION, WEBHOOK_DELIVERIES_QUEUE)
    assert CONSUME | {"sqs:SendMessage"} <= deliveries
    assert "sqs:PurgeQueue" not in deliveries
    # It publishes `webhook.disabled` to the audit log, through the events queue, and may not read it.
    assert _sqs_actions(synth, WEBHOOK_DELIVERY_FUNCTION, EVENTS_QUEUE) == {"sqs:SendMessage"}
    assert _kms(synth, WEBHOOK_DELIVERY_FUNCTION) == {(("kms:Decrypt",), ("webhooks",))}
    assert _tables_reached(synth, WEBHOOK_DELIVERY_FUNCTION) == {"webhooks"}


def test_the_delivery_worker_is_its_queues_event_source_reporting_failed_items(synth: Synthesized) -> None:
    function_id, function = synth.function(WEBHOOK_DELIVERY_FUNCTION)
    (mapping,) = [
        resource["Properties"]
        for resource in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    variables: dict[str, Any] = function["Environment"]["Variables"]
    assert WEBHOOK_DELIVERIES_QUEUE.env_var in variables


def test_no_other_function_opens_webhook_secrets(synth: Synthesized) -> None:
    others = [
        spec for spec in (*HTTP_FUNCTIONS, *QUEUE_FUNCTIONS, *JOB_TASK_FUNCTIONS)
        if spec not in (WEBHOOKS_FUNCTION, WEBHOOK_DELIVERY_FUNCTION)
    ]  # fmt: skip
    for spec in others:
        assert all("webhooks" not in contexts for _, contexts in _kms(synth, spec)), spec.name
