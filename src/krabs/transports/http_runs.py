"""HTTP routes of the runs extras: ``POST /v1/run`` (a batch of calls as a new run: streamed as SSE,
answered whole, or queued as a job) and ``POST /v1/runs/{id}/input`` (decide an approval). They
parse the wire format and call the engine once per call; every rule lives in the engine and ops."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from krabs.auth import authenticate
from krabs.contract.errors import KrabsError
from krabs.engine import CallRequest, Engine, Principal
from krabs.engine.validation import validate_args
from krabs.runs.batch import Batch, BatchBody, check_ops, summary
from krabs.runs.events import read_events
from krabs.runs.jobs import ensure_worker
from krabs.transports.http import (
    Body,
    _request_id,
    caller,
    error_response,
    read_json_object,
    render,
)

#: ``POST /v1/runs/{id}/input`` bodies are small: a decision and a note (the seed's 32 KB).
INPUT_LIMIT = 32 * 1024
#: How long a worker started by a request (no app lifespan) waits for more jobs before it stops.
IDLE_EXIT = 10.0


def run_routes(engine: Engine) -> list[Route]:
    limit = engine.settings.max_body_bytes

    async def who(request: Request) -> tuple[str | None, Principal]:
        api_key, principal = await caller(request, engine)
        if principal is None:
            principal = await run_in_threadpool(authenticate, engine.store, engine.keys, api_key)
        return api_key, principal

    async def run_input(request: Request) -> Response:
        op, request_id = "approval.decide", _request_id(request)
        try:
            api_key, principal = await caller(request, engine)
            body = await read_json_object(request, INPUT_LIMIT)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=request_id)
        except Body as bad:
            return error_response(bad.error, op=op, request_id=request_id)
        if not isinstance(body, dict):
            err = KrabsError("invalid_argument", "the body must be a JSON object")
            return error_response(err, op=op, request_id=request_id)
        args: dict[str, Any] = {k: v for k, v in body.items() if k != "approval_id"}
        if "approval_id" in body:
            args["id"] = body["approval_id"]
        args["run_id"] = request.path_params["run_id"]
        outcome = await engine.acall(
            CallRequest(
                op=op,
                args=args,
                api_key=api_key,
                principal=principal,
                idempotency_key=request.headers.get("idempotency-key"),
                transport="http",
                request_id=request_id,
            )
        )
        if outcome.error is not None and outcome.error.param == "id":
            outcome.error.param = "approval_id"
        return render(outcome, op, request_id)

    async def batch_run(request: Request) -> Response:
        op, request_id = "run", _request_id(request)
        try:
            api_key, principal = await who(request)
            raw = await read_json_object(request, limit)
            if not isinstance(raw, dict):
                raise KrabsError("invalid_argument", "the body must be a JSON object")
            body = validate_args(BatchBody, raw, "run")
            assert isinstance(body, BatchBody)
            check_ops(body.calls)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=request_id)
        except Body as bad:
            return error_response(bad.error, op=op, request_id=request_id)
        if body.queue:
            return await _enqueue(request, engine, api_key, principal, body, request_id)
        batch = Batch(engine, principal, body.name)
        try:
            run_id = await run_in_threadpool(batch.start)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=request_id)
        headers = {"X-Run-ID": run_id, "X-Krabs-Run": run_id, "X-Request-Id": request_id}
        if not body.stream:
            results = await run_in_threadpool(
                lambda: list(batch.calls(body.calls, body.stop_on_error))
            )
            status = await run_in_threadpool(batch.finish, results)
            out = {
                "object": "batch_run",
                "run_id": run_id,
                "status": status,
                "summary": summary(results),
                "results": results,
            }
            return JSONResponse(out, headers=headers)
        return StreamingResponse(
            _stream(engine, principal, batch, body),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/v1/run", batch_run, methods=["POST"]),
        Route("/v1/runs/{run_id:str}/input", run_input, methods=["POST"]),
    ]


async def _enqueue(
    request: Request,
    engine: Engine,
    api_key: str | None,
    principal: Principal,
    body: BatchBody,
    request_id: str,
) -> Response:
    args = body.model_dump(mode="json", include={"calls", "name", "stop_on_error"})
    outcome = await engine.acall(
        CallRequest(
            op="run.enqueue",
            args=args,
            principal=principal,
            idempotency_key=request.headers.get("idempotency-key"),
            transport="http",
            request_id=request_id,
        )
    )
    if outcome.error is not None or outcome.result is None:
        return render(outcome, "run.enqueue", request_id)
    # The app's lifespan runs a worker; a server without one (tests) gets one that idles out.
    ensure_worker(engine, idle_exit=IDLE_EXIT).wake.set()
    job = outcome.result
    response = JSONResponse(
        {**job, "job_id": job["id"], "status": job["status"]},
        status_code=202,
        headers={
            "X-Run-ID": str(job["run_id"]),
            "X-Request-Id": request_id,
            "Location": f"/v1/job.get?id={job['id']}",
        },
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _stream(
    engine: Engine, principal: Principal, batch: Batch, body: BatchBody
) -> AsyncIterator[str]:
    """The new run's events as SSE frames, each once, in seq order, as its calls execute; then a
    final ``done`` frame with the summary."""
    assert batch.run_id is not None
    run_id, seen = batch.run_id, 0

    def fresh() -> list[str]:
        nonlocal seen
        with engine.store.connect(write=False) as conn:
            events = read_events(conn, principal.account_id, run_id, seen, 10_000)
        if events:
            seen = events[-1].seq
        return [e.frame("seq") for e in events]

    yield "retry: 3000\n\n"
    results: list[dict[str, Any]] = []
    for c in body.calls:
        item = await run_in_threadpool(batch.one, c)
        results.append(item)
        for frame in await run_in_threadpool(fresh):
            yield frame
        if body.stop_on_error and not item["ok"]:
            break
    status = await run_in_threadpool(batch.finish, results)
    for frame in await run_in_threadpool(fresh):
        yield frame
    done = {"run_id": run_id, "status": status, "summary": summary(results)}
    yield f"event: done\ndata: {json.dumps(done)}\n\n"
