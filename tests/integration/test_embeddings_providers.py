"""The provider embedders through their real clients against the fakes: what is sent, what comes back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.llm.embeddings import TITAN_EMBEDDER, OpenAIEmbedder, TitanEmbedder, hashing_embedder, stage_embedder
from tests.fakes.bedrock import FakeBedrock, bedrock_client
from tests.fakes.openai_server import FakeOpenAI


def test_openai_embeds_through_the_sdk_in_batches_in_order(openai_fake: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(api_key="sk-test", base_url=openai_fake.base_url)
    texts = [f"chunk number {number} of the handbook" for number in range(300)]

    vectors = embedder.embed_documents(texts)

    requests = [request for request in openai_fake.requests if request.path == "/v1/embeddings"]
    assert [len(request.body["input"]) for request in requests] == [256, 44]
    assert all(request.body["model"] == "text-embedding-3-small" for request in requests)
    assert "dimensions" not in requests[0].body  # the model's own 1,536
    assert requests[0].headers["authorization"] == "Bearer sk-test"
    # The SDK asks for base64 by default and decodes it: the vectors are the fake's, in input order.
    assert requests[0].body["encoding_format"] == "base64"
    expected = hashing_embedder(1536).embed_documents(texts)
    assert len(vectors) == 300
    assert all(len(vector) == 1536 for vector in vectors)
    assert vectors[0] == pytest.approx(expected[0], abs=1e-6)
    assert vectors[299] == pytest.approx(expected[299], abs=1e-6)
    assert embedder.embed_query(texts[7]) == pytest.approx(expected[7], abs=1e-6)


def test_openai_retries_a_server_error_and_surfaces_a_refused_key(openai_fake: FakeOpenAI) -> None:
    import openai

    embedder = OpenAIEmbedder(api_key="sk-test", base_url=openai_fake.base_url)
    openai_fake.fail(503, message="overloaded")
    assert embedder.embed_query("anything") == pytest.approx(hashing_embedder(1536).embed_query("anything"), abs=1e-6)
    assert len(openai_fake.requests) == 2

    openai_fake.fail(401, message="bad key")
    with pytest.raises(openai.AuthenticationError):
        embedder.embed_query("anything")


def test_the_stage_embedder_honours_openai_base_url(
    openai_fake: FakeOpenAI, llm_environment: Callable[..., None], fresh_settings: None
) -> None:
    llm_environment(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=openai_fake.base_url)

    vector = stage_embedder().embed_query("where is the Leeds warehouse")

    assert openai_fake.last_request.path == "/v1/embeddings"
    assert vector == pytest.approx(hashing_embedder(1536).embed_query("where is the Leeds warehouse"), abs=1e-6)


def test_titan_embeds_one_text_a_call_concurrently(bedrock_fake: FakeBedrock) -> None:
    embedder = TitanEmbedder(client=bedrock_fake.attach(bedrock_client()))
    texts = [f"paragraph {number}" for number in range(20)]

    vectors = embedder.embed_documents(texts)

    assert embedder.info.id == TITAN_EMBEDDER
    assert len(bedrock_fake.requests) == 20
    assert all("amazon.titan-embed-text-v2%3A0/invoke" in request.path for request in bedrock_fake.requests)
    bodies = sorted((request.body for request in bedrock_fake.requests), key=lambda body: int(body["inputText"][10:]))
    assert bodies[3] == {"inputText": "paragraph 3", "dimensions": 1024, "normalize": True}
    expected = hashing_embedder(1024).embed_documents(texts)
    assert len(vectors) == len(expected)
    for vector, wanted in zip(vectors, expected, strict=True):  # each vector back in its text's place
        assert vector == pytest.approx(wanted)


def test_titan_failure_is_the_service_error(bedrock_fake: FakeBedrock) -> None:
    from botocore.exceptions import ClientError

    bedrock_fake.fail(403, message="model access is not enabled")
    embedder = TitanEmbedder(client=bedrock_fake.attach(bedrock_client()))

    with pytest.raises(ClientError, match="AccessDeniedException"):
        embedder.embed_query("anything")
