"""``run.replay``: what a run's calls would do if executed today (a dry replay, nothing is kept)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import not_found
from krabs.contract.models import Args, Out, id_field
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.runs.replay import DryReplay
from krabs.store.tables import runs


class ReplayArgs(Args):
    id: str = id_field("run", "The run to replay.")
    after_seq: int = Field(
        0, ge=0, le=2**62, description="Replay the calls after this seq (`next_after_seq`)."
    )
    limit: int = Field(100, ge=1, le=1000, description="At most this many calls per page, 1-1000.")


class ReplayItem(Out):
    seq: int
    op: str
    status: Literal["same", "differs", "would_fail", "skipped"]
    original_action_id: str | None = None
    diff: list[dict[str, Any]] | None = None
    diff_count: int | None = None
    error: dict[str, Any] | None = None
    reason: str | None = None


class ReplaySummary(Out):
    calls: int
    same: int
    differs: int
    would_fail: int
    skipped: int


class ReplayOut(Out):
    object: Literal["run_replay"] = "run_replay"
    run_id: str
    dry_run: bool
    items: list[ReplayItem]
    summary: ReplaySummary
    has_more: bool
    next_after_seq: int | None


#: On SQLite, a no-op write taken first: the savepoints below write, and a read transaction that
#: started on an older snapshot could not become a writer.
_TAKE_WRITE_LOCK = runs.update().where(sa.false()).values(status=runs.c.status)


@operation(
    "run.replay",
    summary="Re-execute a run's recorded calls as dry-runs against current state and compare.",
    input=ReplayArgs,
    output=ReplayOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def replay(uow: UnitOfWork, args: ReplayArgs) -> dict[str, Any]:
    """Per call (reads and writes, in seq order): `same` (same result and same kinds of records
    touched, ids and timestamps aside), `differs` (with `diff`: paths, before and after) or
    `would_fail` (with the `error` it would get today); `skipped` for dry-runs and calls recorded
    without their full arguments. Nothing is written. Page with `after_seq` = `next_after_seq`.
    To execute the calls for real as a new run, use `krabs runs replay RUN` without `--dry-run`."""
    if uow.dialect == "sqlite":
        uow.execute(_TAKE_WRITE_LOCK)
    found = uow.execute(
        sa.select(runs.c.id).where(runs.c.id == args.id, runs.c.account_id == uow.account_id)
    ).first()
    if found is None:
        raise not_found("run", args.id)
    return DryReplay(uow).page(args.id, args.after_seq, args.limit)
