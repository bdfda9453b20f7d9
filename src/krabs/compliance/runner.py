"""``krabs compliance``: every operation of a live endpoint's ``/v1/schema`` run through its scenario
and checked for the five properties (intent, idempotency, dry-run, schema, audit) over HTTP, and for
the same properties plus identical results over the CLI and MCP. Any failure, including an
operation with no scenario, makes the run fail."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from rich.console import Console

from krabs.compliance.checks import (
    Cell,
    Probe,
    Row,
    hostile,
    intent,
    new_key,
    other_bodies,
    same,
    shape,
    validates,
)
from krabs.compliance.legs import (
    CliLeg,
    HttpLeg,
    Leg,
    LegUnavailable,
    McpLeg,
    Reply,
    ScenarioFailed,
)
from krabs.compliance.report import render_report, report_document
from krabs.compliance.scenarios import Scenario, load_scenarios


def check_http(
    http: HttpLeg, probe: Probe, name: str, entry: dict[str, Any], scenario: Scenario
) -> Row:
    row = Row(name, "http")
    intent(row, name, entry)
    codes = {e["code"] for e in entry.get("errors", [])}
    args = scenario(http.setup)
    problem = validates(entry["input"], args)
    row.set("schema", problem is None, f"scenario arguments break the input schema: {problem}")
    hostile(row, http, name, args, codes)
    if not entry.get("mutates"):
        for prop in ("idempotency", "dry_run"):
            row.na(prop)
        head = probe.head()
        reply = http.call(name, args)
        row.set("intent", reply.ok, f"the call failed: {reply.describe()}")
        row.set("audit", probe.head() == head, "a read appended an audit action")
        if reply.ok:
            problem = validates(entry["output"], reply.result)
            row.set("schema", problem is None, f"result breaks the output schema: {problem}")
        elif reply.code not in codes:
            row.set("schema", False, f"{reply.code} is not listed in the operation's errors")
        row.cells["parity"] = _ref()
        return row

    # Dry-run: a plan comes back and nothing lands: no action, the target unchanged or not created.
    noun = name.split(".", 1)[0]
    target = args.get("id") if isinstance(args.get("id"), str) else None
    before = probe.get(noun, target) if target else None
    head = probe.head()
    plan = http.call(name, args, dry_run=True)
    plan_ok = plan.ok and plan.result is not None and plan.result.get("dry_run") is True
    plan_ok = plan_ok and {"result", "touched", "diff", "audit"} <= set(plan.result or {})
    row.set("dry_run", plan_ok, f"the dry-run did not return a plan: {plan.describe()}")
    row.set("dry_run", probe.head() == head, "the dry-run appended an audit action")
    if target and before is not None:
        after = probe.get(noun, target)
        row.set("dry_run", after == before, f"the dry-run changed {target}")
    if plan_ok and plan.result:
        created = [t["id"] for t in plan.result["touched"] if t.get("action") == "create"]
        would_be = (plan.result.get("result") or {}).get("id")
        if isinstance(would_be, str) and would_be in created:
            probe_after = probe.get(noun, would_be)
            persisted = probe_after is not None and probe_after.ok
            row.set("dry_run", not persisted, f"the dry-run persisted {would_be}")

    # Idempotency: the same key replays the first response; another body with it is refused.
    key = new_key()
    first = http.call(name, args, idempotency_key=key)
    if not first.ok:
        row.fail_all(f"the scenario's call failed: {first.describe()}")
        if first.code not in codes:
            row.cells["schema"].note = f"{first.code} is not listed in the operation's errors"
        return row
    row.set("audit", probe.head() == head + 1, "the write did not append exactly one action")
    second = http.call(name, args, idempotency_key=key)
    row.set(
        "idempotency",
        second.ok and second.replayed and second.action_id == first.action_id,
        f"a replay with the same key was not marked Idempotent-Replayed: {second.describe()}",
    )
    row.set("idempotency", same(second.result, first.result), "the replay returned another result")
    row.set("idempotency", probe.head() == head + 1, "the replay wrote a second action")
    reused = Reply(error={"code": "none", "message": "no other valid body could be built"})
    for body in other_bodies(entry, args, lambda: scenario(http.setup)):
        reused = http.call(name, body, idempotency_key=key)
        if reused.code != "invalid_argument":
            break
    row.set(
        "idempotency",
        reused.code == "idempotency_key_reused" and "idempotency_key_reused" in codes,
        f"the key with another body gave {reused.describe()}",
    )
    problem = validates(entry["output"], first.result)
    row.set("schema", problem is None, f"result breaks the output schema: {problem}")

    # Audit: the action is readable; a destructive write returns an undo token that works.
    action = http.call("action.get", {"id": first.action_id or ""})
    row.set(
        "audit",
        action.ok and (action.result or {}).get("op") == name,
        f"action {first.action_id} of the write is not readable: {action.describe()}",
    )
    if entry.get("destructive"):
        token = (first.result or {}).get("undo_token")
        row.set("audit", isinstance(token, str) and token.startswith("undo_"), "no undo_token")
        if isinstance(token, str):
            undone = http.call("action.undo", {"undo_token": token})
            row.set(
                "audit",
                undone.ok and (undone.result or {}).get("undone_action_id") == first.action_id,
                f"action.undo of the write failed: {undone.describe()}",
            )
    row.cells["parity"] = _ref()
    return row


def _ref() -> Cell:
    return Cell("n/a", "reference")


def check_leg(
    leg: Leg, http: HttpLeg, probe: Probe, name: str, entry: dict[str, Any], scenario: Scenario
) -> Row:
    """The same scenario over another transport, compared with HTTP."""
    row = Row(name, leg.name)
    codes = {e["code"] for e in entry.get("errors", [])}
    args = scenario(http.setup)
    reference = http.call(name, {**args, "compliance_unknown_field": 1})
    mine = hostile(row, leg, name, args, codes)
    row.set(
        "parity",
        mine.error is not None
        and reference.error is not None
        and mine.error.get("code") == reference.error.get("code")
        and mine.error.get("param") == reference.error.get("param"),
        f"its error differs from HTTP's: {mine.describe()} vs {reference.describe()}",
    )
    head = probe.head()
    if not entry.get("mutates"):
        for prop in ("idempotency", "dry_run"):
            row.na(prop)
        reply = leg.call(name, args)
        row.set("intent", reply.ok, f"the call failed: {reply.describe()}")
        row.set("audit", probe.head() == head, "a read appended an audit action")
        ok, note = read_parity(leg, http, name, args, reply)
        row.set("parity", ok, note)
        row.set("schema", True)
        return row

    plan = leg.call(name, args, dry_run=True)
    row.set(
        "dry_run",
        plan.ok and (plan.result or {}).get("dry_run") is True,
        f"no plan: {plan.describe()}",
    )
    row.set("dry_run", probe.head() == head, "the dry-run appended an audit action")
    expected_plan = http.call(name, args, dry_run=True)
    row.set("parity", same(plan.result, expected_plan.result), _diff(plan, expected_plan))

    key = new_key()
    reply = leg.call(name, args, idempotency_key=key)
    row.set("intent", reply.ok, f"the call failed: {reply.describe()}")
    if not reply.ok:
        row.fail_all(f"the scenario's call failed: {reply.describe()}")
        return row
    row.set("audit", probe.head() == head + 1, "the write did not append exactly one action")
    replay = http.call(name, args, idempotency_key=key)
    row.set(
        "idempotency",
        replay.ok and replay.replayed,
        f"HTTP with the same key and arguments did not replay it: {replay.describe()}",
    )
    row.set("parity", same(reply.result, replay.result), _diff(reply, replay))
    action = http.call("action.get", {"id": replay.action_id or ""})
    row.set("audit", action.ok and (action.result or {}).get("op") == name, "no readable action")
    if entry.get("destructive"):
        token = (reply.result or {}).get("undo_token")
        row.set("audit", isinstance(token, str) and token.startswith("undo_"), "no undo_token")
    row.set("schema", True)
    return row


def read_parity(
    leg: Leg, http: HttpLeg, name: str, args: dict[str, Any], reply: Reply
) -> tuple[bool, str]:
    """A read over ``leg`` equals the same read over HTTP. Some reads observe the call log itself
    (an export includes the runs these very calls extend): when two HTTP reads disagree too, the
    shapes are compared instead. A mismatch must repeat three times to count."""
    expected = http.call(name, args)
    for _attempt in range(3):
        if same(reply.result, expected.result):
            return True, ""
        again = http.call(name, args)
        if not same(expected.result, again.result):
            return shape(reply.result) == shape(expected.result), _diff(reply, expected)
        reply, expected = leg.call(name, args), http.call(name, args)
    return False, _diff(reply, expected)


def _diff(mine: Any, reference: Any) -> str:
    a = json.dumps(getattr(mine, "result", None) or getattr(mine, "error", None), default=str)
    b = json.dumps(
        getattr(reference, "result", None) or getattr(reference, "error", None), default=str
    )
    return f"result differs from HTTP's: {a[:300]} vs {b[:300]}"


def selected_legs(
    url: str, api_key: str, transports: tuple[str, ...], schema: dict[str, Any]
) -> tuple[list[Leg], list[str]]:
    names = {"http", "mcp", "cli"} if "all" in transports else set(transports)
    legs: list[Leg] = []
    problems: list[str] = []
    if "mcp" in names:
        try:
            legs.append(McpLeg(url, api_key))
        except LegUnavailable as exc:
            problems.append(str(exc))
    if "cli" in names:
        legs.append(CliLeg(url, api_key, schema))
    return legs, problems


def run_compliance(
    url: str,
    api_key: str,
    transports: tuple[str, ...] = ("http",),
    *,
    only: tuple[str, ...] = (),
    report_path: str | None = None,
    console: Console | None = None,
) -> bool:
    """Run the suite; print the table; return True when anything failed."""
    console = console or Console()
    http = HttpLeg(url, api_key)
    schema = http.schema
    probe = Probe(http, schema)
    scenarios = load_scenarios()
    legs, problems = selected_legs(url, api_key, transports, schema)
    rows: list[Row] = []
    for name, entry in sorted(schema["operations"].items()):
        if only and not any(fnmatch.fnmatchcase(name, pattern) for pattern in only):
            continue
        scenario = scenarios.get(name)
        for leg_name in ["http", *(leg.name for leg in legs)]:
            row = Row(name, leg_name)
            try:
                if scenario is None:
                    row.fail_all("no compliance scenario for this operation")
                elif leg_name == "http":
                    row = check_http(http, probe, name, entry, scenario)
                else:
                    leg = next(leg for leg in legs if leg.name == leg_name)
                    row = check_leg(leg, http, probe, name, entry, scenario)
            except ScenarioFailed as exc:
                row.fail_all(str(exc))
            rows.append(row)
    render_report(console, rows, problems)
    if report_path:
        with open(report_path, "w", encoding="utf-8") as fh:
            json.dump(report_document(rows, problems), fh, indent=2)
    return bool(problems) or any(row.failed for row in rows)
