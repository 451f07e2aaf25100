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
