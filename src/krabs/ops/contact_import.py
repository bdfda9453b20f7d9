"""contact.import_csv: many contacts from CSV text in one audited, undoable action."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from sqlalchemy.engine import Connection

from krabs.bulk.csv_in import TARGETS, CsvError, CsvReader
from krabs.bulk.csv_worker import PARALLEL_MIN_BYTES, ParallelCsvReader
from krabs.bulk.progress import forget, progress_events
from krabs.bulk.records import Issue, iter_lines
from krabs.bulk.uploads import bounded, count_lines, file_lines, max_line_bytes, upload_path
from krabs.bulk.upsert import REPORT_CAP, OnMatch, Report, Upserter
from krabs.contract.errors import KrabsError
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.gc_pause import fewer_collections
from krabs.ops.identity import default_region

#: The largest CSV argument, in characters (the HTTP body limit is usually reached first).
MAX_CSV_CHARS = 256 * 1024 * 1024


#: Kept as sent: a leading tab or space can be an empty first cell.
Unstripped = Annotated[str, StringConstraints(strip_whitespace=False)]


class ImportCsv(Args):
    csv: Unstripped | None = Field(
        None,
        max_length=MAX_CSV_CHARS,
        description="The CSV text, header row first. Delimiter (, ; tab |) is detected. "
        "Give this or upload.",
    )
    upload: str | None = Field(
        None,
        max_length=71,
        description='A file already sent ("sha256:<hex>"): HTTP takes the CSV as a multipart '
        "field named file or a text/csv body and passes this for you; the CLI takes a FILE.",
    )
    mapping: dict[str, str] | None = Field(
        None,
        max_length=500,
        description="Column header → target, overriding the automatic mapping. Targets: "
        + ", ".join(TARGETS)
        + ", or attributes.<key>.",
    )
    on_match: Literal["update", "skip", "create"] = Field(
        "update",
        description="A row whose identity an existing contact owns: update fills that contact's "
        "empty fields and adds new identities and tags; skip leaves it; create makes a new one.",
    )


class ColumnOut(Out):
    header: str
    target: str


class ReportEntry(Out):
    row: int
    column: str | None
    code: str
    message: str
    severity: Literal["error", "warning"]


class ImportOut(Out):
    object: Literal["csv_import"] = "csv_import"
    rows: int
    created: int
    updated: int
    merged: int
    unchanged: int
    skipped: int
    failed: int
    delimiter: str
    columns: list[ColumnOut]
    report: list[ReportEntry]
    report_total: int
    report_truncated: bool
    undo_token: str | None = None
    undo_expires_at: str | None = None


def import_lines(
    uow: UnitOfWork,
    lines: Iterable[str],
    *,
    mapping: dict[str, str] | None = None,
    on_match: OnMatch = "update",
    source: str = "csv_import",
    progress: Callable[[int, int], None] | None = None,
    rows_hint: int | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """The import itself, for any source of text lines (an argument, an upload, a file): rows are
    read, checked and written in batches, so memory does not grow with the input. ``rows_hint``:
    about how many rows there are, if known (a large import skips most identity lookups).
    ``path``: the file ``lines`` come from, if any; a large one is parsed by a second process
    (``bulk.csv_worker``) while this one writes."""
    region = default_region(uow)
    with contextlib.ExitStack() as stack:
        reader: CsvReader | ParallelCsvReader
        try:
            if path is not None and path.stat().st_size >= PARALLEL_MIN_BYTES:
                reader = stack.enter_context(
                    ParallelCsvReader(
                        path, mapping=mapping, region=region, max_line=max_line_bytes()
                    )
                )
            else:
                reader = CsvReader(lines, mapping=mapping, region=region)
        except CsvError as exc:
            raise KrabsError("invalid_argument", str(exc), param=exc.param) from None
        stack.enter_context(page_cache(uow.conn, IMPORT_CACHE_KIB))
        stack.enter_context(fewer_collections())
        return _import(uow, reader, on_match, source, progress, rows_hint)


def _import(
    uow: UnitOfWork,
    reader: CsvReader | ParallelCsvReader,
    on_match: OnMatch,
    source: str,
    progress: Callable[[int, int], None] | None,
    rows_hint: int | None,
) -> dict[str, Any]:
    report = Report(REPORT_CAP)
    up = Upserter(
        uow,
        on_match=on_match,
        source=source,
        report=report,
        progress=progress,
        rows_hint=rows_hint,
    )
    for record, issues in reader:
        if record is not None:
            up.add(record, issues)
        elif any(i.severity == "error" for i in issues):
            up.fail(issues)
        else:
            up.skip_empty(
                [
                    *issues,
                    Issue(reader.row, None, "empty_row", "no mapped column has a value", "warning"),
                ]
            )
    up.finish()
    counts = up.counts.to_dict()
    return {
        "object": "csv_import",
        "rows": sum(counts.values()),
        **counts,
        "delimiter": reader.delimiter,
        "columns": [{"header": c.header, "target": c.target} for c in reader.columns],
        **report.to_dict(),
    }


@operation(
    "contact.import_csv",
    summary="Import contacts from CSV, deduplicated by identity (one undoable action).",
    input=ImportCsv,
    output=ImportOut,
    mutates=True,
    destructive=True,
    errors=("conflict",),
    digest_args=("csv",),
    examples=(
        Example({"csv": "name,email,company\nAda Lovelace,ada@lovelace.dev,Analytical Engines\n"}),
        Example(
            {
                "csv": "Nom;Courriel\nAda;ada@lovelace.dev\n",
                "mapping": {"Nom": "given_name", "Courriel": "email"},
                "on_match": "skip",
            }
        ),
    ),
)
def import_csv(uow: UnitOfWork, args: ImportCsv) -> dict[str, Any]:
    """Imports every row of `csv` as a contact. Common headers map automatically (email, work
    email, phone, mobile, first/last/full name, company, title, linkedin, twitter/x, github,
    website, stage, tags, owner, notes); pass `mapping` ({header: target}) to override; other
    columns go to `attributes`. Rows sharing an email, phone or handle become one contact; a row
    matching an existing contact follows `on_match`. Bad rows are reported (`report`: row — the
    header is row 1 —, column, code, message) and skipped; the rest import. Counts: created,
    updated (existing contacts that changed), merged (rows folded into a contact an earlier row
    made), unchanged, skipped, failed. The whole import is one action: its `undo_token` removes
    the contacts it created and restores the ones it updated. Try `dry_run: true` first."""
    lines = csv_lines(uow, args)  # checks that exactly one of csv and upload is given
    path = upload_path(uow.data_dir, uow.account_id, args.upload) if args.upload else None
    total = _rows_total(args, path)
    try:
        return import_lines(
            uow,
            lines,
            mapping=dict(args.mapping or {}),
            on_match=args.on_match,
            progress=progress_events(uow, total) if uow.run_id else None,
            rows_hint=total,
            path=path,
        )
    finally:
        forget(uow.run_id)


def _rows_total(args: ImportCsv, path: Path | None) -> int | None:
    """Data rows, for progress (physical lines less the header: quoted line breaks overcount)."""
    if path is not None:
        return max(count_lines(path) - 1, 0)
    if args.csv is not None:
        return max(args.csv.count("\n") - 1, 0)
    return None


#: SQLite's page cache while an import runs: its identity index (random SHA-256 keys) outgrows the
#: usual 64 MiB past a few hundred thousand rows, and then every insert reads and spills pages.
IMPORT_CACHE_KIB = 128 * 1024


@contextlib.contextmanager
def page_cache(conn: Connection, kib: int) -> Iterator[None]:
    """On SQLite, a page cache of ``kib`` for the block (restored after: the writer connection
    is reused); elsewhere nothing."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def csv_lines(uow: UnitOfWork, args: ImportCsv) -> Iterator[str]:
    """The lines of ``csv`` or of the uploaded file, each within the line-size cap."""
    if (args.csv is None) == (args.upload is None):
        raise KrabsError(
            "invalid_argument",
            "give exactly one of csv (the CSV text) or upload (a file sent as multipart field "
            "file, a text/csv body, or the CLI's FILE)",
            param="csv" if args.csv is None else "upload",
        )
    if args.upload is not None:
        path = upload_path(uow.data_dir, uow.account_id, args.upload)
        return file_lines(path, max_line_bytes())
    return bounded(iter_lines(args.csv or ""), max_line_bytes(), "csv")
