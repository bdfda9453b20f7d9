"""Expenses: money spent, by category and channel — the input of `finance.expenses_by_category`
and of CAC and ROAS. Additive to the seed's contract (1.1)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Out, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.finance.types import Currency, Date, PositiveAmount
from krabs.ops.business_profile import Slug, check_channel, load_profile
from krabs.ops.common import live_row, newest_first
from krabs.ops.identity import RemovedOut
from krabs.store.tables import expenses

FIELDS = ("amount", "currency", "category", "channel", "incurred_on", "description")


class ExpenseOut(Out):
    object: Literal["expense"] = "expense"
    id: str
    amount: int
    currency: str
    category: str
    channel: str | None
    incurred_on: str
    description: str | None
    created_at: str
    updated_at: str


def expense_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "expense",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class ExpenseCreate(Args):
    amount: PositiveAmount
    currency: Currency | None = Field(
        None, description="ISO 4217; defaults to the business profile's currency."
    )
    category: Slug = Field(
        description="What it paid for (advertising, tools, salaries…); the profile's "
        "acquisition_categories decide which count toward CAC."
    )
    channel: Slug | None = Field(
        None, description="Marketing channel it was spent on (one of the profile's channels)."
    )
    incurred_on: Date = Field(description="The (local) day it was spent, YYYY-MM-DD.")
    description: str | None = Field(None, max_length=1000)


@operation(
    "expense.create",
    summary="Record money spent, by category and channel.",
    input=ExpenseCreate,
    output=ExpenseOut,
    mutates=True,
    added_in="1.1",
    examples=(
        Example(
            {
                "amount": 50000,
                "currency": "EUR",
                "category": "advertising",
                "channel": "google_ads",
                "incurred_on": "2026-05-01",
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: ExpenseCreate) -> dict[str, Any]:
    """`amount` is positive integer minor units (cents). When the business profile lists marketing
    channels, `channel` must be one of them. Categories and channels are lower-case slugs."""
    profile = load_profile(uow)
    check_channel(profile, args.channel, "channel")
    row = uow.insert(
        expenses,
        {
            "id": new_id("expense"),
            **args.model_dump(include=set(FIELDS)),
            "currency": args.currency or profile["currency"],
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )
    return expense_object(row)


class ExpenseList(ListArgs):
    category: Slug | None = None
    channel: Slug | None = None
    currency: Currency | None = None
    since: Date | None = Field(None, description="Incurred on or after this day.")
    until: Date | None = Field(None, description="Incurred on or before this day.")


@operation(
    "expense.list",
    summary="List expenses, newest first, by category, channel, currency or day.",
    input=ExpenseList,
    output=ListOf[ExpenseOut],
    mutates=False,
    added_in="1.1",
    examples=(Example({"category": "advertising", "since": "2026-05-01"}),),
)
def list_(uow: UnitOfWork, args: ExpenseList) -> dict[str, Any]:
    """Newest recorded first; `since`/`until` are inclusive days."""
    e = expenses
    query = sa.select(e).where(e.c.account_id == uow.account_id, e.c.deleted_at.is_(None))
    for name in ("category", "channel", "currency"):
        if getattr(args, name) is not None:
            query = query.where(e.c[name] == getattr(args, name))
    if args.since:
        query = query.where(e.c.incurred_on >= args.since)
    if args.until:
        query = query.where(e.c.incurred_on <= args.until)
    rows = newest_first(uow, query, e, args.starting_after, args.limit)
    return page([expense_object(r) for r in rows], args.limit)


class ExpenseDelete(Args):
    id: str = id_field("ex", "The expense to delete.")


@operation(
    "expense.delete",
    summary="Delete an expense (soft, undoable for 24 h).",
    input=ExpenseDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"id": "ex_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: ExpenseDelete) -> dict[str, Any]:
    """Soft-deletes the expense: it leaves every figure. Returns an `undo_token`."""
    row = live_row(uow, expenses, args.id, "expense")
    uow.update(expenses, row, {"deleted_at": uow.now, "updated_at": uow.now})
    return {"id": args.id, "deleted": True}
