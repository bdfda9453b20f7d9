"""One contract call over MCP (streamable HTTP), with the official SDK's client, for the compliance
suite: it must give what ``POST /v1/{op}`` gives."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from krabs.transports.mcp_tools import tool_name

MODERN = "2026-07-28"


def mcp_endpoint(url: str) -> str:
    """``http://host:port`` (the API's base URL) or the ``/mcp`` endpoint itself."""
    base = url.rstrip("/")
    return base if base.endswith("/mcp") else f"{base}/mcp"


async def call_over_mcp(
    url: str,
    api_key: str,
    op: str,
    args: dict[str, Any],
    *,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    era: str = MODERN,
    timeout: float = 60,
) -> dict[str, Any]:
    """``{"result": …}`` or ``{"error": {code, message, param, …}}``, plus ``"meta"``: the result's
    ``krabs/*`` metadata without the prefix (``run_id``, ``action_id``, ``replayed``, ``op``). ``era`` is ``"2026-07-28"`` (stateless, the default) or
    ``"legacy"`` (a 2025-11-25 session, closed after the call). An unknown tool, a protocol error
    over MCP, comes back as ``unknown_operation`` like over HTTP."""
    arguments = dict(args)
    if idempotency_key is not None:
        arguments["idempotency_key"] = idempotency_key
    meta: Any = {"krabs/run_id": run_id} if run_id else None
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {api_key}"}, timeout=httpx2.Timeout(timeout)
    )
    with anyio.fail_after(timeout):
        async with (
            http,
            Client(
                streamable_http_client(mcp_endpoint(url), http_client=http),
                mode=era,
                read_timeout_seconds=timeout,
            ) as client,
        ):
            try:
                result = await client.call_tool(tool_name(op), arguments, meta=meta)
            except MCPError as exc:
                if not exc.message.startswith("Unknown tool"):
                    raise
                error = {"code": "unknown_operation", "message": exc.message, "param": "op"}
                return {"error": {**error, "op": op, "mcp_code": exc.code}, "meta": {}}
    body = result.structured_content if isinstance(result.structured_content, dict) else {}
    out: dict[str, Any] = {"error": body.get("error")} if result.is_error else {"result": body}
    meta = result.meta or {}
    out["meta"] = {k.removeprefix("krabs/"): v for k, v in meta.items() if k.startswith("krabs/")}
    return out


def call_over_mcp_sync(
    url: str, api_key: str, op: str, args: dict[str, Any], **options: Any
) -> dict[str, Any]:
    """``call_over_mcp`` for synchronous callers (not from inside an event loop)."""

    async def call() -> dict[str, Any]:
        return await call_over_mcp(url, api_key, op, args, **options)

    return anyio.run(call)
