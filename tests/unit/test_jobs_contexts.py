"""The job contexts as deployed functions see them, and the job input error as a workflow's Catch carries it."""

from __future__ import annotations

import json

import pytest

from functions.jobs.contexts import all_contexts, context_named, contexts_environment, job_contexts
from functions.jobs.errors import JobInputError
from infra import catalog


def test_the_contexts_a_function_is_handed_are_the_catalogs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOB_CONTEXTS", raising=False)
    from_catalog = all_contexts()
    monkeypatch.setenv("JOB_CONTEXTS", contexts_environment(catalog.JOB_CONTEXTS))
    assert all_contexts() == from_catalog
    assert [context.name for context in from_catalog] == [context.name for context in catalog.JOB_CONTEXTS]
    assert [context.name for context in job_contexts("deletion") if context.last] == ["jobs", "identity"]
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
