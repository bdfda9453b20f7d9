"""A deal's history as the figures see it: the ``deal_changes`` rows in order, and its state at any
moment. Half-open time: a change at ``t`` is part of the state from ``t`` on, so the state *at* a
boundary ``t`` is that of the changes strictly before ``t``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Change:
    """The deal as it stood right after one write (stage, status, money, recurrence, deletion)."""

    deal_id: str
    at: str
    stage: str
    status: str
    amount: int
    currency: str
    interval: str
    deleted: bool = False

    @property
    def is_won(self) -> bool:
        return self.status == "won" and not self.deleted


@dataclass(frozen=True)
class Deal:
    """A deal with its history (sorted oldest first). ``customer`` is its contact id, or the deal's
    own id when it has no contact (then the deal is its own customer)."""

    id: str
    customer: str
    channel: str | None
    changes: tuple[Change, ...]

    def state_at(self, t: str) -> Change | None:
        """The deal as it stood at ``t`` (changes strictly before ``t``); None before it existed."""
        state = None
        for ch in self.changes:
            if ch.at >= t:
                break
            state = ch
        return state

    def before(self, t: str) -> Iterator[tuple[Change | None, Change]]:
        """Each change before ``t`` with the state it replaced."""
        prev: Change | None = None
        for ch in self.changes:
            if ch.at >= t:
                return
            yield prev, ch
            prev = ch

    def won_at(self, t: str) -> str | None:
        """When the deal last became won, if it is won at ``t``; else None."""
        state = self.state_at(t)
        if state is None or not state.is_won:
            return None
        last = None
        for prev, ch in self.before(t):
            if ch.is_won and (prev is None or not prev.is_won):
                last = ch.at
        return last

    def entered(self, start: str, end: str) -> list[tuple[str, str]]:
        """``(stage, at)`` for each stage the deal entered in ``[start, end)`` (creation included)."""
        return [
            (ch.stage, ch.at)
            for prev, ch in self.before(end)
            if ch.at >= start and not ch.deleted and (prev is None or prev.stage != ch.stage)
        ]

    @property
    def opened_at(self) -> str:
        return self.changes[0].at


def utc_bound(day: dt.date, tz: str) -> str:
    """Local midnight at the start of ``day`` in ``tz``, as a stored UTC timestamp string."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def period_bounds(start: dt.date, end: dt.date, tz: str) -> tuple[str, str]:
    """The half-open UTC interval covering local days ``start`` through ``end`` inclusive."""
    return utc_bound(start, tz), utc_bound(end + dt.timedelta(days=1), tz)


def local_date(ts: str, tz: str) -> dt.date:
    """The local calendar date of a stored UTC timestamp."""
    parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return parsed.astimezone(ZoneInfo(tz)).date()


def ratio(num: int, den: int, places: int = 2) -> str | None:
    """``num / den`` as a decimal string rounded half up to ``places`` (``"2.50"``); None if den is 0.
    Rates are strings so no float ever reaches a hash or a comparison."""
    if den == 0:
        return None
    q = Decimal(1).scaleb(-places)
    return str((Decimal(num) / Decimal(den)).quantize(q, rounding=ROUND_HALF_UP))


def per_unit(num: int, den: int) -> int | None:
    """``num / den`` in whole minor units, rounded half up (CAC); None if ``den`` is 0."""
    if den == 0:
        return None
    return (2 * num + den) // (2 * den)
