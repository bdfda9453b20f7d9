"""contact.export_csv: the account's contacts as CSV text, with contact.list's filters."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.bulk.csv_out import contact_cells, csv_lines, header
from krabs.contract.models import Args, Out, Timestamp
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import TAG_FILTER, tags_of
from krabs.ops.contact import Stage, filtered, identities_of
from krabs.store.tables import contacts, identities

if TYPE_CHECKING:
    from krabs.config import Settings
    from krabs.engine.context import Principal
    from krabs.store.db import Store

#: The most rows one call returns; page on with ``starting_after`` = the last ``next_cursor``.
MAX_EXPORT_ROWS = 100_000
PAGE = 500


class ExportCsv(Args):
    stage: Stage | None = None
    updated_since: Timestamp | None = Field(
        None, description="Only contacts updated at or after this."
    )
    q: str | None = Field(
        None, min_length=1, max_length=200, description="Search in names, company and identities."
    )
    tag: str | None = TAG_FILTER
    limit: int = Field(
        MAX_EXPORT_ROWS, ge=1, le=MAX_EXPORT_ROWS, description="Rows per call, at most 100000."
    )
    starting_after: str | None = Field(
        None, max_length=64, description="Cursor: the `next_cursor` of the previous export call."
    )


class ExportOut(Out):
    object: Literal["csv_export"] = "csv_export"
    csv: str
    rows: int
    has_more: bool
    next_cursor: str | None = None


class ContactCsv:
    """The export as a stream of CSV text chunks (header first), oldest contact first; after
    iteration ``rows``, ``has_more`` and ``next_cursor`` say how far it got."""

    def __init__(self, uow: UnitOfWork, query: sa.Select[Any], limit: int) -> None:
        self.uow, self.query, self.limit = uow, query, limit
        self.rows = 0
        self.has_more = False
        self.next_cursor: str | None = None

    def kind_counts(self) -> dict[str, int]:
        """How many columns each identity kind needs: its largest count on one exported contact."""
        i = identities
        per_contact = (
            sa.select(i.c.kind, sa.func.count().label("n"))
            .where(
                i.c.account_id == self.uow.account_id,
                i.c.deleted_at.is_(None),
                i.c.contact_id.in_(self.query.with_only_columns(contacts.c.id)),
            )
            .group_by(i.c.contact_id, i.c.kind)
            .subquery()
        )
        rows = self.uow.execute(
            sa.select(per_contact.c.kind, sa.func.max(per_contact.c.n).label("most")).group_by(
                per_contact.c.kind
            )
        ).all()
        return {str(r.kind): int(r.most) for r in rows}

    def __iter__(self) -> Iterator[str]:
        counts = self.kind_counts()
        yield from csv_lines([header(counts)])
        after: str | None = None
        while self.rows < self.limit:
            q = self.query
            if after is not None:
                q = q.where(contacts.c.id > after)
            size = min(PAGE, self.limit - self.rows)
            page = [
                dict(r._mapping) for r in self.uow.execute(q.order_by(contacts.c.id).limit(size))
            ]
            if not page:
                return
            ids = [r["id"] for r in page]
            idents, tagged = identities_of(self.uow, ids), tags_of(self.uow, ids)
            yield from csv_lines(
                contact_cells(r, idents[r["id"]], [t["name"] for t in tagged[r["id"]]], counts)
                for r in page
            )
            self.rows += len(page)
            after = ids[-1]
            if len(page) < size:
                return
        more = self.uow.execute(self.query.where(contacts.c.id > after).limit(1)).first()
        if more is not None:
            self.has_more, self.next_cursor = True, after


def export(uow: UnitOfWork, args: ExportCsv) -> ContactCsv:
    query = filtered(
        uow, stage=args.stage, updated_since=args.updated_since, q=args.q, tag=args.tag
    )
    if args.starting_after:
        query = query.where(contacts.c.id > args.starting_after)
    return ContactCsv(uow, query, args.limit)


@operation(
    "contact.export_csv",
    summary="Export contacts as CSV text (filters as contact.list).",
    input=ExportCsv,
    output=ExportOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({}), Example({"stage": "customer", "updated_since": "2026-01-01"})),
)
def export_csv(uow: UnitOfWork, args: ExportCsv) -> dict[str, Any]:
    """Returns `{csv, rows, has_more, next_cursor}`: one row per live contact, oldest first, at most
    `limit` (100000) per call — when `has_more`, call again with `starting_after: next_cursor`.
    Columns: id, display_name, given_name, family_name, company, title, stage, owner, identities
    in numbered columns per kind (email, email_2, phone, …, primary first), tags, attributes (JSON),
    created_at, updated_at. Cells starting with = + - @ tab or CR are prefixed with ' so
    spreadsheets do not run them; contact.import_csv strips that prefix, so exports re-import."""
    stream = export(uow, args)
    text = "".join(stream)
    return {
        "object": "csv_export",
        "csv": text,
        "rows": stream.rows,
        "has_more": stream.has_more,
        "next_cursor": stream.next_cursor,
    }


def stream_all(
    store: Store, settings: Settings, who: Principal, args: dict[str, Any]
) -> Iterator[str]:
    """The export as CSV text for a transport to stream once the engine has checked the call (with
    a one-row limit): every row over one read connection, without the operation's 100000-row cap
    unless ``limit`` is given. HTTP and the embedded CLI both stream through here."""
    parsed = ExportCsv.model_validate(args)
    with store.connect(write=False) as conn:
        uow = UnitOfWork(
            conn=conn,
            principal=who,
            run_id=None,
            dialect=store.dialect,
            default_region=settings.default_region,
            data_dir=settings.data_dir,
        )
        stream = export(uow, parsed)
        if "limit" not in args:
            stream.limit = sys.maxsize
        yield from stream
