"""The four jobs workflows as Amazon States Language, built from the one list of contexts (`JOB_CONTEXTS`).

Pure Python, no CDK: CDK passes each function's ARN as a `${...}` DefinitionSubstitution, local mode passes the
ARNs of its own functions, and the tests execute the synthesized definitions on moto.

Every workflow begins (`begin` marks the job running), works, and finishes (`finish`); a Pass state carries the
list of `{context, function}` of the workflow into a Map, so a context joins a workflow by being listed once. A
context's work is a page loop: its task runs one page and answers the next `cursor`; a Choice loops until the
cursor is null, so a user with any amount of data never outgrows one Lambda invocation. Every task retries with
backoff except on `JobInputError` (bad input does not get better); whatever is still failing is caught, `fail`
records it on the job (and on the context that failed) and the execution fails with that same error.

State input, as the jobs context starts an execution (named by the job id): export `{jobId, userId}`, import
`{jobId, userId, format}`, deletion `{jobId, userId}`, archive `{}` from the schedule or `{jobId}` from the
route: an archive job's id is always its execution's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.jobs.contexts import WORKFLOWS, JobContext, Workflow, job_contexts
from infra.catalog import (
    JOB_IMPORT_FUNCTION,
    JOB_STEPS_FUNCTION,
    job_task_function,
    pascal,
)

State = dict[str, Any]

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# The error a task raises for bad input (functions.jobs.errors.JobInputError, the Lambda errorType): not retried.
JOB_INPUT_ERROR = "JobInputError"
RETRY: list[dict[str, Any]] = [
    {"ErrorEquals": [JOB_INPUT_ERROR], "MaxAttempts": 0},
    # Throttling, timeouts, a Lambda service hiccup: 2 s, 4 s, 8 s, 16 s, then caught.
    {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 4},
]
FAILED = "Failed"
JOB_FAILED = "JobFailed"

# What each workflow's page task is asked, what it answers and the figure counted for `context-done`.
_PAGE_ACTIONS: dict[Workflow, str] = {"export": "export", "deletion": "delete", "archive": "archive"}
_PAGE_COUNTS: dict[Workflow, str] = {"export": "records", "deletion": "deleted", "archive": "archived"}
# The fields a workflow carries through every state of a context besides context, function, cursor and count.
_CARRIED: dict[Workflow, tuple[str, ...]] = {
    "export": ("jobId", "userId", "page"),
    "deletion": ("jobId", "userId"),
    "archive": ("jobId", "now"),
}


def workflow_definitions(functions: Mapping[str, str]) -> dict[Workflow, dict[str, Any]]:
    """Each workflow's definition, given the ARN (or a `${...}` substitution) of each catalog function by name."""
    return {workflow: workflow_definition(workflow, functions) for workflow in WORKFLOWS}


def workflow_definition(workflow: Workflow, functions: Mapping[str, str]) -> dict[str, Any]:
    builder = _Builder(workflow, functions)
    if workflow == "import":
        return builder.import_workflow()
    return builder.context_workflow()


class _Builder:
    def __init__(self, workflow: Workflow, functions: Mapping[str, str]) -> None:
        self.workflow = workflow
        self.functions = functions
        self.steps = functions[JOB_STEPS_FUNCTION.name]

    # -- the two shapes ---------------------------------------------------------------------------------------

    def context_workflow(self) -> dict[str, Any]:
        """export, deletion, archive: begin → Map over the contexts (deletion: then each `last` one in order) →
        (export: assemble the archive) → finish."""
        workflow = self.workflow
        contexts = job_contexts(workflow)
        mapped = [c for c in contexts if not (workflow == "deletion" and c.last)]
        after_map = [c for c in contexts if workflow == "deletion" and c.last]
        states: dict[str, State] = {}
        start = "Begin"
        if workflow == "archive":
            # The schedule starts it with `{}` and a generated name; the route with `{jobId}`, named by it.
            states["Job"] = {"Type": "Pass", "Parameters": {"jobId.$": "$$.Execution.Name"}, "Next": "Begin"}
            start = "Job"
        states["Begin"] = self._steps_task("begin", {"kind": workflow}, next_state="ListContexts")
        states["ListContexts"] = {
            "Type": "Pass",
            "Comment": "The contexts this workflow maps over (functions.jobs.contexts.JOB_CONTEXTS)",
            "Result": [{"context": c.name, "function": self._function_of(c)} for c in mapped],
            "ResultPath": "$.contexts",
            "Next": "Contexts",
        }
        following = [f"{pascal(c.name)}Context" for c in after_map]
        following.append("AssembleExport" if workflow == "export" else "Finish")
        item = {
            **self._job_fields(),
            "context.$": "$$.Map.Item.Value.context",
            "function.$": "$$.Map.Item.Value.function",
        }
        states["Contexts"] = {
            "Type": "Map",
            "ItemsPath": "$.contexts",
            "ItemSelector": {**item, **self._context_start()},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "ContextStarted",
                "States": self._context_states("", end=True),
            },
            "ResultPath": None,
            "Catch": _catch(JOB_FAILED),
            "Next": following[0],
        }
        for index, context in enumerate(after_map):
            prefix = pascal(context.name)
            states[f"{prefix}Context"] = {
                "Type": "Pass",
                "Parameters": {
                    **self._job_fields(),
                    "context": context.name,
                    "function": self._function_of(context),
                    **self._context_start(),
                },
                "Next": f"{prefix}ContextStarted",
            }
            states.update(self._context_states(prefix, end=False, next_state=following[index + 1]))
        if workflow == "export":
            states["AssembleExport"] = self._steps_task(
                "assemble-export", {"userId.$": "$.userId"}, next_state="Finish"
            )
        states["Finish"] = self._steps_task("finish", {}, end=True)
        states.update(self._failure_states())
        return {"Comment": f"Stratus {workflow} job", "StartAt": start, "States": states}

    def import_workflow(self) -> dict[str, Any]:
        """begin → the import's page loop (read a page of the upload, record its figures) → finish."""
        carried = {"jobId.$": "$.jobId", "userId.$": "$.userId", "format.$": "$.format"}
        states: dict[str, State] = {
            "Begin": self._steps_task("begin", {"kind": "import"}, next_state="ImportStart"),
            "ImportStart": {"Type": "Pass", "Parameters": {**carried, "cursor": None}, "Next": "ImportPage"},
            "ImportPage": self._task(
                self.functions[JOB_IMPORT_FUNCTION.name],
                {"action": "import", **carried, "cursor.$": "$.cursor"},
                result_selector={
                    "cursor.$": "$.Payload.cursor",
                    "imported.$": "$.Payload.imported",
                    "rejected.$": "$.Payload.rejected",
                    "rejectedMore.$": "$.Payload.rejectedMore",
                },
                result_path="$.result",
                next_state="RecordImportPage",
            ),
            "RecordImportPage": self._steps_task(
                "import-page",
                {
                    "imported.$": "$.result.imported",
                    "rejected.$": "$.result.rejected",
                    "rejectedMore.$": "$.result.rejectedMore",
                },
                next_state="NextImportPage",
            ),
            "NextImportPage": {
                "Type": "Pass",
                "Parameters": {**carried, "cursor.$": "$.result.cursor"},
                "Next": "MoreImportPages",
            },
            "MoreImportPages": _more_pages("Finish", "ImportPage"),
            "Finish": self._steps_task("finish", {}, end=True),
            **self._failure_states(),
        }
        return {"Comment": "Stratus import job", "StartAt": "Begin", "States": states}

    # -- a context's part ---------------------------------------------------------------------------------------

    def _job_fields(self) -> dict[str, str]:
        """The job's own fields of the state (jobId, and userId but for archiving), passed on as they are."""
        return {f"{field}.$": f"$.{field}" for field in _CARRIED[self.workflow] if field not in ("page", "now")}

    def _context_start(self) -> dict[str, Any]:
        """Where a context's page loop starts: no cursor, nothing counted (export: page 0), the archive's `now`."""
        start: dict[str, Any] = {"cursor": None, "count": 0}
        if self.workflow == "export":
            start["page"] = 0
        if self.workflow == "archive":
            start["now.$"] = "$$.Execution.StartTime"
        return start

    def _context_states(self, prefix: str, *, end: bool, next_state: str | None = None) -> dict[str, State]:
        """context-started → page loop → context-done, for the context and function named in the state."""
        workflow = self.workflow
        carried = _CARRIED[workflow]
        count = _PAGE_COUNTS[workflow]
        failed = f"{prefix}ContextFailed"
        page_payload = {
            "action": _PAGE_ACTIONS[workflow],
            **{f"{field}.$": f"$.{field}" for field in carried},
            "context.$": "$.context",
            "cursor.$": "$.cursor",
        }
        result_selector = {"cursor.$": "$.Payload.cursor", f"{count}.$": f"$.Payload.{count}"}
        if workflow == "export":
            result_selector["page.$"] = "$.Payload.page"
        # The loop's state after a page: what it carries, the next cursor (and page), the running count.
        tally = {
            **{f"{field}.$": f"$.{field}" for field in carried if field != "page"},
            "context.$": "$.context",
            "function.$": "$.function",
            "cursor.$": "$.result.cursor",
            "count.$": f"States.MathAdd($.count, $.result.{count})",
        }
        if workflow == "export":
            tally["page.$"] = "$.result.page"
        done = self._steps_task(
            "context-done",
            {"context.$": "$.context", "count.$": "$.count"},
            end=end,
            next_state=next_state,
            catch_to=failed,
        )
        states: dict[str, State] = {
            f"{prefix}ContextStarted": self._steps_task(
                "context-started", {"context.$": "$.context"}, next_state=f"{prefix}Page", catch_to=failed
            ),
            f"{prefix}Page": self._task(
                "$.function",
                page_payload,
                result_selector=result_selector,
                result_path="$.result",
                next_state=f"{prefix}Tally",
                catch_to=failed,
            ),
            f"{prefix}Tally": {"Type": "Pass", "Parameters": tally, "Next": f"{prefix}MorePages"},
            f"{prefix}MorePages": _more_pages(f"{prefix}ContextDone", f"{prefix}Page"),
            f"{prefix}ContextDone": done,
            failed: self._steps_task(
                "fail",
                {"context.$": "$.context", "error.$": "$.error"},
                next_state=f"{prefix}ContextFailure" if end else FAILED,
            ),
        }
        if end:
            # Inside the Map: fail the Map with the task's own error, so the execution fails with it too.
            states[f"{prefix}ContextFailure"] = _fail_with_error()
        return states

    def _failure_states(self) -> dict[str, State]:
        return {
            JOB_FAILED: self._steps_task("fail", {"error.$": "$.error"}, next_state=FAILED),
            FAILED: _fail_with_error(),
        }

    # -- tasks --------------------------------------------------------------------------------------------------

    def _function_of(self, context: JobContext) -> str:
        return self.functions[job_task_function(context).name]

    def _steps_task(
        self,
        action: str,
        fields: Mapping[str, Any],
        *,
        next_state: str | None = None,
        end: bool = False,
        catch_to: str | None = JOB_FAILED,
    ) -> State:
        """A step of the job record (`jobs-steps`); its answer is dropped, the state goes on unchanged."""
        payload = {"action": action, "jobId.$": "$.jobId", **fields}
        if action == "fail":
            catch_to = None  # nothing is left to record a failure of the failure's record: the execution fails
        return self._task(self.steps, payload, result_path=None, next_state=next_state, end=end, catch_to=catch_to)

    def _task(
        self,
        function: str,
        payload: Mapping[str, Any],
        *,
        result_selector: Mapping[str, str] | None = None,
        result_path: str | None,
        next_state: str | None = None,
        end: bool = False,
        catch_to: str | None = JOB_FAILED,
    ) -> State:
        """A Lambda invocation of `function` (an ARN, or a path to one in the state) with `payload`."""
        function_name = {"FunctionName.$": function} if function.startswith("$.") else {"FunctionName": function}
        state: State = {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {**function_name, "Payload": dict(payload)},
        }
        if result_selector is not None:
            state["ResultSelector"] = dict(result_selector)
        state["ResultPath"] = result_path
        state["Retry"] = RETRY
        if catch_to is not None:
            state["Catch"] = _catch(catch_to)
        if end:
            state["End"] = True
        else:
            assert next_state is not None
            state["Next"] = next_state
        return state


def _catch(next_state: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def _more_pages(done: str, again: str) -> State:
    return {"Type": "Choice", "Choices": [{"Variable": "$.cursor", "IsNull": True, "Next": done}], "Default": again}


def _fail_with_error() -> State:
    """Fail with the error caught in `$.error` (Step Functions' `{Error, Cause}`)."""
    return {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def referenced_functions(definition: Mapping[str, Any]) -> Sequence[str]:
    """Every function ARN a definition invokes, in the order its states name them (for grants and tests)."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            name = value.get("FunctionName")
            if isinstance(name, str) and name not in found:
                found.append(name)
            function = value.get("function")
            if isinstance(function, str) and function not in found:
                found.append(function)
            for child in value.values():
                visit(child)
        elif isinstance(value, list):
            for child in value:
                visit(child)

    visit(definition)
    return found
