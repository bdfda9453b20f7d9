"""``run.list_events``: a page of stored run events (one run, or every run of an account or agent),
what ``krabs runs tail`` backfills from and ``krabs runs replay`` reads calls from."""

from __future__ import annotations

import json
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import not_found
from krabs.contract.models import Args, Out, Timestamp
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import run_events, runs


class EventsArgs(Args):
    run_id: str | None = Field(
        None,
        pattern=r"^run_[0-9A-Za-z]{1,40}$",
        max_length=48,
        description="Only this run's events (else every run of the account).",
    )
    agent: str | None = Field(None, max_length=80, description="Only runs of this agent.")
    type: str | None = Field(
        None, max_length=40, description="Only events of this type, e.g. tool_call."
    )
    since: Timestamp | None = Field(None, description="Only events at or after this time.")
    after_id: int = Field(
        0, ge=0, le=2**62, description="Cursor: events with a global id above this (`next_cursor`)."
    )
    limit: int = Field(100, ge=1, le=1000, description="Page size, 1-1000.")


class EventOut(Out):
    object: Literal["run_event"] = "run_event"
    id: int
    seq: int
    run_id: str
    agent: str
    type: str
    ts: str
    op: str | None
    action_id: str | None
    data: dict[str, Any]


class EventPage(Out):
    object: Literal["list"] = "list"
    data: list[EventOut]
    has_more: bool
    next_cursor: int = Field(description="The last id of this page: the next page's `after_id`.")


@operation(
    "run.list_events",
    summary="List stored run events in order (one run, or all runs of the account or an agent).",
    input=EventsArgs,
    output=EventPage,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(
        Example({"agent": "agent_drafts", "type": "tool_call", "since": "2026-05-16T14:00:00Z"}),
    ),
)
def list_events(uow: UnitOfWork, args: EventsArgs) -> dict[str, Any]:
    """Oldest first by global event id; page with `after_id` = `next_cursor`. A `tool_call` event's
    `data` holds `op`, `args`, `result` or `error`, `latency_ms` and `action_id`. For live events,
    stream `GET /v1/runs/{id}/stream` or the firehose `GET /v1/runs/stream?agent=`."""
    e = run_events
    q = (
        sa.select(e, runs.c.agent_id)
        .join(runs, runs.c.id == e.c.run_id)
        .where(e.c.account_id == uow.account_id, e.c.id > args.after_id)
    )
    if args.run_id is not None:
        owned = uow.execute(
            sa.select(runs.c.id).where(
                runs.c.id == args.run_id, runs.c.account_id == uow.account_id
            )
        ).first()
        if owned is None:
            raise not_found("run", args.run_id, "run_id")
        q = q.where(e.c.run_id == args.run_id)
    if args.agent is not None:
        q = q.where(runs.c.agent_id == args.agent)
    if args.type is not None:
        q = q.where(e.c.type == args.type)
    if args.since is not None:
        q = q.where(e.c.ts >= args.since)
    rows = uow.execute(q.order_by(e.c.id).limit(args.limit + 1)).all()
    data = [
        {
            "object": "run_event",
            "id": int(r.id),
            "seq": int(r.seq),
            "run_id": r.run_id,
            "agent": r.agent_id,
            "type": r.type,
            "ts": r.ts,
            "op": r.op,
            "action_id": r.action_id,
            "data": json.loads(r.data),
        }
        for r in rows[: args.limit]
    ]
    has_more = len(rows) > args.limit
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if data else args.after_id,
    }
