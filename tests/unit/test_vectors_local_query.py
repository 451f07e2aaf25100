"""The local QueryVectors' arithmetic and filters, apart from moto: numpy and pure Python agree."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from infra.local import s3vectors
from infra.local.s3vectors import FilterError, check_filter, matches, nearest

ROWS = {"east": [1.0, 0.0], "north_east": [1.0, 1.0], "north": [0.0, 2.0], "west": [-3.0, 0.0]}


def index(metric: str, metadata: dict[str, dict[str, Any]] | None = None) -> Any:
    vectors = {
        key: SimpleNamespace(data={"float32": row}, metadata=(metadata or {}).get(key, {})) for key, row in ROWS.items()
    }
    return SimpleNamespace(vectors=vectors, dimension=2, distance_metric=metric)


def without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def refuse_numpy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "numpy":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_numpy)


@pytest.mark.parametrize("numpy_installed", [True, False], ids=["numpy", "pure-python"])
def test_cosine_and_euclidean_rank_nearest_first(numpy_installed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not numpy_installed:
        without_numpy(monkeypatch)

    cosine = nearest(index("cosine"), [2.0, 0.1], 3)
    euclidean = nearest(index("euclidean"), [0.0, 0.0], 4)

    assert [key for key, _ in cosine] == ["east", "north_east", "north"]
    assert cosine[1][1] == pytest.approx(1 - (2.0 + 0.1) / (math.sqrt(4.01) * math.sqrt(2)), abs=1e-6)
    assert euclidean == [
        ("east", pytest.approx(1.0)),
        ("north_east", pytest.approx(math.sqrt(2))),
        ("north", pytest.approx(2.0)),
        ("west", pytest.approx(3.0)),
    ]


def test_a_write_drops_the_cached_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    searched = index("euclidean")
    assert nearest(searched, [0.0, 0.0], 1)[0][0] == "east"
    searched.vectors["origin"] = SimpleNamespace(data={"float32": [0.0, 0.0]}, metadata={})
    backend = SimpleNamespace(get_index=lambda *_, **__: searched)

    s3vectors._forget_matrix(backend, {"index_name": "any"})

    assert nearest(searched, [0.0, 0.0], 1) == [("origin", 0.0)]


def test_a_filter_is_applied_before_top_k() -> None:
    metadata = {"east": {"side": "right"}, "north_east": {"side": "right"}, "west": {"side": "left"}}

    found = nearest(index("euclidean", metadata), [0.0, 0.0], 1, {"side": "left"})

    assert found == [("west", pytest.approx(3.0))]


def test_filter_operators_read_metadata_as_s3_vectors_documents() -> None:
    metadata = {"genre": "drama", "year": 2021, "tags": ["a", "b"]}

    assert matches({"genre": "drama"}, metadata)
    assert matches({"tags": "a"}, metadata)  # a list matches if one element does
    assert matches({"year": {"$gte": 2021, "$lt": 2022}}, metadata)
    assert not matches({"year": {"$gt": 2021}}, metadata)
    assert not matches({"genre": {"$gt": 1}}, metadata)  # comparisons are numeric only
    assert matches({"genre": {"$in": ["comedy", "drama"]}}, metadata)
    assert matches({"genre": {"$nin": ["comedy"]}, "missing": {"$ne": "x"}}, metadata)
    assert matches({"missing": {"$exists": False}, "genre": {"$exists": True}}, metadata)
    assert matches({"$or": [{"genre": "comedy"}, {"$and": [{"year": 2021}, {"tags": {"$in": ["b"]}}]}]}, metadata)
    assert not matches({"$and": [{"genre": "drama"}, {"year": 1999}]}, metadata)


@pytest.mark.parametrize(
    "metadata_filter",
    [{}, {"$not": [{"a": 1}]}, {"$and": []}, {"a": {"$regex": "x"}}, {"text": "x"}, {"$or": [{"text": "x"}]}],
)
def test_malformed_filters_and_non_filterable_keys_are_refused(metadata_filter: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        check_filter(metadata_filter, frozenset({"text"}))
