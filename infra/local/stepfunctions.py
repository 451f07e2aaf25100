"""The jobs workflows on moto's Step Functions: their state machines, and their Lambda tasks routed to our handlers.

moto really executes ASL (`execute_state_machine`), but its Lambda runs code only in Docker. Its executor calls
Lambda's Invoke through a boto3 client of the default session, so:
- in-process (tests), `route_task_invocations` answers that call before it is sent: the handler named by the
  function runs in the executor's thread, and its answer (or its error, as Lambda reports one) goes back;
- in the moto server of `make dev`, `forward_invocations_to` sends those calls to the local gateway's Invoke API,
  which runs the functions as it runs every other (infra.local.websocket).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from functions.jobs.contexts import WORKFLOWS, Workflow, workflow_env_var
from infra.catalog import JOB_TASK_FUNCTIONS, FunctionSpec

# moto's default account: the ARNs moto itself gives the state machines.
ACCOUNT_ID = "123456789012"
_INVOKE_PATH = "/2015-03-31/functions/"

TaskRunner = Callable[[dict[str, Any]], Any]


def function_name(stage: str, spec: FunctionSpec) -> str:
    """A catalog function's name in local mode (the gateway's Invoke API knows it by this name too)."""
    return f"stratus-{stage}-{spec.name}"


def function_arn(stage: str, spec: FunctionSpec, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name(stage, spec)}"


def state_machine_name(stage: str, workflow: Workflow) -> str:
    return f"stratus-{stage}-{workflow}"


def create_state_machines(stage: str, region: str) -> dict[str, str]:
    """The four workflows on the AWS the clients point at, invoking the local functions; their ARNs by variable."""
    from infra.workflows import workflow_definitions
    from shared.aws import client

    stepfunctions = client("stepfunctions")
    definitions = workflow_definitions({spec.name: function_arn(stage, spec, region) for spec in JOB_TASK_FUNCTIONS})
    arns = {}
    for workflow in WORKFLOWS:
        created = stepfunctions.create_state_machine(
            name=state_machine_name(stage, workflow),
            definition=json.dumps(definitions[workflow]),
            roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/stratus-{stage}-{workflow}-workflow",
        )
        arns[workflow_env_var(workflow)] = created["stateMachineArn"]
    return arns


def state_machine_arns(stage: str) -> dict[str, str]:
    """The ARNs of the stage's workflows already on the AWS the clients point at, by variable (a second gateway
    attached to the first one's moto)."""
    from shared.aws import client

    by_name = {machine["name"]: machine["stateMachineArn"]
               for machine in client("stepfunctions").list_state_machines()["stateMachines"]}  # fmt: skip
    return {workflow_env_var(workflow): by_name[state_machine_name(stage, workflow)] for workflow in WORKFLOWS}


def finished_execution(stepfunctions: Any, execution_arn: str, *, timeout_seconds: float = 120) -> dict[str, Any]:
    """The execution's description once it has ended (moto runs it on a thread of its own); TimeoutError if it
    is still running after `timeout_seconds`, a guard against a hung executor."""
    deadline = time.monotonic() + timeout_seconds
    while (described := stepfunctions.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout_seconds} s")
        time.sleep(0.02)
    return described  # type: ignore[no-any-return]


def catalog_task_runners(stage: str, region: str) -> dict[str, TaskRunner]:
    """Every task function of the catalog by its local name, running its real handler (imported at first use)."""
    return {function_name(stage, spec): _catalog_runner(spec, stage, region) for spec in JOB_TASK_FUNCTIONS}


def _catalog_runner(spec: FunctionSpec, stage: str, region: str) -> TaskRunner:
    def run(event: dict[str, Any]) -> Any:
        from infra.local.events import LambdaContext
        from infra.local.gateway import import_handler

        context = LambdaContext(
            function_name=function_name(stage, spec),
            memory_limit_in_mb=spec.memory_mb,
            timeout_seconds=spec.timeout_seconds,
            region=region,
        )
        return import_handler(spec.handler)(event, context)

    return run


@contextmanager
def route_task_invocations(runners: Mapping[str, TaskRunner]) -> Iterator[None]:
    """While open, a Lambda Invoke made through boto3's default session (moto's Step Functions executor) of a
    function named in `runners` (by name, or an ARN ending in it) runs that runner in-process; an exception it
    raises becomes Lambda's function error (`errorType` its class name), so Retry and Catch see what AWS shows.

    Open it inside `mock_aws`, which replaces the default session when it starts."""
    import boto3

    events = boto3._get_default_session().events

    def answer(params: dict[str, Any], **_: Any) -> Any:
        path = unquote(urlsplit(params.get("url_path", "")).path)
        name = path.removeprefix(_INVOKE_PATH).split("/", 1)[0].rsplit(":function:", 1)[-1]
        runner = runners.get(name)
        if runner is None:
            return None  # not ours: on to moto's Lambda
        event = json.loads(params.get("body") or b"{}")
        try:
            # The Lambda service hands a handler a parsed JSON document and serializes what it returns.
            return _invocation(json.dumps(runner(json.loads(json.dumps(event)))).encode())
        except Exception as error:  # reported to the workflow exactly as Lambda would
            payload = {"errorMessage": str(error), "errorType": type(error).__name__}
            return _invocation(json.dumps(payload).encode(), function_error="Unhandled")

    events.register("before-call.lambda.Invoke", answer, unique_id="stratus-route-task-invocations")
    try:
        yield
    finally:
        events.unregister("before-call.lambda.Invoke", unique_id="stratus-route-task-invocations")


def _invocation(payload: bytes, function_error: str | None = None) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.response import StreamingBody

    parsed: dict[str, Any] = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }
    if function_error:
        parsed["FunctionError"] = function_error
    return AWSResponse("", 200, HTTPHeaders(), None), parsed


class InvocationForwarder:
    """In the moto server's process: sends the executor's Lambda calls to `endpoint` (the local gateway, once it
    listens; until then they fail as calls to an absent function would)."""

    def __init__(self) -> None:
        self._endpoint: str | None = None
        self._lock = threading.Lock()

    def forward_to(self, endpoint: str) -> None:
        with self._lock:
            self._endpoint = endpoint.rstrip("/")

    @property
    def endpoint(self) -> str | None:
        """The gateway's endpoint, None until it listens."""
        with self._lock:
            return self._endpoint

    def install(self) -> None:
        import boto3

        boto3._get_default_session().events.register(
            "before-send.lambda", self._redirect, unique_id="stratus-forward-invocations"
        )

    def _redirect(self, request: Any, **_: Any) -> None:
        with self._lock:
            endpoint = self._endpoint
        if endpoint is not None:
            parts = urlsplit(request.url)
            request.url = endpoint + parts.path + (f"?{parts.query}" if parts.query else "")


_valid_definitions: set[str] = set()
_patched = False


def patch_moto_step_functions() -> None:
    """Idempotent; two fixes to moto's Step Functions for a stack that runs many jobs:
    - moto parses a definition to validate it on every CreateStateMachine (~0.4 s for a workflow here); a
      definition that parsed once is valid forever, so each one is parsed once per process (executions still
      parse what they run);
    - StartExecution deep-copies the state machine, its past executions included, whose workers hold locks that
      cannot be copied: every execution after the first of a machine failed. The copy now leaves them out (it is
      the execution's snapshot of the machine, which never reads them)."""
    global _patched  # noqa: PLW0603 - patching a library is process-wide by nature
    if _patched:
        return
    import copy

    from moto.stepfunctions.models import StateMachineInstance
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    validate = StepFunctionsParserBackend._validate_definition

    def validate_once(definition: str) -> None:
        if definition not in _valid_definitions:
            validate(definition)
            _valid_definitions.add(definition)

    def copy_without_executions(self: Any, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, [] if name == "executions" else copy.deepcopy(value, memo))
        return clone

    StepFunctionsParserBackend._validate_definition = staticmethod(validate_once)  # type: ignore[method-assign]
    StateMachineInstance.__deepcopy__ = copy_without_executions  # type: ignore[attr-defined]
    _patched = True
