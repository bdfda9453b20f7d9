"""Queued runs and their jobs: ``run.enqueue`` (what ``POST /v1/run`` with ``queue: true`` calls) and
``job.get`` to poll one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from krabs.bulk.progress import live_progress
from krabs.contract.errors import not_found
from krabs.contract.ids import new_id
from krabs.contract.models import Args, Name, Out, id_field
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.runs.batch import MAX_CALLS, BatchCall, check_ops
from krabs.runs.jobs import job_object
from krabs.store.tables import jobs


class JobOut(Out):
    object: Literal["job"] = "job"
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    run_id: str | None
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: dict[str, Any] | None = Field(
        description="Once finished: `summary` and `results` (one per call: op, ok, result or error)."
    )
    progress: dict[str, int] | None = Field(
        None,
        description="While running a contact.import_csv on the node answering: `rows_done`, "
        "`rows_total` (physical lines; quoted line breaks overcount) and `rows_failed` so far.",
    )


class Enqueue(Args):
    calls: list[BatchCall] = Field(
        min_length=1, max_length=MAX_CALLS, description="The calls, executed in order."
    )
    name: Name = Field("batch", description="The new run's name.")
    stop_on_error: bool = Field(False, description="Stop at the first failing call.")


@operation(
    "run.enqueue",
    summary="Queue a list of calls to execute as a new run in the background; poll job.get.",
    input=Enqueue,
    output=JobOut,
    mutates=True,
    added_in="1.1",
    examples=(
        Example(
            {
                "name": "nightly upsert",
                "calls": [
                    {
                        "op": "contact.upsert",
                        "args": {"identity": {"kind": "email", "value": "ada@lovelace.dev"}},
                    }
                ],
            }
        ),
    ),
)
def enqueue(uow: UnitOfWork, args: Enqueue) -> dict[str, Any]:
    """Answers at once with the job (`status: queued`) and the id of the run its calls will land in
    (stream it with `GET /v1/runs/{run_id}/stream`). A worker executes the calls as the caller, in
    order, each with the idempotency key `job:<job_id>:<index>` unless it gives its own. The same
    as `POST /v1/run` with `queue: true` (202)."""
    check_ops(args.calls)
    p = uow.principal
    row = uow.insert(
        jobs,
        {
            "id": new_id("job"),
            "kind": "batch_run",
            "status": "queued",
            "run_id": new_id("run"),
            "principal": {"key_id": p.key_id, "agent_id": p.agent_id, "scopes": sorted(p.scopes)},
            "payload": args.model_dump(mode="json"),
            "result": None,
            "attempts": 0,
            "created_at": uow.now,
            "started_at": None,
            "finished_at": None,
        },
    )
    return job_object(row)


class JobGet(Args):
    id: str = id_field(
        "job", "The job id (`id` of run.enqueue, `job_id` of a queued POST /v1/run)."
    )


@operation(
    "job.get",
    summary="Read a background job: its status, run and, once finished, its results.",
    input=JobGet,
    output=JobOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"id": "job_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: JobGet) -> dict[str, Any]:
    """Poll until `status` is `succeeded` or `failed`; `result.results` has one entry per call.
    While a job's contact.import_csv runs, `progress` counts its rows (done, total, failed)."""
    row = uow.fetch(jobs, args.id)
    if row is None:
        raise not_found("job", args.id)
    running = row["status"] == "running"
    return {**job_object(row), "progress": live_progress(row["run_id"]) if running else None}
