"""The vector store against the moto server of `make dev` (its own process), which answers QueryVectors too."""

from __future__ import annotations

import os

from functions.agents import vectors
from functions.agents.vectors import VectorRecord
from infra.local.aws import start_local_aws
from infra.local.provision import vector_bucket_name
from shared.llm.embeddings import hashing_embedder


def test_the_local_stack_keeps_and_searches_an_agents_vectors() -> None:
    embedder = hashing_embedder()
    texts = ["Invoices are due thirty days after delivery.", "The canteen closes at three on Fridays."]
    with start_local_aws("vectors") as aws:
        assert aws.environment["VECTOR_BUCKET"] == os.environ["VECTOR_BUCKET"] == vector_bucket_name("vectors")
        name = vectors.index_name("01HZAGENT0000000000000000B", 0)
        vectors.create_index(name, embedder.info.dimension)
        vectors.put(
            name,
            [
                VectorRecord(f"DOC:{ordinal:05d}", vector, {"documentId": "DOC", "ordinal": ordinal, "text": text})
                for ordinal, (text, vector) in enumerate(zip(texts, embedder.embed_documents(texts), strict=True))
            ],
        )

        hits = vectors.query(name, embedder.embed_query("when are invoices due"), 5)
        vectors.delete(name, ["DOC:00000"])
        after_delete = vectors.query(name, embedder.embed_query("when are invoices due"), 5)

    assert [hit.key for hit in hits] == ["DOC:00000", "DOC:00001"]
    assert hits[0].metadata["text"] == texts[0]
    assert hits[0].score > hits[1].score
    assert [hit.key for hit in after_delete] == ["DOC:00001"]
