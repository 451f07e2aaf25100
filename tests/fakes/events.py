"""The events queue in tests: what the code under test published, and its delivery to the events function as
Lambda's SQS event source would deliver it (`infra.local.queues.sqs_event`)."""

from __future__ import annotations

import os
from typing import Any

from infra.catalog import EVENTS_QUEUE
from infra.local.queues import sqs_event
from shared import events
from shared.aws import client
from shared.events import Event


def _receive(queue_url: str) -> list[dict[str, Any]]:
    answer = client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
    )
    return list(answer.get("Messages") or ())


def published() -> list[Event]:
    """Every event on the queue now, in the order sent, removed from it (nothing consumes them)."""
    assert events.flush(), "the outbox did not empty"
    queue_url = os.environ[EVENTS_QUEUE.env_var]
    taken: list[Event] = []
    while messages := _receive(queue_url):
        for message in messages:
            taken.append(Event.from_message(message["Body"]))
            client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return taken


def deliver_events() -> list[Event]:
    """Hand every event on the queue to the events function, a batch at a time, until the queue is empty (what the
    consumers publish in turn is delivered too); the events delivered, in order. A message the function reports
    failed stays on the queue (invisible until its visibility timeout)."""
    from functions.events.handler import lambda_handler

    queue_url = os.environ[EVENTS_QUEUE.env_var]
    delivered: list[Event] = []
    while True:
        assert events.flush(), "the outbox did not empty"
        messages = _receive(queue_url)
        if not messages:
            return delivered
        answer = lambda_handler(sqs_event(messages, queue_url=queue_url, region=os.environ["AWS_REGION"]), None)
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                delivered.append(Event.from_message(message["Body"]))
                client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
