"""The Python SDK. Operations are not written out here: they come from the server's ``GET /v1/schema``
at runtime, so an operation added on the server is callable without a new SDK release::

    from krabs import Client

    krabs = Client("http://127.0.0.1:8787", "krabs_sk_…")
    ada = krabs.contact.upsert(identity={"kind": "email", "value": "ada@lovelace.dev"})
    krabs.call("contact.get", {"id": ada["id"]})
    krabs.businessProfile.get()
    plan = krabs.contact.delete(id=ada["id"], dry_run=True)

Mutations get an ``Idempotency-Key`` per logical call (yours, or a generated one), reused on every
retry of that call: connection failures, 5xx, 429 (honouring ``Retry-After`` up to ``max_wait``
seconds) and ``idempotency_key_in_use`` are retried ``max_retries`` times with jittered backoff, so a
retry can never write twice.
Errors raise ``KrabsAPIError`` (a subclass per family) carrying ``code``, ``message``, ``param`` and
``status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from krabs.client_async import AsyncClient
from krabs.client_base import Base, Namespace, Response
from krabs.client_errors import (
    ERROR_CLASSES,
    AlreadyUsed,
    ApprovalRequired,
    AuthError,
    Conflict,
    IdempotencyError,
    InternalError,
    InvalidArgument,
    KrabsAPIError,
    KrabsConnectionError,
    NotFound,
    RateLimited,
    RunClosed,
)

__all__ = [
    "ERROR_CLASSES",
    "AlreadyUsed",
    "ApprovalRequired",
    "AsyncClient",
    "AuthError",
    "Client",
    "Conflict",
    "IdempotencyError",
    "InternalError",
    "InvalidArgument",
    "KrabsAPIError",
    "KrabsConnectionError",
    "NotFound",
    "RateLimited",
    "Response",
    "RunClosed",
]


class Client(Base):
    """A synchronous krabs client. Use it as a context manager, or call ``close()``."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        run: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url, api_key, run=run, timeout=timeout, max_retries=max_retries, max_wait=max_wait
        )
        self._http = httpx.Client(base_url=self._url, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def schema(self) -> dict[str, Any]:
        """The server's contract (``GET /v1/schema``), fetched once."""
        if self._schema is None:
            response = self._send(
                "schema", lambda: self._http.get("/v1/schema", headers=self._headers())
            )
            self._schema = self._finish("schema", response, None).result
        return self._schema

    def call(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Call ``op`` with ``args`` and return its result (a dry-run returns the plan). ``wait``:
        seconds a call held at an approval gate may wait for a human's decision (``Prefer:
        wait``), answering the outcome instead of ``approval_required`` when one comes in time."""
        return self.request(
            op, args, dry_run=dry_run, idempotency_key=idempotency_key, run=run, wait=wait
        ).result

    def request(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> Response:
        """Like ``call`` but returns the ``Response`` (replayed flag, action id, run id)."""
        self.schema  # noqa: B018  (knowing which operations mutate decides the key)
        body, headers, key = self._prepare(op, args, dry_run, idempotency_key, run, wait)
        timeout = self._timeout_for(wait)
        response = self._send(
            op, lambda: self._http.post(f"/v1/{op}", json=body, headers=headers, timeout=timeout)
        )
        return self._finish(op, response, key)

    def _send(self, op: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send()
            except httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise KrabsConnectionError(op, self._url, exc) from exc
                time.sleep(wait)
                continue
            wait = self._wait(attempt, response)
            if wait is None:
                return response
            time.sleep(wait)

    def __getattr__(self, noun: str) -> Namespace:
        if noun.startswith("_"):
            raise AttributeError(noun)
        if noun not in self._nouns_loaded():
            raise AttributeError(
                f"the server has no operations on {noun!r}; nouns: {', '.join(sorted(self._nouns()))}"
            )
        return Namespace(self, noun)

    def _nouns_loaded(self) -> set[str]:
        self.schema  # noqa: B018
        return self._nouns()

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._nouns_loaded()})
