"""The five properties on every mutation, through the engine: idempotency (Stripe's semantics),
dry-run (the same handler, rolled back), and the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from conftest import err, ok, snapshot
from krabs.audit.canonical import canonical
from krabs.audit.log import GENESIS, load_payload
from krabs.store.tables import audit_actions, contacts


def email() -> str:
    return f"ada-{uuid.uuid4().hex[:10]}@lovelace.dev"


def count(store, table, account_id: str) -> int:
    with store.connect(write=False) as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.account_id == account_id)
            ).scalar_one()
        )


# -- idempotency ---------------------------------------------------------------------------------


def test_replay_returns_stored_response_without_second_write(call, engine, account):
    args = {"display_name": "Ada", "identities": [{"kind": "email", "value": email()}]}
    first = call("contact.create", args, idem="k-1")
    second = call("contact.create", args, idem="k-1")
    assert ok(first) == ok(second)
    assert not first.replayed and second.replayed
    assert second.action_id == first.action_id
    assert count(engine.store, contacts, account.account_id) == 1
    assert count(engine.store, audit_actions, account.account_id) == 1


def test_same_key_other_body_is_reused(call):
    ok(call("contact.create", {"display_name": "Ada"}, idem="k-2"))
    e = err(call("contact.create", {"display_name": "Grace"}, idem="k-2"), "idempotency_key_reused")
    assert e["param"] == "Idempotency-Key"
    err(
        call("contact.update", {"id": "ct_x", "display_name": "Ada"}, idem="k-2"),
        "idempotency_key_reused",
    )


def test_handler_error_is_stored_and_replayed(call, engine, account):
    """Stripe stores the result of a request that reached execution, errors included."""
    e1 = err(call("contact.get", {"id": "ct_missing"}), "not_found")  # reads ignore keys
    assert e1["param"] == "id"
    bad = {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "display_name": "x"}
    first = call("contact.update", bad, idem="k-3")
    err(first, "not_found")
    # Create the contact the key's first request could not find: the replay still says not_found.
    second = call("contact.update", bad, idem="k-3")
    err(second, "not_found")
    assert second.replayed


def test_validation_errors_are_not_stored(call):
    err(call("contact.create", {"stage": "nope"}, idem="k-4"), "invalid_argument")
    created = call("contact.create", {"stage": "lead"}, idem="k-4")
    assert not created.replayed and ok(created)["stage"] == "lead"


def test_keys_are_scoped_per_account(call, engine):
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    a = ok(call("contact.create", {"display_name": "A"}, idem="shared"))
    b = ok(call("contact.create", {"display_name": "B"}, idem="shared", key=other.secret))
    assert a["id"] != b["id"]


def test_bad_idempotency_keys_are_invalid(call):
    for key in ("", "x" * 256, "naïve", "tab\tkey"):
        err(call("contact.create", {"display_name": "A"}, idem=key), "invalid_argument")


def test_twenty_concurrent_identical_requests_make_one_write(live, account, engine):
    """Threads against the live server: exactly one contact and one action, on both backends."""
    body = {"display_name": "Concurrent", "identities": [{"kind": "email", "value": email()}]}
    key = f"conc-{uuid.uuid4().hex}"
    barrier = threading.Barrier(20)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def fire() -> None:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            barrier.wait(timeout=10)
            r = client.post(
                "/v1/contact.create",
                json=body,
                headers={"Authorization": f"Bearer {account.secret}", "Idempotency-Key": key},
            )
            with lock:
                responses.append(r)

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(responses) == 20
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, statuses
    ids = {r.json()["id"] for r in responses if r.status_code == 200}
    assert len(ids) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_use"
    assert count(engine.store, contacts, account.account_id) == 1
    assert count(engine.store, audit_actions, account.account_id) == 1
    # After the dust settles, the key replays the one result.
    with httpx.Client(base_url=live.url, timeout=30) as client:
        r = client.post(
            "/v1/contact.create",
            json=body,
            headers={"Authorization": f"Bearer {account.secret}", "Idempotency-Key": key},
        )
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert r.json()["id"] in ids


# -- dry-run -------------------------------------------------------------------------------------


def _normalize(value: Any, ids: dict[str, str]) -> Any:
    """Replace generated ids and timestamps so a plan and a real call can be compared."""
    if isinstance(value, dict):
        return {k: _normalize(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v, ids) for v in value]
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", value):
            return "<ts>"
        if "_" in value and len(value.split("_", 1)[1]) == 26:
            return ids.setdefault(value, f"<id{len(ids)}>")
        if value.startswith("undo_"):
            return "<undo>"
    return value


def test_dry_run_changes_nothing_and_matches_the_real_call(call, engine, account):
    target = ok(
        call(
            "contact.create",
            {"display_name": "Before", "identities": [{"kind": "email", "value": email()}]},
        )
    )
    scenarios = [
        (
            "contact.create",
            {"display_name": "Plan", "identities": [{"kind": "email", "value": email()}]},
        ),
        ("contact.update", {"id": target["id"], "stage": "customer", "company": "Engines"}),
        ("identity.add", {"contact_id": target["id"], "kind": "phone", "value": "+1 415 555 2671"}),
        ("contact.delete", {"id": target["id"]}),
    ]
    for op, args in scenarios:
        before = snapshot(engine.store, account.account_id)
        plan = call(op, {**args, "dry_run": True})
        result = ok(plan)
        assert snapshot(engine.store, account.account_id) == before, f"{op} dry-run wrote"
        assert result["dry_run"] is True and plan.action_id is None
        assert result["audit"]["op"] == op and len(result["audit"]["hash"]) == 64
        assert result["touched"] and result["diff"]
        real = call(op, args)
        real_result = ok(real)
        with engine.store.connect(write=False) as conn:
            row = conn.execute(
                sa.select(audit_actions).where(audit_actions.c.id == real.action_id)
            ).one()
            payload = load_payload(conn, row.account_id, row.payload_digest, images=True)
        plan_ids: dict[str, str] = {}
        real_ids: dict[str, str] = {}
        assert _normalize(result["result"], plan_ids) == _normalize(
            {k: v for k, v in real_result.items() if k not in ("undo_token", "undo_expires_at")},
            real_ids,
        )
        real_touched = [{"table": c["table"], "id": c["id"]} for c in payload["changes"]]
        plan_touched = [{"table": t["table"], "id": t["id"]} for t in result["touched"]]
        assert _normalize(plan_touched, plan_ids) == _normalize(
            list({(t["table"], t["id"]): t for t in real_touched}.values()), real_ids
        )
        assert result["audit"]["seq"] == row.seq  # the plan's audit row is the one that landed
        assert result["audit"]["prev_hash"] == row.prev_hash


def test_dry_run_of_a_failing_call_reports_the_error(call, engine, account):
    before = snapshot(engine.store, account.account_id)
    err(
        call(
            "contact.update",
            {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "stage": "lead", "dry_run": True},
        ),
        "not_found",
    )
    assert snapshot(engine.store, account.account_id) == before, (
        "not even the day's default run is created by a dry-run"
    )
    e = err(call("contact.create", {"display_name": "x", "dry_run": "yes"}), "invalid_argument")
    assert e["param"] == "dry_run"


# -- audit ---------------------------------------------------------------------------------------


def test_every_write_appends_a_chained_action(call, engine, account):
    c = ok(
        call(
            "contact.create",
            {"display_name": "Chain", "identities": [{"kind": "email", "value": email()}]},
        )
    )
    ok(call("contact.update", {"id": c["id"], "title": "Countess"}))
    ok(call("contact.get", {"id": c["id"]}))  # reads append nothing
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    ok(call("action.undo", {"undo_token": deleted["undo_token"]}))
    with engine.store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(audit_actions)
            .where(audit_actions.c.account_id == account.account_id)
            .order_by(audit_actions.c.seq)
        ).all()
    assert [r.op for r in rows] == [
        "contact.create",
        "contact.update",
        "contact.delete",
        "action.undo",
    ]
    prev = GENESIS
    for n, row in enumerate(rows, start=1):
        record = json.loads(row.record)
        assert row.seq == n and record["seq"] == n
        assert canonical(record) == row.record.encode(), "record is stored as its canonical bytes"
        assert hashlib.sha256(row.record.encode()).hexdigest() == row.hash
        assert record["prev_hash"] == prev == row.prev_hash
        assert record["account"] == account.account_id and record["actor"]["key"] == account.key_id
        assert record["run"] and record["run"].startswith("run_")
        prev = row.hash
    assert json.loads(rows[3].record)["undo_of"] == rows[2].id


def test_action_get_and_list(call):
    c = ok(call("contact.create", {"display_name": "Listed"}))
    upd = call("contact.update", {"id": c["id"], "stage": "prospect"})
    action = ok(call("action.get", {"id": upd.action_id}))
    assert action["op"] == "contact.update" and action["args"] == {
        "id": c["id"],
        "stage": "prospect",
    }
    [change] = action["changes"]
    assert change["before"]["stage"] is None and change["after"]["stage"] == "prospect"
    listed = ok(call("action.list", {"target": c["id"]}))
    assert [a["op"] for a in listed["data"]] == ["contact.update", "contact.create"]
    assert [a["op"] for a in ok(call("action.list", {"op": "contact.update"}))["data"]] == [
        "contact.update"
    ]
    page1 = ok(call("action.list", {"limit": 1}))
    page2 = ok(call("action.list", {"limit": 1, "starting_after": page1["next_cursor"]}))
    assert page1["has_more"] and page2["data"][0]["seq"] == page1["data"][0]["seq"] - 1
    run = upd.run_id
    assert all(a["run_id"] == run for a in ok(call("action.list", {"run": run}))["data"])
    err(call("action.get", {"id": "act_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
