"""A local stand-in for Lambda's SQS event source mapping: receives from a catalog queue (moto's, in local mode and
tests), invokes the consuming function's real handler with an SQS event of the real record shape, deletes what it
did not report as failed (`ReportBatchItemFailures`), and leaves failures to come back after the visibility
timeout, and to the dead-letter queue after the queue's maxReceiveCount, as SQS itself does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from infra.catalog import FunctionSpec, QueueSpec
from infra.local.events import LambdaContext
from infra.local.stepfunctions import ACCOUNT_ID

log = logging.getLogger("stratus.local")

LambdaHandler = Callable[[Any, Any], Any]
# How long one receive waits for messages (a long poll, as the event source's).
WAIT_SECONDS = 1


def queue_arn(region: str, queue_url: str) -> str:
    return f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue_url.rsplit('/', 1)[-1]}"


def sqs_event(messages: Iterable[dict[str, Any]], *, queue_url: str, region: str) -> dict[str, Any]:
    """The event Lambda hands an SQS consumer for `messages` (ReceiveMessage's answer items)."""
    arn = queue_arn(region, queue_url)
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": dict(message.get("MessageAttributes") or {}),
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class QueuePoller:
    """Polls one queue on a thread of its own and invokes `handler` with each batch, until `stop`."""

    def __init__(
        self,
        queue: QueueSpec,
        function: FunctionSpec,
        *,
        handler: LambdaHandler,
        queue_url: str | None = None,
        region: str | None = None,
        stage: str | None = None,
        batch_size: int = 10,
    ) -> None:
        self.queue = queue
        self.function = function
        self.handler = handler
        self.queue_url = queue_url or os.environ[queue.env_var]
        self.region = region or os.environ.get("AWS_REGION") or "us-east-1"
        self.stage = stage or os.environ.get("STAGE") or "local"
        self.batch_size = batch_size
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Batches invoked, and messages the handler reported failed (tests and the bench read them).
        self.batches = 0
        self.failures = 0

    def start(self) -> QueuePoller:
        self._thread = threading.Thread(target=self._run, name=f"sqs-{self.queue.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=WAIT_SECONDS + 30)

    def _run(self) -> None:
        from shared.aws import client

        sqs = client("sqs")
        while not self._stopping.is_set():
            try:
                answer = sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=WAIT_SECONDS,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("receiving from %s failed", self.queue.name)
                self._stopping.wait(WAIT_SECONDS)
                continue
            messages = answer.get("Messages") or []
            if messages:
                self.poll_once(sqs, messages)

    def poll_once(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        """Invoke the handler with one batch and delete what succeeded."""
        event = sqs_event(messages, queue_url=self.queue_url, region=self.region)
        context = LambdaContext(
            function_name=f"stratus-{self.stage}-{self.function.name}",
            memory_limit_in_mb=self.function.memory_mb,
            timeout_seconds=self.function.timeout_seconds,
            region=self.region,
        )
        self.batches += 1
        try:
            result = self.handler(event, context)
            failed = {str(item["itemIdentifier"]) for item in (result or {}).get("batchItemFailures") or []}
        except Exception:
            # A handler that raises fails the whole batch, as with Lambda.
            log.exception("%s failed on a batch of %s", self.function.name, self.queue.name)
            failed = {message["MessageId"] for message in messages}
        self.failures += len(failed)
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + 10])
                ],
            )


def catalog_pollers(load_handler: Callable[[str], LambdaHandler]) -> list[QueuePoller]:
    """A poller for every queue a catalog function consumes, not yet started."""
    from infra.catalog import QUEUE_FUNCTIONS

    return [
        QueuePoller(access.queue, spec, handler=load_handler(spec.handler), batch_size=access.batch_size)
        for spec in QUEUE_FUNCTIONS
        for access in spec.queues
        if access.action == "consume"
    ]
