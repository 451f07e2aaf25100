"""ULIDs and settings validation."""

from __future__ import annotations

import pytest

from shared.ids import is_id, new_id
from shared.settings import settings_from_environ


def test_ids_are_ulids_that_sort_in_creation_order_even_within_one_millisecond() -> None:
    ids = [new_id(now_ms=1_700_000_000_000) for _ in range(1000)]
    assert all(is_id(value) for value in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    assert new_id(now_ms=1_700_000_000_001) > ids[-1]


def test_settings_read_upper_case_environment_names() -> None:
    settings = settings_from_environ({"STAGE": "acme", "CORS_ALLOW_ORIGINS": "https://a.example, https://b.example"})
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")
    assert settings.token_issuer == "stratus-acme"
    assert not settings.is_dev_stage


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "STAGE"),
        ({"STAGE": "Bad Stage"}, "STAGE"),
        ({"STAGE": "acme", "PASSWORD_HASH_COST": "12"}, "password_hash_cost"),
        ({"STAGE": "acme", "CORS_ALLOW_ORIGINS": "*"}, "cors_allow_origins"),
        ({"STAGE": "dev", "ACCESS_TOKEN_TTL_SECONDS": "5"}, "ACCESS_TOKEN_TTL_SECONDS"),
    ],
)
def test_bad_settings_fail_at_cold_start_naming_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(RuntimeError, match=named):
        settings_from_environ(environ)


def test_dev_stages_may_use_cheap_hashing_and_any_origin() -> None:
    settings = settings_from_environ({"STAGE": "dev", "PASSWORD_HASH_COST": "12", "CORS_ALLOW_ORIGINS": "*"})
    assert settings.password_hash_cost == 12


def test_mcp_settings_default_to_the_shipped_stdio_servers_and_a_30_second_call() -> None:
    settings = settings_from_environ({"STAGE": "dev"})
    assert settings.mcp_stdio_allowed == (("python", "-m", "mcp_server_time"), ("python", "-m", "mcp_server_fetch"))
    assert settings.mcp_call_timeout_seconds == 30
    assert settings.mcp_allow_private is False
    custom = settings_from_environ(
        {"STAGE": "dev", "MCP_STDIO_ALLOWED": '[["node", "server.js"]]', "MCP_CALL_TIMEOUT_SECONDS": "5"}
    )
    assert custom.mcp_stdio_allowed == (("node", "server.js"),)
    assert custom.mcp_call_timeout_seconds == 5


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"STAGE": "dev", "MCP_STDIO_ALLOWED": "python -m x"}, "MCP_STDIO_ALLOWED"),
        ({"STAGE": "dev", "MCP_STDIO_ALLOWED": '[["python", ""]]'}, "MCP_STDIO_ALLOWED"),
        ({"STAGE": "dev", "MCP_CALL_TIMEOUT_SECONDS": "0"}, "MCP_CALL_TIMEOUT_SECONDS"),
        ({"STAGE": "acme", "SIGNING_KEYS_SECRET": "s", "MCP_ALLOW_PRIVATE": "true"}, "mcp_allow_private"),
    ],
)
def test_bad_mcp_settings_fail_at_cold_start(environ: dict[str, str], named: str) -> None:
    with pytest.raises(RuntimeError, match=named):
        settings_from_environ(environ)
