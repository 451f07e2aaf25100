"""The MCP registry's request models and the secret store's masking rules: what a registration may say."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from functions.mcp.models import HttpConfig, ServerCreate, ServerUpdate, StdioConfig
from shared.errors import ValidationFailed
from shared.secrets import MASK, masked, merged_secrets


def http(**config: Any) -> dict[str, Any]:
    return {"name": "docs", "type": "http", "config": {"url": "https://docs.example.com/mcp", **config}}


@pytest.mark.parametrize("name", ["github", "my-server", "a", "A_b-9", "x" * 32])
def test_names_that_prefix_a_tool_name_are_taken(name: str) -> None:
    assert ServerCreate.model_validate(http() | {"name": name}).name == name


def test_a_registration_defaults_to_a_personal_enabled_server_without_approval() -> None:
    server = ServerCreate.model_validate(http())
    assert (server.scope, server.enabled, server.require_approval, server.display_name) == ("user", True, False, None)
    assert isinstance(server.config, HttpConfig)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "t", "type": "stdio", "config": {"url": "https://x.example.com/"}},
        {"name": "t", "type": "http", "config": {"command": "python"}},
        http(headers={"Host": "evil.example.com"}),
        http(headers={"Mcp-Session-Id": "x"}),
        http(headers={"X-Bad": "a\r\nInjected: 1"}),
        http(headers={"bad name": "x"}),
        http(extra=True),
        http() | {"requireApproval": "yes"},
        http() | {"enabled": 1},
        {"name": "t", "type": "stdio", "config": {"command": "python", "env": {"1BAD": "x"}}},
    ],
)
def test_registrations_that_do_not_hold_together_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ServerCreate.model_validate(body)


def test_approval_names_the_servers_own_tools_or_all_of_them() -> None:
    assert ServerCreate.model_validate(http() | {"requireApproval": ["delete"]}).require_approval == ["delete"]
    assert ServerCreate.model_validate(http() | {"requireApproval": True}).require_approval is True


def test_an_update_may_not_rename_or_null_a_field() -> None:
    for body in ({"name": "other"}, {"enabled": None}, {"config": None}, {"scope": "stage"}):
        with pytest.raises(ValidationError):
            ServerUpdate.model_validate(body)
    assert isinstance(ServerUpdate.model_validate({"config": {"command": "python"}}).config, StdioConfig)


def test_secrets_show_their_names_only() -> None:
    assert masked(["Authorization", "X-Team"]) == {"Authorization": MASK, "X-Team": MASK}


def test_a_masked_value_keeps_the_stored_one_and_anything_else_replaces_it() -> None:
    stored = {"Authorization": "Bearer old", "X-Team": "blue"}
    assert merged_secrets(stored, {"Authorization": MASK}) == {"Authorization": "Bearer old"}
    assert merged_secrets(stored, {"Authorization": MASK, "X-Team": "red"}) == {
        "Authorization": "Bearer old", "X-Team": "red",
    }  # fmt: skip
    assert merged_secrets(stored, {}) == {}
    with pytest.raises(ValidationFailed):
        merged_secrets({}, {"Authorization": MASK})  # a registration: nothing is stored to keep
    with pytest.raises(ValidationFailed) as refused:
        merged_secrets(stored, {"X-New": MASK})
    assert refused.value.error_code == "unknown_secret"
