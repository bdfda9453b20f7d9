"""Writing contacts as CSV, pure: stable columns, one row per contact, formula injection neutralized.

Columns: ``id``, the contact fields, then identities by kind in stable numbered columns (``email``,
``email_2`` …, ``phone``, ``phone_2`` …, ``linkedin``, ``x``, ``github``, ``domain``, ``url``,
``other_identity``; the primary one first), ``tags`` (``; ``-separated), ``attributes`` (one JSON
object) and the timestamps. ``contact.import_csv`` reads every one of these back by its header, so an
export re-imports to the same contacts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from krabs.bulk.csv_in import FORMULA_START
from krabs.normalize import IDENTITY_KINDS

FIELD_COLUMNS = ("display_name", "given_name", "family_name", "company", "title", "stage", "owner")
KIND_COLUMN = {kind: kind for kind in IDENTITY_KINDS} | {"other": "other_identity"}


def protect(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (= + - @, tab, CR first) gets a leading '."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def header(kind_counts: dict[str, int]) -> list[str]:
    """The header for an export whose contacts hold at most ``kind_counts[kind]`` of each kind."""
    cols = ["id", *FIELD_COLUMNS]
    for kind in IDENTITY_KINDS:
        base = KIND_COLUMN[kind]
        cols += [base if n == 1 else f"{base}_{n}" for n in range(1, kind_counts.get(kind, 0) + 1)]
    return [*cols, "tags", "attributes", "created_at", "updated_at"]


def contact_cells(
    row: dict[str, Any], idents: list[Any], tag_names: list[str], kind_counts: dict[str, int]
) -> list[str]:
    """One contact's cells in ``header(kind_counts)`` order (identities primary first)."""
    cells = [row["id"], *(row[f] or "" for f in FIELD_COLUMNS)]
    by_kind: dict[str, list[Any]] = {}
    for ident in sorted(idents, key=lambda i: (not i.is_primary, i.id)):
        by_kind.setdefault(ident.kind, []).append(ident.value)
    for kind in IDENTITY_KINDS:
        values = by_kind.get(kind, [])
        width = kind_counts.get(kind, 0)
        cells += values[:width] + [""] * (width - len(values[:width]))
    tags = "; ".join(tag_names)
    if len(tag_names) == 1 and "," in tags:
        tags += ";"  # so the import splits on ; and keeps the comma inside the name
    attrs = row["attributes"] or {}
    cells += [
        tags,
        json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else "",
        row["created_at"],
        row["updated_at"],
    ]
    return [protect(c) for c in cells]


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Each row as one CSV text chunk (RFC 4180 quoting, CRLF line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
