"""Lambda entry point of the document processor: an S3 ObjectCreated notification of the documents bucket, or
`{agentId, documentId}` from a reprocess (invoked asynchronously)."""

from __future__ import annotations

from typing import Any

from functions.agents.processing import handle_event


def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, str]:
    return handle_event(event)
