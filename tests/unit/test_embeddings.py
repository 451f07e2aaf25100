"""The embedders' contract (unit vectors, determinism, meaning for the offline model) and which one a stage uses."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from shared.llm.config import LlmConfigError, llm_config_from_environ
from shared.llm.embeddings import (
    EMBEDDER_IDS,
    HASHING_EMBEDDER,
    OPENAI_EMBEDDER,
    TITAN_EMBEDDER,
    WORDLLAMA_EMBEDDER,
    HashingEmbedder,
    OpenAIEmbedder,
    TitanEmbedder,
    WordLlamaEmbedder,
    embedder_id_for,
    hashing_embedder,
    openai_batches,
    stage_embedder,
)
from shared.settings import get_settings, settings_from_environ


def cosine(first: list[float], second: list[float]) -> float:
    return sum(a * b for a, b in zip(first, second, strict=True))


def length(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


def test_hashing_embedder_is_deterministic_and_unit_length() -> None:
    texts = ["The invoice is due on the 3rd of March.", "", "!!!", "word " * 500]
    first = hashing_embedder().embed_documents(texts)
    again = HashingEmbedder(256).embed_documents(texts)

    assert first == again
    assert all(len(vector) == 256 for vector in first)
    assert all(length(vector) == pytest.approx(1.0) for vector in first)
    assert hashing_embedder().embed_query(texts[0]) == first[0]


def test_hashing_embedder_points_texts_sharing_words_the_same_way() -> None:
    embedder = hashing_embedder()
    query = embedder.embed_query("when is the invoice due")
    related = embedder.embed_query("The invoice is due on the 3rd of March.")
    unrelated = embedder.embed_query("Penguins huddle together through the polar winter.")

    assert cosine(query, related) > cosine(query, unrelated)


def test_hashing_embedder_takes_its_dimension() -> None:
    embedder = hashing_embedder(1024)

    assert embedder.info.dimension == 1024
    assert len(embedder.embed_query("hello")) == 1024
    assert embedder.info.offline
    with pytest.raises(ValueError, match="dimension"):
        hashing_embedder(0)


def test_wordllama_ranks_a_paraphrase_above_an_unrelated_sentence() -> None:
    embedder = WordLlamaEmbedder()
    fact, paraphrase, unrelated = embedder.embed_documents(
        [
            "The warehouse in Leeds ships orders every Tuesday morning.",
            "On which weekday are orders sent out from the Leeds depot?",
            "Our quarterly marketing budget was approved by the board.",
        ]
    )

    assert embedder.info == embedder.info.__class__(WORDLLAMA_EMBEDDER, 256, offline=True)
    assert all(len(vector) == 256 and length(vector) == pytest.approx(1.0, abs=1e-5) for vector in (fact, paraphrase))
    assert cosine(paraphrase, fact) > cosine(paraphrase, unrelated)
    assert embedder.embed_documents([]) == []


def test_openai_batches_at_256_inputs_and_250k_tokens_in_order() -> None:
    small = [f"text {number}" for number in range(600)]
    batches = openai_batches(small)
    assert [len(batch) for batch in batches] == [256, 256, 88]
    assert [text for batch in batches for text in batch] == small

    huge = ["x" * 480_000, "y" * 480_000, "z" * 480_000]  # about 120k tokens each
    assert [len(batch) for batch in openai_batches(huge)] == [2, 1]
    assert openai_batches([]) == []


def config(**environ: str) -> object:
    return llm_config_from_environ({"AWS_REGION": "eu-west-1", **environ}, read_secret=lambda _: "{}")


@pytest.mark.parametrize(
    ("environ", "wordllama", "expected"),
    [
        ({"OPENAI_API_KEY": "sk-test", "BEDROCK_ENABLED": "true"}, True, OPENAI_EMBEDDER),
        ({"ANTHROPIC_API_KEY": "sk-ant", "BEDROCK_ENABLED": "true"}, True, TITAN_EMBEDDER),
        ({"ANTHROPIC_API_KEY": "sk-ant"}, True, WORDLLAMA_EMBEDDER),
        ({}, False, HASHING_EMBEDDER),
    ],
    ids=["openai-key-first", "bedrock-next", "offline-wordllama", "offline-hashing-without-wordllama"],
)
def test_the_stage_embedder_follows_the_configured_providers(
    environ: dict[str, str], wordllama: bool, expected: str
) -> None:
    assert embedder_id_for(None, config(**environ), wordllama_installed=wordllama) == expected  # type: ignore[arg-type]


def test_a_compatible_endpoint_is_not_taken_for_openai_embeddings() -> None:
    compatible = '[{"name": "ollama", "baseUrl": "http://127.0.0.1:11434/v1", "models": ["gpt-5"]}]'

    chosen = embedder_id_for(None, config(OPENAI_COMPATIBLE_PROVIDERS=compatible), wordllama_installed=False)  # type: ignore[arg-type]

    assert chosen == HASHING_EMBEDDER


def test_embedding_model_wins_when_the_stage_can_reach_it() -> None:
    both = config(OPENAI_API_KEY="sk-test", BEDROCK_ENABLED="true")

    assert embedder_id_for(TITAN_EMBEDDER, both, wordllama_installed=False) == TITAN_EMBEDDER  # type: ignore[arg-type]
    assert embedder_id_for(HASHING_EMBEDDER, both, wordllama_installed=True) == HASHING_EMBEDDER  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (OPENAI_EMBEDDER, "no OpenAI key"),
        (TITAN_EMBEDDER, "BEDROCK_ENABLED"),
        (WORDLLAMA_EMBEDDER, "not installed"),
        ("cohere/embed-v4", "must be one of"),
    ],
)
def test_embedding_model_the_stage_cannot_reach_is_refused(model: str, message: str) -> None:
    with pytest.raises(LlmConfigError, match=message):
        embedder_id_for(model, config(), wordllama_installed=False)  # type: ignore[arg-type]


def test_embedding_model_is_validated_with_the_settings() -> None:
    assert settings_from_environ({"STAGE": "dev", "EMBEDDING_MODEL": TITAN_EMBEDDER}).embedding_model == TITAN_EMBEDDER
    assert settings_from_environ({"STAGE": "dev"}).embedding_model == ""
    with pytest.raises(RuntimeError, match=r"EMBEDDING_MODEL: .*must be one of"):
        settings_from_environ({"STAGE": "dev", "EMBEDDING_MODEL": "openai/text-embedding-ada-002"})
    assert len(EMBEDDER_IDS) == len(set(EMBEDDER_IDS)) == 4


def test_stage_embedder_is_built_once_from_the_environment(
    llm_environment: Callable[..., None], fresh_settings: None
) -> None:
    llm_environment(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    openai = stage_embedder()
    assert isinstance(openai, OpenAIEmbedder)
    assert openai.info.id == OPENAI_EMBEDDER
    assert openai.info.dimension == 1536
    assert not openai.info.offline
    assert stage_embedder() is openai

    llm_environment(EMBEDDING_MODEL=TITAN_EMBEDDER, BEDROCK_ENABLED="true")
    get_settings.cache_clear()
    titan = stage_embedder()
    assert isinstance(titan, TitanEmbedder)
    assert titan.info.dimension == 1024

    llm_environment(EMBEDDING_MODEL="", OPENAI_API_KEY="", BEDROCK_ENABLED="false")
    get_settings.cache_clear()
    assert stage_embedder().info.id == WORDLLAMA_EMBEDDER  # installed with the local group, as in tests
