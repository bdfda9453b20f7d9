"""The period figures: summary, funnel and expenses by category, as pure functions of the deals'
histories and the expenses. Money is never summed across currencies; every block carries ``ids``,
the rows behind each figure (the operations drop them unless ``explain`` is asked for)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from krabs.finance.history import Deal, per_unit, ratio
from krabs.finance.mrr import mrr_at


@dataclass(frozen=True)
class Expense:
    id: str
    amount: int
    currency: str
    category: str
    channel: str | None
    incurred_on: str


@dataclass(frozen=True)
class Period:
    """Local days ``first``..``last`` inclusive, and the same period as a half-open UTC interval."""

    first: str
    last: str
    start: str
    end: str

    def has_day(self, day: str) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class Win:
    deal: Deal
    amount: int
    currency: str
    at: str


def wins(deals: Sequence[Deal], p: Period) -> list[Win]:
    """Deals won at the period's end whose (last) win fell inside it, amounts as of the end."""
    out = []
    for deal in deals:
        at = deal.won_at(p.end)
        if at is not None and at >= p.start:
            state = deal.state_at(p.end)
            assert state is not None
            out.append(Win(deal, state.amount, state.currency, at))
    return sorted(out, key=lambda w: (w.at, w.deal.id))


def new_customers(deals: Sequence[Deal], won: list[Win], p: Period) -> dict[str, Win]:
    """Customers whose first win ever is in the period, with the win that made them customers."""
    earlier = {d.customer for d in deals if any(ch.is_won for _, ch in d.before(p.start))}
    out: dict[str, Win] = {}
    for w in won:
        if w.deal.customer not in earlier and w.deal.customer not in out:
            out[w.deal.customer] = w
    return out


def _block() -> dict[str, Any]:
    return {"ids": defaultdict(list)}


def _add(block: dict[str, Any], name: str, amount: int, row_id: str) -> None:
    block[name] = block.get(name, 0) + amount
    block["ids"][name].append(row_id)


def _finish(by_currency: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        c: {**b, "ids": {k: sorted(v) for k, v in sorted(b["ids"].items())}}
        for c, b in sorted(by_currency.items())
    }


def summary(
    deals: Sequence[Deal],
    expenses: Sequence[Expense],
    p: Period,
    acquisition_categories: Sequence[str],
) -> dict[str, Any]:
    """Revenue won, open pipeline and MRR at the end, spend and acquisition spend, CAC and ROAS."""
    names = ("revenue_won", "deals_won", "open_pipeline", "open_deals", "mrr", "spend")
    by: dict[str, dict[str, Any]] = defaultdict(lambda: {**dict.fromkeys(names, 0), **_block()})
    by_acq: dict[str, int] = defaultdict(int)
    won = wins(deals, p)
    for w in won:
        _add(by[w.currency], "revenue_won", w.amount, w.deal.id)
        _add(by[w.currency], "deals_won", 1, w.deal.id)
    for deal in deals:
        state = deal.state_at(p.end)
        if state is not None and state.status == "open" and not state.deleted:
            _add(by[state.currency], "open_pipeline", state.amount, deal.id)
            _add(by[state.currency], "open_deals", 1, deal.id)
    for currency, (amount, ids) in mrr_at(deals, p.end).items():
        by[currency]["mrr"] = amount
        by[currency]["ids"]["mrr"] = ids
    acquisition = set(acquisition_categories)
    for ex in expenses:
        if p.has_day(ex.incurred_on):
            _add(by[ex.currency], "spend", ex.amount, ex.id)
            if ex.category in acquisition:
                by_acq[ex.currency] += ex.amount
                by[ex.currency]["ids"]["acquisition_spend"].append(ex.id)
    fresh = new_customers(deals, won, p)
    for currency, block in by.items():
        spend = by_acq[currency]
        block["acquisition_spend"] = spend
        block["cac"] = per_unit(spend, len(fresh))
        block["roas"] = ratio(block["revenue_won"], spend)
        block["ids"]["cac"] = block["ids"]["acquisition_spend"] + [
            w.deal.id for w in fresh.values()
        ]
        block["ids"]["roas"] = block["ids"]["revenue_won"] + block["ids"]["acquisition_spend"]
    return {
        "new_customers": len(fresh),
        "new_customer_ids": sorted(w.deal.id for w in fresh.values()),
        "by_currency": _finish(by),
    }


def _days_between(a: str, b: str) -> float:
    parse = dt.datetime.fromisoformat
    return (
        parse(b.replace("Z", "+00:00")) - parse(a.replace("Z", "+00:00"))
    ).total_seconds() / 86400


def funnel_stages(deals: Sequence[Deal], stages: Sequence[str], p: Period) -> list[dict[str, Any]]:
    """Per pipeline stage: deals that entered it in the period, and those of them that reached a
    later open stage or ``won`` before the period's end."""
    rank = {s: i for i, s in enumerate(stages)}
    out = []
    for stage in stages:
        entered: list[str] = []
        converted: list[str] = []
        for deal in deals:
            end_state = deal.state_at(p.end)
            if end_state is None or end_state.deleted:
                continue
            times = [at for s, at in deal.entered(p.start, p.end) if s == stage]
            if not times:
                continue
            entered.append(deal.id)
            later = [
                s
                for s, at in deal.entered(times[0], p.end)
                if at >= times[0]
                and (s == "won" or (s != "lost" and rank.get(s, -1) > rank[stage]))
            ]
            if later and stage not in ("won", "lost"):
                converted.append(deal.id)
        terminal = stage in ("won", "lost")
        out.append(
            {
                "stage": stage,
                "entered": len(entered),
                "converted": None if terminal else len(converted),
                "conversion_rate": None if terminal else ratio(len(converted), len(entered), 4),
                "ids": {"entered": sorted(entered), "converted": sorted(converted)},
            }
        )
    return out


def funnel_channels(
    deals: Sequence[Deal],
    expenses: Sequence[Expense],
    channels: Sequence[str],
    p: Period,
    window_days: int,
) -> list[dict[str, Any]]:
    """Per channel (None: no channel, or won outside the attribution window): spend, attributed
    revenue, ROAS, new customers and CAC, per currency."""
    won = wins(deals, p)
    fresh = {w.deal.id for w in new_customers(deals, won, p).values()}
    by: dict[str | None, dict[str, dict[str, Any]]] = defaultdict(dict)
    counts: dict[str | None, list[str]] = defaultdict(list)

    def block(channel: str | None, currency: str) -> dict[str, Any]:
        return by[channel].setdefault(currency, {"spend": 0, "revenue": 0, **_block()})

    for ex in expenses:
        if p.has_day(ex.incurred_on):
            _add(block(ex.channel, ex.currency), "spend", ex.amount, ex.id)
    for w in won:
        inside = _days_between(w.deal.opened_at, w.at) <= window_days
        channel = w.deal.channel if inside else None
        _add(block(channel, w.currency), "revenue", w.amount, w.deal.id)
        if w.deal.id in fresh:
            counts[channel].append(w.deal.id)
    out = []
    keys = sorted(set(channels) | {c for c in by if c is not None})
    for channel in [*keys, None]:
        currencies = by.get(channel, {})
        n = len(counts[channel])
        for b in currencies.values():
            b["roas"] = ratio(b["revenue"], b["spend"])
            b["cac"] = per_unit(b["spend"], n)
            b["ids"]["new_customers"] = counts[channel]
        out.append(
            {
                "channel": channel,
                "new_customers": n,
                "new_customer_ids": sorted(counts[channel]),
                "by_currency": _finish(currencies),
            }
        )
    return out


def expenses_by_category(expenses: Sequence[Expense], p: Period) -> dict[str, Any]:
    """Per currency: the total and each category's amount and count."""
    by: dict[str, dict[str, Any]] = {}
    for ex in sorted(expenses, key=lambda e: e.id):
        if not p.has_day(ex.incurred_on):
            continue
        cur = by.setdefault(ex.currency, {"total": 0, "count": 0, "categories": {}, "ids": []})
        cat = cur["categories"].setdefault(ex.category, {"amount": 0, "count": 0, "ids": []})
        for b in (cur, cat):
            b["count"] += 1
            b["ids"].append(ex.id)
        cur["total"] += ex.amount
        cat["amount"] += ex.amount
    for cur in by.values():
        cur["categories"] = dict(sorted(cur["categories"].items()))
    return dict(sorted(by.items()))
