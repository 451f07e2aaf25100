"""The local stack serves the AWS APIs the realtime handlers call, to real boto3 clients: the WebSocket API's
`@connections` management API and Lambda's Invoke API.

WebSocket clients themselves: tests/e2e/test_websocket.py.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


def test_posting_to_an_unknown_connection_raises_gone_exception(base_url: str) -> None:
    management = boto3.client("apigatewaymanagementapi", endpoint_url=base_url, region_name="us-east-1")

    with pytest.raises(ClientError) as gone:
        management.post_to_connection(ConnectionId="L0SM9cOFvHcCIhw=", Data=b'{"event":"pong","data":{}}')

    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId="L0SM9cOFvHcCIhw=")


def test_lambda_invoke_reaches_only_the_invocable_functions(base_url: str) -> None:
    lambda_ = boto3.client("lambda", endpoint_url=base_url, region_name="us-east-1")

    with pytest.raises(lambda_.exceptions.ResourceNotFoundException):
        lambda_.invoke(FunctionName="stratus-local-identity", InvocationType="Event", Payload=b"{}")
    # The worker accepts an asynchronous invocation at once (its chat:error goes to a connection that is gone).
    accepted = lambda_.invoke(
        FunctionName="stratus-local-realtime-worker",
        InvocationType="Event",
        Payload=b'{"connectionId": "gone", "endpoint": "' + base_url.encode() + b'", "principal": {}, "request": {}}',
    )
    assert accepted["StatusCode"] == 202
