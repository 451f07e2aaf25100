"""The stage's S3 Vectors bucket, and exactly what `vector_access` grants on it."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack

from infra.functions import VECTOR_READ_ACTIONS, VECTOR_WRITE_ACTIONS, vector_index_statement
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra

BUCKET_ARN = "arn:aws:s3vectors:eu-west-1:123456789012:bucket/stratus-acme-vectors"


def test_the_stage_has_one_vector_bucket_named_for_it_encrypted_and_kept_outside_dev(synth: Synthesized) -> None:
    ((logical_id, bucket),) = synth.of_type("AWS::S3Vectors::VectorBucket").items()

    assert logical_id.startswith("VectorBucket")
    assert bucket["Properties"]["VectorBucketName"] == f"stratus-{synth.stage}-vectors"
    assert bucket["Properties"]["EncryptionConfiguration"] == {"SseType": "AES256"}
    kept = "Delete" if synth.stage == "dev" else "Retain"
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == (kept, kept)


def resolved(access: Any) -> dict[str, Any]:
    stack = Stack(App(), "Policy")
    return stack.resolve(vector_index_statement(access, BUCKET_ARN).to_statement_json())  # type: ignore[no-any-return]


def test_read_access_searches_the_buckets_indexes_and_nothing_else() -> None:
    statement = resolved("read")

    assert sorted(statement["Action"]) == ["s3vectors:GetIndex", "s3vectors:GetVectors", "s3vectors:QueryVectors"]
    assert statement["Resource"] == f"{BUCKET_ARN}/index/*"
    assert statement["Effect"] == "Allow"
    assert "Condition" not in statement


def test_write_access_also_writes_lists_and_deletes_vectors_and_manages_indexes() -> None:
    statement = resolved("write")

    assert sorted(statement["Action"]) == [
        "s3vectors:CreateIndex",
        "s3vectors:DeleteIndex",
        "s3vectors:DeleteVectors",
        "s3vectors:GetIndex",
        "s3vectors:GetVectors",
        "s3vectors:ListVectors",
        "s3vectors:PutVectors",
        "s3vectors:QueryVectors",
    ]
    assert statement["Resource"] == f"{BUCKET_ARN}/index/*"
    # Never the bucket itself (DeleteVectorBucket, its policy), nor another bucket's indexes.
    assert not any("VectorBucket" in action for action in (*VECTOR_READ_ACTIONS, *VECTOR_WRITE_ACTIONS))
