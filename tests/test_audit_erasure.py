"""GDPR erasure keeps the signed log verifiable: ``contact.delete`` with ``erase: true`` destroys the
contact's data key and every audit payload sealed under it (and its own), scrubs its row and
identities, appends a ``contact.erased`` record, and ``krabs audit verify`` still passes, reporting
those payloads as erased at that record. Also: sealed payloads that are altered fail verification,
and the retention sweep drops undo images after 24 h."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from tests.conftest import err, ok

from krabs.audit import erasure
from krabs.audit.periodic import truncate_wal
from krabs.audit.retention import drop_undo_images
from krabs.audit.sources import from_database, from_export
from krabs.audit.verify import Tampered, verify_log
from krabs.cli import cli
from krabs.runs.jobs import claim, run_job
from krabs.store.tables import audit_actions, audit_payloads

SECRET = "ada.secret@lovelace.dev"


def everything(engine, account) -> str:
    """Every stored value the account owns, as text, to search for personal data."""
    with engine.store.connect(write=False) as conn:
        return _account_text(conn, account.account_id)


def test_erasure_scrubs_personal_data_and_the_log_still_verifies(call, engine, account):
    contact = ok(
        call(
            "contact.create",
            {"display_name": "Ada Secret", "identities": [{"kind": "email", "value": SECRET}]},
        )
    )
    ok(call("contact.update", {"id": contact["id"], "title": "Countess"}))
    other = ok(call("contact.create", {"display_name": "Grace Kept"}))
    assert SECRET in everything(engine, account)
    gone = call("contact.delete", {"id": contact["id"], "erase": True})
    ok(gone)
    text = everything(engine, account)
    assert SECRET not in text and "Ada Secret" not in text and "Countess" not in text
    assert "Grace Kept" in text  # others are untouched
    # The create's record is still there; its payload is not.
    first = ok(call("action.list", {"target": contact["id"], "limit": 10}))["data"]
    assert len(first) == 3
    missing = err(call("action.get", {"id": first[-1]["id"]}), "not_found")
    assert "erased" in missing["message"]
    assert (
        "erased"
        in err(call("action.undo", {"undo_token": gone.result["undo_token"]}), "not_found")[
            "message"
        ]
    )
    ok(
        call(
            "action.get", {"id": ok(call("action.list", {"target": other["id"]}))["data"][0]["id"]}
        )
    )
    with engine.store.connect(write=False) as conn:
        report = verify_log(from_database(conn, account.account_id), workers=1)
        seq = conn.execute(
            sa.select(audit_actions.c.seq).where(audit_actions.c.id == gone.action_id)
        ).scalar_one()
        erased_op = conn.execute(
            sa.select(audit_actions.c.op).where(
                audit_actions.c.account_id == account.account_id, audit_actions.c.seq == seq + 1
            )
        ).scalar_one()
    assert erased_op == "contact.erased"  # the separate record the erasure is "at"
    assert report.erased == [
        f"#1 erased at #{seq + 1}",
        f"#2 erased at #{seq + 1}",
        f"#{seq} erased at #{seq + 1}",
    ]


def test_an_export_of_an_erased_contact_verifies_but_a_dropped_payload_does_not(
    call, engine, account, tmp_path
):
    contact = ok(call("contact.create", {"display_name": "Erase Me"}))
    ok(call("contact.delete", {"id": contact["id"], "erase": True}))
    ok(call("contact.create", {"display_name": "Keep Me"}))
    path = Path(ok(call("account.export", {}))["path"])
    report = verify_log(from_export(path), workers=1)
    assert len(report.erased) == 2
    offline = CliRunner().invoke(cli, ["audit", "verify", "--export", str(path)])
    assert offline.exit_code == 0, offline.output
    assert "payload #1 erased at #3" in offline.output
    assert "payload #2 erased at #3" in offline.output
    assert report.records == 4  # create, delete, contact.erased, create
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        files = {n: zf.read(n) for n in names}
    payloads = [json.loads(x) for x in files["audit_payloads.ndjson"].splitlines()]
    kept = [p for p in payloads if p["subjects"] != account.account_id]
    # The kept contact's payload dropped without an erasure (the contact.erased record's own
    # payload, under the account's key, stays).
    files["audit_payloads.ndjson"] = b"".join(
        json.dumps(p).encode() + b"\n" for p in payloads if p not in kept
    )
    assert len(payloads) == 2 and len(kept) == 1
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    try:
        verify_log(from_export(bad), workers=1)
        raise AssertionError("a dropped payload verified")
    except Tampered as exc:
        assert exc.seq == 4 and "not erased" in exc.reason


def test_a_forged_or_dropped_erasure_row_is_tampering(call, engine, account):
    """Erasure rows live outside the hashed records, so the contact.erased record commits to the
    set it erased: a payload deleted and excused by a forged row, pointed at any record, fails."""
    gone = ok(call("contact.create", {"display_name": "Erase Me", "title": "Old"}))
    ok(call("contact.update", {"id": gone["id"], "title": "New"}))
    ok(call("contact.delete", {"id": gone["id"], "erase": True}))  # seq 3; contact.erased is #4
    ok(call("contact.create", {"display_name": "Keep Me"}))  # seq 5
    e, a, p = erasure.contact_erasures, audit_actions, audit_payloads
    acct = account.account_id

    def digest_of(seq: int) -> str:
        with engine.store.connect(write=False) as conn:
            return str(
                conn.execute(
                    sa.select(a.c.payload_digest).where(a.c.account_id == acct, a.c.seq == seq)
                ).scalar_one()
            )

    def verify() -> Tampered | None:
        with engine.store.connect(write=False) as conn:
            try:
                verify_log(from_database(conn, acct), workers=1)
            except Tampered as exc:
                return exc
        return None

    assert verify() is None
    kept = digest_of(5)
    for forged_at in (4, 2):  # the real contact.erased record; any other record
        with engine.store.transaction() as conn:
            body = conn.execute(
                sa.select(p).where(p.c.account_id == acct, p.c.digest == kept)
            ).one()
            conn.execute(p.delete().where(p.c.account_id == acct, p.c.digest == kept))
            conn.execute(
                e.insert().values(
                    account_id=acct,
                    payload_digest=kept,
                    contact_id=gone["id"],
                    action_id="act_forged",
                    erased_seq=forged_at,
                )
            )
        caught = verify()
        assert caught is not None and caught.seq == forged_at, caught
        with engine.store.transaction() as conn:  # put it back as it was
            conn.execute(e.delete().where(e.c.account_id == acct, e.c.payload_digest == kept))
            conn.execute(p.insert().values(**body._mapping))
        assert verify() is None
    with engine.store.transaction() as conn:  # a real erasure row dropped (its payload stays gone)
        conn.execute(e.delete().where(e.c.account_id == acct, e.c.payload_digest == digest_of(2)))
    caught = verify()
    assert caught is not None and caught.seq in (2, 4), caught


def test_erase_is_a_strict_flag(call):
    contact = ok(call("contact.create", {"display_name": "Strict"}))
    for hostile in ("yes", "true", 1, 0, None, [], {}, 1.0):
        bad = err(
            call("contact.delete", {"id": contact["id"], "erase": hostile}), "invalid_argument"
        )
        assert bad["param"] == "erase"
    err(call("contact.delete", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "erase": True}), "not_found")
    dry = call("contact.delete", {"id": contact["id"], "erase": True, "dry_run": True})
    ok(dry)
    assert ok(call("contact.get", {"id": contact["id"]}))["display_name"] == "Strict"


def _account_text(conn: sa.Connection, account_id: str) -> str:
    """Every column of every row the account owns, as text."""
    from krabs.bulk.archive import account_tables, scoped

    out = []
    for table in account_tables():
        out += [repr(tuple(r)) for r in conn.execute(scoped(table, account_id)).all()]
    return "\n".join(out)


def test_after_erasure_no_byte_of_the_contact_is_in_the_database_or_an_export(
    call, engine, account
):
    tag = uuid.uuid4().hex[:10]
    email, name, title = f"ada.{tag}@lovelace.dev", f"Ada{tag} Byron", f"Countess{tag}"
    phone = "+1415555" + str(int(tag[:6], 16) % 10_000).zfill(4)
    needles = [email, name, f"Ada{tag}", title, phone, phone.lstrip("+")]
    run = ok(call("run.create", {"name": f"erasure {tag}"}))["id"]
    contact = ok(
        call(
            "contact.create",
            {
                "display_name": name,
                "identities": [
                    {"kind": "email", "value": email},
                    {"kind": "phone", "value": phone},
                ],
            },
            idem=f"idem-{tag}",  # its stored response and run event hold the contact too
            run=run,
        )
    )
    ok(call("contact.update", {"id": contact["id"], "title": title}))
    ok(call("contact.update", {"id": contact["id"], "title": "Lady"}))  # the old title overwritten
    # Copies outside the log: a failed call's run event and a call held at an approval gate.
    missing = {"contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "kind": "email", "value": email}
    err(call("identity.add", missing, run=run), "not_found")
    ok(call("approval_policy.set", {"rules": [{"op": "identity.add"}]}))
    held = {"contact_id": contact["id"], "kind": "phone", "value": phone.replace("+1", "+1 ")}
    err(call("identity.add", held, run=run), "approval_required")
    ok(call("approval_policy.set", {"rules": []}))
    ok(call("run.enqueue", {"calls": [{"op": "identity.add", "args": missing}]}))  # a job, run
    job = claim(engine.store)
    assert job is not None and run_job(engine, job)
    with engine.store.connect(write=False) as conn:
        before = _account_text(conn, account.account_id)
    assert email in before and phone.replace("+1", "+1 ") in before  # the copies are there
    assert before.count(email) >= 4  # the failed call's event, the job's call and its result
    ok(call("contact.delete", {"id": contact["id"], "erase": True}))
    with engine.store.connect(write=False) as conn:
        text = _account_text(conn, account.account_id)
    assert [n for n in needles if n in text] == []
    assert phone.replace("+1", "+1 ") not in text
    if engine.store.engine.dialect.name == "sqlite":
        path = Path(str(engine.store.engine.url.database))
        assert erasure.wal_dirty
        assert truncate_wal(engine.store)  # what the server's sweep does after an erasure
        assert not erasure.wal_dirty
        assert _needles_in_files(needles, [path, path.with_name(path.name + "-wal")]) == []
    export = Path(ok(call("account.export", {}))["path"])
    with zipfile.ZipFile(export) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist())
        keys = [json.loads(x) for x in zf.read("audit_data_keys.ndjson").splitlines()]
    assert [n for n in needles if n.encode() in blob] == []
    assert contact["id"] not in {k["subject_id"] for k in keys}  # the destroyed key is not exported
    assert verify_log(from_export(export), workers=1).erased


def test_a_tampered_sealed_payload_is_reported_by_verify(call, engine, account):
    contact = ok(call("contact.create", {"display_name": "Sealed Sam"}))
    ok(call("contact.update", {"id": contact["id"], "title": "Sealer"}))
    p = audit_payloads
    with engine.store.connect(write=False) as conn:
        assert verify_log(from_database(conn, account.account_id), workers=1).records == 2
        rows = conn.execute(
            sa.select(p.c.digest, p.c.body, p.c.undo).where(p.c.account_id == account.account_id)
        ).all()
    assert all(r.body.startswith("k1.") and "Sealed Sam" not in r.body for r in rows)
    with engine.store.connect(write=False) as conn:
        digest = conn.execute(
            sa.select(audit_actions.c.payload_digest).where(
                audit_actions.c.account_id == account.account_id, audit_actions.c.seq == 2
            )
        ).scalar_one()
    body = next(r.body for r in rows if r.digest == digest)
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    for column, value in (("body", flipped), ("undo", body)):  # ciphertext, or the wrong part
        with engine.store.transaction(write=True) as conn:
            original = conn.execute(
                sa.select(p.c[column]).where(
                    p.c.account_id == account.account_id, p.c.digest == digest
                )
            ).scalar_one()
            conn.execute(
                p.update()
                .where(p.c.account_id == account.account_id, p.c.digest == digest)
                .values({column: value})
            )
        try:
            with engine.store.connect(write=False) as conn:
                verify_log(from_database(conn, account.account_id), workers=1)
            raise AssertionError(f"a tampered {column} verified")
        except Tampered as exc:
            assert exc.seq == 2 and "differs" in exc.reason
        with engine.store.transaction(write=True) as conn:
            conn.execute(
                p.update()
                .where(p.c.account_id == account.account_id, p.c.digest == digest)
                .values({column: original})
            )


def test_the_retention_sweep_drops_undo_images_older_than_24_hours(call, engine, account):
    old = ok(call("contact.create", {"display_name": "Old Image"}))
    ok(call("contact.update", {"id": old["id"], "title": "Then"}))
    young = ok(call("contact.create", {"display_name": "Young Image"}))
    ok(call("contact.update", {"id": young["id"], "title": "Now"}))
    actions = ok(call("action.list", {"limit": 10}))["data"]  # newest first
    old_update, young_update = actions[2], actions[0]
    # The clock hook: "now" is 24 h after the young update, so only older images are past it.
    then = dt.datetime.fromisoformat(young_update["created_at"].replace("Z", "+00:00"))
    now = (then + dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with engine.store.transaction(write=True) as conn:
        dropped = drop_undo_images(conn, now=now)
    assert dropped >= 3  # the old create and update, the young create (and other tests' rows)
    expired = err(call("action.undo", {"action_id": old_update["id"]}), "undo_expired")
    assert "24 h" in expired["message"]
    got = ok(call("action.get", {"id": old_update["id"]}))  # still readable, without before-images
    assert got["changes"][0]["after"]["title"] == "Then" and "before" not in got["changes"][0]
    ok(call("action.undo", {"action_id": young_update["id"]}))  # the younger images are kept
    assert ok(call("contact.get", {"id": young["id"]}))["title"] is None
    with engine.store.connect(write=False) as conn:
        report = verify_log(from_database(conn, account.account_id), workers=1)
    assert report.records == 5 and not report.erased
    path = Path(ok(call("account.export", {}))["path"])
    assert verify_log(from_export(path), workers=1).records == 5


def test_a_payload_of_several_contacts_and_contacts_merged_in_are_erased_too(call, engine, account):
    survivor = ok(call("contact.create", {"display_name": "Merge Survivor"}))
    merged = ok(call("contact.create", {"display_name": "Merge Folded"}))
    merge = call("contact.merge", {"survivor_id": survivor["id"], "merged_ids": [merged["id"]]})
    ok(merge)
    with engine.store.connect(write=False) as conn:
        subjects = conn.execute(
            sa.select(audit_payloads.c.subjects)
            .select_from(
                audit_payloads.join(
                    audit_actions, audit_actions.c.payload_digest == audit_payloads.c.digest
                )
            )
            .where(audit_actions.c.id == merge.action_id)
        ).scalar_one()
    assert sorted(subjects.split()) == sorted([survivor["id"], merged["id"]])
    ok(call("contact.delete", {"id": survivor["id"], "erase": True}))
    assert "erased" in err(call("action.get", {"id": merge.action_id}), "not_found")["message"]
    # The contact folded into it is the same person: erased with it.
    assert ok(call("contact.get", {"id": merged["id"]}))["display_name"] == "[erased]"
    assert "Merge Folded" not in everything(engine, account)
    with engine.store.connect(write=False) as conn:
        report = verify_log(from_database(conn, account.account_id), workers=1)
    assert [line.split()[0] for line in report.erased] == ["#1", "#2", "#3", "#4"]
    assert all(line.endswith("erased at #5") for line in report.erased)


def test_a_run_with_a_write_past_retention_cannot_be_undone(call, engine):
    run = ok(call("run.create", {"name": "retained"}))["id"]
    written = call("contact.create", {"display_name": "Run Write"}, run=run)
    ok(written)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    with engine.store.transaction(write=True) as conn:
        drop_undo_images(conn, now=later.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    expired = err(call("run.undo", {"id": run}), "undo_expired")
    assert "24 h" in expired["message"]
    assert ok(call("contact.get", {"id": ok(written)["id"]}))["display_name"] == "Run Write"


def _needles_in_files(needles: list[str], paths: list[Path]) -> list[str]:
    """Which needles the files' raw bytes hold, read by another process: closing a descriptor of
    the database file in this one would drop every POSIX lock SQLite holds on it here, and another
    process could then take this one's log for abandoned and delete it."""
    script = (
        "import sys, json, pathlib; needles, paths = json.loads(sys.argv[1])\n"
        "raw = b''.join(pathlib.Path(p).read_bytes() for p in paths if pathlib.Path(p).exists())\n"
        "print(json.dumps([n for n in needles if n.encode() in raw]))"
    )
    args = json.dumps([needles, [str(p) for p in paths]])
    done = subprocess.run(
        [sys.executable, "-c", script, args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found
