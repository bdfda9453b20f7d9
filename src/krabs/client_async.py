"""The asynchronous SDK client: ``Client``'s surface, every call awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from krabs.client_base import Base, Namespace, Response
from krabs.client_errors import KrabsConnectionError


class AsyncClient(Base):
    """The asynchronous twin of ``Client``: the same surface, every call awaited."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        run: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url, api_key, run=run, timeout=timeout, max_retries=max_retries, max_wait=max_wait
        )
        self._http = httpx.AsyncClient(base_url=self._url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        await self.load_schema()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def load_schema(self) -> dict[str, Any]:
        """The server's contract (``GET /v1/schema``), fetched once."""
        if self._schema is None:
            response = await self._send(
                "schema", lambda: self._http.get("/v1/schema", headers=self._headers())
            )
            self._schema = self._finish("schema", response, None).result
        return self._schema

    async def call(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        response = await self.request(
            op, args, dry_run=dry_run, idempotency_key=idempotency_key, run=run, wait=wait
        )
        return response.result

    async def request(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> Response:
        await self.load_schema()
        body, headers, key = self._prepare(op, args, dry_run, idempotency_key, run, wait)
        timeout = self._timeout_for(wait)
        response = await self._send(
            op, lambda: self._http.post(f"/v1/{op}", json=body, headers=headers, timeout=timeout)
        )
        return self._finish(op, response, key)

    async def _send(self, op: str, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await send()
            except httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise KrabsConnectionError(op, self._url, exc) from exc
                await asyncio.sleep(wait)
                continue
            wait = self._wait(attempt, response)
            if wait is None:
                return response
            await asyncio.sleep(wait)

    def __getattr__(self, noun: str) -> Namespace:
        """``client.contact.create(...)`` returns a coroutine. The schema must be loaded first:
        ``async with AsyncClient(...)`` does it, or ``await client.load_schema()``."""
        if noun.startswith("_"):
            raise AttributeError(noun)
        if self._schema is None:
            raise AttributeError(
                f"{noun}: await client.load_schema() before using operation namespaces"
            )
        if noun not in self._nouns():
            raise AttributeError(
                f"the server has no operations on {noun!r}; nouns: {', '.join(sorted(self._nouns()))}"
            )
        return Namespace(self, noun)
