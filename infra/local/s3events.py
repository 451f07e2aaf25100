"""S3 event notifications to the catalog's functions, on moto, and the asynchronous invocations of those functions.

moto's S3 hands a bucket's Lambda notifications to `moto.s3.notifications._invoke_awslambda`, which runs code only
in Docker (and swallows the failure), and does so from inside the PUT, before the object has its content type.
`deliver_s3_notifications` replaces it, and holds a request's notifications until the request is answered:
- in-process (tests: the `aws` fixture), with `run_in_background`: the function the ARN names runs its real
  handler on a thread of its own, asynchronously as in AWS, while the upload's PUT returns;
- in the moto server of `make dev` (infra.local.moto_process), with `post_to_gateway`: the event is POSTed to the
  local gateway's Lambda Invoke API with `X-Amz-Invocation-Type: Event`, which runs the function as it runs every
  other.
`route_event_invocations` does the same in-process for `lambda.invoke(InvocationType="Event")` of those
functions (a reprocess), as the gateway's Invoke API does in `make dev`.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.catalog import FunctionSpec

log = logging.getLogger("stratus.local")

# (function ARN or name, event) → None; must not raise (S3 never fails a PUT for its notification).
Delivery = Callable[[str, dict[str, Any]], None]

_INVOKE_PATH = "/2015-03-31/functions/"
_lock = threading.Lock()
_delivery: Delivery | None = None
_patched = False
_threads: list[threading.Thread] = []
_in_request = threading.local()  # `held`: the notifications of the S3 request this thread is answering


def deliver_s3_notifications(delivery: Delivery | None) -> None:
    """Send moto's Lambda notifications to `delivery` from now on (None: drop them, as moto does without Docker).
    Idempotent: moto is patched once per process."""
    global _delivery, _patched  # noqa: PLW0603 - patching a library is process-wide by nature
    with _lock:
        _delivery = delivery
        if _patched:
            return
        from moto.s3 import notifications
        from moto.s3.responses import S3Response

        def deliver(fn_arn: str, event_body: Any) -> None:
            with _lock:
                target = _delivery
            if target is not None:
                target(fn_arn, json.loads(json.dumps(event_body)))

        def invoke(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            del account_id, region_name  # the ARN names the function
            if getattr(_in_request, "held", None) is not None:
                _in_request.held.append((fn_arn, event_body))
            else:
                deliver(fn_arn, event_body)

        def after_the_request(answer: Callable[..., Any]) -> Callable[..., Any]:
            """moto notifies from inside put_object, before the request sets the object's content type and
            metadata; S3 notifies once the object is whole. The request's notifications wait for its end."""

            def answering(self: S3Response, *args: Any, **kwargs: Any) -> Any:
                if getattr(_in_request, "held", None) is not None:
                    return answer(self, *args, **kwargs)
                held: list[tuple[str, Any]] = []
                _in_request.held = held
                try:
                    return answer(self, *args, **kwargs)
                finally:
                    _in_request.held = None
                    for fn_arn, event_body in held:
                        deliver(fn_arn, event_body)

            return answering

        notifications._invoke_awslambda = invoke
        S3Response.key_response = after_the_request(S3Response.key_response)  # type: ignore[method-assign]
        S3Response.bucket_response = after_the_request(S3Response.bucket_response)  # type: ignore[method-assign]
        _patched = True


def function_named(arn_or_name: str, functions: Mapping[str, FunctionSpec]) -> FunctionSpec | None:
    """The catalog function an ARN (…:function:<name>) or a local name names, if it is one of `functions`."""
    return functions.get(arn_or_name.rsplit(":function:", 1)[-1].split(":", 1)[0])


def run_in_background(stage: str, region: str, functions: tuple[FunctionSpec, ...]) -> Delivery:
    """A delivery that runs the named function's handler on a thread of its own (in-process local mode, tests)."""
    from infra.local.stepfunctions import function_name

    by_name = {function_name(stage, spec): spec for spec in functions}

    def deliver(arn_or_name: str, event: dict[str, Any]) -> None:
        spec = function_named(arn_or_name, by_name)
        if spec is None:
            log.warning("S3 notification to %s, which is not a catalog function, dropped", arn_or_name)
            return
        thread = threading.Thread(target=_run, args=(spec, stage, region, event), daemon=True, name=spec.name)
        with _lock:
            _threads[:] = [alive for alive in _threads if alive.is_alive()]
            _threads.append(thread)
        thread.start()

    return deliver


def wait_for_background_runs(timeout_seconds: float = 60) -> None:
    """Wait for the runs `run_in_background` started (and those they started) to end: a test's teardown."""
    while True:
        with _lock:
            running = [thread for thread in _threads if thread.is_alive()]
        if not running:
            return
        for thread in running:
            thread.join(timeout_seconds)


def _run(spec: FunctionSpec, stage: str, region: str, event: dict[str, Any]) -> None:
    from infra.local.events import LambdaContext
    from infra.local.gateway import import_handler
    from infra.local.stepfunctions import function_name

    context = LambdaContext(
        function_name=function_name(stage, spec),
        memory_limit_in_mb=spec.memory_mb,
        timeout_seconds=spec.timeout_seconds,
        region=region,
    )
    try:
        import_handler(spec.handler)(event, context)
    except Exception:  # an asynchronous invocation's failure is only logged, as Lambda does
        log.exception("%s failed on an asynchronous event", spec.name)


def post_to_gateway(endpoint: Callable[[], str | None]) -> Delivery:
    """A delivery that POSTs the event to the local gateway's Invoke API (`endpoint()`, once it listens) as an
    asynchronous invocation: the moto server's process."""

    def deliver(arn_or_name: str, event: dict[str, Any]) -> None:
        base = endpoint()
        if base is None:
            log.warning("S3 notification to %s before the gateway listens, dropped", arn_or_name)
            return
        name = arn_or_name.rsplit(":function:", 1)[-1]
        request = urllib.request.Request(  # noqa: S310 - the local gateway's own http URL
            f"{base}{_INVOKE_PATH}{name}/invocations",
            data=json.dumps(event).encode(),
            headers={"X-Amz-Invocation-Type": "Event", "content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
        except OSError:
            log.exception("S3 notification to %s not delivered", name)

    return deliver


@contextmanager
def route_event_invocations(delivery: Delivery, functions: tuple[FunctionSpec, ...], stage: str) -> Iterator[None]:
    """While open, `lambda.invoke(InvocationType="Event")` through boto3's default session of one of `functions`
    goes to `delivery` and answers 202 at once, as Lambda does. Open it inside `mock_aws`."""
    import boto3

    from infra.local.stepfunctions import function_name

    names = {function_name(stage, spec) for spec in functions}
    events = boto3._get_default_session().events

    def answer(params: dict[str, Any], **_: Any) -> Any:
        path = unquote(urlsplit(params.get("url_path", "")).path)
        name = path.removeprefix(_INVOKE_PATH).split("/", 1)[0].rsplit(":function:", 1)[-1]
        headers = params.get("headers") or {}
        if name not in names or headers.get("X-Amz-Invocation-Type") != "Event":
            return None
        delivery(name, json.loads(params.get("body") or b"{}"))
        return _accepted()

    events.register("before-call.lambda.Invoke", answer, unique_id="stratus-route-event-invocations")
    try:
        yield
    finally:
        events.unregister("before-call.lambda.Invoke", unique_id="stratus-route-event-invocations")


def _accepted() -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.response import StreamingBody

    parsed = {"StatusCode": 202, "Payload": StreamingBody(io.BytesIO(b""), 0)}
    return AWSResponse("", 202, HTTPHeaders(), None), parsed
