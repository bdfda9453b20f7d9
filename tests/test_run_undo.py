"""run.undo: every write of a run reversed newest first, as one undoable action. Restores the database
exactly when nothing else touched it (property test); three-way per field otherwise."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import err, ok, snapshot
from krabs.accounts import NewAccount, create_account
from krabs.engine import CallRequest, Engine, Outcome
from krabs.runs.attach import insert_run
from krabs.store.tables import audit_actions, metadata

Call = Callable[..., Outcome]
#: Bookkeeping that a run and its undo legitimately add to (the log, the run, keys' last use).
NOT_STATE = {"idempotency_keys", "api_keys"}


def state(engine: Engine, account_id: str) -> dict[str, Any]:
    return {
        name: rows
        for name, rows in snapshot(engine.store, account_id).items()
        if not name.startswith(("audit_", "run")) and name not in NOT_STATE
    }


def account_state(engine: Engine, account_id: str) -> dict[str, Any]:
    """``state`` that also narrows the tables without an account column (``accounts`` to its own
    row): the property test's accounts pile up in the session database, and reading all of them
    every example would dominate its time."""
    out: dict[str, Any] = {}
    with engine.store.connect(write=False) as conn:
        for table in metadata.sorted_tables:
            if table.name.startswith(("audit_", "run")) or table.name in NOT_STATE:
                continue
            mine = table.c.account_id if "account_id" in table.c else table.c.id
            rows = conn.execute(sa.select(table).where(mine == account_id)).all()
            out[table.name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return out


def new_run(engine: Engine, account_id: str, agent_id: str = "agent_default") -> str:
    with engine.store.transaction() as conn:
        return insert_run(conn, account_id=account_id, agent_id=agent_id, name="test run")


def caller(engine: Engine, secret: str) -> Call:
    def _call(op: str, args: Any = None, *, run: str | None = None, key: str | None = None):
        return engine.call(
            CallRequest(op=op, args=args or {}, api_key=key or secret, run_id=run, transport="test")
        )

    return _call


def email() -> str:
    return f"r-{uuid.uuid4().hex[:10]}@example.com"


def actions(engine: Engine, account_id: str) -> int:
    with engine.store.connect(write=False) as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(audit_actions)
                .where(audit_actions.c.account_id == account_id)
            ).scalar_one()
        )


# --- the property: a run's writes, undone, leave the database exactly as before -----------------


class World:
    """The records a random run picks from; ids stay listed after a delete (a later pick then fails
    with a typed error, which writes nothing)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.contacts: list[str] = []
        self.identities: list[str] = []
        self.deals: list[str] = []
        self.tasks: list[str] = []
        self.notes: list[str] = []
        self.tokens: list[str] = []

    def seed(self) -> None:
        """Records made before the run (in the default run), so the run also edits older rows."""
        c = ok(self.call("contact.create", self.contact_args(0)))
        self.contacts.append(c["id"])
        self.identities += [i["id"] for i in c["identities"]]
        self.deals.append(ok(self.call("deal.create", {"title": "Old deal", "amount": 100}))["id"])
        self.tasks.append(ok(self.call("task.create", {"title": "Old task"}))["id"])
        self.notes.append(
            ok(self.call("note.create", {"body": "old", "contact_id": c["id"]}))["id"]
        )
        ok(self.call("tag.attach", {"tag": "alpha", "target_id": c["id"], "create": True}))

    @staticmethod
    def contact_args(n: int) -> dict[str, Any]:
        return {
            "display_name": f"C{n}",
            "attributes": {"n": n, "z": {"b": 1, "a": 2}},
            "identities": [{"kind": "email", "value": email()}],
        }

    @staticmethod
    def pick(items: list[str], n: int) -> str | None:
        return items[n % len(items)] if items else None

    def step(self, kind: str, n: int, k: int, run: str) -> None:
        contact, deal = self.pick(self.contacts, n), self.pick(self.deals, n)
        args: dict[str, Any] | None = None
        if kind == "contact.create":
            args = self.contact_args(n)
        elif kind == "contact.update" and contact:
            stage = ["lead", "prospect", "customer", "churned"][k]
            args = {"id": contact, "title": f"T{n}", "stage": stage, "attributes": {"k": k}}
        elif kind in ("contact.delete", "identity.add") and contact:
            args = {"id": contact} if kind == "contact.delete" else {}
            if kind == "identity.add":
                args = {"contact_id": contact, "kind": "email", "value": email()}
        elif kind == "identity.remove" and self.identities:
            args = {"id": self.pick(self.identities, n)}
        elif kind in ("tag.attach", "tag.detach") and contact:
            args = {"tag": ["alpha", "beta"][k % 2], "target_id": contact}
            if kind == "tag.attach":
                args["create"] = True
        elif kind == "deal.create":
            args = {"title": f"D{n}", "amount": n, "currency": "EUR", "contact_id": contact}
        elif kind == "deal.update" and deal:
            args = {"id": deal, "stage": ["lead", "qualified", "proposal", "won"][k], "amount": n}
        elif kind == "deal.delete" and deal:
            args = {"id": deal}
        elif kind == "task.create":
            args = {"title": f"K{n}", "contact_id": contact, "deal_id": deal}
        elif kind == "task.update" and self.tasks:
            args = {"id": self.pick(self.tasks, n), "status": ["open", "done", "cancelled"][k % 3]}
        elif kind == "note.create":
            args = {"body": f"note {n}", "contact_id": contact}
        elif kind == "note.update" and self.notes:
            args = {"id": self.pick(self.notes, n), "body": f"edited {n}"}
        elif kind == "note.delete" and self.notes:
            args = {"id": self.pick(self.notes, n)}
        elif kind == "contact.import_csv":
            rows = f"{email()},Imp {n},imp{k}\n{email()},Imp {n}b,\n"
            args = {"csv": "email,name,tags\n" + rows}
        elif kind == "action.undo" and self.tokens:
            args = {"undo_token": self.tokens.pop()}
        if args is None:
            return
        out = self.call(kind, {k_: v for k_, v in args.items() if v is not None}, run=run)
        assert out.error is None or out.error.code != "internal", out.error.to_dict()
        if out.error is not None:
            return
        result = out.result or {}
        if result.get("undo_token"):
            self.tokens.append(result["undo_token"])
        if kind == "contact.create":
            self.contacts.append(result["id"])
            self.identities += [i["id"] for i in result["identities"]]
        elif kind == "identity.add":
            self.identities.append(result["id"])
        elif kind.endswith(".create"):
            {"deal": self.deals, "task": self.tasks, "note": self.notes}[kind[:-7]].append(
                result["id"]
            )


STEP_KINDS = [
    "contact.create",
    "contact.update",
    "contact.delete",
    "identity.add",
    "identity.remove",
    "tag.attach",
    "tag.detach",
    "deal.create",
    "deal.update",
    "deal.delete",
    "task.create",
    "task.update",
    "note.create",
    "note.update",
    "note.delete",
    "contact.import_csv",
    "action.undo",
]
steps = st.lists(
    st.tuples(st.sampled_from(STEP_KINDS), st.integers(0, 1000), st.integers(0, 3)),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_run_undo_restores_the_database_exactly_and_redo_reapplies(engine, plan):
    account = create_account(engine.store, "Property")
    call = caller(engine, account.secret)
    world = World(call)
    world.seed()
    run = new_run(engine, account.account_id)
    before = account_state(engine, account.account_id)
    for kind, n, k in plan:
        world.step(kind, n, k, run)
    after = account_state(engine, account.account_id)

    undo = ok(call("run.undo", {"id": run}))
    assert account_state(engine, account.account_id) == before
    assert {w["status"] for w in undo["writes"]} <= {"reverted", "already_reverted"}
    assert not any(w["conflicts"] for w in undo["writes"])
    assert sum(undo["counts"].values()) == len(undo["writes"])

    again = ok(call("run.undo", {"id": run, "dry_run": True}))["result"]
    assert {w["status"] for w in again["writes"]} <= {"already_reverted"}
    assert again["restored"] == []

    ok(call("action.undo", {"undo_token": undo["undo_token"]}))  # redo: the run applies again
    assert account_state(engine, account.account_id) == after


# --- examples ----------------------------------------------------------------------------------


@pytest.fixture
def call_(engine: Engine, account: NewAccount) -> Call:
    return caller(engine, account.secret)


def _contact(call: Call, **extra: Any) -> dict[str, Any]:
    body = {"display_name": "Ada", "identities": [{"kind": "email", "value": email()}], **extra}
    return ok(call("contact.create", body))


def test_conflict_is_three_way_other_fields_still_revert(engine, account, call_):
    c = _contact(call_, title="CTO", company="Engines")
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "title": "CEO", "company": "Looms"}, run=run))
    ok(call_("contact.update", {"id": c["id"], "title": "Founder"}))  # another run, later

    undo = ok(call_("run.undo", {"id": run}))
    [write] = undo["writes"]
    assert write["status"] == "conflict" and undo["counts"]["conflict"] == 1
    assert write["conflicts"] == [{"table": "contacts", "id": c["id"], "fields": ["title"]}]
    now = ok(call_("contact.get", {"id": c["id"]}))
    assert now["company"] == "Engines" and now["title"] == "Founder"


def test_force_overwrites_the_conflicting_fields(engine, account, call_):
    c = _contact(call_, title="CTO", company="Engines")
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "title": "CEO", "company": "Looms"}, run=run))
    ok(call_("contact.update", {"id": c["id"], "title": "Founder"}))

    undo = ok(call_("run.undo", {"id": run, "force": True}))
    [write] = undo["writes"]
    assert write["status"] == "reverted" and write["conflicts"][0]["fields"] == ["title"]
    now = ok(call_("contact.get", {"id": c["id"]}))
    assert (now["title"], now["company"]) == ("CTO", "Engines")


def test_a_row_created_by_the_run_and_edited_since_is_left_alone(engine, account, call_):
    run = new_run(engine, account.account_id)
    c = ok(call_("contact.create", {"display_name": "New", "identities": []}, run=run))
    ok(call_("contact.update", {"id": c["id"], "company": "Changed"}))
    undo = ok(call_("run.undo", {"id": run}))
    assert undo["writes"][0]["status"] == "conflict"
    assert undo["writes"][0]["conflicts"][0]["fields"] == ["company"]
    assert ok(call_("contact.get", {"id": c["id"]}))["company"] == "Changed"
    ok(call_("run.undo", {"id": run, "force": True}))
    err(call_("contact.get", {"id": c["id"]}), "not_found")


def test_writes_undone_outside_the_run_are_already_reverted(engine, account, call_):
    c = _contact(call_)
    keep = _contact(call_)
    run = new_run(engine, account.account_id)
    deleted = call_("contact.delete", {"id": c["id"]}, run=run)
    ok(call_("contact.update", {"id": keep["id"], "title": "In run"}, run=run))
    undone = call_("action.undo", {"undo_token": ok(deleted)["undo_token"]})  # default run
    ok(call_("contact.update", {"id": c["id"], "title": "Edited after the undo"}))

    report = ok(call_("run.undo", {"id": run}))
    by_op = {w["op"]: w for w in report["writes"]}
    assert [w["op"] for w in report["writes"]] == ["contact.update", "contact.delete"]
    assert by_op["contact.delete"]["status"] == "already_reverted"
    assert by_op["contact.delete"]["undone_by"] == undone.action_id
    assert by_op["contact.update"]["status"] == "reverted"
    assert ok(call_("contact.get", {"id": c["id"]}))["title"] == "Edited after the undo"
    assert ok(call_("contact.get", {"id": keep["id"]}))["title"] is None

    twice = ok(call_("run.undo", {"id": run}))
    assert twice["counts"] == {"reverted": 0, "already_reverted": 2, "conflict": 0}
    assert twice["restored"] == []


def test_an_undo_inside_the_run_is_reversed_like_any_write(engine, account, call_):
    c = _contact(call_)
    deleted = ok(call_("contact.delete", {"id": c["id"]}))  # before the run
    run = new_run(engine, account.account_id)
    ok(call_("action.undo", {"undo_token": deleted["undo_token"]}, run=run))
    assert ok(call_("contact.get", {"id": c["id"]}))["id"] == c["id"]
    report = ok(call_("run.undo", {"id": run}))
    assert [(w["op"], w["status"]) for w in report["writes"]] == [("action.undo", "reverted")]
    err(call_("contact.get", {"id": c["id"]}), "not_found")  # deleted again, as before the run


def test_writes_that_cancel_out_leave_the_rows_as_they_were(engine, account, call_):
    c = _contact(call_)
    run = new_run(engine, account.account_id)
    before = state(engine, account.account_id)
    deleted = ok(call_("contact.delete", {"id": c["id"]}, run=run))
    ok(call_("action.undo", {"undo_token": deleted["undo_token"]}, run=run))
    ok(call_("contact.update", {"id": c["id"], "stage": "customer"}, run=run))
    report = ok(call_("run.undo", {"id": run}))
    # The update is reverted; the row is then as before the run, so the delete and its undo
    # (which cancelled out) need nothing.
    assert [w["status"] for w in report["writes"]] == [
        "reverted",
        "already_reverted",
        "already_reverted",
    ]
    assert state(engine, account.account_id) == before


def test_dry_run_reports_without_writing(engine, account, call_):
    c = _contact(call_)
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "company": "X"}, run=run))
    ok(call_("contact.delete", {"id": c["id"]}, run=run))
    before, count = snapshot(engine.store, account.account_id), actions(engine, account.account_id)

    plan = ok(call_("run.undo", {"id": run, "dry_run": True}))
    assert plan["dry_run"] is True
    assert [w["status"] for w in plan["result"]["writes"]] == ["reverted", "reverted"]
    assert plan["result"]["counts"]["reverted"] == 2
    assert {d["field"] for d in plan["diff"]} >= {"deleted_at", "company"}
    assert (
        snapshot(engine.store, account.account_id) == before
        and actions(engine, account.account_id) == count
    )


def test_undo_of_the_run_undo_reapplies_the_run(engine, account, call_):
    c = _contact(call_)
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "title": "Run title"}, run=run))
    made = ok(call_("note.create", {"body": "from the run", "contact_id": c["id"]}, run=run))
    after = state(engine, account.account_id)
    undo = call_("run.undo", {"id": run, "reason": "wrong contact"})
    assert ok(undo)["reason"] == "wrong contact" and ok(undo)["undo_token"].startswith("undo_")
    assert ok(undo)["id"] == undo.action_id
    err(call_("note.get", {"id": made["id"]}), "not_found")
    redo = ok(call_("action.undo", {"undo_token": ok(undo)["undo_token"]}))
    assert redo["undone_action_id"] == undo.action_id
    assert state(engine, account.account_id) == after
    action = ok(call_("action.get", {"id": undo.action_id}))
    assert action["op"] == "run.undo" and action["args"]["reason"] == "wrong contact"


def test_a_uniqueness_clash_is_undo_conflict_and_writes_nothing(engine, account, call_):
    value = email()
    c = ok(call_("contact.create", {"identities": [{"kind": "email", "value": value}]}))
    run = new_run(engine, account.account_id)
    ok(call_("identity.remove", {"id": c["identities"][0]["id"]}, run=run))
    ok(call_("contact.create", {"identities": [{"kind": "email", "value": value}]}))
    before = snapshot(engine.store, account.account_id)
    e = err(call_("run.undo", {"id": run}), "undo_conflict")
    assert "uniqueness" in e["message"]
    assert snapshot(engine.store, account.account_id) == before


def test_an_empty_run_undoes_to_an_empty_report(engine, account, call_):
    run = new_run(engine, account.account_id)
    report = ok(call_("run.undo", {"id": run}))
    assert report["writes"] == [] and report["restored"] == []
    assert report["counts"] == {"reverted": 0, "already_reverted": 0, "conflict": 0}


def test_another_agents_run_needs_admin(engine, account, call_):
    c = _contact(call_)
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "title": "x"}, run=run))
    mine = ok(call_("api_key.create", {"name": "same agent", "scopes": ["read", "write"]}))
    other = ok(
        call_(
            "api_key.create",
            {"name": "other", "scopes": ["read", "write"], "agent_id": "agent_other"},
        )
    )
    reader = ok(call_("api_key.create", {"name": "r", "scopes": ["read"]}))
    e = err(call_("run.undo", {"id": run}, key=other["secret"]), "forbidden")
    assert e["param"] == "id" and "admin" in e["message"]
    err(call_("run.undo", {"id": run}, key=reader["secret"]), "forbidden")
    ok(call_("run.undo", {"id": run, "dry_run": True}, key=mine["secret"]))
    ok(call_("run.undo", {"id": run}))  # the account's admin key


def test_hostile_input(engine, account, call_):
    other = create_account(engine.store, "Other")
    theirs = new_run(engine, other.account_id)
    e = err(call_("run.undo", {"id": theirs}), "not_found")
    assert e["param"] == "id" and theirs in e["message"]
    err(call_("run.undo", {"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    mine = new_run(engine, account.account_id)
    for bad in (
        {},
        {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"},
        {"id": "run_"},
        {"id": "run_" + "A" * 5000},
        {"id": "run_01HG'; DROP TABLE runs;--"},
        {"id": 42},
        {"id": None},
        {"id": mine, "force": "yes"},
        {"id": mine, "force": 1},
        {"id": mine, "reason": "x" * 401},
        {"id": mine, "reason": "two\nlines"},
        {"id": mine, "undo_token": "undo_x"},
        {"id": [mine]},
    ):
        e = err(call_("run.undo", bad), "invalid_argument")
        assert e["param"] in ("id", "force", "reason", "undo_token"), (bad, e)


# --- transports ----------------------------------------------------------------------------------


def test_over_http_with_the_run_header(http, engine, account):
    run = new_run(engine, account.account_id)
    headers = {"X-Krabs-Run": run}
    made = http.post("/v1/contact.create", json={"display_name": "Via HTTP"}, headers=headers)
    c = made.json()
    http.post("/v1/contact.update", json={"id": c["id"], "title": "t"}, headers=headers)
    plan = http.post("/v1/run.undo", json={"id": run, "dry_run": True})
    assert plan.status_code == 200 and plan.json()["result"]["counts"]["reverted"] == 2
    assert http.post("/v1/contact.get", json={"id": c["id"]}).status_code == 200
    done = http.post("/v1/run.undo", json={"id": run})
    assert done.status_code == 200 and done.headers["X-Krabs-Action"] == done.json()["id"]
    assert http.post("/v1/contact.get", json={"id": c["id"]}).status_code == 404
    missing = http.post("/v1/run.undo", json={"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def _cli(live: Any, account: NewAccount, *argv: str) -> Any:
    from click.testing import CliRunner

    from krabs.cli import cli

    env = {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret, "KRABS_RUN_ID": None}
    return CliRunner().invoke(cli, ["runs", "undo", *argv], env=env)


def test_cli_runs_undo(engine, account, call_, live):
    c = _contact(call_, title="CTO")
    run = new_run(engine, account.account_id)
    ok(call_("contact.update", {"id": c["id"], "title": "CEO", "company": "X"}, run=run))
    ok(call_("contact.update", {"id": c["id"], "title": "Founder"}))
    before = state(engine, account.account_id)

    plan = _cli(live, account, run, "--dry-run")
    assert plan.exit_code == 4, plan.stdout + plan.stderr  # a conflict: title changed since
    assert "contact.update" in plan.stdout and "title" in plan.stdout
    assert "dry-run" in plan.stdout and state(engine, account.account_id) == before

    forced = _cli(live, account, run, "--force", "--reason", "test", "--json")
    assert forced.exit_code == 0, forced.stdout + forced.stderr
    report = json.loads(forced.stdout)
    assert report["counts"]["reverted"] == 1 and report["undo_token"].startswith("undo_")
    assert ok(call_("contact.get", {"id": c["id"]}))["title"] == "CTO"

    missing = _cli(live, account, "run_01HG7Z4X9Q8M2N7P3R5T6V8W")
    assert missing.exit_code == 3 and "not_found" in missing.stderr


def test_a_bulk_import_in_the_run_is_removed_and_guarded(engine, account, call_):
    """Imports record their new rows as one compact id range (engine/bulk.py); the run undo deletes
    the range while it holds exactly the imported rows, unchanged, and reports a conflict if not."""
    old = _contact(call_, company="Before")
    run = new_run(engine, account.account_id)
    before = state(engine, account.account_id)
    rows = "\n".join(f"{email()},Person {i},Co{i},vip" for i in range(30))
    out = ok(call_("contact.import_csv", {"csv": "email,name,company,tags\n" + rows}, run=run))
    assert out["created"] == 30
    ok(call_("contact.update", {"id": old["id"], "company": "In run"}, run=run))
    third = ok(call_("contact.list", {"q": "Person 3", "limit": 5}))["data"][0]
    ok(call_("contact.update", {"id": third["id"], "title": "In run"}, run=run))
    report = ok(call_("run.undo", {"id": run, "dry_run": True}))["result"]
    assert [w["status"] for w in report["writes"]] == ["reverted"] * 3

    imported = ok(call_("contact.list", {"q": "Person 7", "limit": 5}))["data"][0]
    ok(call_("contact.update", {"id": imported["id"], "title": "Edited outside"}))
    guarded = ok(call_("run.undo", {"id": run}))
    by_op = {w["op"]: w for w in guarded["writes"]}
    assert by_op["contact.import_csv"]["status"] == "conflict"
    assert by_op["contact.update"]["status"] == "reverted"
    assert ok(call_("contact.get", {"id": imported["id"]}))["title"] == "Edited outside"

    ok(call_("run.undo", {"id": run, "force": True}))
    err(call_("contact.get", {"id": imported["id"]}), "not_found")
    assert state(engine, account.account_id) == before
    twice = ok(call_("run.undo", {"id": run}))
    assert twice["counts"] == {"reverted": 0, "already_reverted": 3, "conflict": 0}
