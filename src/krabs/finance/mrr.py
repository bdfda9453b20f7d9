"""Monthly recurring revenue, ChartMogul's way. A customer's MRR (per currency) is the sum of its won,
recurring, live deals: a monthly deal counts its amount, a yearly deal its amount / 12 rounded half
up to a whole minor unit (per deal). Comparing each customer's MRR at the start and at the end of a
month classifies the change: new (first MRR ever in that currency), reactivation (MRR again after
having had some), expansion, contraction, churn (to zero). Contraction and churn are negative, so
``net`` is the sum of the movements and ``ending = starting + net``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from krabs.finance.history import Change, Deal

MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation")


def monthly_value(state: Change | None) -> int:
    """What one deal adds to its customer's MRR in this state."""
    if state is None or not state.is_won:
        return 0
    if state.interval == "month":
        return state.amount
    if state.interval == "year":
        return (2 * state.amount + 12) // 24
    return 0


Key = tuple[str, str]  # (customer, currency)


def contributions(deals: Sequence[Deal], t: str) -> dict[Key, dict[str, int]]:
    """Each customer's contributing deals at ``t``: ``{(customer, currency): {deal_id: monthly}}``."""
    out: dict[Key, dict[str, int]] = defaultdict(dict)
    for deal in deals:
        state = deal.state_at(t)
        value = monthly_value(state)
        if state is not None and value > 0:
            out[(deal.customer, state.currency)][deal.id] = value
    return out


def mrr_at(deals: Sequence[Deal], t: str) -> dict[str, tuple[int, list[str]]]:
    """Total MRR per currency at ``t``, with the deal ids behind it."""
    totals: dict[str, tuple[int, list[str]]] = {}
    for (_, currency), by_deal in sorted(contributions(deals, t).items()):
        amount, ids = totals.get(currency, (0, []))
        totals[currency] = (amount + sum(by_deal.values()), ids + sorted(by_deal))
    return {c: (a, sorted(ids)) for c, (a, ids) in sorted(totals.items())}


def _had_mrr_before(deals: Sequence[Deal], key: Key, t: str) -> bool:
    customer, currency = key
    return any(
        monthly_value(ch) > 0 and ch.currency == currency
        for deal in deals
        if deal.customer == customer
        for _, ch in deal.before(t)
    )


@dataclass
class Movement:
    starting: int = 0
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churn: int = 0
    reactivation: int = 0
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @property
    def net(self) -> int:
        return self.new + self.expansion + self.contraction + self.churn + self.reactivation

    @property
    def ending(self) -> int:
        return self.starting + self.net

    def figures(self) -> dict[str, int]:
        return {
            "starting": self.starting,
            **{m: getattr(self, m) for m in MOVEMENTS},
            "net": self.net,
            "ending": self.ending,
        }


def month_movements(deals: Sequence[Deal], start: str, end: str) -> dict[str, Movement]:
    """Per currency, the MRR movements of the month ``[start, end)``."""
    before, after = contributions(deals, start), contributions(deals, end)
    out: dict[str, Movement] = defaultdict(Movement)
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key, {}), after.get(key, {})
        a, b = sum(was.values()), sum(now.values())
        mv = out[key[1]]
        mv.starting += a
        mv.ids["starting"].update(was)
        mv.ids["ending"].update(now)
        kind = None
        if a == 0 and b > 0:
            kind = "reactivation" if _had_mrr_before(deals, key, start) else "new"
        elif a > 0 and b == 0:
            kind = "churn"
        elif b > a:
            kind = "expansion"
        elif b < a:
            kind = "contraction"
        if kind is not None:
            setattr(mv, kind, getattr(mv, kind) + b - a)
            changed = {d for d in set(was) | set(now) if was.get(d) != now.get(d)}
            mv.ids[kind].update(changed)
    return dict(out)
