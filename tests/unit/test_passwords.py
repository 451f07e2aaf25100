"""Password hashing and policy."""

from __future__ import annotations

import pytest

from functions.identity import passwords
from shared.errors import ValidationFailed


def test_hash_verifies_the_right_password_only() -> None:
    encoded = passwords.hash_password("correct horse battery", 10)
    assert passwords.verify_password("correct horse battery", encoded)
    assert not passwords.verify_password("correct horse batterY", encoded)


def test_hashes_are_salted() -> None:
    assert passwords.hash_password("same password!", 10) != passwords.hash_password("same password!", 10)


def test_hash_records_its_cost_so_a_raised_cost_asks_for_rehash() -> None:
    encoded = passwords.hash_password("correct horse battery", 10)
    assert encoded.startswith("scrypt$ln=10,r=8,p=1$")
    assert not passwords.needs_rehash(encoded, 10)
    assert passwords.needs_rehash(encoded, 11)
    assert passwords.verify_password("correct horse battery", encoded)


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$x$y$z", "scrypt$ln=x$a$b", "scrypt$ln=10,r=8,p=1$!!$!!"])
def test_malformed_stored_hash_never_matches(stored: str) -> None:
    assert not passwords.verify_password("anything at all", stored)


@pytest.mark.parametrize("weak", ["short", "aaaaaaaaaaaaaa", "x" * 257])
def test_policy_refuses_weak_passwords(weak: str) -> None:
    with pytest.raises(ValidationFailed):
        passwords.check_policy(weak)
