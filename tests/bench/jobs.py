"""`make bench` (jobs): a user with 1,000 conversations and 20,000 messages imported, exported and deleted on the
local stack, each through its real workflow on moto's Step Functions, its tasks in the local gateway's handlers.

Reported per workflow: wall time from the request to the execution's end, and the DynamoDB calls the handlers
made for it per item written (import), read (export) or deleted (deletion). Executions are watched through Step
Functions' DescribeExecution, so the figures hold no DynamoDB call of the watching itself.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

CONVERSATIONS = 1_000
MESSAGES_PER_CONVERSATION = 20
PASSWORD = "correct horse battery"
JOB_TIMEOUT_SECONDS = 1_800


def write_archive(path: Path) -> None:
    """A Stratus export of CONVERSATIONS conversations, MESSAGES_PER_CONVERSATION messages each (~300 characters)."""
    from functions.jobs.formats.archive import ExportWriter

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def conversations() -> Iterator[dict[str, Any]]:
        for number in range(CONVERSATIONS):
            at = start + timedelta(hours=number)
            yield {
                "id": f"bench-{number}",
                "title": f"Conversation {number}",
                "createdAt": at.isoformat(),
                "updatedAt": at.isoformat(),
                "messages": (
                    {
                        "seq": seq,
                        "role": "user" if seq % 2 else "assistant",
                        "content": f"Message {seq} of conversation {number}: " + "lorem ipsum dolor " * 16,
                        "createdAt": (at + timedelta(seconds=seq)).isoformat(),
                    }
                    for seq in range(1, MESSAGES_PER_CONVERSATION + 1)
                ),
            }

    with path.open("wb") as sink, ExportWriter(sink, user_id="bench", exported_at=start) as writer:
        writer.write_conversations(conversations())


@contextmanager
def counted_dynamodb_calls() -> Iterator[Counter[str]]:
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    lock = threading.Lock()
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            with lock:
                calls[operation] += 1
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counting):
        yield calls


def wait_for(workflow: str, job_id: str) -> None:
    from infra.local.stepfunctions import finished_execution
    from shared.aws import client

    machine = os.environ[f"{workflow.upper()}_WORKFLOW_ARN"]
    execution = machine.replace(":stateMachine:", ":execution:") + f":{job_id}"
    ended = finished_execution(client("stepfunctions"), execution, timeout_seconds=JOB_TIMEOUT_SECONDS)
    if ended["status"] != "SUCCEEDED":
        raise RuntimeError(f"the {workflow} workflow ended {ended['status']}: {ended.get('cause')}")


def report(label: str, seconds: float, calls: Counter[str], items: int, what: str) -> None:
    total = sum(calls.values())
    detail = ", ".join(f"{operation} {count}" for operation, count in calls.most_common())
    print(f"  {label:<10} {seconds:7.1f} s   {total:6d} DynamoDB calls, {total / items:.3f} per item {what} ({detail})")


def report_jobs() -> None:
    import httpx

    os.environ.update(POWERTOOLS_LOG_LEVEL="ERROR")
    from tests.bench.stack import running_local_stack

    with (
        running_local_stack("bench-jobs") as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", timeout=60) as http,
        tempfile.TemporaryDirectory() as tmp,
    ):
        _run(http, Path(tmp) / "bench-export.zip")


def _run(http: Any, archive: Path) -> None:
    import httpx

    write_archive(archive)
    items = CONVERSATIONS * (1 + MESSAGES_PER_CONVERSATION)
    http.post("/auth/register", json={"email": "admin@example.com", "password": PASSWORD})
    signed_up = http.post("/auth/register", json={"email": "bench@example.com", "password": PASSWORD}).json()
    auth = {"authorization": f"Bearer {signed_up['accessToken']}"}
    print(f"\nJobs ({CONVERSATIONS:,} conversations, {items - CONVERSATIONS:,} messages; local stack, moto)")

    upload = http.post("/users/import", headers=auth, json={"format": "stratus"}).json()
    httpx.put(upload["uploadUrl"], content=archive.read_bytes(), timeout=120).raise_for_status()
    with counted_dynamodb_calls() as calls:
        started = time.perf_counter()
        http.post(f"/users/import/{upload['jobId']}/start", headers=auth).raise_for_status()
        wait_for("import", upload["jobId"])
        seconds = time.perf_counter() - started
    report("import", seconds, calls, items, "written")

    with counted_dynamodb_calls() as calls:
        started = time.perf_counter()
        job = http.post("/users/export", headers=auth).json()
        wait_for("export", job["jobId"])
        seconds = time.perf_counter() - started
    report("export", seconds, calls, items, "read")

    with counted_dynamodb_calls() as calls:
        started = time.perf_counter()
        accepted = http.request("DELETE", "/users/account", headers=auth, json={"password": PASSWORD}).json()
        wait_for("deletion", accepted["jobId"])
        seconds = time.perf_counter() - started
    report("deletion", seconds, calls, items, "deleted")
