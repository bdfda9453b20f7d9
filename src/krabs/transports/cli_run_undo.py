"""``krabs runs undo RUN [--dry-run] [--force]``: reverse every write of a run (``run.undo``) and
print what happened to each, newest first.

Exit status: 0 when every write is reverted (or already was), 4 when some conflict (fields changed
since the run were left alone: look, then pass --force), else the error's exit code."""

from __future__ import annotations

import json
from typing import Any

import click

from krabs.client_errors import KrabsAPIError
from krabs.transports.cli import err_console, state
from krabs.transports.cli_render import render_error
from krabs.transports.cli_runs import runs

MARKS = {"reverted": ("↶", "green"), "already_reverted": ("·", None), "conflict": ("✕", "red")}


def write_line(write: dict[str, Any]) -> str:
    mark, colour = MARKS.get(write["status"], ("?", None))
    line = f"{write['seq']:>6} {click.style(write['op'], bold=True)} "
    line += click.style(f"{mark} {write['status']}", fg=colour)
    if write.get("undone_by"):
        line += click.style(f" (by {write['undone_by']})", dim=True)
    for c in write.get("conflicts") or []:
        line += f"\n         {c['table']} {c['id']}: {', '.join(c['fields'])}"
    return line


@runs.command("undo")
@click.argument("run_id")
@click.option("--dry-run", is_flag=True, help="Report what would be reverted; write nothing.")
@click.option("--force", is_flag=True, help="Also overwrite fields changed since the run.")
@click.option("--reason", default=None, help="Why the run is undone (kept in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_context
def undo(
    ctx: click.Context,
    run_id: str,
    dry_run: bool,
    force: bool,
    reason: str | None,
    as_json: bool,
) -> None:
    """Put every row RUN wrote back as it was before the run, newest write first, as one action.
    A field someone changed since is a conflict and is left alone (--force overwrites it). The
    undo prints an undo_token: `krabs action undo --undo-token …` applies the run again."""
    args: dict[str, Any] = {"id": run_id, "force": force}
    if reason is not None:
        args["reason"] = reason
    try:
        result = state(ctx).backend.call("run.undo", args, dry_run=dry_run)
    except KrabsAPIError as exc:
        render_error(err_console, exc, "json" if as_json else "table")
        ctx.exit(exc.exit_code)
        return
    report = result["result"] if dry_run else result
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for write in report["writes"]:
            click.echo(write_line(write), color=None)
        counts = ", ".join(f"{n} {status}" for status, n in report["counts"].items())
        tail = " (dry-run: nothing written)" if dry_run else ""
        click.echo(f"undo of {run_id}: {counts}{tail}")
        if report.get("undo_token"):
            click.echo(f"undo_token: {report['undo_token']} (re-applies the run)")
    ctx.exit(4 if report["counts"]["conflict"] else 0)
