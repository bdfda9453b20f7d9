"""Scenarios for the runs extras: approval gates, replay, queued runs and their jobs."""

from __future__ import annotations

import contextlib
from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique

#: A gate no other scenario trips: only CSV imports of at least this many rows.
GATE_ROWS = 777


@scenario("approval_policy.set")
def _policy_set(setup: Setup) -> dict[str, Any]:
    return {"agent_id": unique("agent_c"), "rules": [{"op": "contact.delete"}]}


@scenario("approval_policy.list")
def _policy_list(setup: Setup) -> dict[str, Any]:
    setup("approval_policy.set", {"agent_id": unique("agent_c"), "rules": [{"op": "deal.*"}]})
    return {"limit": 5}


def pending_approval(setup: Setup) -> str:
    """Gate big imports for a moment, trip the gate once, lift it; the pending approval's id."""
    setup(
        "approval_policy.set",
        {"rules": [{"op": "contact.import_csv", "min_rows": GATE_ROWS}]},
    )
    marker = unique("gate")
    rows = "\n".join(f"{marker}{i}@example.com" for i in range(GATE_ROWS))
    try:
        with contextlib.suppress(
            Exception
        ):  # the gate answers approval_required: that is the point
            setup("contact.import_csv", {"csv": "email\n" + rows + "\n"})
    finally:
        setup("approval_policy.set", {"rules": []})
    page = setup("approval.list", {"status": "pending", "op": "contact.import_csv", "limit": 1})
    return str(page["data"][0]["id"])


@scenario("approval.get")
def _approval_get(setup: Setup) -> dict[str, Any]:
    return {"id": pending_approval(setup)}


@scenario("approval.list")
def _approval_list(setup: Setup) -> dict[str, Any]:
    pending_approval(setup)
    return {"status": "pending", "limit": 5}


@scenario("approval.decide")
def _approval_decide(setup: Setup) -> dict[str, Any]:
    return {"id": pending_approval(setup), "decision": "reject", "note": "compliance check"}


@scenario("run.replay")
def _run_replay(setup: Setup) -> dict[str, Any]:
    """The run the suite's own calls land in (its agent's default run, or the one it names)."""
    contact = setup("contact.create", {"display_name": unique("Replayed ")})
    action = setup("action.list", {"target": contact["id"], "limit": 1})["data"][0]
    return {"id": action["run_id"], "limit": 20}


@scenario("run.enqueue")
def _run_enqueue(setup: Setup) -> dict[str, Any]:
    return {"name": unique("queued "), "calls": [{"op": "contact.list", "args": {"limit": 1}}]}


@scenario("job.get")
def _job_get(setup: Setup) -> dict[str, Any]:
    job = setup("run.enqueue", {"calls": [{"op": "tag.list", "args": {"limit": 1}}]})
    return {"id": job["id"]}


@scenario("run.list_events")
def _run_list_events(setup: Setup) -> dict[str, Any]:
    run = setup("run.create", {"name": unique("events ")})
    return {"run_id": run["id"], "limit": 10}
