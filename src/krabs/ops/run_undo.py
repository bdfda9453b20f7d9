"""``run.undo``: reverse every write of a run in one audited (and itself undoable) action."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.audit.run_undo import undo_run
from krabs.contract.errors import KrabsError, not_found
from krabs.contract.models import Args, LongName, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.run import RUN_ID
from krabs.store.tables import runs


class RunUndo(Args):
    id: str = RUN_ID
    force: bool = Field(
        False, description="Also overwrite fields someone changed since the run (conflicts)."
    )
    reason: LongName | None = Field(
        None, description="Why the run is undone; kept in the audit log with the undo."
    )


class RowConflict(Out):
    table: str
    id: str
    fields: list[str] = Field(description="Fields changed since the run; `row`: the whole row.")


class WriteReport(Out):
    action_id: str
    seq: int
    op: str
    status: Literal["reverted", "already_reverted", "conflict"]
    conflicts: list[RowConflict]
    undone_by: str | None = Field(description="The undo outside the run that already reversed it.")


class RunUndoOut(Out):
    object: Literal["run_undo"] = "run_undo"
    id: str = Field(description="This undo's action (`act_…`): action.get shows what it wrote.")
    run_id: str
    force: bool
    reason: str | None
    counts: dict[str, int] = Field(description="Writes per status.")
    writes: list[WriteReport] = Field(description="One entry per write of the run, newest first.")
    restored: list[dict[str, str]] = Field(description="The rows this undo wrote (table, id).")
    undo_token: str | None = None
    undo_expires_at: str | None = None


@operation(
    "run.undo",
    summary="Reverse every write of a run, newest first, as one undoable action.",
    input=RunUndo,
    output=RunUndoOut,
    mutates=True,
    destructive=True,
    added_in="1.1",
    errors=("not_found", "forbidden", "undo_conflict", "undo_expired"),
    examples=(
        Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),
        Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W", "force": True, "reason": "bad import"}),
    ),
)
def undo(uow: UnitOfWork, args: RunUndo) -> dict[str, Any]:
    """Puts every row the run wrote back to how it was before the run, field by field. Per write the
    report says `reverted`, `already_reverted` (undone since, or nothing left to do) or `conflict`:
    a field someone changed after the run is left alone and listed, while the run's other fields
    are still reverted; pass `force: true` to overwrite those too. Try `dry_run: true` first to
    read the report without writing. The result's `undo_token` (or `action.undo`) re-applies the
    run. A run of another agent needs the admin scope; your own runs need write. A run with a write
    older than 24 h (its before-images dropped by retention) is `undo_expired`; one with a GDPR
    erased write is `not_found`."""
    run = uow.execute(
        sa.select(runs.c.id, runs.c.agent_id).where(
            runs.c.id == args.id, runs.c.account_id == uow.account_id
        )
    ).first()
    if run is None:
        raise not_found("run", args.id)
    if run.agent_id != uow.principal.agent_id and not uow.principal.allows("admin"):
        raise KrabsError(
            "forbidden",
            f"run {args.id} belongs to agent {run.agent_id}; undoing another agent's run needs "
            "the admin scope (undo single writes with their undo_token instead)",
            param="id",
        )
    report = undo_run(uow, args.id, force=args.force)
    return {
        "object": "run_undo",
        "id": uow.action_id,
        "run_id": args.id,
        "force": args.force,
        "reason": args.reason,
        **report,
    }
