"""The stage's S3 Vectors bucket (env `VECTOR_BUCKET`): one index per agent and generation, holding a vector per
document chunk keyed `<documentId>:<ordinal:05d>`, with the chunk's text and file name in non-filterable metadata.

One index per agent: deleting an agent is one DeleteIndex, each index has the dimension of the embedder that built
it (a new embedder is a new generation, never a mix), and a query never filters by agent. Local mode and tests make
the same boto3 calls against moto, which `infra.local.s3vectors` teaches QueryVectors.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.aws import client

logger = logging.getLogger(__name__)

# S3 Vectors' limits (botocore's service model; the S3 Vectors limits page).
PUT_BATCH = 500  # vectors per PutVectors
DELETE_BATCH = 500  # keys per DeleteVectors
MAX_TOP_K = 100
MAX_METADATA_BYTES = 40 * 1024  # all of a vector's metadata
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024  # the part a filter may read
# Kept out of filters: they are the bulk of a chunk's metadata and nobody filters on them.
NON_FILTERABLE_KEYS = ("text", "fileName")
DISTANCE_METRIC = "cosine"
_NOT_FOUND = "NotFoundException"
_CONFLICT = "ConflictException"

MetadataValue = str | int | float
_Item = TypeVar("_Item")


@dataclass(frozen=True)
class VectorRecord:
    key: str
    vector: Sequence[float]
    # documentId, ordinal, page (when known), fileName, text.
    metadata: dict[str, MetadataValue]


@dataclass(frozen=True)
class VectorHit:
    key: str
    score: float  # 1 - cosine distance: higher is better
    metadata: dict[str, Any]


class MissingIndex(LookupError):
    """Vectors were written to an index that does not exist (it must be created first, or it was deleted)."""


class IndexDimensionConflict(RuntimeError):
    """An index of this name exists with another dimension: its vectors came from another embedder."""


def bucket() -> str:
    name = os.environ.get("VECTOR_BUCKET")
    if not name:
        raise RuntimeError("VECTOR_BUCKET is not set: the function was deployed without the vector bucket")
    return name


def index_name(agent_id: str, generation: int) -> str:
    """An agent's index for one embedder generation: lowercase, as S3 Vectors names must be."""
    if generation < 0:
        raise ValueError("generation must not be negative")
    return f"agent-{agent_id.lower()}-{generation}"


def create_index(name: str, dimension: int) -> None:
    """Create the index (cosine, float32, `text` and `fileName` non-filterable); nothing if it exists already with
    this dimension, `IndexDimensionConflict` if it exists with another."""
    from botocore.exceptions import ClientError

    try:
        client("s3vectors").create_index(
            vectorBucketName=bucket(),
            indexName=name,
            dataType="float32",
            dimension=dimension,
            distanceMetric=DISTANCE_METRIC,
            metadataConfiguration={"nonFilterableMetadataKeys": list(NON_FILTERABLE_KEYS)},
        )
    except ClientError as error:
        if _code(error) != _CONFLICT:
            raise
        existing = client("s3vectors").get_index(vectorBucketName=bucket(), indexName=name)["index"]
        if int(existing["dimension"]) != dimension:
            raise IndexDimensionConflict(
                f"index {name} holds {existing['dimension']}-dimension vectors, not {dimension}"
            ) from None


def delete_index(name: str) -> None:
    """Delete the index and every vector in it; nothing if it is gone already."""
    from botocore.exceptions import ClientError

    try:
        client("s3vectors").delete_index(vectorBucketName=bucket(), indexName=name)
    except ClientError as error:
        if _code(error) != _NOT_FOUND:
            raise


def put(name: str, records: Sequence[VectorRecord]) -> None:
    """Write the records, 500 a call; a record whose key exists replaces it. `MissingIndex` if there is no index,
    `ValueError` (before anything is written) if a record's metadata is over S3 Vectors' limits."""
    from botocore.exceptions import ClientError

    for record in records:
        check_metadata(record)
    s3vectors = client("s3vectors")
    for batch in _batches(records, PUT_BATCH):
        vectors = [
            {"key": record.key, "data": {"float32": [float(value) for value in record.vector]},
             "metadata": record.metadata}
            for record in batch
        ]  # fmt: skip
        try:
            s3vectors.put_vectors(vectorBucketName=bucket(), indexName=name, vectors=vectors)
        except ClientError as error:
            if _code(error) == _NOT_FOUND:
                raise MissingIndex(f"index {name} does not exist") from None
            raise


def delete(name: str, keys: Sequence[str]) -> None:
    """Delete the vectors of these keys, 500 a call; keys (or an index) that are not there are fine."""
    from botocore.exceptions import ClientError

    s3vectors = client("s3vectors")
    for batch in _batches(keys, DELETE_BATCH):
        try:
            s3vectors.delete_vectors(vectorBucketName=bucket(), indexName=name, keys=list(batch))
        except ClientError as error:
            if _code(error) != _NOT_FOUND:
                raise
            return  # no index: nothing of it is left to delete


def query(name: str, vector: Sequence[float], top_k: int) -> list[VectorHit]:
    """The `top_k` (at most 100) nearest chunks, best first, with their metadata; [] if the index does not exist
    (nothing was ever indexed, or it was deleted)."""
    from botocore.exceptions import ClientError

    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    try:
        response = client("s3vectors").query_vectors(
            vectorBucketName=bucket(),
            indexName=name,
            queryVector={"float32": [float(value) for value in vector]},
            topK=min(top_k, MAX_TOP_K),
            returnDistance=True,
            returnMetadata=True,
        )
    except ClientError as error:
        if _code(error) != _NOT_FOUND:
            raise
        logger.info("vector index %s does not exist: nothing to search", name)
        return []
    return [
        VectorHit(hit["key"], 1.0 - float(hit.get("distance", 1.0)), dict(hit.get("metadata") or {}))
        for hit in response["vectors"]
    ]


def check_metadata(record: VectorRecord) -> None:
    """`ValueError` naming the key if the record's metadata is over 40 KB in all or 2 KB in its filterable keys."""
    total = _json_bytes(record.metadata)
    if total > MAX_METADATA_BYTES:
        raise ValueError(f"vector {record.key}: metadata is {total} bytes, over S3 Vectors' {MAX_METADATA_BYTES}")
    filterable = {key: value for key, value in record.metadata.items() if key not in NON_FILTERABLE_KEYS}
    size = _json_bytes(filterable)
    if size > MAX_FILTERABLE_METADATA_BYTES:
        raise ValueError(
            f"vector {record.key}: filterable metadata is {size} bytes, over S3 Vectors' "
            f"{MAX_FILTERABLE_METADATA_BYTES}"
        )


def _json_bytes(metadata: dict[str, MetadataValue]) -> int:
    return len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())


def _batches(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
