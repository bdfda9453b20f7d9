"""Recreating an account from its archive on any krabs database (SQLite or PostgreSQL).

Nothing is written until the whole archive checks out: the manifest's format and schema version
(it must equal the target database's migration revision), every file's SHA-256 and row count, every
row belonging to the archived account and naming only real columns, and the audit chain (each
record's hash is the SHA-256 of its stored bytes, each ``prev_hash`` the hash before it, the head the
last). Then every table is loaded in one transaction, parents first; an account that already exists
there is refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from krabs.audit.log import GENESIS
from krabs.bulk.archive import FORMAT, FORMAT_VERSION, MANIFEST
from krabs.store.db import Store
from krabs.store.tables import BY_NAME, accounts, metadata

BATCH = 1000


class RestoreError(ValueError):
    """The archive cannot be restored (tampered, truncated, another schema, account exists)."""


def _rows(zf: zipfile.ZipFile, name: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    with zf.open(name) as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except ValueError:
                raise RestoreError(f"{name} line {n} is not JSON") from None
            if not isinstance(row, dict):
                raise RestoreError(f"{name} line {n} is not a JSON object")
            yield line, row


def _manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (KeyError, ValueError):
        raise RestoreError("the archive has no readable manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RestoreError(f"not a {FORMAT} archive")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RestoreError(f"archive format {manifest.get('format_version')} is not supported")
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("account_id"), str):
        raise RestoreError("the manifest lists no files or no account")
    members = set(zf.namelist()) - {MANIFEST}
    if members != set(files):
        raise RestoreError(
            f"the archive's files differ from its manifest: {sorted(members ^ set(files))}"
        )
    for name, entry in files.items():
        if BY_NAME.get(entry.get("table")) is None or name != f"{entry['table']}.ndjson":
            raise RestoreError(f"{name}: not a table of this schema")
    return manifest


def verify(zf: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    """Check hashes, counts, ownership, columns and the audit chain; raise ``RestoreError``."""
    account_id = manifest["account_id"]
    for name, entry in manifest["files"].items():
        table = BY_NAME[entry["table"]]
        columns = {str(c.name) for c in table.columns}
        owner = "id" if table is accounts else "account_id"
        digest, count = hashlib.sha256(), 0
        for line, row in _rows(zf, name):
            digest.update(line)
            count += 1
            if set(row) != columns:
                raise RestoreError(f"{name}: a row's columns differ from the {table.name} table")
            if row[owner] != account_id:
                raise RestoreError(f"{name}: a row belongs to another account")
        if digest.hexdigest() != entry.get("sha256") or count != entry.get("rows"):
            raise RestoreError(f"{name} does not match its SHA-256 or row count in the manifest")
    _verify_chain(zf)


def _verify_chain(zf: zipfile.ZipFile) -> None:
    actions = sorted((row for _, row in _rows(zf, "audit_actions.ndjson")), key=lambda r: r["seq"])
    prev = GENESIS
    for expected_seq, row in enumerate(actions, 1):
        record = row["record"].encode()
        if row["seq"] != expected_seq or json.loads(record).get("seq") != expected_seq:
            raise RestoreError(f"audit chain has a gap at seq {expected_seq}")
        if hashlib.sha256(record).hexdigest() != row["hash"]:
            raise RestoreError(f"audit action {row['id']}: hash does not match its record")
        if row["prev_hash"] != prev or json.loads(record).get("prev_hash") != prev:
            raise RestoreError(f"audit action {row['id']}: prev_hash breaks the chain")
        prev = row["hash"]
    heads = [row for _, row in _rows(zf, "audit_heads.ndjson")]
    if heads and (heads[0]["hash"] != prev or heads[0]["seq"] != len(actions)):
        raise RestoreError("the audit head does not match the last audit action")


def restore_archive(store: Store, path: str | Path) -> str:
    """Recreate the archived account in ``store``; returns its id. Raises ``RestoreError``."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise RestoreError(f"cannot open the archive: {exc}") from None
    with zf:
        manifest = _manifest(zf)
        try:
            verify(zf, manifest)
        except (zipfile.BadZipFile, KeyError, TypeError, OSError) as exc:
            raise RestoreError(f"the archive is damaged: {exc}") from None
        account_id = str(manifest["account_id"])
        by_table = {entry["table"]: name for name, entry in manifest["files"].items()}
        try:
            _restore(store, zf, manifest, account_id, by_table)
        except sa.exc.IntegrityError as exc:
            raise RestoreError(
                f"the archive's rows conflict with data already in this database: {exc.orig}"
            ) from None
    return account_id


def _restore(
    store: Store,
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    account_id: str,
    by_table: dict[str, str],
) -> None:
    """Load every table in one transaction (nothing stays if anything fails)."""
    with store.transaction(write=True) as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current != manifest.get("schema_version"):
            raise RestoreError(
                f"archive schema {manifest.get('schema_version')} differs from this "
                f"database's {current}; migrate it first"
            )
        exists = conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id))
        if exists.first() is not None:
            raise RestoreError(f"account {account_id} already exists in this database")
        for table in metadata.sorted_tables:
            if table.name in by_table:
                _load(conn, table, zf, by_table[table.name])


#: Tables whose integer ids the database assigns (run_events' global cursor). Their rows keep
#: their ids unless this database already uses some of them; then they get new ones, in order.
SERIAL_IDS = frozenset({"run_events"})


def _load(conn: sa.Connection, table: sa.Table, zf: zipfile.ZipFile, name: str) -> None:
    fresh = table.name in SERIAL_IDS and _ids_taken(conn, table, zf, name)
    batch: list[dict[str, Any]] = []
    for _, row in _rows(zf, name):
        if fresh:
            row = {k: v for k, v in row.items() if k != "id"}
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
    if table.name in SERIAL_IDS and not fresh and conn.dialect.name == "postgresql":
        # Ids given explicitly do not move the sequence: move it past them.
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"GREATEST((SELECT max(id) FROM {table.name}), 1))"
            )
        )


def _ids_taken(conn: sa.Connection, table: sa.Table, zf: zipfile.ZipFile, name: str) -> bool:
    ids = [row["id"] for _, row in _rows(zf, name)]
    if not ids:
        return False
    taken = conn.execute(
        sa.select(sa.func.count()).where(table.c.id.between(min(ids), max(ids)))
    ).scalar_one()
    return bool(taken)
