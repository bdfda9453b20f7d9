"""The MCP transport: every registry operation as a tool, over streamable HTTP (``/mcp`` in the
HTTP app) and stdio (``krabs mcp``), on the official SDK's low-level ``Server``.

Like the HTTP transport it only translates: a ``tools/call`` becomes a ``CallRequest`` for the
engine and the ``Outcome`` becomes a ``CallToolResult``. Both protocol eras are served by the SDK:
2025-11-25 (``initialize`` handshake, ``Mcp-Session-Id`` sessions) and the stateless 2026-07-28
revision (one self-contained request per POST).

A call's run is, in order: ``_meta["krabs/run_id"]``, the ``X-Krabs-Run`` header, the legacy
session (its ``Mcp-Session-Id`` *is* a run id, and the run is created by the session's first
call), the stdio process's own run, else the agent's daily ``default`` run. The run id comes
back in the result's ``_meta["krabs/run_id"]``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from krabs import __version__
from krabs.app import open_engine  # before krabs.auth: importing auth first is circular
from krabs.auth import authenticate
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.registry import Operation
from krabs.engine import CallRequest, Engine, Outcome, Principal
from krabs.runs.approval_wait import acall_waiting
from krabs.transports.http import _request_id, bearer, error_response
from krabs.transports.mcp_tools import Catalog

INSTRUCTIONS = (
    "krabs is a CRM. Each tool is one operation of its contract (the dotted name is the tool's "
    "title). Mutations take dry_run (return the plan, persist nothing) and idempotency_key "
    "(retry safely). Errors come back with is_error and {error: {code, message, param}}: the "
    "message says what would be accepted."
)
SESSION_RUN = "mcp session"
STDIO_RUN = "mcp stdio"
_CATALOGS: dict[int, Catalog] = {}


def catalog_for(engine: Engine) -> Catalog:
    """One catalog per registry: building it (schemas, size budget) is done once."""
    key = id(engine.registry)
    if key not in _CATALOGS:
        _CATALOGS[key] = Catalog.build(engine.registry)
    return _CATALOGS[key]


@dataclass(frozen=True)
class Wire:
    """What one MCP message carries besides its params."""

    api_key: str | None
    principal: Principal | None
    toolsets: frozenset[str] | None
    header_run: str | None
    session_run: str | None


class KrabsMcp:
    """The low-level server with krabs' two handlers. For stdio, the caller (``api_key`` or an
    embedded ``principal``), ``toolsets`` and ``process_run`` are fixed; over HTTP each request
    brings its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        api_key: str | None = None,
        principal: Principal | None = None,
        toolsets: frozenset[str] | None = None,
        process_run: str | None = None,
    ) -> None:
        self.engine = engine
        self.catalog = catalog_for(engine)
        self.api_key = api_key
        self.principal = principal
        self.toolsets = toolsets
        self.process_run = process_run
        self._ensured: set[tuple[str, str]] = set()
        self.server: Server[Any] = Server(
            "krabs",
            version=__version__,
            title="krabs",
            instructions=INSTRUCTIONS,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            get_tool_input_schema=self._input_schema,
        )

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self.catalog.tools.get(name)
        return tool.input_schema if tool else None

    def wire(self, ctx: Any) -> Wire:
        request = ctx.request if isinstance(ctx.request, Request) else None
        if request is None:
            return Wire(self.api_key, self.principal, self.toolsets, None, None)
        try:
            toolsets = self.catalog.parse_toolsets(request.query_params.get("toolsets"))
        except ValueError:
            toolsets = None  # the endpoint refuses these before the SDK sees them
        session = request.headers.get("mcp-session-id")
        return Wire(
            api_key=bearer(request),
            principal=None,
            toolsets=toolsets,
            header_run=request.headers.get("x-krabs-run") or None,
            session_run=session if session and session.startswith("run_") else None,
        )

    async def list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.catalog.listed(self.wire(ctx).toolsets))

    async def call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        wire = self.wire(ctx)
        if not self.catalog.visible(params.name, wire.toolsets):
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name[:80]}")
        op = self.catalog.ops[params.name]
        args = dict(params.arguments or {})
        request_id = new_id("request")
        meta = dict(params.meta or {})
        try:
            idempotency_key = _text(args.pop("idempotency_key", None), "idempotency_key")
            run_id = _text(meta.get("krabs/run_id"), '_meta["krabs/run_id"]') or wire.header_run
            run_id = run_id or await self.implicit_run(wire)
            wait = _seconds(meta.get("krabs/wait"), '_meta["krabs/wait"]')
        except KrabsError as exc:
            return render(op, Outcome.failure(exc), request_id)
        call = CallRequest(
            op=op.name,
            args=args,
            api_key=wire.api_key,
            principal=wire.principal,
            idempotency_key=idempotency_key,
            run_id=run_id,
            transport="mcp",
            request_id=request_id,
        )
        # HTTP's ``Prefer: wait=N``: held at an approval gate, wait for the decision.
        outcome = await (
            acall_waiting(self.engine, call, wait) if wait else self.engine.acall(call)
        )
        return render(op, outcome, request_id)

    async def implicit_run(self, wire: Wire) -> str | None:
        """The legacy session's run, else this stdio process's; created on its first call."""
        run_id = wire.session_run or self.process_run
        if run_id is None:
            return None
        name = SESSION_RUN if wire.session_run else STDIO_RUN
        principal = wire.principal
        if principal is None:
            try:
                principal = await anyio.to_thread.run_sync(
                    authenticate, self.engine.store, self.engine.keys, wire.api_key
                )
            except KrabsError:
                return run_id  # the engine reports the bad key
        if (principal.account_id, run_id) not in self._ensured:
            await anyio.to_thread.run_sync(self.engine.runs.ensure, principal, run_id, name)
            if len(self._ensured) > 10_000:
                self._ensured.clear()
            self._ensured.add((principal.account_id, run_id))
        return run_id


def _text(value: Any, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise KrabsError("invalid_argument", f"{param} must be a string", param=param)


def _seconds(value: Any, param: str) -> float:
    """A number of seconds, 0 when absent."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise KrabsError(
            "invalid_argument", f"{param} must be a number of seconds from 0", param=param
        )
    return float(value)


def render(op: Operation, outcome: Outcome, request_id: str) -> types.CallToolResult:
    """The outcome as a tool result: structured content plus the same JSON as text, and what HTTP
    sends as headers (run, action, replay) in ``_meta``."""
    meta: dict[str, Any] = {"krabs/op": op.name, "krabs/request_id": request_id}
    if outcome.run_id:
        meta["krabs/run_id"] = outcome.run_id
    if outcome.action_id:
        meta["krabs/action_id"] = outcome.action_id
    if outcome.replayed:
        meta["krabs/replayed"] = True
    if outcome.error is not None:
        body: dict[str, Any] = {"error": outcome.error.to_dict(op=op.name, request_id=request_id)}
        if outcome.retry_after is not None:
            meta["krabs/retry_after"] = outcome.retry_after
    else:
        body = outcome.result or {}
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(body, ensure_ascii=False))],
        structured_content=body,
        is_error=outcome.error is not None,
        _meta=meta,
    )


class RunSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, but a new session's id is a fresh run id, so the session id
    *is* the run id (the SDK picks a random hex id otherwise)."""

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id:
            old, new = transport.mcp_session_id, new_id("run")
            transport.mcp_session_id = new
            self._server_instances[new] = self._server_instances.pop(old)
            if old in self._session_owners:
                self._session_owners[new] = self._session_owners.pop(old)
        return transport


class McpEndpoint:
    """``/mcp``: checks the bearer key (as every REST route does) and the ``toolsets`` query, then
    hands the request to the SDK. The session manager runs in the app's lifespan, or — when the
    server runs no lifespan — in a task started by the first request."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mcp = KrabsMcp(engine)
        self.manager = RunSessionManager(
            app=self.mcp.server,
            json_response=True,
            max_request_body_size=engine.settings.max_body_bytes,
        )
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await run_in_threadpool(
                authenticate, self.engine.store, self.engine.keys, bearer(request)
            )
            self.mcp.catalog.parse_toolsets(request.query_params.get("toolsets"))
        except KrabsError as exc:
            response = error_response(exc, op=None, request_id=_request_id(request))
            response.headers["WWW-Authenticate"] = 'Bearer realm="krabs"'
            await response(scope, receive, send)
            return
        except ValueError as exc:
            bad = KrabsError("invalid_argument", str(exc), param="toolsets")
            await error_response(bad, op=None, request_id=_request_id(request))(
                scope, receive, send
            )
            return
        # The SDK binds a session to the credential that opened it: another key gets a 404.
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token=principal.key_id or "",
                client_id=principal.key_id or principal.agent_id,
                scopes=sorted(principal.scopes),
                subject=principal.account_id,
            )
        )
        await self._start()
        await self.manager.handle_request(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.manager.run():
            self._running = True
            yield

    async def _start(self) -> None:
        if self._running:
            return
        if self._task is None:
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._serve())
        assert self._ready is not None
        await self._ready.wait()

    async def _serve(self) -> None:
        async with self.lifespan():
            assert self._ready is not None
            self._ready.set()
            await asyncio.Event().wait()  # until the event loop shuts down and cancels this


async def serve_stdio(engine: Engine, krabs: KrabsMcp) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await krabs.server.run(read, write, krabs.server.create_initialization_options())


def run_stdio(toolsets: str | None) -> None:
    """``krabs mcp``: the local database, as the embedded CLI uses it (``KRABS_BOOTSTRAP_KEY``
    made to exist as ``krabs serve`` does). Every call runs as
    ``KRABS_API_KEY`` when set (checked now, and on every call as over HTTP), else as the demo
    account's admin (created on first use, like ``krabs serve``). All calls of the process share
    one run unless a call names another. Raises ``ValueError`` for a bad key or toolset."""
    from krabs.accounts import ensure_demo_account
    from krabs.config import Settings
    from krabs.transports.cli_backend import demo_principal

    engine = open_engine(Settings.from_env())
    chosen = catalog_for(engine).parse_toolsets(toolsets)
    if engine.settings.bootstrap_key:
        ensure_demo_account(engine.store, engine.settings.bootstrap_key)
    api_key = os.environ.get("KRABS_API_KEY") or None
    principal = None
    if api_key:
        try:
            authenticate(engine.store, engine.keys, api_key)
        except KrabsError as exc:
            raise ValueError(f"KRABS_API_KEY: {exc.message}") from None
    else:
        principal = demo_principal(engine.store, engine.settings.bootstrap_key)
    krabs = KrabsMcp(
        engine, api_key=api_key, principal=principal, toolsets=chosen, process_run=new_id("run")
    )
    anyio.run(serve_stdio, engine, krabs)
