"""Make moto's SQS cost what SQS costs where local mode's latencies depend on it.

moto 5.1 reads the clock twice per queued message (a datetime subtraction each) to count a queue's visible,
in-flight and delayed messages, and it counts them every time it reads one of the queue's attributes: six times per
`SendMessageBatch` of a FIFO queue. A send therefore took longer as the queue grew (7 ms with an empty queue, 36 ms
with 200 waiting, measured here), where SQS answers a send in the same time whatever its backlog. The counts, and
the visible messages a receive picks from, are computed here with one read of the same clock per call.
"""

from __future__ import annotations

_installed = False


def make_moto_sqs_count_once() -> None:
    """Idempotent: replaces moto's per-message clock reads in a queue's counts with one read per count."""
    global _installed  # noqa: PLW0603 - patching a library is process-wide by nature
    if _installed:
        return
    from moto.sqs import models
    from moto.sqs.models import Message, Queue

    def visible_and_due(queue: Queue) -> list[Message]:
        now: float = models.unix_time_millis()  # type: ignore[attr-defined]
        return [message for message in queue._messages if now > message.visible_at and now >= message.delayed_until]

    def delayed(queue: Queue) -> int:
        now: float = models.unix_time_millis()  # type: ignore[attr-defined]
        return sum(1 for message in queue._messages if now < message.delayed_until)

    def not_visible(queue: Queue) -> int:
        now: float = models.unix_time_millis()  # type: ignore[attr-defined]
        return sum(1 for message in queue._messages if now <= message.visible_at)

    def visible_count(queue: Queue) -> int:
        return len(visible_and_due(queue))

    Queue.messages = property(visible_and_due)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages = property(visible_count)  # type: ignore[assignment,method-assign]
    _installed = True
