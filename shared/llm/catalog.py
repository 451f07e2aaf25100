"""The model catalog: which provider serves a model, its context window and its price, and the cost of a reply.

Prices are USD per million tokens as the providers publish them. `MODEL_CATALOG` (a JSON object: model id →
fields in camelCase) adds models or overrides fields of listed ones, so a price change or a new model needs
configuration, not a release:

    MODEL_CATALOG='{"claude-haiku-4-5": {"inputPrice": 0.8},
                    "llama3.1:8b": {"provider": "ollama", "contextWindow": 131072, "inputPrice": 0, "outputPrice": 0}}'
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from shared.llm.types import ModelInfo, UsageReport

OFFLINE_MODEL = "stratus-offline"
OFFLINE_PROVIDER = "offline"

# Cost is kept to 1e-8 USD: fine enough that a single cached token of the cheapest model still counts.
COST_QUANTUM = Decimal("0.00000001")
_PER_MILLION = Decimal(1_000_000)

# Order matters: a provider's first model is its default (see registry.default_model_for).
# Claude Sonnet 4.5 reached its end of life on 2026-11-30; Sonnet 4.6, its drop-in successor, is listed at the same
# price. The Claude 5 models are left to MODEL_CATALOG until the provider handles what they changed (Sonnet 5.5
# refuses forced tool use, which a compatible-API client may ask for).
_BUILT_IN: tuple[ModelInfo, ...] = (
    ModelInfo(
        "claude-opus-4-5", "anthropic", 200_000, 5.0, 25.0, 0.5, 6.25, "Claude Opus 4.5", ("claude-opus-4-5-20251101",)
    ),
    ModelInfo("claude-sonnet-4-6", "anthropic", 1_000_000, 3.0, 15.0, 0.3, 3.75, "Claude Sonnet 4.6", ()),
    ModelInfo(
        "claude-haiku-4-5",
        "anthropic",
        200_000,
        1.0,
        5.0,
        0.1,
        1.25,
        "Claude Haiku 4.5",
        ("claude-haiku-4-5-20251001",),
    ),
    ModelInfo(
        "claude-opus-4-1",
        "anthropic",
        200_000,
        15.0,
        75.0,
        1.5,
        18.75,
        "Claude Opus 4.1",
        ("claude-opus-4-1-20250805",),
    ),
    ModelInfo("gpt-5", "openai", 400_000, 1.25, 10.0, 0.125, 0.0, "GPT-5", ("gpt-5-2025-08-07",)),
    ModelInfo("gpt-5-mini", "openai", 400_000, 0.25, 2.0, 0.025, 0.0, "GPT-5 mini", ("gpt-5-mini-2025-08-07",)),
    ModelInfo("gpt-5-nano", "openai", 400_000, 0.05, 0.4, 0.005, 0.0, "GPT-5 nano", ("gpt-5-nano-2025-08-07",)),
    ModelInfo("gpt-4.1", "openai", 1_047_576, 2.0, 8.0, 0.5, 0.0, "GPT-4.1", ("gpt-4.1-2025-04-14",)),
    ModelInfo("gpt-4.1-mini", "openai", 1_047_576, 0.4, 1.6, 0.1, 0.0, "GPT-4.1 mini", ("gpt-4.1-mini-2025-04-14",)),
    ModelInfo("gpt-4.1-nano", "openai", 1_047_576, 0.1, 0.4, 0.025, 0.0, "GPT-4.1 nano", ("gpt-4.1-nano-2025-04-14",)),
    # Bedrock serves Claude on demand only through inference profiles (region-prefixed ids): Nova is the safe default.
    ModelInfo(
        "amazon.nova-pro-v1:0", "bedrock", 300_000, 0.8, 3.2, 0.2, 0.0, "Amazon Nova Pro", ("us.amazon.nova-pro-v1:0",)
    ),
    ModelInfo(
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "bedrock",
        200_000,
        3.0,
        15.0,
        0.3,
        3.75,
        "Claude Sonnet 4.5 (Bedrock)",
        # Cross-region inference profiles: Bedrock serves Sonnet 4.5 on demand only through them.
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
    ),
    ModelInfo(
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "bedrock",
        200_000,
        1.0,
        5.0,
        0.1,
        1.25,
        "Claude Haiku 4.5 (Bedrock)",
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ),
    ModelInfo(
        "amazon.nova-lite-v1:0",
        "bedrock",
        300_000,
        0.06,
        0.24,
        0.015,
        0.0,
        "Amazon Nova Lite",
        ("us.amazon.nova-lite-v1:0",),
    ),
    ModelInfo(OFFLINE_MODEL, OFFLINE_PROVIDER, 200_000, 0.0, 0.0, 0.0, 0.0, "Stratus offline model"),
)

# MODEL_CATALOG's camelCase keys → ModelInfo fields.
_OVERRIDE_FIELDS = {
    "provider": "provider",
    "contextWindow": "context_window",
    "inputPrice": "input_price",
    "outputPrice": "output_price",
    "cacheReadPrice": "cache_read_price",
    "cacheWritePrice": "cache_write_price",
    "displayName": "display_name",
    "aliases": "aliases",
}
_REQUIRED_FOR_NEW = ("provider", "contextWindow", "inputPrice", "outputPrice")


class UnknownModel(LookupError):
    """A model id that neither the built-in catalog nor `MODEL_CATALOG` lists."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"unknown model {model_id!r}: not in the catalog (add it with MODEL_CATALOG)")
        self.model_id = model_id


class CatalogConfigError(RuntimeError):
    """`MODEL_CATALOG` is not valid; raised on first use of the catalog (cold start)."""


def build_catalog(overrides_json: str | None = None) -> dict[str, ModelInfo]:
    """The built-in models with `overrides_json` (MODEL_CATALOG's format) applied, keyed by model id."""
    models = {model.id: model for model in _BUILT_IN}
    if not overrides_json or not overrides_json.strip():
        return models
    try:
        document = json.loads(overrides_json)
    except json.JSONDecodeError as error:
        raise CatalogConfigError(f"MODEL_CATALOG is not JSON: {error.msg}") from None
    if not isinstance(document, dict):
        raise CatalogConfigError("MODEL_CATALOG must be a JSON object: model id → fields")
    for model_id, patch in document.items():
        models[model_id] = _apply_override(model_id, patch, models.get(model_id))
    return models


def _apply_override(model_id: str, patch: Any, current: ModelInfo | None) -> ModelInfo:
    where = f"MODEL_CATALOG[{model_id!r}]"
    if not model_id or not isinstance(patch, dict):
        raise CatalogConfigError(f"{where} must be an object of model fields")
    unknown = sorted(set(patch) - set(_OVERRIDE_FIELDS))
    if unknown:
        raise CatalogConfigError(f"{where}: unknown fields {unknown}; known: {sorted(_OVERRIDE_FIELDS)}")
    if current is None:
        missing = [name for name in _REQUIRED_FOR_NEW if name not in patch]
        if missing:
            raise CatalogConfigError(f"{where} adds a model and needs {missing}")
        current = ModelInfo(model_id, "", 0, 0.0, 0.0)
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        changes[_OVERRIDE_FIELDS[key]] = _checked_value(where, key, value)
    return replace(current, **changes)


def _checked_value(where: str, key: str, value: Any) -> Any:
    if key in ("provider", "displayName"):
        if not isinstance(value, str) or (key == "provider" and not value):
            raise CatalogConfigError(f"{where}.{key} must be a non-empty string")
        return value
    if key == "aliases":
        if not isinstance(value, list) or not all(isinstance(alias, str) and alias for alias in value):
            raise CatalogConfigError(f"{where}.aliases must be a list of model ids")
        return tuple(value)
    if key == "contextWindow":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CatalogConfigError(f"{where}.contextWindow must be a positive integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CatalogConfigError(f"{where}.{key} must be a non-negative number (USD per million tokens)")
    return float(value)


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelInfo]:
    """Every known model by id, `MODEL_CATALOG` applied; read once per container."""
    return build_catalog(os.environ.get("MODEL_CATALOG"))


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    return {alias: model.id for model in catalog().values() for alias in model.aliases}


def find_model(model_id: str) -> ModelInfo | None:
    """The model named by `model_id` (its id or an alias), or None."""
    models = catalog()
    model = models.get(model_id)
    if model is None and (canonical := _aliases().get(model_id)) is not None:
        model = models.get(canonical)
    return model


def model_info(model_id: str) -> ModelInfo:
    """The model named by `model_id` (its id or an alias); `UnknownModel` when the catalog does not list it."""
    model = find_model(model_id)
    if model is None:
        raise UnknownModel(model_id)
    return model


def models_of(provider: str) -> list[ModelInfo]:
    """The provider's models in catalog order (the first is its default)."""
    return [model for model in catalog().values() if model.provider == provider]


def forget_catalog() -> None:
    """Re-read `MODEL_CATALOG` on next use (tests)."""
    catalog.cache_clear()
    _aliases.cache_clear()


def price(value: float) -> Decimal:
    """A catalog price as the decimal it was written as: `Decimal(repr(0.3))` is 0.3 exactly, never 0.2999…"""
    return Decimal(repr(value))


def cost_usd(model: ModelInfo, usage: UsageReport) -> Decimal:
    """What a reply cost in USD, exactly: every token count times its price per million, summed in Decimal,
    then rounded once to 1e-8 USD, half to even (so rounding errors do not drift one way over many replies).

    `usage.input_tokens` are the uncached input tokens; cached ones are billed apart at the cache prices.
    """
    total = (
        usage.input_tokens * price(model.input_price)
        + usage.output_tokens * price(model.output_price)
        + usage.cache_read_tokens * price(model.cache_read_price)
        + usage.cache_write_tokens * price(model.cache_write_price)
    )
    return (total / _PER_MILLION).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


__all__ = [
    "COST_QUANTUM",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "CatalogConfigError",
    "UnknownModel",
    "build_catalog",
    "catalog",
    "cost_usd",
    "find_model",
    "forget_catalog",
    "model_info",
    "models_of",
]
