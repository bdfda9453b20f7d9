"""Every call belongs to a run: the one it names, if it still takes calls, else its agent's daily
`default` run (one per agent per UTC day)."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import err, ok
from krabs.engine.uow import utcnow
from krabs.runs.attach import insert_run
from krabs.store.tables import audit_actions, runs


def _run(engine, account, status: str) -> str:
    with engine.store.transaction() as conn:
        return insert_run(
            conn, account_id=account.account_id, agent_id="agent_default", name="t", status=status
        )


def test_calls_without_a_run_share_the_agents_daily_default_run(call, engine, account):
    a = call("contact.create", {"display_name": "A"})
    b = call("contact.list")
    assert a.run_id and a.run_id == b.run_id
    with engine.store.connect(write=False) as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == a.run_id)).one()
    assert row.name == "default" and row.default_day == utcnow()[:10] and row.status == "open"
    agent_key = ok(call("api_key.create", {"name": "drafts", "agent_id": "agent_drafts"}))["secret"]
    other = call("contact.list", key=agent_key)
    assert other.run_id != a.run_id  # one default run per agent


def test_named_run_is_used_and_recorded_in_the_audit(call, engine, account):
    run_id = _run(engine, account, "open")
    created = call("contact.create", {"display_name": "In run"}, run=run_id)
    assert created.run_id == run_id
    with engine.store.connect(write=False) as conn:
        assert (
            conn.execute(
                sa.select(audit_actions.c.run_id).where(audit_actions.c.id == created.action_id)
            ).scalar()
            == run_id
        )


def test_runs_that_take_no_calls_refuse_them(call, engine, account):
    e = err(call("contact.list", run=_run(engine, account, "cancelled")), "run_cancelled")
    assert e["param"] == "X-Krabs-Run"
    err(call("contact.list", run=_run(engine, account, "completed")), "run_closed")
    err(call("contact.list", run=_run(engine, account, "expired")), "run_closed")
    e = err(call("contact.list", run="run_" + "X" * 5000), "not_found")
    assert e["param"] == "X-Krabs-Run" and len(e["message"]) < 200


def test_another_accounts_run_is_not_found(call, engine):
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    theirs = call("contact.list", key=other.secret).run_id
    err(call("contact.list", run=theirs), "not_found")
