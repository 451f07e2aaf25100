"""Text embeddings behind one interface: OpenAI `text-embedding-3-small`, Bedrock Titan embeddings v2, and two offline
embedders (wordllama, shipped inside its wheel, for local mode; a deterministic hashing embedder for unit tests and
stages with no provider). Every vector is unit length. Provider SDKs, boto3, numpy and wordllama load inside the
embedders, on first use: importing this module costs nothing.

Which embedder a stage uses (`stage_embedder`): `EMBEDDING_MODEL` if set; else OpenAI if an OpenAI key is configured
(shared.llm.config reads it, from the environment or the provider-keys secret); else Titan where the stage enables
Bedrock; else offline. An index records the embedder's id and dimension: vectors of two embedders never mix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from shared.llm.config import LlmConfig, LlmConfigError, ProviderConfig, get_llm_config
from shared.llm.providers import estimate_tokens
from shared.settings import EMBEDDER_IDS, get_settings

if TYPE_CHECKING:
    from openai import OpenAI

OPENAI_EMBEDDER, TITAN_EMBEDDER, WORDLLAMA_EMBEDDER, HASHING_EMBEDDER = EMBEDDER_IDS

OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
TITAN_EMBEDDING_MODEL = "amazon.titan-embed-text-v2:0"
# OpenAI takes up to 2,048 inputs and 300k tokens a request; smaller batches keep each request well inside both.
OPENAI_BATCH_INPUTS = 256
OPENAI_BATCH_TOKENS = 250_000
# Titan embeds one text a call: a batch runs this many calls at once.
TITAN_CONCURRENCY = 8
TITAN_DIMENSION = 1024
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class EmbedderInfo:
    id: str
    dimension: int
    # The offline embedders: labelled as such wherever they are named (their search is rough, not a model's).
    offline: bool


class Embedder(Protocol):
    info: EmbedderInfo

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order; batched as the provider needs."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The unit vector a search for `text` compares against."""
        ...


def unit_length(vector: Sequence[float]) -> list[float]:
    """`vector` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0:
        return [float(value) for value in vector]
    return [value / norm for value in vector]


class HashingEmbedder:
    """Feature hashing of lowercased word unigrams and bigrams into `dimension` signed buckets, L2-normalised:
    texts sharing words point the same way. Deterministic across processes (blake2b, not `hash`), pure Python."""

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 1:
            raise ValueError("dimension must be positive")
        self.info = EmbedderInfo(HASHING_EMBEDDER, dimension, offline=True)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        dimension = self.info.dimension
        vector = [0.0] * dimension
        words = _WORD.findall(text.lower())
        # A text with no words still gets a unit vector, the same for every such text.
        features = [*words, *(f"{first} {second}" for first, second in itertools.pairwise(words))] or [""]
        for feature in features:
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            vector[digest % dimension] += 1.0 if digest >> 63 else -1.0
        if not any(vector):  # every feature cancelled out
            vector[0] = 1.0
        return unit_length(vector)


class WordLlamaEmbedder:
    """wordllama's 256-dimension model, loaded from inside its wheel (never from a hub) on first use."""

    info = EmbedderInfo(WORDLLAMA_EMBEDDER, 256, offline=True)

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from pathlib import Path

                import wordllama  # type: ignore[import-untyped]

                self._model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
            return self._model

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._loaded().embed(list(texts), norm=True)
        return [unit_length(row) for row in vectors.tolist()]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class OpenAIEmbedder:
    """`text-embedding-3-small` (1,536 dimensions) through the official SDK, which honours OPENAI_BASE_URL when no
    base URL is configured. Retries are the SDK's: unlike chat there is no next provider to fail over to."""

    info = EmbedderInfo(OPENAI_EMBEDDER, 1536, offline=False)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._client: OpenAI | None = None
        self._lock = threading.Lock()

    def _sdk(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                import httpx2
                import openai

                timeout = httpx2.Timeout(self._read_timeout, connect=self._connect_timeout)
                if self._base_url is None:
                    self._client = openai.OpenAI(api_key=self._api_key, timeout=timeout)
                else:
                    self._client = openai.OpenAI(api_key=self._api_key, base_url=self._base_url, timeout=timeout)
            return self._client

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in openai_batches(texts):
            response = self._sdk().embeddings.create(model=OPENAI_EMBEDDING_MODEL, input=batch)
            ordered = sorted(response.data, key=lambda item: item.index)
            if len(ordered) != len(batch):
                raise RuntimeError(f"OpenAI returned {len(ordered)} embeddings for {len(batch)} inputs")
            vectors.extend(unit_length(item.embedding) for item in ordered)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def openai_batches(texts: Sequence[str]) -> list[list[str]]:
    """`texts` in order, cut into requests of at most 256 inputs and about 250k tokens."""
    batches: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        cost = estimate_tokens(text)
        if current and (len(current) == OPENAI_BATCH_INPUTS or tokens + cost > OPENAI_BATCH_TOKENS):
            batches.append(current)
            current, tokens = [], 0
        current.append(text)
        tokens += cost
    if current:
        batches.append(current)
    return batches


class TitanEmbedder:
    """Bedrock's Titan Text Embeddings v2 at 1,024 dimensions, normalised by the model, through the function's IAM
    role; one text per InvokeModel, a batch's calls run on a small thread pool. `client` injects a ready
    bedrock-runtime client (tests)."""

    info = EmbedderInfo(TITAN_EMBEDDER, TITAN_DIMENSION, offline=False)

    def __init__(
        self,
        *,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        self._region = region
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._client = client
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from shared.llm.providers.bedrock import bedrock_runtime

                # botocore retries a throttled call: a document's embeddings have no other provider to fail over to.
                _, self._client = bedrock_runtime(
                    self._region,
                    connect_timeout=self._connect_timeout,
                    read_timeout=self._read_timeout,
                    attempts=3,
                    connections=TITAN_CONCURRENCY,
                )
            return self._client

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) <= 1:
            return [self.embed_query(text) for text in texts]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(TITAN_CONCURRENCY, len(texts))) as pool:
            return list(pool.map(self.embed_query, texts))

    def embed_query(self, text: str) -> list[float]:
        body = {"inputText": text, "dimensions": TITAN_DIMENSION, "normalize": True}
        response = self.client().invoke_model(
            modelId=TITAN_EMBEDDING_MODEL,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        embedding = json.loads(response["body"].read())["embedding"]
        if len(embedding) != TITAN_DIMENSION:
            raise RuntimeError(f"Titan returned {len(embedding)} dimensions, not {TITAN_DIMENSION}")
        return unit_length(embedding)


def hashing_embedder(dimension: int = 256) -> Embedder:
    """The deterministic offline embedder (unit tests; stages with no provider)."""
    return HashingEmbedder(dimension)


def wordllama_available() -> bool:
    """wordllama is installed (local mode, tests): it has no aarch64 wheel, so no deployed function has it."""
    from importlib.util import find_spec

    return find_spec("wordllama") is not None


def embedder_id_for(model: str | None, config: LlmConfig, *, wordllama_installed: bool) -> str:
    """Which embedder a stage uses: `model` (EMBEDDING_MODEL) if given, else OpenAI with a key, else Titan where
    Bedrock is enabled, else wordllama if installed, else hashing. `LlmConfigError` if `model` names an embedder
    the stage cannot reach."""
    if model:
        if model not in EMBEDDER_IDS:
            raise LlmConfigError(f"EMBEDDING_MODEL must be one of {', '.join(EMBEDDER_IDS)}")
        if model == OPENAI_EMBEDDER and _openai(config) is None:
            raise LlmConfigError("EMBEDDING_MODEL names OpenAI, but no OpenAI key is configured")
        if model == TITAN_EMBEDDER and config.provider("bedrock") is None:
            raise LlmConfigError("EMBEDDING_MODEL names Bedrock Titan, but BEDROCK_ENABLED is not set")
        if model == WORDLLAMA_EMBEDDER and not wordllama_installed:
            raise LlmConfigError("EMBEDDING_MODEL names wordllama, which is not installed here")
        return model
    if _openai(config) is not None:
        return OPENAI_EMBEDDER
    if config.provider("bedrock") is not None:
        return TITAN_EMBEDDER
    return WORDLLAMA_EMBEDDER if wordllama_installed else HASHING_EMBEDDER


def build_embedder(embedder_id: str, config: LlmConfig) -> Embedder:
    if embedder_id == OPENAI_EMBEDDER:
        openai = _openai(config)
        assert openai is not None
        assert openai.api_key is not None
        return OpenAIEmbedder(
            api_key=openai.api_key,
            base_url=openai.base_url,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
    if embedder_id == TITAN_EMBEDDER:
        bedrock = config.provider("bedrock")
        return TitanEmbedder(
            region=bedrock.region if bedrock else None,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
    if embedder_id == WORDLLAMA_EMBEDDER:
        return WordLlamaEmbedder()
    return HashingEmbedder()


def _openai(config: LlmConfig) -> ProviderConfig | None:
    """OpenAI itself (not a compatible endpoint, which may serve no embeddings), when it has a key."""
    provider = config.provider("openai")
    return provider if provider is not None and provider.kind == "openai" and provider.api_key else None


@lru_cache(maxsize=1)
def stage_embedder() -> Embedder:
    """The container's embedder, chosen once (see the module's docstring)."""
    config = get_llm_config()
    embedder_id = embedder_id_for(get_settings().embedding_model, config, wordllama_installed=wordllama_available())
    return build_embedder(embedder_id, config)


def forget_stage_embedder() -> None:
    """Choose the embedder again on next use (tests that change the configuration)."""
    stage_embedder.cache_clear()
