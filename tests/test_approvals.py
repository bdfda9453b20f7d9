"""Approval gates: a policy names operations that need a human; a gated call answers
`approval_required` (202) and parks its run in `waiting_for_input`; a decision lets the retry with the
same Idempotency-Key execute once, or answer `approval_rejected`."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Caller, err, ok
from krabs.accounts import create_account
from krabs.engine import CallRequest, Engine
from krabs.runs.attach import insert_run
from krabs.store.tables import approvals, contacts, runs


def _run(engine: Engine, account: Any) -> str:
    with engine.store.transaction() as conn:
        return insert_run(conn, account_id=account.account_id, agent_id="agent_drafts", name="t")


def _agent(call: Caller, agent: str = "agent_drafts") -> str:
    return ok(call("api_key.create", {"name": "drafts", "agent_id": agent, "scopes": ["write"]}))[
        "secret"
    ]


def _status(engine: Engine, run_id: str) -> str:
    with engine.store.connect(write=False) as conn:
        return str(conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar())


def _live_contacts(engine: Engine, account: Any) -> int:
    with engine.store.connect(write=False) as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(contacts)
                .where(contacts.c.account_id == account.account_id, contacts.c.deleted_at.is_(None))
            ).scalar()
        )


@pytest.fixture
def gated(call: Caller, engine: Engine, account: Any) -> dict[str, Any]:
    """An agent whose contact.delete needs a human, a run of it and a contact to delete."""
    key = _agent(call)
    ok(
        call(
            "approval_policy.set", {"agent_id": "agent_drafts", "rules": [{"op": "contact.delete"}]}
        )
    )
    with engine.store.transaction() as conn:
        run_id = insert_run(
            conn, account_id=account.account_id, agent_id="agent_drafts", name="gated"
        )
    contact = ok(call("contact.create", {"display_name": "Ada"}, key=key, run=run_id))
    return {"key": key, "run": run_id, "contact": contact["id"]}


def test_gated_call_waits_then_executes_once_after_approval(
    call: Caller, engine: Engine, account: Any, gated: dict[str, Any]
) -> None:
    key, run_id, cid = gated["key"], gated["run"], gated["contact"]
    first = call("contact.delete", {"id": cid}, key=key, run=run_id, idem="del-1")
    e = err(first, "approval_required")
    assert first.status == 202 and e["approval_id"].startswith("apr_") and e["run_id"] == run_id
    assert "run.input" in e["message"] or "/input" in e["message"]
    assert _status(engine, run_id) == "waiting_for_input"
    assert ok(call("contact.get", {"id": cid}))["id"] == cid  # not executed
    # Retrying before a decision is the same pending approval, not a second one.
    again = err(
        call("contact.delete", {"id": cid}, key=key, run=run_id, idem="del-1"), "approval_required"
    )
    assert again["approval_id"] == e["approval_id"]
    pending = ok(call("approval.list", {"status": "pending", "run_id": run_id}))["data"]
    assert [p["id"] for p in pending] == [e["approval_id"]]
    assert pending[0]["args"] == {"id": cid} and pending[0]["op"] == "contact.delete"

    decided = call("approval.decide", {"id": e["approval_id"], "decision": "approve", "note": "ok"})
    assert ok(decided)["status"] == "approved" and decided.action_id  # audited
    assert ok(decided)["decided_by"].startswith("agent_")
    assert _status(engine, run_id) == "open"

    done = call("contact.delete", {"id": cid}, key=key, run=run_id, idem="del-1")
    assert ok(done)["deleted"] is True and not done.replayed
    replay = call("contact.delete", {"id": cid}, key=key, run=run_id, idem="del-1")
    assert replay.replayed and ok(replay)["id"] == cid
    got = ok(call("approval.get", {"id": e["approval_id"]}))
    assert got["consumed_at"] is not None
    # Deciding twice is a conflict.
    err(call("approval.decide", {"id": e["approval_id"], "decision": "reject"}), "conflict")


def test_rejected_call_never_executes(
    call: Caller, engine: Engine, account: Any, gated: dict[str, Any]
) -> None:
    key, run_id, cid = gated["key"], gated["run"], gated["contact"]
    e = err(call("contact.delete", {"id": cid}, key=key, run=run_id, idem="d"), "approval_required")
    ok(call("approval.decide", {"id": e["approval_id"], "decision": "reject", "note": "keep Ada"}))
    r = err(call("contact.delete", {"id": cid}, key=key, run=run_id, idem="d"), "approval_rejected")
    assert "keep Ada" in r["message"] and r["approval_id"] == e["approval_id"]
    assert call("contact.delete", {"id": cid}, key=key, run=run_id, idem="d").status == 403
    assert ok(call("contact.get", {"id": cid}))["id"] == cid  # still live
    assert _status(engine, run_id) == "open"


def test_same_key_other_arguments_is_reused(call: Caller, gated: dict[str, Any]) -> None:
    key, run_id = gated["key"], gated["run"]
    err(
        call("contact.delete", {"id": gated["contact"]}, key=key, run=run_id, idem="k"),
        "approval_required",
    )
    other = ok(call("contact.create", {"display_name": "B"}, key=key))["id"]
    err(
        call("contact.delete", {"id": other}, key=key, run=run_id, idem="k"),
        "idempotency_key_reused",
    )


def test_without_a_key_the_same_call_in_the_same_run_matches(
    call: Caller, gated: dict[str, Any]
) -> None:
    key, run_id, cid = gated["key"], gated["run"], gated["contact"]
    e = err(call("contact.delete", {"id": cid}, key=key, run=run_id), "approval_required")
    ok(call("approval.decide", {"id": e["approval_id"], "decision": "approve", "run_id": run_id}))
    ok(call("contact.delete", {"id": cid}, key=key, run=run_id))
    # The approval was used up: the same call again asks for a new one.
    again = err(call("contact.delete", {"id": cid}, key=key, run=run_id), "approval_required")
    assert again["approval_id"] != e["approval_id"]


def test_dry_runs_reads_and_other_agents_are_not_gated(
    call: Caller, engine: Engine, account: Any, gated: dict[str, Any]
) -> None:
    key, run_id, cid = gated["key"], gated["run"], gated["contact"]
    plan = ok(call("contact.delete", {"id": cid, "dry_run": True}, key=key, run=run_id))
    assert plan["dry_run"] is True
    ok(call("contact.get", {"id": cid}, key=key, run=run_id))
    other = _agent(call, "agent_other")
    mine = ok(call("contact.create", {"display_name": "Mine"}, key=other))["id"]
    assert ok(call("contact.delete", {"id": mine}, key=other))["deleted"] is True
    assert _status(engine, run_id) == "open"


def test_min_rows_gates_only_large_imports(call: Caller, engine: Engine, account: Any) -> None:
    ok(call("approval_policy.set", {"rules": [{"op": "contact.import_csv", "min_rows": 3}]}))
    small = "email,display_name\na@x.dev,A\nb@x.dev,B\n"
    ok(call("contact.import_csv", {"csv": small}))
    big = small + "c@x.dev,C\nd@x.dev,D\n"
    before = _live_contacts(engine, account)
    e = err(call("contact.import_csv", {"csv": big}, idem="imp"), "approval_required")
    assert "3 rows" in e["message"] and _live_contacts(engine, account) == before
    ok(call("approval.decide", {"id": e["approval_id"], "decision": "approve"}))
    assert ok(call("contact.import_csv", {"csv": big}, idem="imp"))["rows"] == 4
    listed = ok(call("approval_policy.list", {}))["data"]
    assert listed[0]["subject"] == "*" and listed[0]["rules"][0]["min_rows"] == 3
    gone = ok(call("approval_policy.set", {"rules": []}))
    assert gone["deleted"] is True
    assert ok(call("approval_policy.list", {}))["data"] == []


def test_noun_wildcard_and_key_policies(call: Caller, engine: Engine, account: Any) -> None:
    created = ok(call("api_key.create", {"name": "k", "scopes": ["write"]}))
    ok(call("approval_policy.set", {"key_id": created["id"], "rules": [{"op": "tag.*"}]}))
    err(call("tag.create", {"name": "vip"}, key=created["secret"]), "approval_required")
    ok(call("tag.create", {"name": "vip"}))  # the admin key is not bound by that policy


def test_decide_needs_admin_and_the_run_must_match(call: Caller, gated: dict[str, Any]) -> None:
    key, run_id, cid = gated["key"], gated["run"], gated["contact"]
    e = err(call("contact.delete", {"id": cid}, key=key, run=run_id, idem="z"), "approval_required")
    err(
        call("approval.decide", {"id": e["approval_id"], "decision": "approve"}, key=key),
        "forbidden",
    )
    err(call("approval_policy.set", {"rules": []}, key=key), "forbidden")
    other_run = "run_01HG7Z4X9Q8M2N7P3R5T6V8W"
    err(
        call(
            "approval.decide", {"id": e["approval_id"], "decision": "approve", "run_id": other_run}
        ),
        "not_found",
    )


@pytest.mark.parametrize(
    ("op", "args", "param"),
    [
        ("approval_policy.set", {"rules": [{"op": "contact.get"}]}, "rules[0].op"),
        ("approval_policy.set", {"rules": [{"op": "nope.nope"}]}, "rules[0].op"),
        ("approval_policy.set", {"rules": [{"op": "DROP TABLE"}]}, "rules.0.op"),
        ("approval_policy.set", {"rules": [{"op": "contact.delete", "min_rows": -1}]}, None),
        ("approval_policy.set", {"rules": "contact.delete"}, "rules"),
        ("approval_policy.set", {"rules": [], "agent_id": "a", "key_id": "key_X"}, None),
        ("approval_policy.set", {"rules": [], "surprise": 1}, "surprise"),
        ("approval_policy.set", {"rules": [{"op": "contact.delete"}] * 101}, "rules"),
        ("approval.decide", {"id": "apr_X", "decision": "maybe"}, "decision"),
        ("approval.decide", {"id": "apr_X", "decision": "approve", "note": "n" * 5000}, "note"),
        ("approval.decide", {"id": "ct_X", "decision": "approve"}, "id"),
        ("approval.get", {"id": 7}, "id"),
        ("approval.list", {"status": "lost"}, "status"),
    ],
)
def test_hostile_input(call: Caller, op: str, args: dict[str, Any], param: str | None) -> None:
    e = err(call(op, args), "invalid_argument")
    if param is not None:
        assert e["param"] is not None and e["param"].replace("[", ".").replace("]", "").startswith(
            param.replace("[", ".").replace("]", "")
        )


def test_missing_and_foreign_records_are_not_found(
    call: Caller, engine: Engine, gated: dict[str, Any]
) -> None:
    e = err(
        call("contact.delete", {"id": gated["contact"]}, key=gated["key"], run=gated["run"]),
        "approval_required",
    )
    err(call("approval.get", {"id": "apr_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    err(
        call("approval_policy.set", {"key_id": "key_01HG7Z4X9Q8M2N7P3R5T6V8W", "rules": []}),
        "not_found",
    )
    other = create_account(engine.store, "other")
    err(call("approval.get", {"id": e["approval_id"]}, key=other.secret), "not_found")
    err(
        call("approval.decide", {"id": e["approval_id"], "decision": "approve"}, key=other.secret),
        "not_found",
    )
    assert ok(call("approval.list", {}, key=other.secret))["data"] == []
    with engine.store.connect(write=False) as conn:
        assert (
            conn.execute(
                sa.select(approvals.c.status).where(approvals.c.id == e["approval_id"])
            ).scalar()
            == "pending"
        )


def test_a_gate_on_everything_never_locks_out_the_deciders(call: Caller, engine: Engine) -> None:
    ok(call("approval_policy.set", {"rules": [{"op": "*"}]}))
    e = err(call("tag.create", {"name": "t"}, idem="all"), "approval_required")
    ok(call("approval.decide", {"id": e["approval_id"], "decision": "approve"}))
    ok(call("tag.create", {"name": "t"}, idem="all"))
    assert ok(call("approval_policy.set", {"rules": []}))["deleted"] is True
    ok(call("tag.create", {"name": "free"}))


# -- a caller waiting at the gate (Prefer: wait=N) --------------------------------------------------


def _waiting_delete(live: Any, gated: dict[str, Any], idem: str, prefer: str) -> dict[str, Any]:
    """Start the gated delete with ``Prefer``, in a thread; its response lands in the dict."""
    import threading

    import httpx

    out: dict[str, Any] = {}
    headers = {
        "Authorization": f"Bearer {gated['key']}",
        "X-Krabs-Run": gated["run"],
        "Idempotency-Key": idem,
        "Prefer": prefer,
    }

    def send() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            out["response"] = client.post(
                "/v1/contact.delete", json={"id": gated["contact"]}, headers=headers
            )

    out["thread"] = threading.Thread(target=send, daemon=True)
    out["thread"].start()
    return out


def _pending(call: Caller, run_id: str) -> str:
    """The run's pending approval, once the held call has asked for it (bounded wait)."""
    import time

    for _ in range(400):
        found = ok(call("approval.list", {"status": "pending", "run_id": run_id}))["data"]
        if found:
            return str(found[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the gated call never asked for an approval")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_waiting_caller_is_woken_by_the_decision(
    call: Caller, engine: Engine, account: Any, gated: dict[str, Any], live: Any, decision: str
) -> None:
    held = _waiting_delete(live, gated, f"wait-{decision}", "wait=30")
    approval_id = _pending(call, gated["run"])
    assert "response" not in held  # still held at the gate
    ok(call("approval.decide", {"id": approval_id, "decision": decision}))
    held["thread"].join(40)
    response = held["response"]
    if decision == "approve":
        # Woken by the decision's run.input event: the held call ran, once, and answered it.
        assert response.status_code == 200, response.text
        assert response.json()["deleted"] is True
        assert _live_contacts(engine, account) == 0
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "approval_rejected"
        assert _live_contacts(engine, account) == 1


def test_a_decision_made_by_another_process_wakes_the_waiting_caller(
    call: Caller, engine: Engine, account: Any, gated: dict[str, Any], live: Any
) -> None:
    """Decided through a second engine on the same database (``krabs approval decide`` in embedded
    mode, or another server): on SQLite no hub carries that to this process, so the waiter looks at
    its approval itself every second and is answered long before its wait runs out."""
    import time

    from krabs.store.db import Store

    held = _waiting_delete(live, gated, "wait-elsewhere", "wait=25")
    approval_id = _pending(call, gated["run"])
    elsewhere = Engine(Store(engine.store.url), engine.settings)
    try:
        decided_at = time.monotonic()
        outcome = elsewhere.call(
            CallRequest(
                op="approval.decide",
                args={"id": approval_id, "decision": "approve"},
                api_key=account.secret,
            )
        )
        assert outcome.ok, outcome.error
        held["thread"].join(30)
        waited = time.monotonic() - decided_at
    finally:
        elsewhere.store.dispose()
    response = held["response"]
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True
    assert waited < 10, f"answered {waited:.1f} s after the decision: its wait ran out first"


@pytest.mark.parametrize(
    "prefer", ["wait=1", "wait=abc", "wait=-3", "wait=99999999999", "respond-async, wait"]
)
def test_a_wait_that_runs_out_or_cannot_be_read_answers_approval_required(
    gated: dict[str, Any], live: Any, prefer: str
) -> None:
    held = _waiting_delete(live, gated, f"w-{prefer}", prefer)
    held["thread"].join(30)
    response = held["response"]
    assert response.status_code == 202
    assert response.json()["error"]["code"] == "approval_required"
