"""The webhook delivery worker: an SQS event source on the deliveries queue (`ReportBatchItemFailures`). Each
message is one attempt of one delivery (`service.deliver`); a retry is a new message sent with a delay, not a
failed one, so SQS's own redelivery only covers a worker that broke (and its dead-letter queue what keeps breaking).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from shared import events
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.webhooks import service
else:
    service = LazyModule("functions.webhooks.service")

# Deliveries of one batch made at once: receivers answer slowly, not heavily.
MAX_PARALLEL_DELIVERIES = 10


def _deliver(record: dict[str, Any]) -> str | None:
    try:
        service.deliver(json.loads(record["body"]))
    except Exception:
        logger.exception("A webhook delivery broke", extra={"sqsId": record.get("messageId")})
        return str(record["messageId"])
    return None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = list(event.get("Records") or [])
    failures: list[str] = []
    if records:
        with ThreadPoolExecutor(max_workers=min(len(records), MAX_PARALLEL_DELIVERIES)) as pool:
            failures = [failed for failed in pool.map(_deliver, records) if failed]
    # A subscription disabled records `webhook.disabled` in the audit log: on the queue before returning.
    events.flush()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
