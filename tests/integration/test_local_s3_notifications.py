"""Local mode's S3 notifications (infra.local.s3events): a function notified of an object finds it whole, its
content type and metadata set, as in S3. moto notifies from inside the PUT, before it sets them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests

from infra.local import s3events
from shared.aws import client


@pytest.fixture
def heads_at_notification(aws: None) -> Iterator[list[dict[str, Any]]]:
    """What a notified function would read of each object, read when its notification is delivered."""
    del aws
    seen: list[dict[str, Any]] = []
    s3 = client("s3")

    def delivery(fn_arn: str, event: dict[str, Any]) -> None:
        del fn_arn
        for record in event["Records"]:
            key = unquote_plus(record["s3"]["object"]["key"])  # URL-encoded, as S3 sends it
            head = s3.head_object(Bucket=record["s3"]["bucket"]["name"], Key=key)
            seen.append({"contentType": head["ContentType"], "metadata": head["Metadata"]})

    previous = s3events._delivery
    s3events.deliver_s3_notifications(delivery)
    try:
        yield seen
    finally:
        s3events.deliver_s3_notifications(previous)


def test_an_object_put_with_a_presigned_url_is_whole_when_its_notification_arrives(
    heads_at_notification: list[dict[str, Any]],
) -> None:
    bucket = os.environ["DOCUMENTS_BUCKET"]
    url = client("s3").generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": "documents/a/b", "ContentType": "text/markdown"},
        ExpiresIn=60,
    )
    answer = requests.put(url, data=b"# Title\n\ntext", headers={"content-type": "text/markdown"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert heads_at_notification == [{"contentType": "text/markdown", "metadata": {}}]


def test_an_object_put_through_the_api_has_its_metadata_when_its_notification_arrives(
    heads_at_notification: list[dict[str, Any]],
) -> None:
    client("s3").put_object(
        Bucket=os.environ["DOCUMENTS_BUCKET"], Key="documents/c/d", Body=b"text", ContentType="text/plain",
        Metadata={"origin": "test"},
    )  # fmt: skip
    assert heads_at_notification == [{"contentType": "text/plain", "metadata": {"origin": "test"}}]


def test_an_object_outside_the_notified_prefix_notifies_nothing(heads_at_notification: list[dict[str, Any]]) -> None:
    client("s3").put_object(Bucket=os.environ["DOCUMENTS_BUCKET"], Key="elsewhere/e", Body=b"text")
    assert heads_at_notification == []
