"""`make bench` (agents): a 100-page PDF uploaded through its presigned URL on the local stack and processed end to
end (S3's notification through the gateway to the processor: extract, chunk, embed offline with wordllama, index
in moto's S3 Vectors), with the time of each step and of the whole, from the PUT to the document `ready`."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

PASSWORD = "correct horse battery"
PROCESSING_TIMEOUT_SECONDS = 600


@contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Seconds spent in each step of processing (summed over calls), measured around the functions the processor
    calls: extraction, chunking, the embedder's batch, the vector store's PutVectors."""
    from functions.agents import documents, vectors
    from shared.llm import embeddings

    spent: dict[str, float] = defaultdict(float)
    lock = threading.Lock()

    def timing(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    spent[step] += time.perf_counter() - started

        return timed

    embedder = embeddings.stage_embedder()
    with (
        patch.object(documents, "extract", timing("extract", documents.extract)),
        patch.object(documents, "chunk", timing("chunk", documents.chunk)),
        patch.object(embedder, "embed_documents", timing("embed", embedder.embed_documents)),
        patch.object(vectors, "put", timing("index", vectors.put)),
    ):
        yield spent


def report_agents() -> None:
    import httpx

    os.environ.update(POWERTOOLS_LOG_LEVEL="ERROR")
    for name in ("httpx", "mangum.http"):  # a line per request would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    from tests.bench.stack import running_local_stack
    from tests.fakes.anthropic_server import FakeAnthropic
    from tests.fakes.documents import hundred_page_pdf

    data = hundred_page_pdf()
    with (
        FakeAnthropic() as model,
        _model_at(model),
        running_local_stack("bench-agents") as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", timeout=60) as http,
    ):
        from shared.llm.embeddings import stage_embedder

        signed_up = http.post("/auth/register", json={"email": "admin@example.com", "password": PASSWORD}).json()
        auth = {"authorization": f"Bearer {signed_up['accessToken']}"}
        agent = http.post("/agents", headers=auth, json={"name": "Bench"}).json()
        declared = {"fileName": "hundred.pdf", "contentType": "application/pdf", "sizeBytes": len(data)}
        upload = http.post(f"/agents/{agent['agentId']}/documents", headers=auth, json=declared).json()
        path = f"/agents/{agent['agentId']}/documents/{upload['documentId']}"
        embedder = stage_embedder().info
        print(
            f"\nAgents: a 100-page PDF ({len(data) / 1024:,.0f} KiB), "
            f"embedder {embedder.id} ({embedder.dimension} dims)"
        )
        with timed_steps() as spent:
            started = time.perf_counter()
            httpx.put(upload["uploadUrl"], content=data, headers={"content-type": "application/pdf"}).raise_for_status()
            uploaded = time.perf_counter()
            deadline = uploaded + PROCESSING_TIMEOUT_SECONDS
            while (document := http.get(path, headers=auth).json())["status"] in ("uploading", "processing"):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"still {document['status']} after {PROCESSING_TIMEOUT_SECONDS} s")
                time.sleep(0.05)
            ended = time.perf_counter()
        if document["status"] != "ready":
            raise RuntimeError(f"the document ended {document['status']}: {document.get('error')}")
        total = ended - uploaded
        print(f"  pages {document['pages']}, chunks {document['chunks']}")
        print(f"  upload (PUT)       {(uploaded - started) * 1000:8.0f} ms")
        for step in ("extract", "chunk", "embed", "index"):
            print(f"  {step:<18} {spent[step] * 1000:8.0f} ms")
        rest = total - sum(spent.values())
        print(f"  the rest           {rest * 1000:8.0f} ms   (notification, S3 reads, DynamoDB, polling)")
        print(f"  PUT to ready       {total * 1000:8.0f} ms")
        query = {"query": "What does the report say about the budget?"}
        searches = []
        for _ in range(20):
            at = time.perf_counter()
            http.post(f"/agents/{agent['agentId']}/search", headers=auth, json=query).raise_for_status()
            searches.append((time.perf_counter() - at) * 1000)
        searches.sort()
        print(f"  search over its chunks: median {searches[len(searches) // 2]:.1f} ms (20 calls through the gateway)")
        _report_first_tokens(base_url, agent["agentId"])


@contextmanager
def _model_at(model: Any) -> Iterator[None]:
    from tests.fakes.scripted import Reply

    model.default = Reply(" ".join(f"word{n}" for n in range(50)), input_tokens=100)
    os.environ.update(ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=model.base_url)
    yield


def _report_first_tokens(base_url: str, agent_id: str) -> None:
    """The first token of a chat with the agent (its instructions, the top 5 of its 271 chunks retrieved from the
    index, in the prompt) beside a plain chat, on the same stack and model, in one run."""
    import statistics

    from tests.bench.__main__ import CHAT_RUNS, _chat_over_http, percentiles

    (plain, _), _ = _chat_over_http(base_url, [], email="plain@example.com")
    (grounded, _), _ = _chat_over_http(base_url, [], email="grounded@example.com", extra={"agentId": agent_id})
    added = statistics.median(grounded) - statistics.median(plain)
    print(f"\nFirst token with an agent ({CHAT_RUNS} replies each, fake Anthropic)")
    print(f"  {'plain chat':<40} {percentiles(plain)}")
    print(f"  {'chat with the agent (5 chunks retrieved)':<40} {percentiles(grounded)}")
    print(f"  {'added by the agent (p50 difference)':<40} {added:.2f} ms   (goal <= 10 ms)")
