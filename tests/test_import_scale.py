"""What makes a big import affordable, through the real engine on SQLite and PostgreSQL: bulk
creates recorded as ONE compact change per table (small audit payload and dry-run diff, exact undo
by id range, conflicts when a created row changed since), bulk text arguments kept as a digest in
the audit payload and the run event, the progress hook, and the CLI's FILE argument."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bulk_helpers import account_data, all_contacts
from conftest import Caller, err, ok
from krabs.accounts import NewAccount
from krabs.audit.log import load_payload
from krabs.bulk.uploads import count_lines, file_lines
from krabs.cli import cli
from krabs.engine import Engine
from krabs.engine.bulk import IdBlock
from krabs.ops.contact_import import import_lines
from krabs.store.tables import audit_actions, run_events


def rows_csv(n: int, start: int = 0) -> str:
    lines = ["name,email,phone,tags"]
    lines += [f"P{i},p{i}@x.dev,+1415555{i % 10000:04d},t{i % 3}" for i in range(start, start + n)]
    return "\n".join(lines) + "\n"


def payload_of(engine: Engine, account: NewAccount, action_id: str) -> dict[str, Any]:
    with engine.store.connect(write=False) as conn:
        digest = conn.execute(
            sa.select(audit_actions.c.payload_digest).where(audit_actions.c.id == action_id)
        ).scalar_one()
        return load_payload(conn, account.account_id, digest)


def test_a_bulk_create_is_one_compact_change_per_table(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    csv = rows_csv(1200)
    outcome = call("contact.import_csv", {"csv": csv})
    result = ok(outcome)
    assert result["created"] == 1200
    payload = payload_of(engine, account, outcome.action_id)
    compact = {c["table"]: c for c in payload["changes"] if c.get("compact")}
    assert compact["contacts"]["count"] == 1200
    assert compact["identities"]["count"] == 2400
    assert compact["tag_links"]["count"] == 1200
    assert compact["tags"]["count"] == 3
    assert all(c.get("compact") for c in payload["changes"])  # no per-row images at all
    ids = [c["id"] for c in all_contacts(call)]
    assert (min(ids), max(ids)) == (compact["contacts"]["first"], compact["contacts"]["last"])
    # the CSV text itself is not stored: its digest and size are
    text = payload["args"]["csv"]
    assert text == {"sha256": hashlib.sha256(csv.encode()).hexdigest(), "chars": len(csv)}
    assert len(json.dumps(payload)) < 5000


def test_the_run_event_carries_the_digest_not_the_text(
    engine: Engine, call: Caller, account: NewAccount
) -> None:
    csv = rows_csv(3) + "Marker,unique-marker-text@x.dev,,\n"
    ok(call("contact.import_csv", {"csv": csv}))
    e = run_events
    with engine.store.connect(write=False) as conn:
        stored = [
            repr(tuple(r))
            for r in conn.execute(sa.select(e).where(e.c.account_id == account.account_id)).all()
        ]
        imports = sa.select(e).where(
            e.c.account_id == account.account_id, e.c.op == "contact.import_csv"
        )
        mine = [repr(tuple(r)) for r in conn.execute(imports).all()]
    assert mine and all("sha256" in s for s in mine)
    assert not any("unique-marker-text" in s and "args" in s for s in stored)


def test_dry_run_diff_summarizes(call: Caller) -> None:
    plan = ok(call("contact.import_csv", {"csv": rows_csv(700), "dry_run": True}))
    by_table = {d["table"]: d for d in plan["diff"] if "count" in d}
    assert by_table["contacts"]["count"] == 700
    assert by_table["contacts"]["summary"] == "created 700 rows of contacts"
    assert len(plan["diff"]) < 10
    assert all_contacts(call) == []


def test_undo_of_a_big_import_and_undo_of_that_undo(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(call("contact.create", {"display_name": "Kept", "identities": [
        {"kind": "email", "value": "p5@x.dev"}]}))  # fmt: skip
    before = account_data(engine.store, account.account_id)
    result = ok(call("contact.import_csv", {"csv": rows_csv(1100)}))
    assert (result["created"], result["updated"]) == (1099, 1)
    after = account_data(engine.store, account.account_id)
    undone = ok(call("action.undo", {"undo_token": result["undo_token"]}))
    assert undone["conflicts"] == []
    assert account_data(engine.store, account.account_id) == before
    redone = ok(call("action.undo", {"undo_token": undone["undo_token"]}))
    assert redone["conflicts"] == []
    assert account_data(engine.store, account.account_id) == after


def test_undo_reports_a_created_contact_changed_since(call: Caller) -> None:
    result = ok(call("contact.import_csv", {"csv": rows_csv(20)}))
    victim = all_contacts(call)[3]
    ok(call("contact.update", {"id": victim["id"], "company": "Changed"}))
    e = err(call("action.undo", {"undo_token": result["undo_token"]}), "undo_conflict")
    conflicts = e["conflicts"]
    assert any(c["table"] == "contacts" and c["changed"] == 1 for c in conflicts)
    forced = ok(call("action.undo", {"undo_token": result["undo_token"], "force": True}))
    assert forced["conflicts"]
    assert all_contacts(call) == []


def test_undo_reports_a_created_row_deleted_since(call: Caller) -> None:
    result = ok(call("contact.import_csv", {"csv": rows_csv(5)}))
    victim = all_contacts(call)[0]
    ok(call("contact.delete", {"id": victim["id"]}))
    e = err(call("action.undo", {"undo_token": result["undo_token"]}), "undo_conflict")
    assert e["conflicts"]


def test_id_blocks_are_consecutive_ulids_owned_by_range() -> None:
    block = IdBlock("contacts")
    ids = [block.next() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(block.owns(i) for i in ids)
    assert not block.owns("ct_" + "Z" * 26)
    with pytest.raises(KeyError):
        IdBlock("audit_actions")


def test_insert_compact_refuses_foreign_ids(engine: Engine, account: NewAccount) -> None:
    from krabs.auth import authenticate
    from krabs.contract.ids import new_id
    from krabs.engine.uow import UnitOfWork
    from krabs.store.tables import tags

    who = authenticate(engine.store, engine.keys, account.secret)
    with engine.store.connect(write=True) as conn:
        tx = conn.begin()
        uow = UnitOfWork(conn=conn, principal=who, run_id=None, dialect=engine.store.dialect)
        row = {"id": new_id("tag"), "name": "x", "name_key": "x", "created_at": uow.now,
               "updated_at": uow.now}  # fmt: skip
        with pytest.raises(ValueError, match="new_bulk_id"):
            uow.insert_compact(tags, [row])
        tx.rollback()


def test_insert_compact_values_refuses_foreign_ids_accounts_and_columns(
    engine: Engine, account: NewAccount
) -> None:
    from krabs.auth import authenticate
    from krabs.bulk.tagging import LINK_COLUMNS
    from krabs.contract.ids import new_id
    from krabs.engine.uow import UnitOfWork
    from krabs.store.tables import tag_links

    who = authenticate(engine.store, engine.keys, account.secret)
    with engine.store.connect(write=True) as conn:
        tx = conn.begin()
        uow = UnitOfWork(conn=conn, principal=who, run_id=None, dialect=engine.store.dialect)
        link = (new_id("tag_link"), account.account_id, "tg_x", "contact", "ct_x", uow.now)
        with pytest.raises(ValueError, match="new_bulk_id"):
            uow.insert_compact_values(tag_links, LINK_COLUMNS, [link])
        own = (uow.new_bulk_id(tag_links), "acct_other", "tg_x", "contact", "ct_x", uow.now)
        with pytest.raises(ValueError, match="another account"):
            uow.insert_compact_values(tag_links, LINK_COLUMNS, [own])
        with pytest.raises(ValueError, match="exactly its columns"):
            uow.insert_compact_values(tag_links, LINK_COLUMNS[:-1], [own[:-1]])
        tx.rollback()


def test_rows_folding_into_a_contact_of_an_earlier_batch_fill_it(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    """A row 600 rows after the one that created its contact fills that contact's empty fields and
    attributes (one executemany per set of changed columns); undo still removes everything."""
    before = account_data(engine.store, account.account_id)
    lines = ["name,email,company,Shoe size"] + [f"P{i},p{i}@x.dev,," for i in range(600)]
    lines += ["Other,P3@X.DEV,Acme,44", "Again,p4@x.dev,Initech,", "Same,p5@x.dev,,"]
    result = ok(call("contact.import_csv", {"csv": "\n".join(lines) + "\n"}))
    assert (result["created"], result["merged"]) == (600, 3)
    by_name = {c["display_name"]: c for c in all_contacts(call)}
    assert (by_name["P3"]["company"], by_name["P3"]["attributes"]) == ("Acme", {"Shoe size": "44"})
    assert (by_name["P4"]["company"], by_name["P4"]["attributes"]) == ("Initech", {})
    assert by_name["P5"]["company"] is None
    ok(call("action.undo", {"undo_token": result["undo_token"]}))
    assert account_data(engine.store, account.account_id) == before


def test_progress_is_reported_per_batch(engine: Engine, account: NewAccount) -> None:
    from krabs.auth import authenticate
    from krabs.bulk.records import iter_lines
    from krabs.engine.uow import UnitOfWork

    who = authenticate(engine.store, engine.keys, account.secret)
    done: list[tuple[int, int]] = []
    text = rows_csv(1203).replace("\n", "\nBad,not-an-email,,\n,,,;\n", 1)  # failed, empty
    with engine.store.connect(write=True) as conn:
        tx = conn.begin()
        uow = UnitOfWork(conn=conn, principal=who, run_id=None, dialect=engine.store.dialect)
        out = import_lines(uow, iter_lines(text), progress=lambda d, f: done.append((d, f)))
        tx.rollback()
    assert (out["created"], out["failed"], out["skipped"]) == (1203, 1, 1)
    assert done == [(502, 1), (1002, 1), (1205, 1)]


def test_file_lines_and_count(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a\r\nb\nc")
    assert list(file_lines(path, 100)) == ["a\r\n", "b\n", "c"]
    assert count_lines(path) == 3


# -- the CLI's FILE ---------------------------------------------------------------------------


def krabs(env: dict[str, Any], *argv: str) -> Any:
    base = {"KRABS_RUN_ID": None, "KRABS_OUTPUT": None, "KRABS_BOOTSTRAP_KEY": None}
    result = CliRunner().invoke(cli, list(argv), env={**base, **env})
    return result


def test_cli_imports_a_local_file_embedded(tmp_path: Path) -> None:
    env = {"KRABS_URL": None, "KRABS_API_KEY": None, "KRABS_DATA_DIR": str(tmp_path / "data")}
    path = tmp_path / "contacts.csv"
    path.write_text(rows_csv(30))
    plan = krabs(env, "contact", "import_csv", str(path), "--dry-run", "-o", "json")
    assert plan.exit_code == 0, plan.output
    result = krabs(env, "contact", "import_csv", str(path), "--on-match", "skip", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] == 30
    again = krabs(env, "contact", "import_csv", str(path), "-o", "json")
    assert json.loads(again.stdout)["unchanged"] == 30
    card = tmp_path / "a.vcf"
    card.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada\r\nEMAIL:ada@x.dev\r\nEND:VCARD\r\n")
    vcard = krabs(env, "contact", "ingest_vcard", str(card), "-o", "json")
    assert vcard.exit_code == 0, vcard.output
    missing = krabs(env, "contact", "import_csv", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2
    garbage = tmp_path / "g.csv"
    garbage.write_bytes(bytes(range(256)) * 10)
    bad = krabs(env, "contact", "import_csv", str(garbage), "-o", "json")
    assert bad.exit_code == 2 and "not UTF-8" in bad.stderr


def test_cli_imports_a_local_file_remote(
    live: Any, account: NewAccount, call: Caller, tmp_path: Path
) -> None:
    env = {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret}
    path = tmp_path / "contacts.csv"
    path.write_text(rows_csv(40))
    result = krabs(env, "contact", "import_csv", str(path), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] == 40
    assert len(all_contacts(call)) == 40


def test_cli_exports_every_row_to_a_file(
    live: Any, account: NewAccount, call: Caller, tmp_path: Path
) -> None:
    ok(call("contact.import_csv", {"csv": rows_csv(25)}))
    ok(call("contact.create", {"display_name": '=HYPERLINK("x")'}))
    remote = {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret}
    target = tmp_path / "out.csv"
    result = krabs(remote, "contact", "export_csv", "--to", str(target), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] == target.stat().st_size
    lines = target.read_text().splitlines()
    assert len(lines) == 27 and lines[0].startswith("id,")
    assert any("'=HYPERLINK" in line for line in lines)
    bad = krabs(remote, "contact", "export_csv", "--to", str(target), "--stage", "nope")
    assert bad.exit_code == 2


def test_cli_exports_to_a_file_embedded(tmp_path: Path) -> None:
    env = {"KRABS_URL": None, "KRABS_API_KEY": None, "KRABS_DATA_DIR": str(tmp_path / "data")}
    source = tmp_path / "in.csv"
    source.write_text(rows_csv(12))
    assert krabs(env, "contact", "import_csv", str(source)).exit_code == 0
    target = tmp_path / "out.csv"
    result = krabs(env, "contact", "export_csv", "--to", str(target), "-o", "json")
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 13


def test_the_import_page_cache_is_restored_after(engine: Engine, account: NewAccount) -> None:
    from krabs.auth import authenticate
    from krabs.engine.uow import UnitOfWork
    from krabs.ops.contact_import import IMPORT_CACHE_KIB

    who = authenticate(engine.store, engine.keys, account.secret)
    seen: list[int] = []
    with engine.store.connect(write=True) as conn:
        tx = conn.begin()
        uow = UnitOfWork(conn=conn, principal=who, run_id=None, dialect=engine.store.dialect)
        size = "PRAGMA cache_size"
        before = conn.exec_driver_sql(size).scalar() if engine.store.is_sqlite else None

        def probe(done: int, failed: int) -> None:
            seen.append(conn.exec_driver_sql(size).scalar() if engine.store.is_sqlite else 0)

        out = import_lines(uow, iter_lines_of(rows_csv(10)), progress=probe)
        assert out["created"] == 10
        if engine.store.is_sqlite:
            assert seen == [-IMPORT_CACHE_KIB]
            assert conn.exec_driver_sql(size).scalar() == before
        tx.rollback()


def iter_lines_of(text: str) -> Any:
    from krabs.bulk.records import iter_lines

    return iter_lines(text)
