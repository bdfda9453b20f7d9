"""Background jobs: queued batch runs, executed by a worker thread on any node.

A worker claims the oldest queued job (on PostgreSQL with ``SELECT … FOR UPDATE SKIP LOCKED``, so
several nodes never take the same one), or a job left ``running`` by a node that died. Each call of a
job carries the idempotency key ``job:<job_id>:<index>``: a job taken over after a crash replays the
calls already done instead of applying them twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa

from krabs.engine import Engine, Principal
from krabs.engine.uow import utcnow
from krabs.runs.batch import Batch, BatchCall, summary
from krabs.runs.events import append_event, take_pending
from krabs.runs.hub import hub_for
from krabs.runs.record import after_commit
from krabs.store.db import Store
from krabs.store.tables import jobs, runs

log = logging.getLogger("krabs.jobs")

#: A job ``running`` for longer than this is presumed abandoned and taken again.
STALE_SECONDS = 600
MAX_ATTEMPTS = 3


def _ago(seconds: float) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "job",
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "run_id": row["run_id"],
        "attempts": int(row["attempts"]),
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "result": row["result"],
    }


def _claimable() -> Any:
    return sa.or_(
        jobs.c.status == "queued",
        sa.and_(
            jobs.c.status == "running",
            jobs.c.started_at < _ago(STALE_SECONDS),
            jobs.c.attempts < MAX_ATTEMPTS,
        ),
    )


def claim(store: Store) -> dict[str, Any] | None:
    """Take one job (marking it ``running``), or None when there is none."""
    with store.connect(write=False) as conn:
        if conn.execute(sa.select(jobs.c.id).where(_claimable()).limit(1)).first() is None:
            return None
    with store.transaction(write=True) as conn:
        q = sa.select(jobs).where(_claimable()).order_by(jobs.c.created_at, jobs.c.id).limit(1)
        if not store.is_sqlite:
            q = q.with_for_update(skip_locked=True)
        row = conn.execute(q).first()
        if row is None:
            return None
        now = utcnow()
        conn.execute(
            jobs.update()
            .where(jobs.c.id == row.id)
            .values(status="running", started_at=now, attempts=jobs.c.attempts + 1)
        )
        return {**row._mapping, "status": "running", "started_at": now}


def run_job(engine: Engine, job: dict[str, Any]) -> dict[str, Any]:
    """Execute a claimed batch job and record its outcome; the job's final row values."""
    who = job["principal"]
    principal = Principal(
        account_id=job["account_id"],
        key_id=who.get("key_id"),
        agent_id=who["agent_id"],
        scopes=frozenset(who["scopes"]),
    )
    payload = job["payload"]
    batch = Batch(engine, principal, payload.get("name") or "batch", transport="job")
    results: list[dict[str, Any]] = []
    try:
        batch.start(job["run_id"])
        calls = [BatchCall.model_validate(c) for c in payload["calls"]]
        results = list(batch.calls(calls, bool(payload.get("stop_on_error")), f"job:{job['id']}"))
        outcome = "failed" if any(not r["ok"] for r in results) else "completed"
        end_run(engine.store, job["account_id"], str(job["run_id"]), outcome, summary(results))
        status = "succeeded" if outcome == "completed" else "failed"
        result = {"summary": summary(results), "results": results}
    except Exception as exc:  # a job must end, whatever happened
        log.exception("job %s failed", job["id"])
        status, result = "failed", {"summary": summary(results), "error": str(exc)[:500]}
    values = {"status": status, "result": result, "finished_at": utcnow()}
    with engine.store.transaction(write=True) as conn:
        conn.execute(jobs.update().where(jobs.c.id == job["id"]).values(**values))
    return {**job, **values}


def end_run(store: Store, account_id: str, run_id: str, status: str, stats: dict[str, int]) -> None:
    """Close a job's run as the worker: its lifecycle event and status, not an audited write of the
    worker's own (the calls it executed are the audited actions)."""
    now = utcnow()
    with store.transaction(write=True) as conn:
        done = conn.execute(
            runs.update()
            .where(
                runs.c.id == run_id,
                runs.c.account_id == account_id,
                runs.c.status.in_(("open", "waiting_for_input")),
            )
            .values(status=status, closed_at=now, updated_at=now)
        ).rowcount
        if done:
            data = {"status": status, "summary": stats}
            append_event(
                conn, account_id=account_id, run_id=run_id, type=f"run.{status}", data=data, ts=now
            )
        events = take_pending(conn)
    hub = hub_for(store.engine)
    after_commit(store, lambda: hub.publish(events))


class JobWorker(threading.Thread):
    """Polls for jobs; one per engine in a process."""

    def __init__(self, engine: Engine, poll: float = 0.5, idle_exit: float | None = None) -> None:
        super().__init__(name="krabs-jobs", daemon=True)
        self.engine_ref = weakref.ref(engine)
        self.poll = poll
        #: Stop after this many seconds without a job (a worker started by a request, not the app).
        self.idle_exit = idle_exit
        self.wake = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        failures = 0
        idle_since = time.monotonic()
        while not self.stopped.is_set():
            if self.idle_exit is not None and time.monotonic() - idle_since > self.idle_exit:
                return
            engine = self.engine_ref()
            if engine is None:
                return
            try:
                job = claim(engine.store)
                if job is not None:
                    run_job(engine, job)
                    idle_since = time.monotonic()
                failures = 0
            except Exception:
                failures += 1
                if failures >= 20:
                    log.exception("job worker stops after repeated failures")
                    return
                job = None
            del engine
            if job is None:
                self.wake.wait(self.poll)
                self.wake.clear()


_workers: weakref.WeakKeyDictionary[Engine, JobWorker] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def ensure_worker(engine: Engine, idle_exit: float | None = None) -> JobWorker:
    """This process's worker for ``engine``, started if none is running."""
    with _lock:
        worker = _workers.get(engine)
        if worker is None or not worker.is_alive():
            worker = _workers[engine] = JobWorker(engine, idle_exit=idle_exit)
            worker.start()
    return worker


@contextlib.asynccontextmanager
async def job_worker(engine: Engine) -> AsyncIterator[None]:
    """For the app's lifespan: every node that serves takes queued jobs while it runs."""
    worker = ensure_worker(engine)
    try:
        yield
    finally:
        worker.stopped.set()
        worker.wake.set()
