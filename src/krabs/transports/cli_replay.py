"""``krabs runs replay RUN [--dry-run]``: what a run's calls would do today (``run.replay``), or
execute them again as a new run, each with an idempotency key derived from the original run and seq
(so running the same replay twice applies every call once).

Exit status: 0 when every call is the same (dry-run) or succeeded, 2 when some differ, would fail or
failed, 1 when the replay itself could not run."""

from __future__ import annotations

import json
from typing import Any

import click

from krabs.client_errors import KrabsAPIError
from krabs.runs.replay import learn_ids, not_executed, remap, replay_key
from krabs.transports.cli import err_console, state
from krabs.transports.cli_backend import Backend
from krabs.transports.cli_render import render_error
from krabs.transports.cli_runs import runs

MARKS = {
    "same": ("=", "green"),
    "differs": ("≠", "yellow"),
    "would_fail": ("✕", "red"),
    "skipped": ("·", None),
    "executed": ("✓", "green"),
    "failed": ("✕", "red"),
}


def item_line(item: dict[str, Any]) -> str:
    mark, colour = MARKS.get(item["status"], ("?", None))
    head = f"{item['seq']:>6} {click.style(item['op'], bold=True)} "
    line = head + click.style(f"{mark} {item['status']}", fg=colour)
    if item.get("error"):
        line += f" {item['error'].get('code')}: {item['error'].get('message', '')}"[:300]
    if item.get("reason"):
        line += click.style(f" ({item['reason']})", dim=True)
    for d in (item.get("diff") or [])[:5]:
        before = json.dumps(d.get("before"), ensure_ascii=False)[:80]
        after = json.dumps(d.get("after"), ensure_ascii=False)[:80]
        line += f"\n         {d['path']}: {before} → {after}"
    if (item.get("diff_count") or 0) > 5:
        line += f"\n         … {item['diff_count'] - 5} more"
    return line


def _print(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
    else:
        click.echo(item_line(item), color=None)


def dry_replay(backend: Backend, run_id: str, as_json: bool) -> dict[str, int]:
    totals = {"calls": 0, "same": 0, "differs": 0, "would_fail": 0, "skipped": 0}
    after = 0
    while True:
        page = backend.call("run.replay", {"id": run_id, "after_seq": after, "limit": 1000})
        for item in page["items"]:
            _print(item, as_json)
        for k in totals:
            totals[k] += int(page["summary"].get(k, 0))
        if not page["has_more"]:
            return totals
        after = int(page["next_after_seq"])


def real_replay(backend: Backend, run_id: str, as_json: bool) -> dict[str, Any]:
    """Execute the run's calls again, in order, as a new run."""
    new_run = backend.call("run.create", {"name": f"replay of {run_id}"[:200]})
    target = str(new_run.get("id") or new_run.get("run_id"))
    totals: dict[str, Any] = {"calls": 0, "executed": 0, "failed": 0, "skipped": 0}
    args: dict[str, Any] = {"run_id": run_id, "type": "tool_call", "limit": 1000, "after_id": 0}
    ids: dict[str, str] = {}  # ids the original calls made -> the ones the replay made instead
    while True:
        page = backend.call("run.list_events", args)
        for event in page["data"]:
            item = _execute_one(backend, run_id, target, event, ids)
            totals["calls"] += 1
            totals[item["status"]] += 1
            _print(item, as_json)
        args["after_id"] = page["next_cursor"]
        if not page["has_more"]:
            break
    outcome = "failed" if totals["failed"] else "completed"
    backend.call("run.close", {"id": target, "outcome": outcome})
    return {**totals, "run_id": target}


def _execute_one(
    backend: Backend, source: str, target: str, event: dict[str, Any], ids: dict[str, str]
) -> dict[str, Any]:
    data, seq = event["data"], int(event["seq"])
    op = str(event.get("op") or data.get("op"))
    item: dict[str, Any] = {"seq": seq, "op": op}
    skip = not_executed(op, data)
    if skip is not None:
        return {**item, "status": "skipped", "reason": skip}
    args = remap({k: v for k, v in (data.get("args") or {}).items() if k != "dry_run"}, ids)
    try:
        result = backend.call(op, args, idempotency_key=replay_key(source, seq), run=target)
    except KrabsAPIError as exc:
        return {**item, "status": "failed", "error": {"code": exc.code, "message": exc.message}}
    learn_ids(data.get("result"), result, ids)
    return {**item, "status": "executed", "result": result}


@runs.command("replay")
@click.argument("run_id")
@click.option(
    "--dry-run", is_flag=True, help="Report what each call would do today; write nothing."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per call, then the summary.")
@click.pass_context
def replay(ctx: click.Context, run_id: str, dry_run: bool, as_json: bool) -> None:
    """Re-execute RUN's recorded calls against current state. With --dry-run each call reports same,
    differs (with the diff) or would_fail (with the error); without it the calls execute as a new
    run (safe to retry: each call's idempotency key derives from RUN and its seq)."""
    backend = state(ctx).backend
    try:
        if dry_run:
            totals: dict[str, Any] = dry_replay(backend, run_id, as_json)
            changed = totals["differs"] + totals["would_fail"]
        else:
            totals = real_replay(backend, run_id, as_json)
            changed = totals["failed"]
    except KrabsAPIError as exc:
        render_error(err_console, exc, "json" if as_json else "table")
        ctx.exit(1)
        return
    if as_json:
        click.echo(json.dumps({"summary": totals}, separators=(",", ":")))
    else:
        parts = ", ".join(f"{v} {k}" for k, v in totals.items() if k != "run_id")
        into = f" into {totals['run_id']}" if "run_id" in totals else ""
        click.echo(f"replay of {run_id}{into}: {parts}")
    ctx.exit(2 if changed else 0)
