"""The embedded AWS of local mode: what it creates, and that stopping it restores the environment."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote

from infra.local.aws import start_local_aws
from infra.local.stepfunctions import finished_execution
from shared.tables import TABLES


def test_creates_tables_and_signing_keys_then_restores_the_environment() -> None:
    before = dict(os.environ)
    with start_local_aws("unit") as aws:
        from shared.aws import client

        assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint_url
        assert os.environ["MOTO_PORT"] == str(aws.port)
        assert os.environ["STAGE"] == "unit"
        names = client("dynamodb").list_tables()["TableNames"]
        assert sorted(names) == sorted(spec.physical_name("unit") for spec in TABLES)
        for spec in TABLES:
            assert os.environ[spec.env_var] == spec.physical_name("unit")
        secret = client("secretsmanager").get_secret_value(SecretId=os.environ["SIGNING_KEYS_SECRET"])
        assert json.loads(secret["SecretString"])["keys"][0]["kid"]
    assert dict(os.environ) == before


def test_can_start_again_after_a_stop() -> None:
    for _ in range(2):
        with start_local_aws("unit") as aws:
            from shared.aws import client

            assert client("dynamodb").list_tables()["TableNames"]
            assert aws.port


class _InvokeApi(BaseHTTPRequestHandler):
    """Lambda's Invoke API as the local gateway serves it, answering as the jobs task functions would."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["content-length"])))
        function = unquote(self.path).split("/")[3].rsplit(":", 1)[-1]
        self.calls.append((function, event))
        answer = {} if function.endswith("-jobs-steps") else {"cursor": None, "archived": 2}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_workflows_run_on_the_embedded_aws_their_tasks_sent_to_the_invoke_endpoint_it_is_given() -> None:
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _InvokeApi)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        with start_local_aws("unit") as aws:
            from shared.aws import client

            assert client("s3").head_bucket(Bucket=os.environ["EXPORT_BUCKET"])
            aws.forward_invocations_to(f"http://127.0.0.1:{gateway.server_address[1]}")
            stepfunctions = client("stepfunctions")
            execution = stepfunctions.start_execution(
                stateMachineArn=os.environ["ARCHIVE_WORKFLOW_ARN"], name="archive-now", input="{}"
            )["executionArn"]
            described = finished_execution(stepfunctions, execution)
    finally:
        gateway.shutdown()

    assert described["status"] == "SUCCEEDED"
    functions = [function for function, _ in _InvokeApi.calls]
    assert functions[0] == "stratus-unit-jobs-steps"
    assert {"stratus-unit-jobs-conversations", "stratus-unit-jobs-memories"} <= set(functions)
    assert _InvokeApi.calls[-1] == ("stratus-unit-jobs-steps", {"action": "finish", "jobId": "archive-now"})
