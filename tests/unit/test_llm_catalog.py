"""The model catalog: exact costs, overrides from MODEL_CATALOG, and lookups by id or alias."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from shared.llm.catalog import (
    COST_QUANTUM,
    CatalogConfigError,
    UnknownModel,
    build_catalog,
    catalog,
    cost_usd,
    forget_catalog,
    model_info,
    models_of,
)
from shared.llm.types import UsageReport


@pytest.fixture(autouse=True)
def fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MODEL_CATALOG", raising=False)
    forget_catalog()
    yield
    forget_catalog()


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        # 1,234 x $3 + 567 x $15 = 3,702 + 8,505 = 12,207 per million → $0.012207
        ("claude-sonnet-4-6", UsageReport(1234, 567), Decimal("0.012207")),
        # 1,000 x $1 + 2,000 x $5 + 10,000 x $0.10 + 4,000 x $1.25 = 17,000 → $0.017
        ("claude-haiku-4-5", UsageReport(1000, 2000, 10_000, 4000), Decimal("0.017")),
        # 3 x $1.25 + 1 x $10 + 7 x $0.125 = 14.625 per million → $0.000014625
        ("gpt-5", UsageReport(3, 1, 7), Decimal("0.00001462")),  # 0.000014625: half to even
        # 1 x $0.25 + 1 x $2 = 2.25 per million → $0.00000225
        ("gpt-5-mini", UsageReport(1, 1), Decimal("0.00000225")),
        # 1M x $2 + 1M x $8 → $10 exactly
        ("gpt-4.1", UsageReport(1_000_000, 1_000_000), Decimal("10")),
        # 10 x $0.8 + 10 x $3.2 = 40 per million → $0.00004
        ("amazon.nova-pro-v1:0", UsageReport(10, 10), Decimal("0.00004")),
        ("stratus-offline", UsageReport(5000, 5000), Decimal("0")),
    ],
)
def test_cost_is_exact_decimal_for_known_token_counts(model: str, usage: UsageReport, expected: Decimal) -> None:
    cost = cost_usd(model_info(model), usage)

    assert cost == expected
    assert cost.as_tuple().exponent == COST_QUANTUM.as_tuple().exponent


def test_cost_has_no_binary_float_error() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; ten tokens at $0.1 and $0.2 per million must be exact.
    model = build_catalog('{"m": {"provider": "p", "contextWindow": 1, "inputPrice": 0.1, "outputPrice": 0.2}}')["m"]

    assert cost_usd(model, UsageReport(1_000_000, 1_000_000)) == Decimal("0.3")


def test_cost_rounds_once_half_to_even_at_1e_8() -> None:
    model = build_catalog('{"m": {"provider": "p", "contextWindow": 1, "inputPrice": 0.005, "outputPrice": 0.015}}')[
        "m"
    ]

    assert cost_usd(model, UsageReport(1, 0)) == Decimal("0.00000000")  # 0.000000005 → even 0
    assert cost_usd(model, UsageReport(0, 1)) == Decimal("0.00000002")  # 0.000000015 → even 2
    assert cost_usd(model, UsageReport(1, 1)) == Decimal("0.00000002")  # summed before rounding: 0.00000002


def test_catalog_lists_the_current_models_with_prices() -> None:
    models = catalog()

    for model_id in (
        "claude-sonnet-4-6",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "gpt-5",
        "gpt-5-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "amazon.nova-pro-v1:0",
        "stratus-offline",
    ):
        assert model_id in models
    assert all(model.context_window > 0 for model in models.values())
    assert models["claude-opus-4-1"].output_price == 75.0


def test_aliases_resolve_to_their_model() -> None:
    assert model_info("claude-haiku-4-5-20251001").id == "claude-haiku-4-5"
    assert model_info("us.anthropic.claude-sonnet-4-5-20250929-v1:0").provider == "bedrock"


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModel, match=r"unknown model 'gpt-99'.*MODEL_CATALOG"):
        model_info("gpt-99")


def test_first_model_of_each_provider_is_its_default() -> None:
    assert models_of("anthropic")[0].id == "claude-opus-4-5"
    assert models_of("openai")[0].id == "gpt-5"
    assert models_of("bedrock")[0].id == "amazon.nova-pro-v1:0"
    assert [model.id for model in models_of("offline")] == ["stratus-offline"]


def test_model_catalog_overrides_a_price_and_adds_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODEL_CATALOG",
        '{"claude-haiku-4-5": {"inputPrice": 0.8},'
        ' "llama3.1:8b": {"provider": "ollama", "contextWindow": 131072, "inputPrice": 0, "outputPrice": 0,'
        ' "aliases": ["llama3.1"]}}',
    )
    forget_catalog()

    haiku = model_info("claude-haiku-4-5")
    assert (haiku.input_price, haiku.output_price) == (0.8, 5.0)
    assert model_info("llama3.1").id == "llama3.1:8b"
    assert cost_usd(haiku, UsageReport(1_000_000, 0)) == Decimal("0.8")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"new-model": {"provider": "x"}}', "adds a model and needs"),
        ('{"gpt-5": {"inputPrce": 1}}', "unknown fields"),
        ('{"gpt-5": {"inputPrice": -1}}', "non-negative number"),
        ('{"gpt-5": {"contextWindow": 1.5}}', "positive integer"),
        ('{"gpt-5": "cheap"}', "must be an object"),
    ],
)
def test_invalid_model_catalog_names_the_problem(overrides: str, message: str) -> None:
    with pytest.raises(CatalogConfigError, match=message):
        build_catalog(overrides)
