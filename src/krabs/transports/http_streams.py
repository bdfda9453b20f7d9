"""The HTTP routes of runs: the seed's REST aliases over the run operations (``GET /v1/runs``,
``GET /v1/runs/{id}``, ``POST /v1/runs/{id}:cancel``, ``GET|POST /v1/runs/{id}/spans``) and the
event streams (``GET /v1/runs/{id}/stream`` or ``/events``, and the firehose
``GET /v1/runs/stream``). Aliases go through the engine like ``POST /v1/{op}``; streams authenticate
the same way and need the read scope.

Who is calling is decided by ``who(request) -> (api_key, principal)``: by default the transport's
``caller`` (a Bearer key, or the dashboard's cookie session); pass another to change that."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from krabs.auth import authenticate
from krabs.contract.errors import KrabsError
from krabs.engine import CallRequest, Engine, Principal
from krabs.runs import sse
from krabs.runs.events import last_seq
from krabs.transports.http import (
    Body,
    caller,
    error_response,
    read_json_object,
    render,
)
from krabs.transports.http import (
    _request_id as request_id,
)

Who = Callable[[Request], Awaitable[tuple[str | None, Principal | None]]]


def stream_routes(
    engine: Engine, *, who: Who | None = None, options: sse.StreamOptions | None = None
) -> list[Route]:
    """The routes; ``who`` decides the caller (default: the transport's ``caller``)."""
    limit = engine.settings.max_body_bytes

    async def by_caller(request: Request) -> tuple[str | None, Principal | None]:
        return await caller(request, engine)

    who = who or by_caller

    def stream_options() -> sse.StreamOptions:
        """Given ones, else the engine's settings as they are when the stream starts."""
        return options or sse.StreamOptions.of(engine.settings)

    async def read_body(request: Request) -> Any:
        try:
            return await read_json_object(request, limit)
        except Body as bad:
            raise bad.error from None

    async def call(
        request: Request, op: str, args: Any, extra: dict[str, Any] | None = None
    ) -> Response:
        rid = request_id(request)
        try:
            api_key, principal = await who(request)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=rid)
        outcome = await engine.acall(
            CallRequest(
                op=op,
                args=args,
                api_key=api_key,
                principal=principal,
                idempotency_key=request.headers.get("idempotency-key"),
                run_id=request.headers.get("x-krabs-run") or None,
                transport="http",
                request_id=rid,
            )
        )
        if extra and outcome.ok and outcome.result is not None:
            outcome.result = {**extra, **outcome.result}
        return render(outcome, op, rid)

    async def body(request: Request, op: str) -> dict[str, Any] | Response:
        try:
            args = await read_body(request)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=request_id(request))
        if not isinstance(args, dict):
            err = KrabsError("invalid_argument", "the body must be a JSON object")
            return error_response(err, op=op, request_id=request_id(request))
        return args

    async def list_runs(request: Request) -> Response:
        return await call(request, "run.list", query_args(request, ints=("limit",)))

    async def get_run(request: Request) -> Response:
        return await call(request, "run.get", {"id": request.path_params["id"]})

    async def cancel_run(request: Request) -> Response:
        args = await body(request, "run.cancel")
        if isinstance(args, Response):
            return args
        return await call(
            request, "run.cancel", {**args, "id": request.path_params["id"]}, {"ok": True}
        )

    async def spans(request: Request) -> Response:
        run_id = request.path_params["id"]
        if request.method == "GET":
            args = query_args(request, ints=("limit",))
            return await call(request, "run.list_spans", {**args, "run_id": run_id})
        got = await body(request, "run.add_spans")
        if isinstance(got, Response):
            return got
        response = await call(request, "run.add_spans", {**got, "run_id": run_id})
        if response.status_code == 200:
            response.status_code = 201
        return response

    async def reader(request: Request) -> Principal | Response:
        """The stream's caller, with the read scope; else the error to send."""
        try:
            api_key, principal = await who(request)
            if principal is None:
                principal = await run_in_threadpool(
                    authenticate, engine.store, engine.keys, api_key
                )
            if not principal.allows("read"):
                raise KrabsError("forbidden", "streams need the 'read' scope")
        except KrabsError as exc:
            return error_response(exc, op=None, request_id=request_id(request))
        return principal

    async def stream(request: Request) -> Response:
        principal = await reader(request)
        if isinstance(principal, Response):
            return principal
        run_id = request.path_params["id"]
        rid = request_id(request)
        try:
            after = sse.cursor(
                request.headers.get("last-event-id"),
                request.query_params.get("after_seq"),
                "after_seq",
            )
        except KrabsError as exc:
            return error_response(exc, op=None, request_id=rid)
        db = engine.store.engine

        def exists() -> bool:
            with db.connect() as conn:
                return last_seq(conn, principal.account_id, run_id) is not None

        pending = engine.runs.pending(principal.account_id, run_id) is not None
        if len(run_id) > 64 or not (pending or await run_in_threadpool(exists)):
            err = KrabsError(
                "not_found", f"no run with id {run_id[:80]!r} in this account", param="id"
            )
            return error_response(err, op=None, request_id=rid)
        events = sse.run_stream(
            db, principal.account_id, run_id, after, stream_options(), pending=pending
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={**sse.HEADERS, "X-Krabs-Run": run_id, "X-Request-Id": rid},
        )

    async def firehose(request: Request) -> Response:
        principal = await reader(request)
        if isinstance(principal, Response):
            return principal
        rid = request_id(request)
        q = request.query_params
        try:
            header, given = request.headers.get("last-event-id"), q.get("after_id")
            after = sse.cursor(header, given, "after_id") if (header or given) else None
            filters = sse.Filters(
                agent=_short(q.get("agent"), "agent"),
                op=_short(q.get("op"), "op"),
                status=_short(q.get("status"), "status"),
            )
        except KrabsError as exc:
            return error_response(exc, op=None, request_id=rid)
        events = sse.firehose(
            engine.store.engine,
            principal.account_id,
            after,
            filters,
            stream_options(),
        )
        return StreamingResponse(
            events, media_type="text/event-stream", headers={**sse.HEADERS, "X-Request-Id": rid}
        )

    return [
        Route("/v1/runs", list_runs, methods=["GET"]),
        Route("/v1/runs/stream", firehose, methods=["GET"]),
        Route("/v1/runs/{id}:cancel", cancel_run, methods=["POST"]),
        Route("/v1/runs/{id}/stream", stream, methods=["GET"]),
        Route("/v1/runs/{id}/events", stream, methods=["GET"]),
        Route("/v1/runs/{id}/spans", spans, methods=["GET", "POST"]),
        Route("/v1/runs/{id}", get_run, methods=["GET"]),
    ]


def query_args(request: Request, ints: tuple[str, ...] = ()) -> dict[str, Any]:
    """Query parameters as operation arguments (the named ones as integers when they are)."""
    out: dict[str, Any] = {}
    for key, value in request.query_params.items():
        out[key] = int(value) if key in ints and value.isdigit() and len(value) < 10 else value
    return out


def _short(value: str | None, param: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 100:
        raise KrabsError("invalid_argument", f"{param} is at most 100 characters", param=param)
    return value
