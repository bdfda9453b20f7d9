"""GDPR erasure keeps the signed log verifiable: ``contact.delete`` with ``erase: true`` scrubs the
contact's row, identities and every audit payload that touched it (and its own), and ``krabs audit
verify`` still passes, reporting those payloads as erased at the erasing record."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import sqlalchemy as sa
from tests.conftest import err, ok

from krabs.audit.sources import from_database, from_export
from krabs.audit.verify import Tampered, verify_log
from krabs.store.tables import audit_actions, audit_payloads, contacts, identities

SECRET = "ada.secret@lovelace.dev"


def everything(engine) -> str:
    """Every stored byte an account could hold, as text, to search for personal data."""
    out = []
    with engine.store.connect(write=False) as conn:
        for table in (contacts, identities, audit_payloads):
            out += [repr(tuple(r)) for r in conn.execute(sa.select(table)).all()]
    return "\n".join(out)


def test_erasure_scrubs_personal_data_and_the_log_still_verifies(call, engine, account):
    contact = ok(
        call(
            "contact.create",
            {"display_name": "Ada Secret", "identities": [{"kind": "email", "value": SECRET}]},
        )
    )
    ok(call("contact.update", {"id": contact["id"], "title": "Countess"}))
    other = ok(call("contact.create", {"display_name": "Grace Kept"}))
    assert SECRET in everything(engine)
    gone = call("contact.delete", {"id": contact["id"], "erase": True})
    ok(gone)
    text = everything(engine)
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
    assert report.erased == [
        f"#1 erased at #{seq}",
        f"#2 erased at #{seq}",
        f"#{seq} erased at #{seq}",
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
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        files = {n: zf.read(n) for n in names}
    payloads = [json.loads(x) for x in files["audit_payloads.ndjson"].splitlines()]
    files["audit_payloads.ndjson"] = b""  # the kept contact's payload dropped without an erasure
    assert len(payloads) == 1
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    try:
        verify_log(from_export(bad), workers=1)
        raise AssertionError("a dropped payload verified")
    except Tampered as exc:
        assert exc.seq == 3 and "not erased" in exc.reason


def test_erase_is_a_strict_flag(call):
    contact = ok(call("contact.create", {"display_name": "Strict"}))
    err(call("contact.delete", {"id": contact["id"], "erase": "yes"}), "invalid_argument")
    err(call("contact.delete", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "erase": True}), "not_found")
    dry = call("contact.delete", {"id": contact["id"], "erase": True, "dry_run": True})
    ok(dry)
    assert ok(call("contact.get", {"id": contact["id"]}))["display_name"] == "Strict"
