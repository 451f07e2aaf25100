"""S3 Vectors' QueryVectors on moto, which keeps vector buckets, indexes and vectors but cannot search them.

`patch_moto_s3vectors()` gives moto's s3vectors backend a `query_vectors` and its response handler and URL, so the
boto3 call a function makes in AWS is answered the same way under `mock_aws` (tests) and by the moto server of
`make dev` (infra.local.moto_process). It searches exactly (a scan, not S3 Vectors' approximate index) by the
distance the index declares, applies metadata filters as S3 Vectors documents them, and keeps each index's
vectors as one matrix (numpy when installed) until a Put or Delete changes them. Two more fixes make moto behave
as the service does: CreateIndex of an existing name is a ConflictException (moto replaced the index, vectors and
all), and the index remembers its non-filterable metadata keys, which a filter may not name.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_TOP_K = 100
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda value, operand: value > operand,
    "$gte": lambda value, operand: value >= operand,
    "$lt": lambda value, operand: value < operand,
    "$lte": lambda value, operand: value <= operand,
}
_MATRIX_ATTRIBUTE = "_stratus_matrix"
_NON_FILTERABLE_ATTRIBUTE = "_stratus_non_filterable_keys"
_patched = False
_patch_lock = threading.Lock()


class FilterError(ValueError):
    """A filter S3 Vectors would refuse (ValidationException)."""


@dataclass(frozen=True)
class _Matrix:
    """An index's vectors in one block, in the order of `keys`; `rows` is a numpy array, or lists without numpy."""

    keys: tuple[str, ...]
    rows: Any
    norms: Any


def patch_moto_s3vectors() -> None:
    """Idempotent: adds QueryVectors to moto's s3vectors (backend, response handler, URL) and the two fixes above."""
    global _patched  # noqa: PLW0603 - patching a library is process-wide by nature
    with _patch_lock:
        if _patched:
            return
        from moto.core.exceptions import ServiceException
        from moto.core.responses import ActionResult
        from moto.s3vectors import urls
        from moto.s3vectors.exceptions import ValidationError
        from moto.s3vectors.models import S3VectorsBackend
        from moto.s3vectors.responses import S3VectorsResponse

        class IndexAlreadyExists(ServiceException):
            code = "ConflictException"

            def __init__(self) -> None:
                super().__init__("A vector index with the specified name already exists")

        create_index = S3VectorsBackend.create_index
        put_vectors = S3VectorsBackend.put_vectors
        delete_vectors = S3VectorsBackend.delete_vectors
        respond_create_index = S3VectorsResponse.create_index

        def create_new_index(self: S3VectorsBackend, *args: Any, **kwargs: Any) -> None:
            bucket = self.get_vector_bucket(
                vector_bucket_name=kwargs.get("vector_bucket_name"), vector_bucket_arn=kwargs.get("vector_bucket_arn")
            )
            if any(index.index_name == kwargs.get("index_name") for index in bucket.indexes.values()):
                raise IndexAlreadyExists()
            create_index(self, *args, **kwargs)

        def respond_create_index_keeping_metadata(self: S3VectorsResponse) -> Any:
            result = respond_create_index(self)
            configuration = self._get_param("metadataConfiguration") or {}
            index = self.s3vectors_backend.get_index(
                self._get_param("vectorBucketName"), self._get_param("indexName"), ""
            )
            setattr(index, _NON_FILTERABLE_ATTRIBUTE, frozenset(configuration.get("nonFilterableMetadataKeys") or ()))
            return result

        def put_then_forget_matrix(self: S3VectorsBackend, *args: Any, **kwargs: Any) -> None:
            put_vectors(self, *args, **kwargs)
            _forget_matrix(self, kwargs)

        def delete_then_forget_matrix(self: S3VectorsBackend, *args: Any, **kwargs: Any) -> None:
            delete_vectors(self, *args, **kwargs)
            _forget_matrix(self, kwargs)

        def query_vectors(
            self: S3VectorsBackend,
            *,
            vector_bucket_name: str,
            index_name: str,
            index_arn: str,
            query_vector: Sequence[float],
            top_k: int,
            metadata_filter: Mapping[str, Any] | None,
            return_distance: bool,
            return_metadata: bool,
        ) -> tuple[list[dict[str, Any]], str]:
            index = self.get_index(vector_bucket_name, index_name=index_name, index_arn=index_arn)
            if len(query_vector) != index.dimension:
                raise ValidationError(
                    f"Query vector has {len(query_vector)} dimensions; the index has {index.dimension}"
                )
            try:
                if metadata_filter:
                    check_filter(metadata_filter, getattr(index, _NON_FILTERABLE_ATTRIBUTE, frozenset()))
                ranked = nearest(index, query_vector, top_k, metadata_filter)
            except FilterError as error:
                raise ValidationError(f"Invalid filter: {error}") from None
            hits = []
            for key, distance in ranked:
                hit: dict[str, Any] = {"key": key}
                if return_distance:
                    hit["distance"] = distance
                if return_metadata:
                    hit["metadata"] = index.vectors[key].metadata
                hits.append(hit)
            return hits, index.distance_metric

        def respond_query_vectors(self: S3VectorsResponse) -> ActionResult:
            # The body parsed once: moto's _get_param parses it again for every parameter.
            params = json.loads(self.body or "{}")
            vector_bucket_name = params.get("vectorBucketName")
            index_arn = params.get("indexArn")
            index_name = params.get("indexName")
            self._validate_index_params(index_arn, index_name, vector_bucket_name)
            top_k = params.get("topK")
            if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
                raise ValidationError(f"topK must be between 1 and {MAX_TOP_K}")
            query = (params.get("queryVector") or {}).get("float32")
            if not query:
                raise ValidationError("queryVector.float32 is required")
            hits, metric = self.s3vectors_backend.query_vectors(  # type: ignore[attr-defined]
                vector_bucket_name=vector_bucket_name,
                index_name=index_name,
                index_arn=index_arn,
                query_vector=query,
                top_k=top_k,
                metadata_filter=params.get("filter"),
                return_distance=bool(params.get("returnDistance")),
                return_metadata=bool(params.get("returnMetadata")),
            )
            return ActionResult(result={"vectors": hits, "distanceMetric": metric})

        S3VectorsBackend.create_index = create_new_index  # type: ignore[method-assign]
        S3VectorsBackend.put_vectors = put_then_forget_matrix  # type: ignore[method-assign]
        S3VectorsBackend.delete_vectors = delete_then_forget_matrix  # type: ignore[method-assign]
        S3VectorsBackend.query_vectors = query_vectors  # type: ignore[attr-defined]
        S3VectorsResponse.create_index = respond_create_index_keeping_metadata  # type: ignore[method-assign]
        S3VectorsResponse.query_vectors = respond_query_vectors  # type: ignore[attr-defined]
        urls.url_paths["{0}/QueryVectors$"] = S3VectorsResponse.dispatch
        _patched = True


def _forget_matrix(backend: Any, arguments: Mapping[str, Any]) -> None:
    index = backend.get_index(
        arguments.get("vector_bucket_name"),
        index_name=arguments.get("index_name"),
        index_arn=arguments.get("index_arn"),
    )
    index.__dict__.pop(_MATRIX_ATTRIBUTE, None)


def _matrix(index: Any) -> _Matrix:
    """The index's vectors as one block, built on the first query after a change."""
    cached: _Matrix | None = index.__dict__.get(_MATRIX_ATTRIBUTE)
    if cached is not None:
        return cached
    keys = tuple(index.vectors)
    rows = [index.vectors[key].data["float32"] for key in keys]
    try:
        import numpy

        array = numpy.asarray(rows, dtype=numpy.float32).reshape(len(keys), index.dimension)
        matrix = _Matrix(keys, array, numpy.linalg.norm(array, axis=1))
    except ImportError:
        matrix = _Matrix(keys, rows, [math.sqrt(sum(value * value for value in row)) for row in rows])
    setattr(index, _MATRIX_ATTRIBUTE, matrix)
    return matrix


def distances(metric: str, matrix: _Matrix, query: Sequence[float]) -> Any:
    """Each row's distance to `query`: cosine distance (1 - cosine similarity) or euclidean; a numpy array where
    the matrix is one, else a list."""
    if not matrix.keys:
        return []
    if not isinstance(matrix.rows, list):
        import numpy

        vector = numpy.asarray(query, dtype=numpy.float32)
        if metric == "euclidean":
            return numpy.linalg.norm(matrix.rows - vector, axis=1)
        denominators = matrix.norms * float(numpy.linalg.norm(vector))
        similarities = numpy.divide(
            matrix.rows @ vector, denominators, out=numpy.zeros(len(matrix.keys)), where=denominators > 0
        )
        return 1.0 - similarities
    if metric == "euclidean":
        return [math.sqrt(sum((a - b) ** 2 for a, b in zip(row, query, strict=True))) for row in matrix.rows]
    query_norm = math.sqrt(sum(value * value for value in query))
    result = []
    for row, norm in zip(matrix.rows, matrix.norms, strict=True):
        denominator = norm * query_norm
        result.append(1.0 - (sum(a * b for a, b in zip(row, query, strict=True)) / denominator if denominator else 0))
    return result


def nearest(
    index: Any, query: Sequence[float], top_k: int, metadata_filter: Mapping[str, Any] | None = None
) -> list[tuple[str, float]]:
    """The `top_k` nearest keys of the index with their distances, nearest first, among those the filter keeps."""
    matrix = _matrix(index)
    measured = distances(index.distance_metric, matrix, query)
    found: list[tuple[str, float]] = []
    # Unfiltered, only the top_k nearest need ordering; a filter may pass over any number of them.
    for position in _nearest_first(measured, None if metadata_filter else top_k):
        key = matrix.keys[position]
        if metadata_filter and not matches(metadata_filter, index.vectors[key].metadata or {}):
            continue
        found.append((key, float(measured[position])))
        if len(found) == top_k:
            break
    return found


def _nearest_first(measured: Any, limit: int | None) -> list[int]:
    """Positions by increasing distance: all of them, or the `limit` nearest."""
    if isinstance(measured, list):
        order = sorted(range(len(measured)), key=measured.__getitem__)
        return order if limit is None else order[:limit]
    import numpy

    if limit is not None and limit < len(measured):
        nearest_unordered = numpy.argpartition(measured, limit - 1)[:limit]
        return nearest_unordered[numpy.argsort(measured[nearest_unordered], kind="stable")].tolist()  # type: ignore[no-any-return]
    return numpy.argsort(measured, kind="stable").tolist()  # type: ignore[no-any-return]


def check_filter(metadata_filter: Mapping[str, Any], non_filterable: frozenset[str]) -> None:
    """`FilterError` if the filter is malformed or names a non-filterable key."""
    if not isinstance(metadata_filter, Mapping) or not metadata_filter:
        raise FilterError("a filter is a non-empty object")
    for name, condition in metadata_filter.items():
        if name in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise FilterError(f"{name} takes a non-empty list of filters")
            for part in condition:
                check_filter(part, non_filterable)
        elif name.startswith("$"):
            raise FilterError(f"unknown operator {name}")
        elif name in non_filterable:
            raise FilterError(f"{name} is a non-filterable metadata key")
        elif isinstance(condition, Mapping):
            for operator in condition:
                if operator not in _KEY_OPERATORS:
                    raise FilterError(f"unknown operator {operator}")


def matches(metadata_filter: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether `metadata` satisfies the filter: `{key: value}` is `$eq`; `$and`/`$or` combine filters; a key's
    operators are `$eq $ne $gt $gte $lt $lte $in $nin $exists`; a list-valued key matches if one element does."""
    for name, condition in metadata_filter.items():
        if name == "$and":
            if not all(matches(part, metadata) for part in condition):
                return False
        elif name == "$or":
            if not any(matches(part, metadata) for part in condition):
                return False
        elif not _key_matches(metadata, name, condition):
            return False
    return True


def _key_matches(metadata: Mapping[str, Any], name: str, condition: Any) -> bool:
    operators = condition if isinstance(condition, Mapping) else {"$eq": condition}
    present = name in metadata
    value = metadata.get(name)
    values = value if isinstance(value, list) else [value]
    return all(_KEY_OPERATORS[operator](operand, present, values) for operator, operand in operators.items())


def _compare(operator: str, value: Any, operand: Any) -> bool:
    numeric = (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric) or not isinstance(operand, numeric):
        return False  # S3 Vectors compares numbers only
    return _COMPARISONS[operator](value, operand)


# A key's operators: (operand, whether the key is present, its values) -> whether the condition holds.
_KEY_OPERATORS: dict[str, Callable[[Any, bool, list[Any]], bool]] = {
    "$exists": lambda operand, present, _: present == bool(operand),
    "$eq": lambda operand, present, values: present and operand in values,
    "$ne": lambda operand, present, values: not present or operand not in values,
    "$in": lambda operand, present, values: present and any(item in operand for item in values),
    "$nin": lambda operand, present, values: not present or not any(item in operand for item in values),
    "$gt": lambda operand, present, values: present and any(_compare("$gt", item, operand) for item in values),
    "$gte": lambda operand, present, values: present and any(_compare("$gte", item, operand) for item in values),
    "$lt": lambda operand, present, values: present and any(_compare("$lt", item, operand) for item in values),
    "$lte": lambda operand, present, values: present and any(_compare("$lte", item, operand) for item in values),
}
