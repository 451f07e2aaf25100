"""Which providers serve a request, in what order, and that choosing them loads no SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.llm.catalog import UnknownModel, catalog
from shared.llm.registry import ProviderUnavailable, chain_for, providers, servable_models

ROOT = Path(__file__).resolve().parents[2]
Configure = Callable[..., None]


def plan(model: str | None = None, provider: str | None = None) -> list[tuple[str, str]]:
    return [(attempt.name, model_id) for attempt, model_id in chain_for(model, provider)]


def test_with_nothing_configured_offline_serves_any_catalogued_model(llm_environment: Configure) -> None:
    assert plan() == [("offline", "stratus-offline")]
    assert plan("claude-sonnet-4-6") == [("offline", "claude-sonnet-4-6")]
    with pytest.raises(UnknownModel):  # refused (422), as with providers configured
        plan("made-up-model")
    assert list(providers()) == ["offline"]


def test_requested_model_goes_first_then_the_chain_with_defaults(llm_environment: Configure) -> None:
    llm_environment(ANTHROPIC_API_KEY="a", OPENAI_API_KEY="o", BEDROCK_ENABLED="true")

    assert plan() == [("anthropic", "claude-opus-4-5"), ("openai", "gpt-5"), ("bedrock", "amazon.nova-pro-v1:0")]
    assert plan("gpt-4.1-mini") == [
        ("openai", "gpt-4.1-mini"),
        ("anthropic", "claude-opus-4-5"),
        ("bedrock", "amazon.nova-pro-v1:0"),
    ]
    assert plan(provider="bedrock")[0] == ("bedrock", "amazon.nova-pro-v1:0")
    assert plan("claude-haiku-4-5-20251001")[0] == ("anthropic", "claude-haiku-4-5-20251001")


def test_compatible_providers_own_their_models_and_chain_order_is_configurable(llm_environment: Configure) -> None:
    compatible = [{"name": "ollama", "baseUrl": "http://127.0.0.1:11434/v1", "models": ["llama3.1:8b", "qwen3"]}]
    llm_environment(
        OPENAI_API_KEY="o",
        OPENAI_COMPATIBLE_PROVIDERS=json.dumps(compatible),
        MODEL_CATALOG=json.dumps(
            {
                model: {"provider": "ollama", "contextWindow": 32768, "inputPrice": 0, "outputPrice": 0}
                for model in ("llama3.1:8b", "qwen3")
            }
        ),
        PROVIDER_CHAIN="ollama,openai",
        DEFAULT_MODELS='{"openai": "gpt-5-mini"}',
    )

    assert plan() == [("ollama", "llama3.1:8b"), ("openai", "gpt-5-mini")]
    assert plan("qwen3") == [("ollama", "qwen3"), ("openai", "gpt-5-mini")]


def test_a_model_of_an_unconfigured_provider_is_refused(llm_environment: Configure) -> None:
    llm_environment(OPENAI_API_KEY="o")

    with pytest.raises(ProviderUnavailable, match="served by 'anthropic', which is not configured"):
        chain_for("claude-haiku-4-5", None)
    with pytest.raises(ProviderUnavailable, match="'bedrock' is not configured"):
        chain_for(None, "bedrock")
    with pytest.raises(UnknownModel):
        chain_for("gpt-99", None)


def test_servable_models_are_the_catalogued_ones_a_configured_provider_serves(
    llm_environment: Configure,
) -> None:
    compatible = [{"name": "ollama", "baseUrl": "http://127.0.0.1:11434/v1", "models": ["qwen3"]}]
    llm_environment(
        OPENAI_API_KEY="o",
        OPENAI_COMPATIBLE_PROVIDERS=json.dumps(compatible),
        MODEL_CATALOG=json.dumps(
            {"qwen3": {"provider": "ollama", "contextWindow": 32768, "inputPrice": 0, "outputPrice": 0}}
        ),
    )

    served = servable_models()

    assert ("qwen3", "ollama") in served
    assert ("gpt-5", "openai") in served
    assert {provider for _, provider in served} == {"ollama", "openai"}
    # Every model named is one chain_for accepts.
    assert all(plan(model)[0] == (provider, model) for model, provider in served)


def test_with_nothing_configured_every_catalogued_model_is_servable_by_the_offline_model(
    llm_environment: Configure,
) -> None:
    assert servable_models() == [(model, "offline") for model in catalog()]


def test_importing_the_registry_loads_no_provider_sdk() -> None:
    probe = (
        "import sys, shared.llm.registry, shared.llm.failover, shared.llm.providers.anthropic, "
        "shared.llm.providers.openai, shared.llm.providers.bedrock, shared.llm.providers.offline; "
        "print(sorted(m for m in ('anthropic', 'openai', 'httpx2', 'botocore', 'boto3') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_choosing_a_chain_builds_providers_without_loading_sdks() -> None:
    probe = (
        "import sys; from shared.llm.registry import chain_for; chain_for(None, None); "
        "print(sorted(m for m in ('anthropic', 'openai', 'httpx2', 'botocore') if m in sys.modules))"
    )
    environment = {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "STAGE": "test"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, env=environment
    )

    assert result.stdout.strip() == "[]"
