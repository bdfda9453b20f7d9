"""Runs: create one, read it with its stats, list them, and close or cancel it. Every status change is
an event of the run (``run.started``, ``run.completed``, ``run.failed``, ``run.cancelled``)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.audit.checkpoint import sign_checkpoint
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Name, Out, Timestamp, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import newest_first
from krabs.runs.events import append_event
from krabs.runs.lifecycle import (
    TERMINAL,
    effective_status,
    idle_cutoff,
    last_activity,
    latencies,
    run_object,
)
from krabs.store.tables import runs

RunStatus = Literal["open", "waiting_for_input", "completed", "failed", "cancelled", "expired"]
RUN_ID = Field(
    pattern=r"^run_[0-9A-Za-z_-]{1,60}$", max_length=64, description="A run id, `run_…`."
)
AGENT = Field(
    None,
    pattern=r"^agent_[A-Za-z0-9_-]{1,64}$",
    description="The agent the run belongs to (`agent_…`); default: the calling key's agent.",
)


class RunStats(Out):
    calls: int
    errors: int
    writes: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    duration_ms: float = Field(description="From the run's start to its last call.")
    input_tokens: int
    output_tokens: int
    cost_usd: float


class RunOut(Out):
    object: Literal["run"] = "run"
    id: str
    run_id: str
    agent: str
    name: str
    status: RunStatus
    default: bool = Field(description="True for an agent's ad-hoc daily run named `default`.")
    created: str
    created_at: str
    updated_at: str
    last_call_at: str | None
    ended_at: str | None
    last_seq: int = Field(description="The seq of the run's last event (resume streams after it).")
    stats: RunStats


#: Built once: every span upload and run call reads its run (a statement built per call costs
#: more to construct and compile than the read itself).
_RUN_ROW = sa.select(runs).where(
    runs.c.id == sa.bindparam("id", type_=sa.String),
    runs.c.account_id == sa.bindparam("acct", type_=sa.String),
)


def run_row(uow: UnitOfWork, run_id: str, param: str = "id") -> dict[str, Any]:
    """The account's run with that id, else ``not_found``. A run whose creation is still spooled
    (a long transaction holds SQLite's writer) reads as it will be written; a write never sees
    that, because the spool writes it before any later write."""
    row = uow.execute(_RUN_ROW, {"id": run_id, "acct": uow.account_id}).first()
    if row is not None:
        return dict(row._mapping)
    pending = uow.pending_run(uow.account_id, run_id) if uow.pending_run is not None else None
    if pending is None:
        raise KrabsError("not_found", f"no run with id {run_id!r} in this account", param=param)
    return pending


def one(uow: UnitOfWork, row: dict[str, Any]) -> dict[str, Any]:
    return run_object(row, latencies(uow.conn, [row["id"]])[row["id"]], uow.now)


def check_takes_events(row: dict[str, Any], now: str, param: str = "id") -> None:
    """A run that is over refuses more: ``run_cancelled`` once cancelled, else ``run_closed``."""
    status = effective_status(row, now)
    if status == "cancelled":
        raise KrabsError("run_cancelled", f"run {row['id']} was cancelled", param=param)
    if status in TERMINAL:
        raise KrabsError("run_closed", f"run {row['id']} is {status}; start a new run", param=param)


# -- run.create ------------------------------------------------------------------------------------


class RunCreate(Args):
    name: Name = Field(description="What the run is, e.g. 'Q3 outreach pass'.")
    agent: str | None = AGENT


@operation(
    "run.create",
    summary="Start a run: an open session whose calls (X-Krabs-Run) are logged and streamed together.",
    input=RunCreate,
    output=RunOut,
    mutates=True,
    added_in="1.1",
    errors=("forbidden",),
    examples=(Example({"agent": "agent_drafts", "name": "Q3 outreach pass"}),),
)
def create(uow: UnitOfWork, args: RunCreate) -> dict[str, Any]:
    """Creates an open run and its first event, `run.started`. Attach calls to it with the
    `X-Krabs-Run` header (HTTP), `KRABS_RUN_ID` (CLI) or `_meta["krabs/run_id"]` (MCP); stream it
    with `GET /v1/runs/{id}/stream`. It stays open until `run.close` or `run.cancel`, or expires
    after 24 h without a call. `agent` defaults to the calling key's agent; naming another agent
    needs the admin scope."""
    agent = args.agent or uow.principal.agent_id
    if agent != uow.principal.agent_id and not uow.principal.allows("admin"):
        raise KrabsError(
            "forbidden",
            f"this key acts as {uow.principal.agent_id}; a run for {agent} needs the admin scope "
            "(or omit agent)",
            param="agent",
        )
    run_id = new_id("run")
    uow.insert(
        runs,
        {
            "id": run_id,
            "agent_id": agent,
            "name": args.name,
            "status": "open",
            "default_day": None,
            "created_at": uow.now,
            "updated_at": uow.now,
            "closed_at": None,
            "last_seq": 0,
            "calls": 0,
            "errors": 0,
            "writes": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_micros": 0,
            "last_call_at": None,
        },
    )
    append_event(
        uow.conn,
        account_id=uow.account_id,
        run_id=run_id,
        type="run.started",
        data={"agent": agent, "name": args.name},
        ts=uow.now,
    )
    return one(uow, run_row(uow, run_id))


# -- run.get / run.list ----------------------------------------------------------------------------


class RunGet(Args):
    id: str = RUN_ID


@operation(
    "run.get",
    summary="A run with its status and stats (calls, errors, writes, latency, tokens, cost).",
    input=RunGet,
    output=RunOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: RunGet) -> dict[str, Any]:
    """Stats cover the run's `tool_call` events (calls, errors, committed writes, p50/p95 latency)
    and its `span` events (tokens, cost). `last_seq` is the seq of its last event: a stream resumed
    with `?after_seq=` picks up from there. An open run idle for 24 h reads as `expired`."""
    return one(uow, run_row(uow, args.id))


class RunList(ListArgs):
    agent: str | None = Field(
        None, pattern=r"^agent_[A-Za-z0-9_-]{1,64}$", description="Only this agent's runs."
    )
    status: RunStatus | None = Field(None, description="Only runs in this status.")
    since: Timestamp | None = Field(None, description="Only runs created at or after this time.")


@operation(
    "run.list",
    summary="List runs, newest first, with their stats; filter by agent, status, since.",
    input=RunList,
    output=ListOf[RunOut],
    mutates=False,
    added_in="1.1",
    examples=(Example({"status": "open", "limit": 20}),),
)
def list_(uow: UnitOfWork, args: RunList) -> dict[str, Any]:
    """Newest first (the cursor is a run id). `status` is one of open, waiting_for_input,
    completed, failed, cancelled, expired; an open run idle for 24 h counts as expired."""
    t = runs
    q = sa.select(t).where(t.c.account_id == uow.account_id)
    if args.agent:
        q = q.where(t.c.agent_id == args.agent)
    if args.since:
        q = q.where(t.c.created_at >= args.since)
    if args.status:
        idle = sa.and_(t.c.status == "open", last_activity() < idle_cutoff(uow.now))
        if args.status == "expired":
            q = q.where(sa.or_(t.c.status == "expired", idle))
        elif args.status == "open":
            q = q.where(t.c.status == "open", sa.not_(idle))
        else:
            q = q.where(t.c.status == args.status)
    rows = newest_first(uow, q, t, args.starting_after, args.limit)
    lat = latencies(uow.conn, [r["id"] for r in rows[: args.limit]])
    return page([run_object(r, lat.get(r["id"], []), uow.now) for r in rows], args.limit)


# -- run.close / run.cancel ------------------------------------------------------------------------


class RunClose(Args):
    id: str = RUN_ID
    outcome: Literal["completed", "failed"] = Field(
        "completed", description="How the run ended: completed (default) or failed."
    )
    reason: str | None = Field(None, max_length=2000, description="Why, for the record.")


class RunCancel(Args):
    id: str = RUN_ID
    reason: str | None = Field(None, max_length=2000, description="Why, for the record.")


def _end(uow: UnitOfWork, run_id: str, status: str, reason: str | None) -> dict[str, Any]:
    row = run_row(uow, run_id)
    check_takes_events(row, uow.now)
    if row["default_day"] is not None:
        raise KrabsError(
            "invalid_argument",
            f"run {run_id} is an agent's daily default run; it cannot be ended (it expires by "
            "itself). Create a run with run.create to close or cancel it",
            param="id",
        )
    data: dict[str, Any] = {"status": status}
    if reason is not None:
        data["reason"] = reason
    append_event(
        uow.conn,
        account_id=uow.account_id,
        run_id=run_id,
        type=f"run.{status}",
        data=data,
        ts=uow.now,
    )
    before = run_row(uow, run_id)  # after the event: its image holds the run's current last_seq
    after = uow.update(
        runs, before, {"status": status, "closed_at": uow.now, "updated_at": uow.now}
    )
    # The end of a run is a signed checkpoint of the log: every write of the run is under it.
    if not uow.dry_run:
        sign_checkpoint(uow.conn, uow.account_id, uow.signing_dir, reason="run")
    return one(uow, after)


@operation(
    "run.close",
    summary="End an open run as completed (or failed); later calls naming it are refused.",
    input=RunClose,
    output=RunOut,
    mutates=True,
    added_in="1.1",
    errors=("not_found", "run_closed", "run_cancelled", "invalid_argument"),
    examples=(Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def close(uow: UnitOfWork, args: RunClose) -> dict[str, Any]:
    """Appends `run.completed` (or `run.failed` with `outcome: "failed"`) and ends the run's live
    streams after it. Calls still carrying the run id get `run_closed`. A run already over is
    `run_closed` (`run_cancelled` if it was cancelled); an agent's daily default run cannot be
    closed."""
    return _end(uow, args.id, args.outcome, args.reason)


@operation(
    "run.cancel",
    summary="Cancel a run: every later call carrying it is refused with run_cancelled.",
    input=RunCancel,
    output=RunOut,
    mutates=True,
    added_in="1.1",
    errors=("not_found", "run_closed", "run_cancelled", "invalid_argument"),
    examples=(Example({"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def cancel(uow: UnitOfWork, args: RunCancel) -> dict[str, Any]:
    """Appends `run.cancelled`; calls naming the run afterwards fail with `run_cancelled`, and its
    live streams end. Cancelling a run that is already over is `run_closed` (`run_cancelled` if
    it was cancelled); an agent's daily default run cannot be cancelled."""
    return _end(uow, args.id, "cancelled", args.reason)
