"""account.export and restore_archive: the archive's manifest and files, its deterministic content,
a restore into the OTHER backend (SQLite → PostgreSQL and back) compared record by record with the
audit chain recomputed, refusal of tampered archives, and the admin scope."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import err, make_store, ok
from conftest import test_settings as settings_with
from krabs.accounts import NewAccount, create_account
from krabs.audit.log import GENESIS
from krabs.bulk.archive import MANIFEST, account_tables, encode_row, schema_head, scoped
from krabs.bulk.restore import RestoreError, restore_archive
from krabs.engine import CallRequest, Engine, Outcome
from krabs.store.db import Store
from krabs.store.migrate import migrate
from krabs.store.tables import audit_actions, audit_heads, web_sessions
from krabs.web.sessions import sign_in


class Client:
    def __init__(self, engine: Engine, secret: str) -> None:
        self.engine, self.secret = engine, secret

    def __call__(
        self, op: str, args: dict[str, Any] | None = None, key: str | None = None
    ) -> Outcome:
        return self.engine.call(
            CallRequest(op=op, args=args or {}, api_key=key or self.secret, transport="test")
        )


@pytest.fixture
def exporter(store: Store, tmp_path: Path) -> Engine:
    return Engine(store, settings_with(data_dir=tmp_path))


@pytest.fixture
def acct(exporter: Engine) -> NewAccount:
    return create_account(exporter.store, "Exported account")


@pytest.fixture
def client(exporter: Engine, acct: NewAccount) -> Client:
    return Client(exporter, acct.secret)


@pytest.fixture
def other_store(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated database of the other backend."""
    target = "postgresql" if backend == "sqlite" else "sqlite"
    (tmp_path / "other").mkdir()
    s, cleanup = make_store(target, tmp_path / "other")
    migrate(s)
    yield s
    cleanup()


def populate(call: Client) -> dict[str, Any]:
    ada = ok(
        call(
            "contact.create",
            {
                "display_name": "Ada",
                "attributes": {"tier": 1, "nested": {"x": [True, None, "é"]}},
                "identities": [
                    {"kind": "email", "value": "ada@x.dev"},
                    {"kind": "phone", "value": "+14155552671"},
                ],
            },
        )
    )
    ok(call("tag.create", {"name": "vip"}))
    ok(call("tag.attach", {"tag": "vip", "target_type": "contact", "target_id": ada["id"]}))
    gone = ok(call("contact.create", {"display_name": "Gone"}))
    deleted = ok(call("contact.delete", {"id": gone["id"]}))
    ok(call("action.undo", {"undo_token": deleted["undo_token"]}))
    ok(call("contact.import_csv", {"csv": "name,email\nBob,bob@x.dev\nCarl,carl@x.dev\n"}))
    return ada


def export(call: Client) -> dict[str, Any]:
    return ok(call("account.export"))


def test_the_archive_holds_a_manifest_and_every_account_table(
    client: Client, exporter: Engine, acct: NewAccount, tmp_path: Path
) -> None:
    populate(client)
    bystander = create_account(exporter.store, "bystander")
    ok(Client(exporter, bystander.secret)("contact.create", {"display_name": "Not exported"}))
    result = export(client)
    path = Path(result["path"])
    assert result["object"] == "account_export"
    assert path.parent == (tmp_path / "exports").resolve() and path.suffix == ".zip"
    assert result["bytes"] == path.stat().st_size
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = result["manifest"]
    assert manifest["account_id"] == acct.account_id
    assert manifest["schema_version"] == schema_head()
    assert manifest["created_at"].endswith("Z")
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read(MANIFEST)) == manifest
        names = set(zf.namelist()) - {MANIFEST}
        assert names == {f"{t.name}.ndjson" for t in account_tables()}
        assert {"audit_actions.ndjson", "audit_payloads.ndjson", "runs.ndjson"} <= names
        for name in names:
            data = zf.read(name)
            entry = manifest["files"][name]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            rows = [json.loads(line) for line in data.splitlines()]
            assert len(rows) == entry["rows"] == manifest["counts"][entry["table"]]
            owner = "id" if entry["table"] == "accounts" else "account_id"
            assert {r[owner] for r in rows} <= {acct.account_id}
    counts = manifest["counts"]
    assert counts["accounts"] == 1 and counts["contacts"] == 4 and counts["tags"] == 1
    assert counts["identities"] == 4 and counts["audit_actions"] == 7 and counts["runs"] >= 1


def test_dashboard_sessions_never_leave_the_server(
    client: Client, exporter: Engine, acct: NewAccount
) -> None:
    """A signed-in dashboard session is a live credential: the archive must not carry it."""
    secret, _, _ = sign_in(exporter.store, exporter.keys, acct.secret)
    session_id = hashlib.sha256(secret.encode()).hexdigest()
    with exporter.store.engine.connect() as conn:
        assert conn.execute(sa.select(web_sessions.c.id)).scalars().all() == [session_id]
    path = Path(export(client)["path"])
    with zipfile.ZipFile(path) as zf:
        assert "web_sessions.ndjson" not in zf.namelist()
        assert "web_sessions" not in json.loads(zf.read(MANIFEST))["counts"]
        blob = b"".join(zf.read(name) for name in zf.namelist())
    assert session_id.encode() not in blob and secret.encode() not in blob


def test_rows_are_ordered_and_a_second_export_has_the_same_files(client: Client) -> None:
    populate(client)
    first, second = export(client), export(client)
    assert first["path"] != second["path"]
    with zipfile.ZipFile(first["path"]) as a, zipfile.ZipFile(second["path"]) as b:
        for name in a.namelist():
            if name in (MANIFEST, "runs.ndjson", "run_events.ndjson"):
                continue  # the run log: the first export is itself a call the second one holds
            assert a.read(name) == b.read(name), name
        ids = [json.loads(line)["id"] for line in a.read("contacts.ndjson").splitlines()]
        assert ids == sorted(ids)
        seqs = [json.loads(line)["seq"] for line in a.read("audit_actions.ndjson").splitlines()]
        assert sorted(seqs) == list(range(1, len(seqs) + 1))


def _chain(conn: sa.Connection, account_id: str) -> list[Any]:
    rows = conn.execute(
        sa.select(audit_actions)
        .where(audit_actions.c.account_id == account_id)
        .order_by(audit_actions.c.seq)
    ).all()
    prev = GENESIS
    for n, row in enumerate(rows, 1):
        assert row.seq == n
        assert hashlib.sha256(row.record.encode()).hexdigest() == row.hash
        assert row.prev_hash == prev == json.loads(row.record)["prev_hash"]
        prev = row.hash
    head = conn.execute(sa.select(audit_heads).where(audit_heads.c.account_id == account_id)).one()
    assert (head.seq, head.hash) == (len(rows), prev)
    return rows


def test_restore_into_the_other_backend_reproduces_every_record(
    client: Client, exporter: Engine, acct: NewAccount, other_store: Store
) -> None:
    ada = populate(client)
    result = export(client)
    assert restore_archive(other_store, result["path"]) == acct.account_id
    with zipfile.ZipFile(result["path"]) as zf, other_store.connect(write=False) as conn:
        for table in account_tables():
            restored = [encode_row(r) for r in conn.execute(scoped(table, acct.account_id))]
            archived = zf.read(f"{table.name}.ndjson").splitlines(keepends=True)
            assert restored == archived, table.name
        chain = _chain(conn, acct.account_id)
    with exporter.store.connect(write=False) as conn:
        assert [r.hash for r in _chain(conn, acct.account_id)] == [r.hash for r in chain]
    # The restored account works: same key, same data, and its chain goes on.
    restored = Client(Engine(other_store, settings_with()), acct.secret)
    assert ok(restored("contact.get", {"id": ada["id"]})) == ok(
        client("contact.get", {"id": ada["id"]})
    )
    ok(restored("contact.update", {"id": ada["id"], "title": "Countess"}))
    with other_store.connect(write=False) as conn:
        assert len(_chain(conn, acct.account_id)) == len(chain) + 1


def _rewrite(src: str, dst: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, change.get(name, zin.read(name)))


def _manifest_for(src: str, change: dict[str, bytes]) -> bytes:
    """The manifest an attacker would write to match changed files."""
    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read(MANIFEST))
    for name, data in change.items():
        manifest["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
        manifest["files"][name]["rows"] = len(data.splitlines())
    return json.dumps(manifest).encode()


def _edit_first(src: str, name: str, edit: Any) -> bytes:
    with zipfile.ZipFile(src) as zf:
        lines = zf.read(name).splitlines(keepends=True)
    row = json.loads(lines[0])
    edit(row)
    lines[0] = (json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n").encode()
    return b"".join(lines)


def test_tampered_archives_are_refused_and_nothing_is_written(
    client: Client, other_store: Store, tmp_path: Path
) -> None:
    populate(client)
    src = export(client)["path"]
    renamed = _edit_first(src, "contacts.ndjson", lambda r: r.update(display_name="Mallory"))
    record = _edit_first(
        src,
        "audit_actions.ndjson",
        lambda r: r.update(record=r["record"].replace('"v":1', '"v":2')),
    )
    stolen = _edit_first(src, "contacts.ndjson", lambda r: r.update(account_id="acct_someoneelse"))
    extra = _edit_first(src, "contacts.ndjson", lambda r: r.update(evil=1))
    cases: dict[str, tuple[dict[str, bytes], str]] = {
        "file changed": ({"contacts.ndjson": renamed}, "SHA-256"),
        "audit record changed, manifest forged": (
            {
                "audit_actions.ndjson": record,
                MANIFEST: _manifest_for(src, {"audit_actions.ndjson": record}),
            },
            "hash",
        ),
        "rows of another account": (
            {"contacts.ndjson": stolen, MANIFEST: _manifest_for(src, {"contacts.ndjson": stolen})},
            "another account",
        ),
        "unknown column": (
            {"contacts.ndjson": extra, MANIFEST: _manifest_for(src, {"contacts.ndjson": extra})},
            "columns",
        ),
        "manifest missing": ({MANIFEST: b"not json"}, "manifest"),
    }
    for n, (label, (change, message)) in enumerate(cases.items()):
        bad = tmp_path / f"bad{n}.zip"
        _rewrite(src, bad, change)
        with pytest.raises(RestoreError, match=message):
            restore_archive(other_store, bad)
        with other_store.connect(write=False) as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(audit_actions)).scalar() == 0
            ), label
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(RestoreError, match="cannot open"):
        restore_archive(other_store, junk)


def test_restoring_twice_or_into_another_schema_is_refused(
    client: Client, other_store: Store, tmp_path: Path
) -> None:
    populate(client)
    src = export(client)["path"]
    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read(MANIFEST))
    manifest["schema_version"] = "0001"
    old = tmp_path / "old.zip"
    _rewrite(src, old, {MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(RestoreError, match="migrate"):
        restore_archive(other_store, old)
    restore_archive(other_store, src)
    with pytest.raises(RestoreError, match="already exists"):
        restore_archive(other_store, src)


def test_export_needs_the_admin_scope(client: Client) -> None:
    writer = ok(client("api_key.create", {"name": "w", "scopes": ["read", "write"]}))["secret"]
    err(client("account.export", key=writer), "forbidden")


def test_unknown_arguments_are_refused(client: Client) -> None:
    e = err(client("account.export", {"path": "/etc/passwd"}), "invalid_argument")
    assert e["param"] == "path"


def test_rows_clashing_with_the_target_database_are_refused_whole(
    client: Client, acct: NewAccount, other_store: Store
) -> None:
    populate(client)
    src = export(client)["path"]
    create_account(other_store, "holds the same key", secret=acct.secret)
    with pytest.raises(RestoreError, match="conflict"):
        restore_archive(other_store, src)
    with other_store.connect(write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_actions)).scalar() == 0
