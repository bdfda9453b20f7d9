"""GET aliases for the signed audit log (``/v1/audit/checkpoint``, ``/v1/audit/key``,
``/v1/audit/proof?action=…`` or ``?from=N&to=M``): the same operations as ``POST /v1/audit.*``, with
their arguments taken from the query string."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from krabs.engine import CallRequest, Engine

#: Query parameter -> operation argument, where they differ.
RENAMED = {"from": "from_size", "to": "to_size"}


def _args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        key = RENAMED.get(name, name)
        args[key] = int(value) if value.isascii() and value.isdigit() and len(value) < 20 else value
    return args


def audit_routes(engine: Engine) -> list[Route]:
    from krabs.transports.http import _request_id, bearer, render

    def alias(op: str) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            request_id = _request_id(request)
            call = CallRequest(
                op=op,
                args=_args(request),
                api_key=bearer(request),
                transport="http",
                request_id=request_id,
            )
            return render(await engine.acall(call), op, request_id)

        return route

    return [
        Route(f"/v1/audit/{name}", alias(f"audit.{name}"), methods=["GET"])
        for name in ("checkpoint", "key", "proof")
    ]
