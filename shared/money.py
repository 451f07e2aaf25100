"""Costs as the tables keep them: whole nano-dollars, so every sum DynamoDB makes (`ADD`) is exact integer
arithmetic; callers see `Decimal` dollars."""

from __future__ import annotations

from decimal import Decimal

NANO = Decimal(10) ** 9


def to_nano_usd(dollars: Decimal) -> int:
    return int(dollars * NANO)


def from_nano_usd(nano: int | str) -> Decimal:
    return Decimal(nano) / NANO
