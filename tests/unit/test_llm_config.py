"""Provider configuration from the environment and the keys secret: what is configured, the chain, the errors."""

from __future__ import annotations

import json

import pytest

from shared.llm.config import LlmConfigError, llm_config_from_environ


def priced(provider: str, *models: str) -> str:
    """MODEL_CATALOG entries for a compatible provider's models (a stage may serve only catalogued models)."""
    return json.dumps(
        {model: {"provider": provider, "contextWindow": 131072, "inputPrice": 0, "outputPrice": 0} for model in models}
    )


def no_secret(secret_id: str) -> str:
    raise AssertionError(f"read {secret_id} although no secret is configured")


def test_nothing_configured_means_the_offline_chain() -> None:
    config = llm_config_from_environ({}, read_secret=no_secret)

    assert config.offline_only
    assert config.chain == ("offline",)


def test_default_chain_orders_anthropic_openai_compatible_bedrock() -> None:
    compatible = [{"name": "ollama", "baseUrl": "http://localhost:11434/v1/", "models": ["llama3.1:8b"]}]
    config = llm_config_from_environ(
        {
            "BEDROCK_ENABLED": "true",
            "AWS_REGION": "eu-west-1",
            "OPENAI_API_KEY": "sk-o",
            "OPENAI_COMPATIBLE_PROVIDERS": json.dumps(compatible),
            "MODEL_CATALOG": priced("ollama", "llama3.1:8b"),
            "ANTHROPIC_API_KEY": "sk-a",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:1",
        },
        read_secret=no_secret,
    )

    assert config.chain == ("anthropic", "openai", "ollama", "bedrock")
    ollama = config.provider("ollama")
    assert ollama is not None
    assert (ollama.kind, ollama.base_url, ollama.models, ollama.api_key) == (
        "openai",
        "http://localhost:11434/v1",
        ("llama3.1:8b",),
        None,
    )
    anthropic = config.provider("anthropic")
    assert anthropic is not None
    assert anthropic.base_url == "http://127.0.0.1:1"
    assert "sk-a" not in repr(anthropic)
    bedrock = config.provider("bedrock")
    assert bedrock is not None
    assert bedrock.region == "eu-west-1"


def test_provider_chain_sets_the_failover_order() -> None:
    config = llm_config_from_environ(
        {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "PROVIDER_CHAIN": "openai, anthropic"}, read_secret=no_secret
    )

    assert config.chain == ("openai", "anthropic")


def test_keys_come_from_the_secret_and_environment_wins() -> None:
    secret = {"anthropic": "from-secret-a", "openai": "from-secret-o", "gemini": "from-secret-g"}
    compatible = [
        {
            "name": "gemini",
            "baseUrl": "https://generativelanguage.googleapis.com/v1beta/openai",
            "apiKeyEnv": "GEMINI_API_KEY",
            "models": ["gemini-2.5-flash"],
        }
    ]
    reads: list[str] = []

    def read_secret(secret_id: str) -> str:
        reads.append(secret_id)
        return json.dumps(secret)

    config = llm_config_from_environ(
        {
            "PROVIDER_KEYS_SECRET": "stratus/test/provider-keys",
            "OPENAI_API_KEY": "from-env",
            "OPENAI_COMPATIBLE_PROVIDERS": json.dumps(compatible),
            "MODEL_CATALOG": priced("gemini", "gemini-2.5-flash"),
        },
        read_secret=read_secret,
    )

    assert reads == ["stratus/test/provider-keys"]
    keys = {provider.name: provider.api_key for provider in config.providers}
    assert keys == {"anthropic": "from-secret-a", "openai": "from-env", "gemini": "from-secret-g"}


def test_keys_secret_is_read_from_secrets_manager(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.aws import client

    client("secretsmanager").create_secret(Name="stratus/test/provider-keys", SecretString='{"openai": "sk-moto"}')

    config = llm_config_from_environ({"PROVIDER_KEYS_SECRET": "stratus/test/provider-keys"})

    assert [(provider.name, provider.api_key) for provider in config.providers] == [("openai", "sk-moto")]


def test_an_unreadable_secret_fails_at_init_without_echoing_it() -> None:
    def broken(secret_id: str) -> str:
        raise RuntimeError("AccessDenied")

    with pytest.raises(LlmConfigError, match="could not read secret 'ids'"):
        llm_config_from_environ({"PROVIDER_KEYS_SECRET": "ids"}, read_secret=broken)
    with pytest.raises(LlmConfigError, match="not a JSON object"):
        llm_config_from_environ({"PROVIDER_KEYS_SECRET": "ids"}, read_secret=lambda _: "sk-plain")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PROVIDER_CHAIN": "anthropic"}, "'anthropic' is not a configured provider"),
        ({"OPENAI_API_KEY": "o", "PROVIDER_CHAIN": "openai,openai"}, "twice"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": "{"}, "not JSON"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": "{}"}, "must be a JSON list"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "Bad Name", "baseUrl": "http://x", "models": ["m"]}]'}, "name"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "openai", "baseUrl": "http://x", "models": ["m"]}]'}, "built-in"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "vllm", "baseUrl": "ftp://x", "models": ["m"]}]'}, "baseUrl"),
        ({"OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "vllm", "baseUrl": "http://x", "models": []}]'}, "models"),
        (
            {"OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "vllm", "baseUrl": "http://x", "models": ["m"], "key": 1}]'},
            "unknown",
        ),
        (
            {
                "OPENAI_COMPATIBLE_PROVIDERS": json.dumps(
                    [{"name": "g", "baseUrl": "http://x", "apiKeyEnv": "G_KEY", "models": ["m"]}]
                )
            },
            "neither G_KEY nor the keys secret",
        ),
        (
            {
                "OPENAI_COMPATIBLE_PROVIDERS": '[{"name": "a", "baseUrl": "http://x", "models": ["m"]},'
                ' {"name": "b", "baseUrl": "http://y", "models": ["m"]}]'
            },
            "already served by 'a'",
        ),
        ({"BEDROCK_ENABLED": "sure"}, "BEDROCK_ENABLED must be true or false"),
        ({"BEDROCK_ENABLED": "true"}, "AWS_REGION"),
        ({"DEFAULT_MODELS": '{"mistral": "m"}'}, "'mistral' is not a provider"),
        ({"DEFAULT_MODELS": '{"openai": 5}'}, "provider name → model id"),
        ({"PROVIDER_READ_TIMEOUT_SECONDS": "soon"}, "must be a number"),
        ({"PROVIDER_READ_TIMEOUT_SECONDS": "0"}, "must be positive"),
        ({"PROVIDER_COOLDOWN_FAILURES": "2.5"}, "whole number"),
    ],
)
def test_invalid_configuration_names_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(LlmConfigError, match=message):
        llm_config_from_environ(environ, read_secret=no_secret)


def test_timeouts_and_cooldown_are_configurable() -> None:
    config = llm_config_from_environ(
        {
            "PROVIDER_CONNECT_TIMEOUT_SECONDS": "2",
            "PROVIDER_READ_TIMEOUT_SECONDS": "12.5",
            "PROVIDER_COOLDOWN_FAILURES": "5",
            "PROVIDER_COOLDOWN_SECONDS": "0",
            "DEFAULT_MODELS": '{"anthropic": "claude-haiku-4-5"}',
        },
        read_secret=no_secret,
    )

    assert (config.connect_timeout, config.read_timeout) == (2.0, 12.5)
    assert (config.cooldown_failures, config.cooldown_seconds) == (5, 0.0)
    assert config.default_models == {"anthropic": "claude-haiku-4-5"}


def test_every_model_the_stage_may_serve_must_be_in_the_catalog() -> None:
    compatible = json.dumps([{"name": "vllm", "baseUrl": "http://x", "models": ["served", "unpriced"]}])
    with pytest.raises(LlmConfigError, match=r"vllm's models \['unpriced'\] are not in the model catalog"):
        llm_config_from_environ(
            {"OPENAI_COMPATIBLE_PROVIDERS": compatible, "MODEL_CATALOG": priced("vllm", "served")},
            read_secret=no_secret,
        )
    with pytest.raises(LlmConfigError, match="DEFAULT_MODELS: anthropic's 'claude-7' is not in the model catalog"):
        llm_config_from_environ({"ANTHROPIC_API_KEY": "a", "DEFAULT_MODELS": '{"anthropic": "claude-7"}'},
                                read_secret=no_secret)  # fmt: skip
