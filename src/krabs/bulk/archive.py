"""The whole-account archive: one zip holding ``manifest.json`` and one NDJSON file per table with an
``account_id`` column (plus the account row itself), rows ordered by primary key, streamed from the
database to disk so memory does not grow with the account. The manifest names the schema version
(the Alembic head), the row count and SHA-256 of every file, when and for which account it was made;
``krabs.bulk.restore`` reads it back into any krabs database."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from krabs.store.migrate import alembic_config
from krabs.store.tables import accounts, metadata, web_sessions

FORMAT = "krabs-account-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Rows fetched per round trip while streaming a table.
YIELD_PER = 1000


#: Account rows that are live credentials of one deployment, not account data: a dashboard session
#: is a bearer secret's hash, worthless elsewhere and dangerous in a file that leaves the server.
NOT_EXPORTED = frozenset({web_sessions.name})


def account_tables() -> list[sa.Table]:
    """The account row first, then every table holding account data, parents before children."""
    return [
        accounts,
        *(t for t in metadata.sorted_tables if "account_id" in t.c and t.name not in NOT_EXPORTED),
    ]


def scoped(table: sa.Table, account_id: str) -> sa.Select[Any]:
    """All of one account's rows of ``table`` in a deterministic order (its primary key)."""
    owner = table.c.id if table is accounts else table.c.account_id
    return sa.select(table).where(owner == account_id).order_by(*table.primary_key.columns)


@functools.cache
def schema_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return str(head)


def encode_row(row: Any) -> bytes:
    """One NDJSON line: sorted keys, compact, UTF-8 (column names as plain strings)."""
    values = {str(k): v for k, v in row._mapping.items()}
    return (
        json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    ).encode()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_archive(
    conn: sa.Connection, account_id: str, directory: Path, created_at: str
) -> dict[str, Any]:
    """Write the archive of ``account_id`` into ``directory`` (atomically: a temporary name, then a
    rename) and return ``{path, bytes, sha256, manifest}``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = "".join(ch for ch in created_at if ch.isalnum())
    path = directory / f"{account_id}-{stamp}.zip"
    partial = path.with_suffix(".zip.partial")
    files: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for table in account_tables():
                name = f"{table.name}.ndjson"
                digest, rows, size = hashlib.sha256(), 0, 0
                with zf.open(name, "w", force_zip64=True) as out:
                    result = conn.execution_options(yield_per=YIELD_PER).execute(
                        scoped(table, account_id)
                    )
                    for row in result:
                        line = encode_row(row)
                        out.write(line)
                        digest.update(line)
                        rows += 1
                        size += len(line)
                files[name] = {
                    "table": table.name,
                    "rows": rows,
                    "bytes": size,
                    "sha256": digest.hexdigest(),
                }
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "schema_version": schema_head(),
                "account_id": account_id,
                "created_at": created_at,
                "counts": {f["table"]: f["rows"] for f in files.values()},
                "files": files,
            }
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "manifest": manifest,
    }
