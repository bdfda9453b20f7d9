"""The HTTP transport: ``POST /v1/{op}`` for every operation plus the schema routes. It parses the
wire format and renders outcomes; every rule lives in the engine."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from krabs import __version__
from krabs.audit.periodic import audit_sweeper
from krabs.auth import authenticate
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.schema import openapi_document, schema_document
from krabs.engine import CallRequest, Engine, Outcome
from krabs.engine.context import Principal
from krabs.runs.approval_wait import acall_waiting
from krabs.runs.lifecycle import sweeper
from krabs.transports import http_bulk
from krabs.transports.audit_routes import audit_routes
from krabs.transports.docs import render_docs
from krabs.web import sessions
from krabs.web.routes import web_routes

JSON_TYPES = ("application/json", "application/problem+json", "text/json")


class Body(Exception):
    """A request body the transport cannot turn into arguments."""

    def __init__(self, error: KrabsError) -> None:
        self.error = error


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def error_response(
    error: KrabsError, *, op: str | None, request_id: str, retry_after: float | None = None
) -> JSONResponse:
    headers = {"X-Request-Id": request_id}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(
        {"error": error.to_dict(op=op, request_id=request_id)},
        status_code=error.status,
        headers=headers,
    )


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def caller(request: Request, engine: Engine) -> tuple[str | None, Principal | None]:
    """Who calls: a Bearer key, else the dashboard's cookie session resolved to its key's principal
    (which must send its CSRF token on anything but a read-only GET). Raises ``KrabsError``."""
    token = bearer(request)
    secret = request.cookies.get(sessions.COOKIE)
    if token or not secret:
        return token, None
    if request.method not in ("GET", "HEAD"):
        sessions.check_csrf(secret, request.headers.get(sessions.CSRF_HEADER))
    return None, await run_in_threadpool(sessions.resolve, engine.store, engine.keys, secret)


async def read_json_object(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Body(
            KrabsError("payload_too_large", f"request body exceeds {limit} bytes", param=None)
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in JSON_TYPES:
        raise Body(KrabsError("unsupported_media_type", f"send application/json, not {ctype[:80]}"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Body(KrabsError("payload_too_large", f"request body exceeds {limit} bytes"))
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        message = f"body is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except UnicodeDecodeError:
        message = "body is not valid UTF-8"
    except RecursionError:
        message = "body nests too deeply"
    except ValueError as exc:  # NaN/Infinity (our hook) or an integer literal too long to parse
        message = str(exc) if "not valid JSON" in str(exc) else "body has a number out of range"
    raise Body(KrabsError("invalid_json", message))


def preferred_wait(header: str | None) -> float:
    """Seconds of RFC 7240's ``Prefer: wait=N`` (how long a call held at an approval gate may wait
    for the decision); 0 when absent or malformed (a preference that cannot be read is ignored)."""
    for part in (header or "")[:200].replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            value = value.strip().strip('"')
            return float(value) if value.isdigit() and len(value) <= 6 else 0.0
    return 0.0


def render(outcome: Outcome, op: str, request_id: str) -> Response:
    # The headers are given to the response whole: each ``response.headers[...] = …`` afterwards
    # rescans and rebuilds the header list (it showed in the write path's profile).
    headers = {"X-Request-Id": request_id}
    if outcome.run_id:
        headers["X-Krabs-Run"] = outcome.run_id
    if outcome.action_id:
        headers["X-Krabs-Action"] = outcome.action_id
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.error is not None:
        if outcome.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(outcome.retry_after)))
        return JSONResponse(
            {"error": outcome.error.to_dict(op=op, request_id=request_id)},
            status_code=outcome.error.status,
            headers=headers,
        )
    return JSONResponse(outcome.result, status_code=outcome.status, headers=headers)


def create_app(engine: Engine) -> Starlette:
    from krabs.runs.jobs import job_worker
    from krabs.transports.http_runs import run_routes  # it imports this module's helpers
    from krabs.transports.http_streams import stream_routes  # likewise
    from krabs.transports.mcp import McpEndpoint  # it imports this module's helpers

    limit = engine.settings.max_body_bytes
    mcp = McpEndpoint(engine)
    schema_cache: dict[str, Any] = {}

    def documents() -> dict[str, Any]:
        if not schema_cache:
            schema_cache["schema"] = schema_document(engine.registry)
            schema_cache["openapi"] = openapi_document(engine.registry)
        return schema_cache

    async def call_operation(request: Request) -> Response:
        op = request.path_params["op"]
        request_id = _request_id(request)
        try:
            api_key, principal = await caller(request, engine)
            if request.method == "GET":
                args = http_bulk.query_args(request, engine, op)
            elif http_bulk.is_bulk_body(request):  # a file: CSV, vCard, raw email
                args, principal = await http_bulk.read_bulk(request, engine, op, api_key, principal)
            else:
                args = await read_json_object(request, limit)
        except KrabsError as exc:
            return error_response(exc, op=op, request_id=request_id)
        except Body as bad:
            return error_response(bad.error, op=op, request_id=request_id)
        if http_bulk.wants_csv_export(request, op):
            streamed = await http_bulk.export_response(
                engine, args, api_key, principal, request_id, request.headers.get("x-krabs-run")
            )
            if isinstance(streamed, KrabsError):
                return error_response(streamed, op=op, request_id=request_id)
            return streamed
        call = CallRequest(
            op=op,
            args=args,
            api_key=api_key,
            principal=principal,
            idempotency_key=request.headers.get("idempotency-key"),
            run_id=request.headers.get("x-krabs-run") or None,
            transport="http",
            request_id=request_id,
        )
        wait = preferred_wait(request.headers.get("prefer"))
        outcome = await (acall_waiting(engine, call, wait) if wait else engine.acall(call))
        return render(outcome, op, request_id)

    def document(render: Callable[[], Response]) -> Callable[[Request], Awaitable[Response]]:
        """A schema route: the same key check as every call, then a document built once."""

        async def route(request: Request) -> Response:
            try:
                api_key, principal = await caller(request, engine)
                if principal is None:
                    await run_in_threadpool(authenticate, engine.store, engine.keys, api_key)
            except KrabsError as exc:
                return error_response(exc, op=None, request_id=_request_id(request))
            return render()

        return route

    schema = document(lambda: JSONResponse(documents()["schema"]))
    openapi = document(lambda: JSONResponse(documents()["openapi"]))
    docs = document(lambda: HTMLResponse(render_docs(documents()["schema"])))

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "database": engine.store.dialect})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "invalid_argument"
        )
        message = (
            f"no route {request.method} {request.url.path[:200]}; operations are POST /v1/{{op}}"
        )
        err = KrabsError(code, message)
        request_id = _request_id(request)
        return JSONResponse(
            {"error": err.to_dict(request_id=request_id)},
            status_code=exc.status_code,
            headers={**(exc.headers or {}), "X-Request-Id": request_id},
        )

    return Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route("/v1/schema", schema, methods=["GET"]),
            Route("/v1/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            *audit_routes(engine),
            *run_routes(engine),  # POST /v1/run, POST /v1/runs/{id}/input
            # Every write comes here, so it is tried early. Only a POST to one path segment
            # under /v1/ matches it, so it must follow POST /v1/run; a GET or a longer path
            # below is found as before (a method mismatch does not stop the router).
            Route("/v1/{op:str}", call_operation, methods=["POST"]),
            *stream_routes(engine),  # GET /v1/runs[/{id}[/stream|/events|/spans]], run aliases
            http_bulk.export_route(call_operation),  # GET /v1/contact.export_csv, streamed
            Route("/mcp", mcp),  # an ASGI app: every method reaches the SDK
            *web_routes(engine),  # the dashboard: pages and static files, a client of /v1
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lambda _app: lifespan(
            mcp.lifespan(),
            sweeper(engine.store, engine.settings.run_sweep_seconds),
            audit_sweeper(
                engine.store, engine.settings.signing_dir, engine.settings.undo_ttl_seconds
            ),
            job_worker(engine),  # queued runs (POST /v1/run with queue, run.enqueue)
        ),
    )


@contextlib.asynccontextmanager
async def lifespan(*parts: contextlib.AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
    """The app's lifespan: each part entered in order, left in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        for part in parts:
            await stack.enter_async_context(part)
        yield


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if (
        given
        and len(given) <= 64
        and given.isascii()
        and given.replace("-", "").replace("_", "").isalnum()
    ):
        return given
    if "krabs_request_id" not in request.scope:
        request.scope["krabs_request_id"] = new_id("request")
    return str(request.scope["krabs_request_id"])
