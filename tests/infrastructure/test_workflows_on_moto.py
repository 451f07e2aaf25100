"""The synthesized state machines, executed: each definition is taken from the CDK template (its function ARNs
substituted with local ones, as CloudFormation substitutes deployed ones), created on moto's Step Functions and
run with test task functions that answer as the contract says and record every call."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from functions.jobs.contexts import WORKFLOWS, Workflow, job_contexts
from infra.catalog import JOB_TASK_FUNCTIONS
from infra.local.stepfunctions import (
    ACCOUNT_ID,
    finished_execution,
    function_arn,
    function_name,
    route_task_invocations,
)
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra

REGION = "us-east-1"
STAGE = "flows"
_SUBSTITUTION = re.compile(r"\$\{(\w+)\}")
_SPECS = {spec.name: spec for spec in JOB_TASK_FUNCTIONS}


class JobInputError(Exception):
    """Raised as functions.jobs.errors.JobInputError is: Lambda reports its class name as the errorType."""


class Throttled(Exception):
    """A transient failure (what throttling or a timeout looks like to the workflow)."""


@dataclass(frozen=True)
class Call:
    function: str  # the catalog name: jobs-steps, jobs-import, jobs-<context>
    event: dict[str, Any]


@dataclass
class Tasks:
    """Test task functions: every context has `pages[context]` pages of 3 items each, the import 2 pages; `fail`
    makes the n-th call of a function raise (a test sets it before starting an execution)."""

    pages: dict[str, int] = field(default_factory=dict)
    import_pages: int = 2
    failures: dict[tuple[str, int], Exception] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def runners(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {function_name(STAGE, spec): self._runner(spec.name) for spec in JOB_TASK_FUNCTIONS}

    def of(self, function: str, action: str | None = None) -> list[dict[str, Any]]:
        return [c.event for c in self.calls if c.function == function and action in (None, c.event.get("action"))]

    def steps(self, action: str | None = None) -> list[dict[str, Any]]:
        return self.of("jobs-steps", action)

    def _runner(self, function: str) -> Callable[[dict[str, Any]], Any]:
        def run(event: dict[str, Any]) -> Any:
            with self._lock:
                self.calls.append(Call(function, event))
                attempt = sum(1 for call in self.calls if call.function == function)
                failure = self.failures.pop((function, attempt), None)
            if failure is not None:
                raise failure
            return self._answer(function, event)

        return run

    def _answer(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        action = event["action"]
        if function == "jobs-steps":
            return {}
        position = int(event["cursor"] or 0) + 1
        if action == "import":
            cursor = str(position) if position < self.import_pages else None
            imported = {"conversations": 1, "messages": 4, "projects": 0, "prompts": 0, "memories": 2}
            return {"cursor": cursor, "imported": imported, "rejected": [], "rejectedMore": 0}
        assert function == f"jobs-{event['context']}"  # each context's pages go to its own function
        cursor = str(position) if position < self.pages.get(event["context"], 1) else None
        if action == "export":
            return {"cursor": cursor, "page": event["page"] + 1, "records": 3}
        if action == "delete":
            return {"cursor": cursor, "deleted": 3}
        assert action == "archive"
        return {"cursor": cursor, "archived": 3}


def _local_definition(synth: Synthesized, workflow: Workflow) -> str:
    """The synthesized definition with each `${...}` replaced by the local ARN of the function it substitutes."""
    machine = synth.resources[synth.workflow_id(workflow)]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]

    def local_arn(match: re.Match[str]) -> str:
        function_id = substitutions[match.group(1)]["Fn::GetAtt"][0]
        name = synth.resources[function_id]["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        return function_arn(STAGE, _SPECS[name], REGION)

    definition: str = machine["DefinitionString"]
    return _SUBSTITUTION.sub(local_arn, definition)


@dataclass
class Workflows:
    client: Any
    arns: dict[Workflow, str]
    tasks: Tasks

    def run(self, workflow: Workflow, document: dict[str, Any], name: str) -> dict[str, Any]:
        """Start an execution and wait for its end; its description."""
        execution = self.client.start_execution(
            stateMachineArn=self.arns[workflow], name=name, input=json.dumps(document)
        )["executionArn"]
        return finished_execution(self.client, execution)


@pytest.fixture
def workflows(dev: Synthesized) -> Iterator[Workflows]:
    import boto3
    from moto import mock_aws

    tasks = Tasks()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), route_task_invocations(tasks.runners()):
        client = boto3.client("stepfunctions", region_name=REGION)
        arns: dict[Workflow, str] = {
            workflow: client.create_state_machine(
                name=f"stratus-{STAGE}-{workflow}",
                definition=_local_definition(dev, workflow),
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{workflow}",
            )["stateMachineArn"]
            for workflow in WORKFLOWS
        }
        yield Workflows(client, arns, tasks)


def _context_names(workflow: Workflow, *, last: bool | None = None) -> list[str]:
    return [c.name for c in job_contexts(workflow) if last is None or c.last == last]


def test_export_pages_every_context_until_its_cursor_is_null_then_assembles_and_finishes(
    workflows: Workflows,
) -> None:
    tasks = workflows.tasks
    tasks.pages = {"conversations": 3, "memories": 2}

    execution = workflows.run("export", {"jobId": "job-1", "userId": "user-1"}, "job-1")

    assert execution["status"] == "SUCCEEDED"
    assert tasks.steps("begin") == [{"action": "begin", "jobId": "job-1", "kind": "export"}]
    conversations = tasks.of("jobs-conversations")
    assert [(e["cursor"], e["page"]) for e in conversations] == [(None, 0), ("1", 1), ("2", 2)]
    assert all(e == {**e, "action": "export", "jobId": "job-1", "userId": "user-1"} for e in conversations)
    for context in _context_names("export"):
        expected_pages = tasks.pages.get(context, 1)
        assert len(tasks.of(f"jobs-{context}")) == expected_pages
    started = {e["context"] for e in tasks.steps("context-started")}
    done = {e["context"]: e["count"] for e in tasks.steps("context-done")}
    assert started == set(_context_names("export"))
    # The count is every page's records added up.
    assert done == {context: 3 * tasks.pages.get(context, 1) for context in _context_names("export")}
    actions = [e["action"] for e in tasks.steps()]
    assert actions[-2:] == ["assemble-export", "finish"]
    assert tasks.steps("assemble-export") == [{"action": "assemble-export", "jobId": "job-1", "userId": "user-1"}]
    # Contexts with nothing to export take no part.
    assert tasks.of("jobs-realtime") == []


def test_deletion_runs_the_last_contexts_after_every_other_in_their_order(workflows: Workflows) -> None:
    tasks = workflows.tasks
    tasks.pages = {"conversations": 2, "jobs": 2, "identity": 2}

    execution = workflows.run("deletion", {"jobId": "job-2", "userId": "user-2"}, "job-2")

    assert execution["status"] == "SUCCEEDED"
    pages = [(c.function.removeprefix("jobs-"), c.event) for c in tasks.calls if c.function != "jobs-steps"]
    assert {e["action"] for _, e in pages} == {"delete"}
    order = [context for context, _ in pages]
    others = _context_names("deletion", last=False)
    last = _context_names("deletion", last=True)
    assert last[-2:] == ["jobs", "identity"]  # the identity after everything, the user's other jobs just before
    tail = [name for name in last for _ in range(tasks.pages.get(name, 1))]
    assert set(order[: -len(tail)]) == set(others)  # every mapped context, each page of it, before any last one
    assert order[-len(tail) :] == tail
    done = [e["context"] for e in tasks.steps("context-done")]
    assert set(done[: -len(last)]) == set(others)
    assert done[-len(last) :] == last
    assert [e["action"] for e in tasks.steps()][-1] == "finish"
    assert all(e["userId"] == "user-2" and e["jobId"] == "job-2" for _, e in pages)


def test_a_page_that_fails_once_is_retried_with_the_same_cursor_and_the_job_finishes(workflows: Workflows) -> None:
    tasks = workflows.tasks
    tasks.pages = {"memories": 2}
    tasks.failures[("jobs-memories", 2)] = Throttled("Rate exceeded")

    execution = workflows.run("deletion", {"jobId": "job-3", "userId": "user-3"}, "job-3")

    assert execution["status"] == "SUCCEEDED"
    assert [e["cursor"] for e in tasks.of("jobs-memories")] == [None, "1", "1"]
    assert tasks.steps("fail") == []
    assert {e["context"]: e["count"] for e in tasks.steps("context-done")}["memories"] == 6


def test_a_job_input_error_is_not_retried_and_fails_the_job_with_it(workflows: Workflows) -> None:
    tasks = workflows.tasks
    tasks.failures[("jobs-import", 1)] = JobInputError("The file is not a ChatGPT export")

    execution = workflows.run("import", {"jobId": "job-4", "userId": "user-4", "format": "chatgpt"}, "job-4")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "JobInputError"
    assert len(tasks.of("jobs-import")) == 1
    (fail,) = tasks.steps("fail")
    assert fail["jobId"] == "job-4"
    assert fail["error"]["Error"] == "JobInputError"
    assert json.loads(fail["error"]["Cause"])["errorMessage"] == "The file is not a ChatGPT export"
    assert tasks.steps("finish") == []
    assert tasks.steps("import-page") == []


def test_a_context_that_keeps_failing_is_named_in_the_failure_and_the_job_does_not_finish(
    workflows: Workflows,
) -> None:
    tasks = workflows.tasks
    tasks.failures[("jobs-mcp", 1)] = JobInputError("The registry holds an item it cannot export")

    execution = workflows.run("export", {"jobId": "job-5", "userId": "user-5"}, "job-5")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "JobInputError"
    failures = tasks.steps("fail")
    assert failures[0]["context"] == "mcp"
    assert failures[0]["error"]["Error"] == "JobInputError"
    # The job itself is marked failed with the same error once the Map gives up.
    assert all(f["error"]["Error"] == "JobInputError" for f in failures)
    assert tasks.steps("assemble-export") == []
    assert tasks.steps("finish") == []


def test_import_pages_until_the_cursor_is_null_and_records_each_pages_figures(workflows: Workflows) -> None:
    tasks = workflows.tasks
    tasks.import_pages = 3

    execution = workflows.run("import", {"jobId": "job-6", "userId": "user-6", "format": "stratus"}, "job-6")

    assert execution["status"] == "SUCCEEDED"
    assert [e["cursor"] for e in tasks.of("jobs-import")] == [None, "1", "2"]
    assert all(e["format"] == "stratus" and e["userId"] == "user-6" for e in tasks.of("jobs-import"))
    recorded = tasks.steps("import-page")
    assert len(recorded) == 3
    assert recorded[0] == {
        "action": "import-page",
        "jobId": "job-6",
        "imported": {"conversations": 1, "messages": 4, "projects": 0, "prompts": 0, "memories": 2},
        "rejected": [],
        "rejectedMore": 0,
    }
    assert [e["action"] for e in tasks.steps()] == ["begin", *["import-page"] * 3, "finish"]


def test_archiving_from_the_schedule_is_the_job_its_execution_name_names(workflows: Workflows) -> None:
    tasks = workflows.tasks
    tasks.pages = {"conversations": 2}

    execution = workflows.run("archive", {}, "scheduled-archive-1")

    assert execution["status"] == "SUCCEEDED"
    assert tasks.steps("begin") == [{"action": "begin", "jobId": "scheduled-archive-1", "kind": "archive"}]
    pages = [c.event for c in tasks.calls if c.function != "jobs-steps"]
    assert {c.function for c in tasks.calls} == {"jobs-steps", *(f"jobs-{n}" for n in _context_names("archive"))}
    assert len(pages) == 3
    # One `now` for the whole run: every context archives against the execution's start.
    (now,) = {e["now"] for e in pages}
    assert now.startswith(execution["startDate"].strftime("%Y-%m-%dT%H:%M"))
    assert all(e["jobId"] == "scheduled-archive-1" and "userId" not in e for e in pages)
    assert tasks.steps("finish") == [{"action": "finish", "jobId": "scheduled-archive-1"}]
