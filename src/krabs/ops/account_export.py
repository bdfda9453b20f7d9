"""account.export: the whole account as one verifiable archive on the server's disk."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

from krabs.bulk.archive import write_archive
from krabs.contract.errors import KrabsError
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork


class AccountExport(Args):
    pass


class AccountExportOut(Out):
    object: Literal["account_export"] = "account_export"
    path: str
    bytes: int
    sha256: str
    manifest: dict[str, Any]


@operation(
    "account.export",
    summary="Write the whole account (records, audit log, runs) to a portable zip archive.",
    input=AccountExport,
    output=AccountExportOut,
    mutates=False,
    scope="admin",
    examples=(Example({}),),
)
def export(uow: UnitOfWork, args: AccountExport) -> dict[str, Any]:
    """Writes a zip under the data directory's `exports/` folder: `manifest.json` (schema version,
    row counts, SHA-256 of every file, created_at, account id) and one NDJSON file per table —
    contacts, identities, deals, tags, …, the audit log (actions and payloads) and runs — rows in
    primary-key order. Returns its `path`, size in `bytes` and `sha256`. The archive can be restored
    into another krabs database (SQLite or PostgreSQL); the restore checks every hash and the
    audit chain. Needs the admin scope."""
    if uow.data_dir is None:
        raise KrabsError("internal", "this server has no data directory to write exports to")
    if uow.dialect == "postgresql":
        # One consistent snapshot across all tables (the handler's first statement in the call).
        uow.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    result = write_archive(uow.conn, uow.account_id, uow.data_dir / "exports", uow.now)
    return {"object": "account_export", **result}
