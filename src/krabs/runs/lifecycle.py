"""A run's life: its status changes (each one an event of the run), the idle expiry of open runs
(lazily when a call names one, and by a periodic sweep the app starts), and the run object with its
stats as the run operations return it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from krabs.config import env_settings
from krabs.engine.uow import utcnow
from krabs.runs.events import append_event, take_pending
from krabs.runs.hub import hub_for
from krabs.runs.record import after_commit
from krabs.store.db import Store
from krabs.store.tables import run_events, runs

log = logging.getLogger("krabs.runs")


def idle_seconds() -> int:
    """How long an open run may go without a call before it expires (``KRABS_RUN_IDLE_SECONDS``)."""
    return env_settings().run_idle_seconds


TERMINAL = ("completed", "failed", "cancelled", "expired")
#: The status a lifecycle event leaves its run in.
STATUS_AFTER = {
    "run.completed": "completed",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.expired": "expired",
    "run.waiting_for_input": "waiting_for_input",
}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def idle_cutoff(now: str | None = None) -> str:
    """Runs whose last activity is before this have been idle too long."""
    moment = _parse(now) if now else dt.datetime.now(dt.UTC)
    return _iso(moment - dt.timedelta(seconds=idle_seconds()))


def last_activity() -> Any:
    """SQL: when the run last took a call (its creation if never)."""
    return sa.func.coalesce(runs.c.last_call_at, runs.c.created_at)


def is_idle(row: dict[str, Any], now: str | None = None) -> bool:
    activity = row.get("last_call_at") or row["created_at"]
    return bool(row["status"] == "open" and activity < idle_cutoff(now))


def effective_status(row: dict[str, Any], now: str | None = None) -> str:
    """The status to report: an open run idle too long is expired, whether or not the sweep has
    written that down yet."""
    return "expired" if is_idle(row, now) else str(row["status"])


def expire_run(store: Store, account_id: str, run_id: str, now: str | None = None) -> bool:
    """Expire one run if it is open and idle (re-checked in the write); True if it was."""
    now = now or utcnow()
    with store.transaction(write=True) as conn:
        done = _expire(conn, account_id, run_id, now)
        events = take_pending(conn)
    if events:
        hub = hub_for(store.engine)
        after_commit(store, lambda: hub.publish(events))
    return done


def _expire(conn: Connection, account_id: str, run_id: str, now: str) -> bool:
    cutoff = idle_cutoff(now)
    row = conn.execute(
        runs.update()
        .where(
            runs.c.id == run_id,
            runs.c.account_id == account_id,
            runs.c.status == "open",
            last_activity() < cutoff,
        )
        .values(status="expired", closed_at=now, updated_at=now)
        .returning(runs.c.last_call_at, runs.c.created_at)
    ).first()
    if row is None:
        return False
    append_event(
        conn,
        account_id=account_id,
        run_id=run_id,
        type="run.expired",
        data={"status": "expired", "idle_since": row[0] or row[1], "idle_seconds": idle_seconds()},
        ts=now,
    )
    return True


def expire_idle(store: Store, now: str | None = None, batch: int = 500) -> int:
    """The sweep: expire every open run idle too long; how many were."""
    now = now or utcnow()
    total = 0
    while True:
        with store.connect(write=False) as conn:
            found = conn.execute(
                sa.select(runs.c.account_id, runs.c.id)
                .where(runs.c.status == "open", last_activity() < idle_cutoff(now))
                .limit(batch)
            ).all()
        expired = sum(expire_run(store, acct, run_id, now) for acct, run_id in found)
        total += expired
        if len(found) < batch or not expired:
            return total


@contextlib.asynccontextmanager
async def sweeper(store: Store, every: float = 300.0) -> AsyncIterator[None]:
    """For an app's lifespan: sweep idle runs now and every ``every`` seconds."""

    async def loop() -> None:
        while True:
            try:
                count = await asyncio.to_thread(expire_idle, store)
                if count:
                    log.info("expired %d idle run(s)", count)
            except Exception:
                log.exception("idle-run sweep failed")
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- the run object ----------------------------------------------------------------------------------


def latencies(conn: Connection, run_ids: list[str]) -> dict[str, list[float]]:
    """Each run's tool-call latencies, sorted (for its p50/p95)."""
    out: dict[str, list[float]] = {r: [] for r in run_ids}
    if not run_ids:
        return out
    rows = conn.execute(
        sa.select(run_events.c.run_id, run_events.c.latency_ms).where(
            run_events.c.run_id.in_(run_ids),
            run_events.c.type == "tool_call",
            run_events.c.latency_ms.is_not(None),
        )
    ).all()
    for run_id, latency in rows:
        out[run_id].append(float(latency))
    for values in out.values():
        values.sort()
    return out


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``; None when there are none."""
    if not values:
        return None
    rank = max(1, -(-len(values) * q // 100))
    return values[int(rank) - 1]


def run_object(row: dict[str, Any], lat: list[float], now: str | None = None) -> dict[str, Any]:
    status = effective_status(row, now)
    # From the run's start to its last call: fixed once the calls stop (the wall-clock end is
    # ``ended_at``), so two reads of a quiet run agree.
    end = row.get("last_call_at") or row["created_at"]
    duration = (_parse(end) - _parse(row["created_at"])).total_seconds() * 1000
    return {
        "object": "run",
        "id": row["id"],
        "run_id": row["id"],
        "agent": row["agent_id"],
        "name": row["name"],
        "status": status,
        "default": row.get("default_day") is not None,
        "created": row["created_at"][:19] + "Z",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_call_at": row.get("last_call_at"),
        "ended_at": row.get("closed_at"),
        "last_seq": int(row.get("last_seq") or 0),
        "stats": {
            "calls": int(row.get("calls") or 0),
            "errors": int(row.get("errors") or 0),
            "writes": int(row.get("writes") or 0),
            "latency_p50_ms": percentile(lat, 50),
            "latency_p95_ms": percentile(lat, 95),
            "duration_ms": round(max(0.0, duration), 3),
            "input_tokens": int(row.get("input_tokens") or 0),
            "output_tokens": int(row.get("output_tokens") or 0),
            "cost_usd": int(row.get("cost_micros") or 0) / 1_000_000,
        },
    }
