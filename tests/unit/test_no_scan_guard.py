"""The guard every moto test runs under: a Scan anywhere fails the test."""

from __future__ import annotations

import pytest

from shared.aws import client
from shared.tables import IDENTITY
from tests.conftest import ScanOnRequestPathError


@pytest.mark.usefixtures("aws")
def test_a_scan_fails_the_test_while_a_query_passes() -> None:
    dynamodb = client("dynamodb")
    table = IDENTITY.name_from_env()
    dynamodb.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "x"}})
    with pytest.raises(ScanOnRequestPathError):
        dynamodb.scan(TableName=table)
