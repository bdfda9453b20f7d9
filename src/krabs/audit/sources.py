"""Where ``krabs audit verify`` reads a log from: an account export zip (offline), a database, or a
live server over its API (records, signatures, keys and the latest checkpoint; payloads stay on the
server, so they are not checked from there)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from krabs.audit.verify import LogData
from krabs.store.tables import (
    audit_account_keys,
    audit_actions,
    audit_checkpoints,
)

ERASED = "contact_erasures"


def _ndjson(zf: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    for line in _lines(zf, name):
        yield json.loads(line)


def _lines(zf: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """A table's non-blank lines, unparsed: the verifier's workers parse them. Read a megabyte at a
    time and split (``ZipExtFile``'s own line iteration costs ~10 µs of Python a line)."""
    if name not in zf.namelist():
        return
    with zf.open(name) as f:
        rest = b""
        while chunk := f.read(1 << 20):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from (line for line in lines if line.strip())
        if rest.strip():
            yield rest


def from_export(path: str | Path) -> LogData:
    """The log inside an ``account.export`` zip (read lazily, table by table; the actions and
    payloads as raw lines, which the workers parse)."""
    zf = zipfile.ZipFile(path)
    manifest = json.loads(zf.read("manifest.json"))
    return LogData(
        account_id=str(manifest["account_id"]),
        actions=(),
        action_lines=_lines(zf, "audit_actions.ndjson"),
        keys=list(_ndjson(zf, "audit_account_keys.ndjson")),
        checkpoints=list(_ndjson(zf, "audit_checkpoints.ndjson")),
        payload_lines=_lines(zf, "audit_payloads.ndjson"),
        erased=_erasures(_ndjson(zf, f"{ERASED}.ndjson")),
    )


def _erasures(rows: Iterator[dict[str, Any]]) -> dict[str, int]:
    return {str(r["payload_digest"]): int(r["erased_seq"]) for r in rows}


def _stream(conn: sa.Connection, stmt: Any) -> Iterator[dict[str, Any]]:
    for row in conn.execution_options(yield_per=5000).execute(stmt):
        yield dict(row._mapping)


def from_database(conn: sa.Connection, account_id: str) -> LogData:
    """The log as a database holds it (read inside the caller's connection)."""
    from krabs.store.tables import metadata

    def rows(table: sa.Table, *cols: Any) -> Iterator[dict[str, Any]]:
        q = sa.select(*(cols or (table,))).where(table.c.account_id == account_id)
        return _stream(conn, q)

    a = audit_actions
    erased = metadata.tables.get(ERASED)
    top = conn.execute(sa.select(sa.func.max(a.c.seq)).where(a.c.account_id == account_id)).scalar()
    url = conn.engine.url.render_as_string(hide_password=False)
    return LogData(
        account_id=account_id,
        actions=(),
        database=(url, int(top or 0)),
        keys=list(rows(audit_account_keys)),
        checkpoints=list(rows(audit_checkpoints)),
        payloads=None,
        erased=_erasures(rows(erased)) if erased is not None else {},
    )


def from_server(url: str, api_key: str) -> LogData:
    """The log as a live server reports it: ``audit.records`` pages, ``audit.key`` and the latest
    ``audit.checkpoint``."""
    import httpx

    client = httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    )

    def call(op: str, args: dict[str, Any]) -> dict[str, Any]:
        r = client.post(f"/v1/{op}", json=args)
        if r.status_code == 404 and op == "audit.checkpoint":
            return {}
        r.raise_for_status()
        return dict(r.json())

    keys = call("audit.key", {})
    latest = call("audit.checkpoint", {})
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        page = call("audit.records", {"after_seq": after, "limit": 1000})
        records.extend(page["data"])
        if not page["has_more"] or not page["data"]:
            break
        after = int(page["data"][-1]["seq"])
    client.close()
    account = json.loads(records[0]["record"])["account"] if records else ""
    return LogData(
        account_id=str(account),
        actions=records,
        keys=[{**k, "public_key": k["public_key"]} for k in keys["keys"]],
        checkpoints=[{"size": latest["tree_size"], "note": latest["note"], "root": None}]
        if latest
        else [],
        payloads=None,
    )
