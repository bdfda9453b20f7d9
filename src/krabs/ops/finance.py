"""Finance: read-only figures over deals (through their history) and expenses, in the business
profile's timezone and never summed across currencies. The math lives in ``krabs.finance``; this
module loads rows, runs it and shapes the answers. ``explain: true`` keeps the ``ids`` behind each
figure (deal and expense ids)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict, Field

from krabs.contract.errors import invalid
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.finance import figures
from krabs.finance.figures import Expense, Period
from krabs.finance.history import Change, Deal, local_date, period_bounds, utc_bound
from krabs.finance.mrr import month_movements
from krabs.finance.types import Date
from krabs.ops.business_profile import load_profile
from krabs.store.tables import deal_changes, deals, expenses

#: The most months one `finance.mrr` call reports (ten years).
MAX_MONTHS = 120


class PeriodArgs(Args):
    model_config = ConfigDict(populate_by_name=False)

    first: Date | None = Field(
        None,
        alias="from",
        description="First day of the period (local, YYYY-MM-DD); default: start of the month of `to`.",
    )
    last: Date | None = Field(
        None,
        alias="to",
        description="Last day, inclusive; default: today in the profile's timezone.",
    )
    explain: bool = Field(False, description="Add `ids`: the deal and expense ids behind figures.")


class FinanceOut(Out):
    object: str
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    timezone: str


def _period(uow: UnitOfWork, args: PeriodArgs, tz: str, months_back: int = 0) -> Period:
    last = dt.date.fromisoformat(args.last) if args.last else local_date(uow.now, tz)
    if args.first:
        first = dt.date.fromisoformat(args.first)
    else:
        m = last.year * 12 + last.month - 1 - months_back
        first = dt.date(m // 12, m % 12 + 1, 1)
    if first > last:
        raise invalid("from", f"from ({first}) is after to ({last}); send from <= to")
    start, end = period_bounds(first, last, tz)
    return Period(first.isoformat(), last.isoformat(), start, end)


def _deals(uow: UnitOfWork, end: str) -> list[Deal]:
    """Every deal of the account with its history up to ``end`` (deleted ones too: the history
    says when they left)."""
    c = deal_changes
    rows = uow.execute(
        sa.select(c, deals.c.contact_id, deals.c.source_channel)
        .join(deals, deals.c.id == c.c.deal_id)
        .where(c.c.account_id == uow.account_id, c.c.at < end)
        .order_by(c.c.deal_id, c.c.at, c.c.id)
    ).all()
    by_deal: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_deal[r.deal_id].append(r)
    out = []
    for deal_id, rs in by_deal.items():
        changes = tuple(
            Change(
                deal_id,
                r.at,
                r.stage,
                r.status,
                r.amount,
                r.currency,
                r.recurring_interval,
                r.deleted,
            )
            for r in rs
        )
        out.append(Deal(deal_id, rs[0].contact_id or deal_id, rs[0].source_channel, changes))
    return out


def _expenses(uow: UnitOfWork, p: Period) -> list[Expense]:
    e = expenses
    rows = uow.execute(
        sa.select(e).where(
            e.c.account_id == uow.account_id,
            e.c.deleted_at.is_(None),
            e.c.incurred_on >= p.first,
            e.c.incurred_on <= p.last,
        )
    ).all()
    return [Expense(r.id, r.amount, r.currency, r.category, r.channel, r.incurred_on) for r in rows]


def _shown(value: Any, explain: bool) -> Any:
    """Drop the ``ids`` (and ``*_ids``) explanations unless asked for."""
    if explain:
        return value
    if isinstance(value, dict):
        return {
            k: _shown(v, explain) for k, v in value.items() if k != "ids" and not k.endswith("_ids")
        }
    if isinstance(value, list):
        return [_shown(v, explain) for v in value]
    return value


def _head(kind: str, p: Period, tz: str) -> dict[str, Any]:
    return {"object": f"finance.{kind}", "from": p.first, "to": p.last, "timezone": tz}


EXAMPLE = Example({"from": "2026-01-01", "to": "2026-03-31"})


@operation(
    "finance.summary",
    summary="Revenue won, pipeline, MRR, spend, CAC and ROAS for a period, per currency.",
    input=PeriodArgs,
    output=FinanceOut,
    mutates=False,
    examples=(EXAMPLE, Example({"from": "2026-05-01", "to": "2026-05-31", "explain": True})),
)
def summary(uow: UnitOfWork, args: PeriodArgs) -> dict[str, Any]:
    """Per currency (amounts in minor units, never summed across currencies):
    `revenue_won` — deals won at the period's end whose win fell inside it (amount as of the end);
    `open_pipeline` — open deals at the end; `mrr` — MRR at the end (see finance.mrr); `spend` and
    `acquisition_spend` (expense categories the profile counts as acquisition);
    `new_customers` — customers (a deal's contact, or the deal itself) whose first win ever is in the
    period, counted once across currencies; `cac` = acquisition spend / new customers, rounded half
    up to a minor unit; `roas` = revenue won / acquisition spend, a decimal string ("2.50"); null
    when the divisor is 0. Past periods use deal history, so later moves do not rewrite them."""
    profile = load_profile(uow)
    tz = profile["timezone"]
    p = _period(uow, args, tz)
    body = figures.summary(
        _deals(uow, p.end), _expenses(uow, p), p, profile["acquisition_categories"]
    )
    return _shown({**_head("summary", p, tz), **body, "targets": profile["targets"]}, args.explain)


class MrrArgs(PeriodArgs):
    first: Date | None = Field(
        None,
        alias="from",
        description="A day in the first month reported; default: 11 months before `to`'s month.",
    )


@operation(
    "finance.mrr",
    summary="MRR movements by month: new, expansion, contraction, churn, reactivation, net.",
    input=MrrArgs,
    output=FinanceOut,
    mutates=False,
    examples=(EXAMPLE,),
)
def mrr(uow: UnitOfWork, args: MrrArgs) -> dict[str, Any]:
    """Whole calendar months (profile timezone) from the month of `from` to the month of `to`, at
    most 120. A customer is a deal's contact (or the deal itself without one); its MRR is the sum of
    its won recurring deals: monthly amounts as is, yearly amounts / 12 rounded half up to a whole
    minor unit per deal. Each customer's MRR at the month's start vs its end classifies the month:
    new (first MRR ever, per currency), reactivation (back after churning), expansion, contraction,
    churn. Contraction and churn are negative; `net` is their sum; `ending` = `starting` + `net`.
    A won deal stops counting when it is lost, deleted or set to recurring none."""
    profile = load_profile(uow)
    tz = profile["timezone"]
    p = _period(uow, args, tz, months_back=11)
    first, last = dt.date.fromisoformat(p.first), dt.date.fromisoformat(p.last)
    index = first.year * 12 + first.month - 1
    count = last.year * 12 + last.month - index
    if count > MAX_MONTHS:
        raise invalid("from", f"{count} months asked; at most {MAX_MONTHS} per call")
    starts = [dt.date((index + i) // 12, (index + i) % 12 + 1, 1) for i in range(count + 1)]
    all_deals = _deals(uow, utc_bound(starts[-1], tz))
    months = []
    for a, b in itertools.pairwise(starts):
        moves = month_movements(all_deals, utc_bound(a, tz), utc_bound(b, tz))
        months.append(
            {
                "month": a.strftime("%Y-%m"),
                "by_currency": {
                    c: {**mv.figures(), "ids": {k: sorted(v) for k, v in sorted(mv.ids.items())}}
                    for c, mv in sorted(moves.items())
                },
            }
        )
    currencies = sorted({c for m in months for c in m["by_currency"]})
    return _shown({**_head("mrr", p, tz), "currencies": currencies, "months": months}, args.explain)


@operation(
    "finance.expenses_by_category",
    summary="Spend per currency and category for a period.",
    input=PeriodArgs,
    output=FinanceOut,
    mutates=False,
    examples=(EXAMPLE,),
)
def expenses_by_category(uow: UnitOfWork, args: PeriodArgs) -> dict[str, Any]:
    """Live expenses incurred on days `from`..`to` (inclusive): per currency the total and count,
    and per category its amount and count. `explain: true` adds the expense ids."""
    profile = load_profile(uow)
    tz = profile["timezone"]
    p = _period(uow, args, tz)
    body = figures.expenses_by_category(_expenses(uow, p), p)
    return _shown({**_head("expenses_by_category", p, tz), "by_currency": body}, args.explain)


@operation(
    "finance.funnel",
    summary="Per stage: deals entered and converted; per channel: spend, revenue, ROAS, CAC.",
    input=PeriodArgs,
    output=FinanceOut,
    mutates=False,
    examples=(EXAMPLE,),
)
def funnel(uow: UnitOfWork, args: PeriodArgs) -> dict[str, Any]:
    """`stages` (pipeline order): `entered` — deals that moved into the stage (or were created in
    it) during the period; `converted` — those that then reached a later non-lost stage or `won`
    before the period's end; `conversion_rate` = converted / entered as a decimal string ("0.5000").
    `channels` (the profile's, those seen, then null = no channel or won outside the attribution
    window): per currency `spend` (expenses with that channel), `revenue` (wins credited to it: won
    within `attribution_window_days` of the deal's creation), `roas` = revenue / spend ("2.50"),
    `cac` = spend / the channel's new customers (minor units). Uses deal history, so a deal that
    moved on later still counts in the stage it was in."""
    profile = load_profile(uow)
    tz = profile["timezone"]
    p = _period(uow, args, tz)
    all_deals = _deals(uow, p.end)
    window = profile["attribution_window_days"]
    body = {
        **_head("funnel", p, tz),
        "attribution_window_days": window,
        "stages": figures.funnel_stages(all_deals, profile["pipeline_stages"], p),
        "channels": figures.funnel_channels(
            all_deals, _expenses(uow, p), profile["marketing_channels"], p, window
        ),
    }
    return _shown(body, args.explain)
