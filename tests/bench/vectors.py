"""`make bench` (vectors): an agent's search on the local stack, as `make dev` runs it, and the offline embedder.

Search: `functions.agents.vectors.query` with a query embedding, through boto3 to the moto server process (which
answers QueryVectors itself, infra.local.s3vectors), top 5 with metadata, at 1,000 and 10,000 chunks of 256
dimensions (wordllama's vectors of generated chunk texts). Embedding: wordllama's throughput on chunks of about
350 tokens, in the batches processing sends, and one query's latency.
"""

from __future__ import annotations

import time

SIZES = (1_000, 10_000)
QUERIES = 200
TOP_K = 5
EMBED_CHUNKS = 1_000
_TOPICS = ("invoice", "warehouse", "refund", "holiday", "password", "contract", "delivery", "canteen", "laptop")


def chunk_text(number: int) -> str:
    """A chunk-sized text (~1,400 characters) with its own facts, so chunks differ the way a handbook's do."""
    topic = _TOPICS[number % len(_TOPICS)]
    return (
        f"Section {number}: the {topic} policy. "
        + f"Item {number} of the {topic} rules says staff in team {number % 37} must file form {number % 101}. " * 14
    )


def report_vectors() -> None:
    from functions.agents import vectors
    from infra.local.aws import start_local_aws
    from shared.llm.embeddings import WordLlamaEmbedder
    from tests.bench.__main__ import percentiles

    embedder = WordLlamaEmbedder()
    texts = [chunk_text(number) for number in range(max(SIZES))]
    embedder.embed_documents(texts[:8])  # the model loads once
    started = time.perf_counter()
    embedded = embedder.embed_documents(texts[:EMBED_CHUNKS])
    embed_seconds = time.perf_counter() - started
    query_ms = []
    for number in range(QUERIES):
        began = time.perf_counter()
        embedder.embed_query(f"which form does team {number % 37} file for the {_TOPICS[number % 9]} policy")
        query_ms.append((time.perf_counter() - began) * 1000)
    embedded += embedder.embed_documents(texts[EMBED_CHUNKS:])

    print("\nAgents' knowledge: embeddings (offline/wordllama, 256 dimensions)")
    print(f"  {'embed 1,000 chunks of ~350 tokens':<40} {embed_seconds * 1000:8.1f} ms   "
          f"{EMBED_CHUNKS / embed_seconds:8.0f} chunks/s")  # fmt: skip
    print(f"  {'embed one query':<40} {percentiles(query_ms)}")

    queries = [embedder.embed_query(f"what must team {n % 37} file about {_TOPICS[n % 9]}") for n in range(QUERIES)]
    print(f"\nAgents' knowledge: search on the local stack's moto server (top {TOP_K}, with metadata, {QUERIES} each)")
    with start_local_aws("bench-vectors"):
        name = vectors.index_name("BENCHAGENT", 0)
        vectors.create_index(name, embedder.info.dimension)
        stored = 0
        for size in SIZES:
            records = [
                vectors.VectorRecord(
                    f"DOC{number // 100}:{number % 100:05d}",
                    embedded[number],
                    {"documentId": f"DOC{number // 100}", "ordinal": number % 100, "fileName": "handbook.pdf",
                     "text": texts[number]},
                )
                for number in range(stored, size)
            ]  # fmt: skip
            began = time.perf_counter()
            vectors.put(name, records)
            put_seconds = time.perf_counter() - began
            stored = size
            vectors.query(name, queries[0], TOP_K)  # the first query after a write builds the index's matrix
            samples = []
            for query in queries:
                began = time.perf_counter()
                hits = vectors.query(name, query, TOP_K)
                samples.append((time.perf_counter() - began) * 1000)
                assert len(hits) == TOP_K
            print(f"  {f'{size:,} chunks':<40} {percentiles(samples)}")
            print(f"  {f'  put {len(records):,} chunks (500 a call)':<40} {put_seconds * 1000:8.1f} ms")
