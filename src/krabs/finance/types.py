"""Argument types for money: ISO 4217 currencies, calendar dates, integer minor-unit amounts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import iso4217
from pydantic import AfterValidator, Field

#: The largest amount accepted, in minor units (10^15: beyond any real deal, far inside int64).
MAX_AMOUNT = 10**15


def is_currency(code: str) -> bool:
    """A current ISO 4217 alphabetic code (from the `iso4217` package's copy of the ISO table)."""
    try:
        iso4217.Currency(code)
    except ValueError:
        return False
    return True


def _currency(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not is_currency(code):
        raise ValueError(
            f"{value[:20]!r} is not an ISO 4217 currency code; use three letters like EUR, USD, GBP"
        )
    return code


Currency = Annotated[
    str,
    Field(description="ISO 4217 currency code (three letters), e.g. EUR or USD."),
    AfterValidator(_currency),
]


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a real calendar date (YYYY-MM-DD)") from None


Date = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}$", max_length=10, description="A date, YYYY-MM-DD."),
    AfterValidator(_date),
]

Amount = Annotated[
    int,
    Field(ge=0, le=MAX_AMOUNT, description="Integer minor units (cents), 0 to 10^15."),
]
PositiveAmount = Annotated[
    int,
    Field(gt=0, le=MAX_AMOUNT, description="Integer minor units (cents), 1 to 10^15."),
]
