"""The job contexts the task functions dispatch through, and the job input error as a workflow's Catch carries it."""

from __future__ import annotations

import json

import pytest

from functions.jobs.contexts import JOB_CONTEXTS, context_named, job_contexts
from functions.jobs.errors import JobInputError
from infra import catalog


def test_the_functions_dispatch_through_the_list_cdk_builds_from() -> None:
    assert catalog.JOB_CONTEXTS is JOB_CONTEXTS
    assert [spec.name for spec in catalog.JOB_TASK_FUNCTIONS][: len(JOB_CONTEXTS)] == [
        f"jobs-{context.name}" for context in JOB_CONTEXTS
    ]
    assert [context.name for context in job_contexts("deletion") if context.last] == ["audit", "jobs", "identity"]
    assert context_named("jobs").module == "functions.jobs.userdata"
    assert {kind for context in job_contexts("import") for kind in context.imports} == {
        "project", "conversation", "prompt", "memory",
    }  # fmt: skip
    with pytest.raises(LookupError):
        context_named("billing")


def test_a_job_input_error_survives_lambdas_error_report() -> None:
    error = JobInputError("wrong_shape", "The file is JSON but not a ChatGPT export: no conversation has mapping")
    cause = json.dumps({"errorMessage": str(error), "errorType": "JobInputError", "stackTrace": ["..."]})
    for carried in (cause, str(error)):
        parsed = JobInputError.from_cause(carried)
        assert parsed is not None
        assert (parsed.code, parsed.message) == (error.code, error.message)
    assert JobInputError.from_cause(json.dumps({"errorMessage": "Task timed out after 900.00 seconds"})) is None
    assert JobInputError.from_cause("") is None
