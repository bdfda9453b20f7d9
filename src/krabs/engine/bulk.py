"""Compact change entries for bulk creates. A million imported rows cannot each carry an after-image
through the audit payload, the dry-run diff and undo, so the unit of work gives such rows ids from a
block of CONSECUTIVE ULIDs (the ULID spec's monotonic mode: one random base, incremented) and
records one entry per table: "created N rows with ids first..last". Undo deletes that id range
after checking that it still holds exactly those N rows, unchanged since."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from krabs.contract.ids import PREFIXES

#: Table name → the id prefix its rows carry.
TABLE_NOUNS = {
    "contacts": "contact",
    "identities": "identity",
    "tags": "tag",
    "tag_links": "tag_link",
    "interactions": "interaction",
    "interaction_participants": "participant",
    "notes": "note",
    "tasks": "task",
    "deals": "deal",
    "expenses": "expense",
}


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every 10-bit value as two Crockford characters: a 40-bit tail is four lookups.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_TAIL_BITS = 40


class IdBlock:
    """Consecutive ids for one table: ``prefix_`` + ULID(base + n). Sorted like any ULID ids (the
    time part is the block's start), unique within the block, and owned by it as a range. The
    base's low 40 bits start below 2^39, so the first 18 characters never change and only the last
    8 (exactly 40 bits) are encoded per id."""

    def __init__(self, table: str) -> None:
        self.prefix = PREFIXES[TABLE_NOUNS[table]] + "_"
        base = int(ULID())
        low = base & ((1 << (_TAIL_BITS - 1)) - 1)
        head = str(ULID.from_int(base - (base & ((1 << _TAIL_BITS) - 1))))[:-8]
        self._head, self._low = self.prefix + head, low
        self._n = 0
        self.first = self._id(0)
        self.issued = ""

    def _id(self, n: int) -> str:
        v = self._low + n
        p = _PAIRS
        return f"{self._head}{p[v >> 30]}{p[(v >> 20) & 1023]}{p[(v >> 10) & 1023]}{p[v & 1023]}"

    def next(self) -> str:
        value = self.issued = self._id(self._n)
        self._n += 1
        return value

    def owns(self, row_id: str) -> bool:
        return self.first <= row_id <= self.issued


@dataclass
class BulkCreate:
    """The one change entry for every row of ``table`` written by ``UnitOfWork.insert_compact``."""

    table: str
    block: IdBlock
    count: int = 0
    last: str = ""
    before: None = field(default=None, init=False)
    after: None = field(default=None, init=False)

    @property
    def id(self) -> str:
        return self.block.first

    @property
    def kind(self) -> str:
        return "create"

    def add(self, row_id: str) -> None:
        if not row_id.startswith(self.block.prefix) or not self.block.owns(row_id):
            raise ValueError(f"insert_compact: {row_id} was not made by new_bulk_id")
        self.count += 1
        self.last = max(self.last, row_id)

    def add_many(self, row_ids: list[str]) -> None:
        """``add`` for many ids at once: the block's ids share its prefix and lie between its first
        and last issued id, and every string between two ids with a common prefix has it too, so
        checking the smallest and largest covers them all."""
        if not row_ids:
            return
        low, high = min(row_ids), max(row_ids)
        for edge in (low, high):
            if not edge.startswith(self.block.prefix) or not self.block.owns(edge):
                raise ValueError(f"insert_compact: {edge} was not made by new_bulk_id")
        self.count += len(row_ids)
        self.last = max(self.last, high)

    def to_dict(self) -> dict[str, Any]:
        """The audit payload entry; ``compact`` tells undo to delete the id range."""
        return {
            "table": self.table,
            "id": self.block.first,
            "compact": True,
            "count": self.count,
            "first": self.block.first,
            "last": self.last or self.block.first,
            "before": None,
            "after": None,
        }

    def summary(self) -> dict[str, Any]:
        """The dry-run diff and ``touched`` entry: a count, not N rows."""
        return {
            "table": self.table,
            "id": self.block.first,
            "action": "create",
            "count": self.count,
            "first_id": self.block.first,
            "last_id": self.last,
            "summary": f"created {self.count} rows of {self.table}",
        }
