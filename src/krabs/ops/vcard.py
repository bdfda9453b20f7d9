"""contact.ingest_vcard: contacts from vCard text (3.0 or 4.0), upserted by identity."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from krabs.bulk.records import iter_lines
from krabs.bulk.upsert import REPORT_CAP, Report, Upserter
from krabs.bulk.vcard_in import read_cards
from krabs.contract.errors import KrabsError
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.contact_import import ReportEntry, Unstripped
from krabs.ops.identity import default_region

MAX_VCARD_CHARS = 64 * 1024 * 1024


class IngestVcard(Args):
    vcard: Unstripped = Field(
        min_length=1,
        max_length=MAX_VCARD_CHARS,
        description="One or more vCards (BEGIN:VCARD … END:VCARD), version 3.0 or 4.0.",
    )


class VcardOut(Out):
    object: Literal["vcard_ingest"] = "vcard_ingest"
    cards: int
    created: int
    updated: int
    merged: int
    unchanged: int
    skipped: int
    failed: int
    contact_ids: list[str] = Field(description="The contact of each imported card, in order.")
    report: list[ReportEntry]
    report_total: int
    report_truncated: bool
    undo_token: str | None = None
    undo_expires_at: str | None = None


@operation(
    "contact.ingest_vcard",
    summary="Create or update contacts from vCard text (one undoable action).",
    input=IngestVcard,
    output=VcardOut,
    mutates=True,
    destructive=True,
    errors=("conflict",),
    digest_args=("vcard",),
    examples=(
        Example(
            {
                "vcard": "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\n"
                "EMAIL:ada@lovelace.dev\r\nORG:Analytical Engines\r\nEND:VCARD\r\n"
            }
        ),
    ),
)
def ingest_vcard(uow: UnitOfWork, args: IngestVcard) -> dict[str, Any]:
    """Reads every card: FN, N, ORG, TITLE, EMAIL, TEL, URL and X-SOCIALPROFILE (LinkedIn, X,
    GitHub recognized), NOTE (→ attributes.notes) and CATEGORIES (→ tags); photos are skipped. A
    card whose email, phone or profile an existing contact owns updates that contact's EMPTY
    fields and adds its new identities, so ingesting the same file twice changes nothing. A
    malformed card, or one with more than 50 identities, is reported by its number (`report`,
    `row` = card number) and the others still import. One action; its `undo_token` reverses all."""
    if "BEGIN:VCARD" not in args.vcard.upper():
        raise KrabsError(
            "invalid_argument",
            "vcard holds no card: send text with BEGIN:VCARD … END:VCARD blocks",
            param="vcard",
        )
    report = Report(REPORT_CAP)
    up = Upserter(uow, on_match="update", source="vcard", report=report, track=True)
    cards = 0
    for record, issues in read_cards(iter_lines(args.vcard), default_region(uow)):
        cards += 1
        if record is None:
            up.fail(issues)
        else:
            up.add(record, issues)
    up.finish()
    return {
        "object": "vcard_ingest",
        "cards": cards,
        **up.counts.to_dict(),
        "contact_ids": up.contact_ids or [],
        **report.to_dict(),
    }
