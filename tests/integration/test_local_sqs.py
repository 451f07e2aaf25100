"""Local SQS: moto, made to cost what SQS costs where local mode's latencies depend on it (infra.local.quick_sqs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.aws import client

pytestmark = pytest.mark.usefixtures("aws")


def _fifo_queue(name: str, waiting: int) -> str:
    sqs = client("sqs")
    url: str = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for start in range(0, waiting, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": f"message {n}", "MessageGroupId": f"group-{n % 20}",
             "MessageDeduplicationId": f"message-{n}"}
            for n in range(start, min(start + 10, waiting))
        ])  # fmt: skip
    return url


def _counts(url: str) -> dict[str, str]:
    names = [f"ApproximateNumberOfMessages{state}" for state in ("", "NotVisible", "Delayed")]
    attributes: dict[str, str] = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return attributes


def test_a_send_reads_the_clock_a_few_times_whatever_the_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto read it twice per waiting message, six times per send: a send slowed as the queue grew."""
    from moto.sqs import models

    url = _fifo_queue("backlog", waiting=300)
    reads = 0
    clock: Callable[..., float] = models.unix_time_millis

    def counted(*args: Any) -> float:
        nonlocal reads
        reads += 1
        return clock(*args)

    monkeypatch.setattr(models, "unix_time_millis", counted)
    client("sqs").send_message_batch(QueueUrl=url, Entries=[
        {"Id": "1", "MessageBody": "one more", "MessageGroupId": "group-1", "MessageDeduplicationId": "one-more"},
    ])  # fmt: skip

    assert reads < 20


def test_the_counts_and_a_receive_see_each_message_as_sqs_does() -> None:
    sqs = client("sqs")
    url = _fifo_queue("counts", waiting=30)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, VisibilityTimeout=60)["Messages"]
    standard = sqs.create_queue(QueueName="counts-delayed")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=standard, MessageBody=f"later {n}", DelaySeconds=60)
    sqs.send_message(QueueUrl=standard, MessageBody="now")

    assert len(received) == 5
    assert _counts(url) == {
        "ApproximateNumberOfMessages": "25",
        "ApproximateNumberOfMessagesNotVisible": "5",
        "ApproximateNumberOfMessagesDelayed": "0",
    }
    assert _counts(standard)["ApproximateNumberOfMessagesDelayed"] == "3"
    assert _counts(standard)["ApproximateNumberOfMessages"] == "1"
    due = sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in due] == ["now"]
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert not {message["MessageId"] for message in again} & {message["MessageId"] for message in received}
