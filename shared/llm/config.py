"""Which LLM providers this stage may call and in what failover order, read once per container and validated.

Environment (all optional; with none of them set, chat answers from the offline model):

- `ANTHROPIC_API_KEY` (+ `ANTHROPIC_BASE_URL`), `OPENAI_API_KEY` (+ `OPENAI_BASE_URL`).
- `OPENAI_COMPATIBLE_PROVIDERS`: JSON list of `{"name", "baseUrl", "apiKeyEnv"?, "models": [...]}` (Gemini's
  OpenAI endpoint, Ollama, vLLM, OpenRouter); a compatible provider owns the model ids it lists.
- `BEDROCK_ENABLED=true`: Bedrock through the function's IAM role in `AWS_REGION`.
- `PROVIDER_KEYS_SECRET`: a Secrets Manager secret `{"anthropic": "...", "openai": "...", "<compatible>": "..."}`
  read once per container (how deployed stages get keys); an environment variable wins over it (local runs).
- `PROVIDER_CHAIN`: comma-separated provider names, the failover order. Default: the configured providers in
  the order anthropic, openai, compatible ones as listed, bedrock.
- `DEFAULT_MODELS`: JSON `{provider: model id}`, the model a provider serves when a request does not name one.
- `PROVIDER_CONNECT_TIMEOUT_SECONDS` (5), `PROVIDER_READ_TIMEOUT_SECONDS` (30: the wait for the first byte and
  between chunks), `PROVIDER_COOLDOWN_FAILURES` (3), `PROVIDER_COOLDOWN_SECONDS` (30),
  `PROVIDER_MAX_RETRY_WAIT_SECONDS` (2: the longest `Retry-After` failover waits out before retrying a provider).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from shared.llm.catalog import OFFLINE_PROVIDER, build_catalog

ProviderKind = Literal["anthropic", "openai", "bedrock", "offline"]

ANTHROPIC = "anthropic"
OPENAI = "openai"
BEDROCK = "bedrock"
BUILT_IN_PROVIDERS = (ANTHROPIC, OPENAI, BEDROCK)
_RESERVED_NAMES = frozenset({*BUILT_IN_PROVIDERS, OFFLINE_PROVIDER})
_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class LlmConfigError(RuntimeError):
    """The provider configuration is invalid; the message names the setting and never echoes a key."""


@dataclass(frozen=True)
class ProviderConfig:
    """One configured provider. `kind` says which client serves it: every OpenAI-compatible endpoint is `openai`
    under its own `name` and `base_url`."""

    name: str
    kind: ProviderKind
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # Model ids this provider owns beyond the catalog's (an OpenAI-compatible endpoint's models).
    models: tuple[str, ...] = ()
    region: str | None = None


@dataclass(frozen=True)
class LlmConfig:
    providers: tuple[ProviderConfig, ...]
    chain: tuple[str, ...]
    default_models: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    cooldown_failures: int = 3
    cooldown_seconds: float = 30.0
    max_retry_wait: float = 2.0

    def provider(self, name: str) -> ProviderConfig | None:
        return next((provider for provider in self.providers if provider.name == name), None)

    @property
    def offline_only(self) -> bool:
        """No real provider is configured: every request is answered by the offline model."""
        return not self.providers


def offline_provider_config() -> ProviderConfig:
    return ProviderConfig(OFFLINE_PROVIDER, "offline")


def read_provider_keys_secret(secret_id: str) -> str:
    """The secret's string, read with the stage's Secrets Manager client (moto in local mode and tests)."""
    from shared.aws import client

    response = client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(response["SecretString"])


def llm_config_from_environ(
    environ: Mapping[str, str] | None = None, *, read_secret: Callable[[str], str] = read_provider_keys_secret
) -> LlmConfig:
    """Parse and validate the provider settings; `LlmConfigError` names the first setting that is wrong."""
    env = dict(os.environ if environ is None else environ)
    secret_keys = _secret_keys(env, read_secret)

    def key_for(name: str, env_var: str | None) -> str | None:
        if env_var and env.get(env_var):
            return env[env_var]
        return secret_keys.get(name)

    providers: list[ProviderConfig] = []
    if anthropic_key := key_for(ANTHROPIC, "ANTHROPIC_API_KEY"):
        providers.append(ProviderConfig(ANTHROPIC, "anthropic", anthropic_key, env.get("ANTHROPIC_BASE_URL") or None))
    if openai_key := key_for(OPENAI, "OPENAI_API_KEY"):
        providers.append(ProviderConfig(OPENAI, "openai", openai_key, env.get("OPENAI_BASE_URL") or None))
    providers.extend(_compatible_providers(env.get("OPENAI_COMPATIBLE_PROVIDERS", ""), key_for))
    if _flag(env, "BEDROCK_ENABLED"):
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if not region:
            raise LlmConfigError("BEDROCK_ENABLED: set AWS_REGION to the region Bedrock is called in")
        providers.append(ProviderConfig(BEDROCK, "bedrock", region=region))

    configured = [provider.name for provider in providers]
    chain = _chain(env.get("PROVIDER_CHAIN", ""), configured)
    default_models = _default_models(env.get("DEFAULT_MODELS", ""), configured)
    _require_priced(providers, default_models, env.get("MODEL_CATALOG"))
    return LlmConfig(
        providers=tuple(providers),
        chain=chain,
        default_models=default_models,
        connect_timeout=_seconds(env, "PROVIDER_CONNECT_TIMEOUT_SECONDS", 5.0),
        read_timeout=_seconds(env, "PROVIDER_READ_TIMEOUT_SECONDS", 30.0),
        cooldown_failures=int(_seconds(env, "PROVIDER_COOLDOWN_FAILURES", 3, integer=True)),
        cooldown_seconds=_seconds(env, "PROVIDER_COOLDOWN_SECONDS", 30.0, allow_zero=True),
        max_retry_wait=_seconds(env, "PROVIDER_MAX_RETRY_WAIT_SECONDS", 2.0, allow_zero=True),
    )


def _secret_keys(env: Mapping[str, str], read_secret: Callable[[str], str]) -> dict[str, str]:
    secret_id = env.get("PROVIDER_KEYS_SECRET", "").strip()
    if not secret_id:
        return {}
    try:
        document = json.loads(read_secret(secret_id))
    except json.JSONDecodeError:
        raise LlmConfigError("PROVIDER_KEYS_SECRET: the secret is not a JSON object") from None
    except Exception as error:
        # The secret id is configuration, not a credential: naming it helps whoever reads the init failure.
        raise LlmConfigError(
            f"PROVIDER_KEYS_SECRET: could not read secret {secret_id!r} ({type(error).__name__})"
        ) from error
    if not isinstance(document, dict) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in document.items()
    ):
        raise LlmConfigError("PROVIDER_KEYS_SECRET: the secret must be a JSON object of provider name → key")
    return {name: value for name, value in document.items() if value}


def _compatible_providers(raw: str, key_for: Callable[[str, str | None], str | None]) -> list[ProviderConfig]:
    if not raw.strip():
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as error:
        raise LlmConfigError(f"OPENAI_COMPATIBLE_PROVIDERS is not JSON: {error.msg}") from None
    if not isinstance(entries, list):
        raise LlmConfigError("OPENAI_COMPATIBLE_PROVIDERS must be a JSON list of providers")
    providers: list[ProviderConfig] = []
    owners: dict[str, str] = {}
    for position, entry in enumerate(entries):
        providers.append(_compatible_provider(position, entry, key_for, owners))
    return providers


def _compatible_provider(
    position: int, entry: Any, key_for: Callable[[str, str | None], str | None], owners: dict[str, str]
) -> ProviderConfig:
    where = f"OPENAI_COMPATIBLE_PROVIDERS[{position}]"
    if not isinstance(entry, dict):
        raise LlmConfigError(f"{where} must be an object with name, baseUrl and models")
    unknown = sorted(set(entry) - {"name", "baseUrl", "apiKeyEnv", "models"})
    if unknown:
        raise LlmConfigError(f"{where}: unknown fields {unknown}")
    name = entry.get("name")
    if not isinstance(name, str) or not _PROVIDER_NAME.match(name):
        raise LlmConfigError(f"{where}.name must be lowercase letters, digits, '-' or '_', starting with a letter")
    where = f"OPENAI_COMPATIBLE_PROVIDERS[{name}]"
    if name in _RESERVED_NAMES:
        raise LlmConfigError(f"{where}: {name!r} is a built-in provider name")
    if name in owners.values():
        raise LlmConfigError(f"{where}: the name is listed twice")
    base_url = entry.get("baseUrl")
    if not isinstance(base_url, str) or not re.match(r"^https?://[^\s/]+", base_url):
        raise LlmConfigError(f"{where}.baseUrl must be an http(s) URL")
    models = entry.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(model, str) and model for model in models):
        raise LlmConfigError(f"{where}.models must be a non-empty list of model ids")
    for model in models:
        if model in owners:
            raise LlmConfigError(f"{where}: model {model!r} is already served by {owners[model]!r}")
        owners[model] = name
    api_key_env = entry.get("apiKeyEnv")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise LlmConfigError(f"{where}.apiKeyEnv must name an environment variable")
    api_key = key_for(name, api_key_env)
    if api_key_env and not api_key:
        raise LlmConfigError(f"{where}: neither {api_key_env} nor the keys secret holds its API key")
    return ProviderConfig(name, "openai", api_key, base_url.rstrip("/"), tuple(models))


def _require_priced(providers: list[ProviderConfig], default_models: dict[str, str], catalog_json: str | None) -> None:
    """Every model the stage may serve must be in the model catalog: a reply needs its context window and prices."""
    known = build_catalog(catalog_json)
    known_names = set(known) | {alias for model in known.values() for alias in model.aliases}
    for provider in providers:
        if unpriced := [model for model in provider.models if model not in known_names]:
            raise LlmConfigError(
                f"OPENAI_COMPATIBLE_PROVIDERS: {provider.name}'s models {unpriced} are not in the model catalog:"
                " give their context window and prices in MODEL_CATALOG"
            )
    for provider_name, model in default_models.items():
        if model not in known_names:
            raise LlmConfigError(f"DEFAULT_MODELS: {provider_name}'s {model!r} is not in the model catalog")


def _chain(raw: str, configured: list[str]) -> tuple[str, ...]:
    if not raw.strip():
        return tuple(configured) or (OFFLINE_PROVIDER,)
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in configured and name != OFFLINE_PROVIDER:
            known = ", ".join(configured) or "none"
            raise LlmConfigError(f"PROVIDER_CHAIN: {name!r} is not a configured provider (configured: {known})")
    if len(set(names)) != len(names):
        raise LlmConfigError("PROVIDER_CHAIN names a provider twice")
    return tuple(names)


def _default_models(raw: str, configured: list[str]) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise LlmConfigError(f"DEFAULT_MODELS is not JSON: {error.msg}") from None
    if not isinstance(document, dict) or not all(isinstance(model, str) and model for model in document.values()):
        raise LlmConfigError("DEFAULT_MODELS must be a JSON object of provider name → model id")
    for name in document:
        if name not in configured and name not in _RESERVED_NAMES:
            raise LlmConfigError(f"DEFAULT_MODELS: {name!r} is not a provider")
    return dict(document)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LlmConfigError(f"{name} must be true or false")


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, integer: bool = False, allow_zero: bool = False
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise LlmConfigError(f"{name} must be a {'whole ' if integer else ''}number") from None
    if value < 0 or (value == 0 and not allow_zero) or value != value:  # noqa: PLR0124 (NaN)
        raise LlmConfigError(f"{name} must be {'zero or ' if allow_zero else ''}positive")
    return value


@lru_cache(maxsize=1)
def get_llm_config() -> LlmConfig:
    """The container's provider configuration, read and validated on first use."""
    return llm_config_from_environ()


def forget_llm_config() -> None:
    """Read the configuration again on next use (tests)."""
    get_llm_config.cache_clear()
