"""The vector store on moto with its local QueryVectors: what an agent's search finds, and S3 Vectors' rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from functions.agents import vectors
from functions.agents.vectors import VectorRecord
from shared.aws import client
from shared.llm.embeddings import hashing_embedder

FACTS = [
    "The Leeds warehouse ships orders every Tuesday morning.",
    "Refunds are paid back to the original card within five working days.",
    "The office Wi-Fi password changes on the first day of each month.",
    "Our support line is open from eight in the morning until six in the evening.",
]


def records(document_id: str, texts: list[str], file_name: str = "handbook.pdf") -> list[VectorRecord]:
    embedded = hashing_embedder().embed_documents(texts)
    return [
        VectorRecord(
            f"{document_id}:{ordinal:05d}",
            vector,
            {"documentId": document_id, "ordinal": ordinal, "page": ordinal + 1, "fileName": file_name, "text": text},
        )
        for ordinal, (text, vector) in enumerate(zip(texts, embedded, strict=True))
    ]


def search(name: str, text: str, top_k: int = 3) -> list[vectors.VectorHit]:
    return vectors.query(name, hashing_embedder().embed_query(text), top_k)


@pytest.fixture
def index(aws: None) -> Iterator[str]:
    name = vectors.index_name("01HZAGENT0000000000000000A", 1)
    vectors.create_index(name, 256)
    return name


def test_index_names_follow_s3_vectors_rules() -> None:
    name = vectors.index_name("01HZAGENT0000000000000000A", 12)

    assert name == "agent-01hzagent0000000000000000a-12"
    assert 3 <= len(name) <= 63
    assert name == name.lower()


def test_a_search_finds_the_chunk_that_answers_it_first(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))

    hits = search(index, "which day does the Leeds warehouse ship orders")

    assert hits[0].key == "DOC1:00000"
    assert hits[0].metadata == {
        "documentId": "DOC1",
        "ordinal": 0,
        "page": 1,
        "fileName": "handbook.pdf",
        "text": FACTS[0],
    }
    assert len(hits) == 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert 0 < hits[0].score <= 1


def test_the_same_vector_scores_one(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))

    assert search(index, FACTS[1], top_k=1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_putting_a_key_again_replaces_it(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))
    vectors.put(index, records("DOC1", ["Orders now leave the Leeds warehouse on Fridays."]))

    hits = search(index, "leeds warehouse", top_k=10)

    assert len(hits) == len(FACTS)
    assert hits[0].metadata["text"] == "Orders now leave the Leeds warehouse on Fridays."


def test_deleted_chunks_are_found_no_more_and_missing_keys_are_fine(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS) + records("DOC2", ["The Leeds warehouse has a loading bay."]))

    vectors.delete(index, ["DOC1:00000", "DOC1:00001", "DOC9:00000"])

    keys = [hit.key for hit in search(index, "leeds warehouse orders", top_k=10)]
    assert keys[0] == "DOC2:00000"
    assert sorted(keys) == ["DOC1:00002", "DOC1:00003", "DOC2:00000"]


def test_writes_and_deletes_go_500_a_call(index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.client import BaseClient

    calls: list[tuple[str, int]] = []
    original = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation in ("PutVectors", "DeleteVectors"):
            calls.append((operation, len(params.get("vectors") or params.get("keys") or [])))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    texts = [f"section {number} of the long manual" for number in range(1_201)]
    vectors.put(index, records("BIG", texts))
    vectors.delete(index, [f"BIG:{ordinal:05d}" for ordinal in range(1_100)])

    assert calls == [("PutVectors", 500), ("PutVectors", 500), ("PutVectors", 201),
                     ("DeleteVectors", 500), ("DeleteVectors", 500), ("DeleteVectors", 100)]  # fmt: skip
    left = search(index, "section of the long manual", top_k=100)
    assert len(left) == 100
    assert all(hit.metadata["ordinal"] >= 1_100 for hit in left)


def test_top_k_is_capped_at_s3_vectors_100(index: str) -> None:
    vectors.put(index, records("BIG", [f"note {number}" for number in range(150)]))

    assert len(search(index, "note", top_k=500)) == 100
    with pytest.raises(ValueError, match="top_k"):
        search(index, "note", top_k=0)


def test_creating_an_index_twice_keeps_its_vectors(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))

    vectors.create_index(index, 256)

    assert len(search(index, "anything", top_k=10)) == len(FACTS)
    stored = client("s3vectors").get_index(vectorBucketName=os.environ["VECTOR_BUCKET"], indexName=index)["index"]
    assert (stored["dimension"], stored["distanceMetric"], stored["dataType"]) == (256, "cosine", "float32")


def test_an_index_of_another_dimension_is_a_conflict(index: str) -> None:
    with pytest.raises(vectors.IndexDimensionConflict, match="256"):
        vectors.create_index(index, 1024)


def test_a_deleted_index_finds_nothing_and_deleting_again_is_fine(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))

    vectors.delete_index(index)
    vectors.delete_index(index)
    vectors.delete(index, ["DOC1:00000"])

    assert search(index, "leeds") == []
    with pytest.raises(vectors.MissingIndex):
        vectors.put(index, records("DOC1", FACTS))


def test_metadata_over_s3_vectors_limits_is_refused_before_anything_is_written(index: str) -> None:
    too_long = records("DOC1", ["x " * 21_000])
    too_filterable = [VectorRecord("DOC2:00000", too_long[0].vector, {"documentId": "DOC2", "note": "y" * 2_100})]

    with pytest.raises(ValueError, match="40960"):
        vectors.put(index, records("DOC0", FACTS) + too_long)
    with pytest.raises(ValueError, match="filterable metadata"):
        vectors.put(index, too_filterable)
    assert search(index, "leeds", top_k=10) == []
    # A long chunk text is fine: it is non-filterable, so only the 40 KB total bounds it.
    vectors.put(index, records("DOC3", ["z " * 10_000]))


def query_vectors(index: str, text: str, **arguments: Any) -> dict[str, Any]:
    return client("s3vectors").query_vectors(  # type: ignore[no-any-return]
        vectorBucketName=os.environ["VECTOR_BUCKET"],
        indexName=index,
        queryVector={"float32": hashing_embedder().embed_query(text)},
        **arguments,
    )


def test_local_query_vectors_filters_metadata_as_s3_vectors_documents(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS) + records("DOC2", FACTS[:2], file_name="other.pdf"))

    def keys(metadata_filter: dict[str, Any]) -> list[str]:
        found = query_vectors(index, "warehouse orders", topK=20, filter=metadata_filter)["vectors"]
        return sorted(hit["key"] for hit in found)

    assert keys({"documentId": "DOC2"}) == ["DOC2:00000", "DOC2:00001"]
    assert keys({"documentId": {"$eq": "DOC2"}}) == ["DOC2:00000", "DOC2:00001"]
    assert keys({"ordinal": {"$in": [2, 3]}}) == ["DOC1:00002", "DOC1:00003"]
    assert keys({"$and": [{"documentId": "DOC1"}, {"page": {"$gte": 3}}]}) == ["DOC1:00002", "DOC1:00003"]
    assert keys({"$or": [{"ordinal": 3}, {"documentId": {"$ne": "DOC1"}}]}) == ["DOC1:00003", "DOC2:00000",
                                                                                 "DOC2:00001"]  # fmt: skip
    assert keys({"ordinal": {"$nin": [0, 1, 2]}}) == ["DOC1:00003"]
    assert keys({"missing": {"$exists": False}, "page": {"$lt": 2}}) == ["DOC1:00000", "DOC2:00000"]


def test_local_query_vectors_refuses_what_s3_vectors_refuses(index: str) -> None:
    from botocore.exceptions import ClientError

    for arguments in (
        {"topK": 5, "filter": {"text": "Refunds"}},  # non-filterable
        {"topK": 5, "filter": {"ordinal": {"$like": 1}}},
        {"topK": 101},
    ):
        with pytest.raises(ClientError, match="ValidationException"):
            query_vectors(index, "refunds", **arguments)
    with pytest.raises(ClientError, match="ValidationException"):
        client("s3vectors").query_vectors(
            vectorBucketName=os.environ["VECTOR_BUCKET"], indexName=index, queryVector={"float32": [1.0, 0.0]}, topK=1
        )


def test_local_query_vectors_returns_only_what_is_asked(index: str) -> None:
    vectors.put(index, records("DOC1", FACTS))

    bare = query_vectors(index, "refunds to the card", topK=2)
    assert bare["distanceMetric"] == "cosine"
    assert bare["vectors"][0] == {"key": "DOC1:00001"}

    full = query_vectors(index, "refunds to the card", topK=2, returnDistance=True, returnMetadata=True)
    assert full["vectors"][0]["metadata"]["text"] == FACTS[1]
    assert 0 <= full["vectors"][0]["distance"] < full["vectors"][1]["distance"]


def test_local_query_vectors_measures_euclidean_distance_where_the_index_declares_it(aws: None) -> None:
    s3vectors = client("s3vectors")
    bucket = os.environ["VECTOR_BUCKET"]
    s3vectors.create_index(
        vectorBucketName=bucket, indexName="points", dataType="float32", dimension=2, distanceMetric="euclidean"
    )
    points = {"origin": [0.0, 0.0], "near": [3.0, 4.0], "far": [30.0, 40.0]}
    s3vectors.put_vectors(
        vectorBucketName=bucket,
        indexName="points",
        vectors=[{"key": key, "data": {"float32": point}} for key, point in points.items()],
    )

    found = s3vectors.query_vectors(
        vectorBucketName=bucket, indexName="points", queryVector={"float32": [0.0, 0.0]}, topK=3, returnDistance=True
    )["vectors"]

    assert [(hit["key"], hit["distance"]) for hit in found] == [("origin", 0.0), ("near", 5.0), ("far", 50.0)]
