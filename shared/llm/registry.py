"""The configured providers, built once per container, and the ordered attempts that serve a request.

Importing this module loads no provider SDK: a provider imports its SDK when it first streams.
"""

from __future__ import annotations

import threading

from shared.llm.catalog import OFFLINE_PROVIDER, catalog, find_model, models_of
from shared.llm.config import LlmConfig, ProviderConfig, get_llm_config, offline_provider_config
from shared.llm.types import Provider


class ProviderUnavailable(LookupError):
    """A request named a provider, or a model whose provider, this stage has not configured."""


_providers: dict[str, Provider] | None = None
_lock = threading.Lock()


def build_provider(provider: ProviderConfig, config: LlmConfig) -> Provider:
    timeouts = {"connect_timeout": config.connect_timeout, "read_timeout": config.read_timeout}
    if provider.kind == "anthropic":
        from shared.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(provider.name, api_key=provider.api_key or "", base_url=provider.base_url, **timeouts)
    if provider.kind == "openai":
        from shared.llm.providers.openai import OpenAIProvider

        return OpenAIProvider(provider.name, api_key=provider.api_key, base_url=provider.base_url, **timeouts)
    if provider.kind == "bedrock":
        from shared.llm.providers.bedrock import BedrockProvider

        return BedrockProvider(provider.name, region=provider.region, **timeouts)
    from shared.llm.providers.offline import OfflineProvider

    return OfflineProvider()


def providers() -> dict[str, Provider]:
    """Every configured provider by name (just the offline one when none is), built once per container."""
    global _providers  # noqa: PLW0603 (one set of clients per container, built on first use)
    with _lock:
        if _providers is None:
            config = get_llm_config()
            built = {provider.name: build_provider(provider, config) for provider in config.providers}
            if config.offline_only or OFFLINE_PROVIDER in config.chain:
                built[OFFLINE_PROVIDER] = build_provider(offline_provider_config(), config)
            _providers = built
        return _providers


def forget_providers() -> None:
    """Rebuild providers (and their clients) from the configuration on next use (tests)."""
    global _providers  # noqa: PLW0603
    with _lock:
        _providers = None


def provider_for_model(model: str, config: LlmConfig | None = None) -> str | None:
    """Who serves `model`: a compatible provider that lists it, else the catalog's provider, else None."""
    config = config or get_llm_config()
    for provider in config.providers:
        if model in provider.models:
            return provider.name
    info = find_model(model)
    return info.provider if info is not None else None


def default_model_for(provider: str, config: LlmConfig | None = None) -> str:
    """The model `provider` serves when a request names none: DEFAULT_MODELS, else its first listed model."""
    config = config or get_llm_config()
    if (model := config.default_models.get(provider)) is not None:
        return model
    configured = config.provider(provider)
    if configured is not None and configured.models:
        return configured.models[0]
    listed = models_of(provider)
    if not listed:
        raise ProviderUnavailable(f"provider {provider!r} has no model: set DEFAULT_MODELS")
    return listed[0].id


def chain_for(model: str | None = None, provider: str | None = None) -> list[tuple[Provider, str]]:
    """The ordered (provider, model id) attempts for a request: the requested provider and model first, then the
    stage chain's other providers with their default models.

    With no provider configured, the offline provider serves whatever model is asked for. `ProviderUnavailable`
    when the request names a provider (or a model of a provider) the stage has not configured; `UnknownModel`
    when neither the catalog nor a compatible provider knows the model.
    """
    config = get_llm_config()
    available = providers()
    if config.offline_only:
        # It answers under any catalogued model's name, so a frontend's model picker works with no key.
        if model and find_model(model) is None:
            from shared.llm.catalog import UnknownModel

            raise UnknownModel(model)
        return [(available[OFFLINE_PROVIDER], model or default_model_for(OFFLINE_PROVIDER, config))]

    first = provider or (provider_for_model(model, config) if model else None)
    if model and first is None:
        from shared.llm.catalog import UnknownModel

        raise UnknownModel(model)
    attempts: list[tuple[Provider, str]] = []
    if first is not None:
        if first not in available:
            what = f"model {model!r} is served by {first!r}, which" if model and not provider else f"{first!r}"
            raise ProviderUnavailable(f"{what} is not configured for this stage")
        attempts.append((available[first], model or default_model_for(first, config)))
        if first == OFFLINE_PROVIDER:
            return attempts  # asked for the offline model by name: no real provider stands in for it
    for name in config.chain:
        if name != first and name in available:
            attempts.append((available[name], default_model_for(name, config)))
    return attempts


def servable_models() -> list[tuple[str, str]]:
    """Every catalogued model this stage can serve by name, as (model id, who serves it), in catalog order: the
    offline model serves them all when no provider is configured."""
    config = get_llm_config()
    if config.offline_only:
        return [(model.id, OFFLINE_PROVIDER) for model in catalog().values()]
    available = providers()
    served = ((model.id, provider_for_model(model.id, config)) for model in catalog().values())
    return [(model_id, provider) for model_id, provider in served if provider is not None and provider in available]
