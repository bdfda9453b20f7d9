"""The whole contract: the 52 operations of the seed, and the five properties proved for every
mutating operation of the registry through its compliance scenario (on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import ok, settle_jobs, snapshot
from krabs.compliance.scenarios import load_scenarios
from krabs.contract.registry import load_registry
from krabs.store.tables import audit_actions

REGISTRY = load_registry()
SCENARIOS = load_scenarios()

#: Copied from the seed (001, "The 52 operations"), namespace by namespace, so none can go missing.
SEED_52 = [
    *(f"contact.{v}" for v in (
        "create", "get", "list", "update", "delete", "merge", "find_by_identity",
        "import_csv", "ingest_vcard", "export_csv",
    )),
    *(f"identity.{v}" for v in ("add", "list", "remove")),
    *(f"interaction.{v}" for v in ("create", "list", "delete", "ingest_email")),
    *(f"deal.{v}" for v in ("create", "get", "list", "update", "delete")),
    *(f"task.{v}" for v in ("create", "get", "list", "update", "delete")),
    *(f"note.{v}" for v in ("create", "get", "list", "update", "delete")),
    *(f"tag.{v}" for v in ("create", "list", "update", "delete", "attach", "detach")),
    *(f"account.{v}" for v in ("update", "export")),
    *(f"businessProfile.{v}" for v in ("get", "set")),
    *(f"api_key.{v}" for v in ("create", "list", "revoke")),
    *(f"action.{v}" for v in ("get", "list", "undo")),
    *(f"finance.{v}" for v in ("summary", "mrr", "expenses_by_category", "funnel")),
]  # fmt: skip


def test_the_seed_lists_52_operations():
    assert len(SEED_52) == len(set(SEED_52)) == 52


@pytest.mark.parametrize("name", SEED_52)
def test_every_seed_operation_is_registered_as_1_0(name):
    op = REGISTRY.get(name)
    assert op is not None, f"{name} is missing from the registry"
    assert op.added_in == "1.0"


def test_everything_else_is_additive():
    extra = [op for op in REGISTRY if op.name not in SEED_52]
    for op in extra:
        assert op.added_in != "1.0", f"{op.name} is not in the seed, so it cannot be 1.0"


@pytest.mark.parametrize("op", list(REGISTRY), ids=lambda op: op.name)
def test_every_operation_has_a_scenario(op):
    assert op.name in SCENARIOS, f"{op.name} has no compliance scenario"


def _setup(call):
    def setup(op: str, args: dict[str, Any]) -> dict[str, Any]:
        return ok(call(op, args))

    return setup


def _actions(store, account_id: str) -> int:
    with store.connect(write=False) as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(audit_actions)
                .where(audit_actions.c.account_id == account_id)
            ).scalar_one()
        )


MUTATING = [op for op in REGISTRY if op.mutates and op.name in SCENARIOS]


@pytest.mark.parametrize("op", MUTATING, ids=lambda op: op.name)
def test_mutation_honours_dry_run_idempotency_and_audit(op, call, engine, account):
    args = SCENARIOS[op.name](_setup(call))
    settle_jobs(engine, account.account_id)
    before = snapshot(engine.store, account.account_id)

    plan = ok(call(op.name, {**args, "dry_run": True}))
    assert plan["dry_run"] is True and {"result", "touched", "diff", "audit"} <= set(plan)
    assert snapshot(engine.store, account.account_id) == before, "a dry-run wrote to the database"

    actions = _actions(engine.store, account.account_id)
    key = f"prop-{uuid.uuid4().hex}"
    first = call(op.name, args, idem=key)
    result = ok(first)
    assert first.action_id and first.action_id.startswith("act_")
    assert _actions(engine.store, account.account_id) == actions + 1, "no action landed"
    assert plan["audit"]["op"] == op.name

    settle_jobs(engine, account.account_id)  # run.enqueue's job runs in the background
    after = snapshot(engine.store, account.account_id)
    second = call(op.name, args, idem=key)
    assert second.replayed and second.action_id == first.action_id
    assert ok(second) == op.redacted(result), "a replay must return the stored response"
    assert snapshot(engine.store, account.account_id) == after, "a key replay wrote a second time"

    if op.destructive:
        assert result.get("undo_token", "").startswith("undo_")
        undone = ok(call("action.undo", {"undo_token": result["undo_token"]}))
        assert undone["undone_action_id"] == first.action_id


@pytest.mark.parametrize(
    "op", [op for op in REGISTRY if not op.mutates and op.name in SCENARIOS], ids=lambda o: o.name
)
def test_read_through_its_scenario(op, call, engine, account):
    args = SCENARIOS[op.name](_setup(call))
    ok(call("action.list", {"limit": 1}))  # the key's last use and the day's run are bookkeeping
    settle_jobs(engine, account.account_id)  # job.get's scenario queues one
    before = snapshot(engine.store, account.account_id)
    result = ok(call(op.name, args))
    op.output.model_validate(result)
    assert snapshot(engine.store, account.account_id) == before, "a read wrote to the database"
