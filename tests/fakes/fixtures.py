"""pytest fixtures for the fake providers; import them into a conftest (`from tests.fakes.fixtures import *`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.variables import LLM_VARIABLES

__all__ = [
    "anthropic_fake",
    "anthropic_fake_server",
    "bedrock_fake",
    "llm_environment",
    "openai_fake",
    "openai_fake_server",
]


@pytest.fixture(scope="session")
def anthropic_fake_server() -> Iterator[FakeAnthropic]:
    # One server for the session (starting and stopping uvicorn costs ~0.4 s); each test gets it reset.
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def openai_fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def anthropic_fake(anthropic_fake_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """A running fake Anthropic API with an empty script; point a client (or ANTHROPIC_BASE_URL) at `.base_url`."""
    anthropic_fake_server.reset()
    yield anthropic_fake_server
    anthropic_fake_server.reset()


@pytest.fixture
def openai_fake(openai_fake_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """A running fake OpenAI API with an empty script; point a client (or OPENAI_BASE_URL) at `.base_url` (/v1)."""
    openai_fake_server.reset()
    yield openai_fake_server
    openai_fake_server.reset()


@pytest.fixture
def bedrock_fake() -> FakeBedrock:
    """A scripted Bedrock runtime; `bedrock_fake.attach(bedrock_client())` routes a real client's calls to it."""
    return FakeBedrock()


def _forget_llm_state() -> None:
    from shared.llm.catalog import forget_catalog
    from shared.llm.config import forget_llm_config
    from shared.llm.embeddings import forget_stage_embedder
    from shared.llm.failover import forget_cooldowns
    from shared.llm.registry import forget_providers

    forget_catalog()
    forget_llm_config()
    forget_providers()
    forget_cooldowns()
    forget_stage_embedder()


@pytest.fixture
def llm_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """`configure(ANTHROPIC_API_KEY=..., ...)`: the provider settings (none by default: offline) with the cached
    configuration, providers, catalog and cool-downs forgotten before and after the test."""
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    _forget_llm_state()

    def configure(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        _forget_llm_state()

    yield configure
    _forget_llm_state()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings read again from the environment in the test (and after it)."""
    from shared.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
