"""What the sync and async SDK clients share: settings, the schema, request building, the retry
policy, and the namespaces (``client.contact.create``) generated from the schema."""

from __future__ import annotations

import math
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from krabs.client_errors import KrabsAPIError, error_from_response

#: Statuses worth retrying: the call may not have run (5xx) or was refused for now (429).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0


@dataclass(frozen=True)
class Response:
    """One successful call: the result plus what the server said about it."""

    result: dict[str, Any]
    status: int
    op: str
    replayed: bool = False
    action_id: str | None = None
    run_id: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Base:
    """What the sync and async clients share: configuration, the schema, request building.
    Settings live in underscored attributes, so no noun (``client.api_key``, ``client.run``) is
    shadowed by them."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        run: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_wait: float = 30.0,
    ) -> None:
        url = url or os.environ.get("KRABS_URL")
        if not url:
            raise ValueError("pass url= or set KRABS_URL, e.g. http://127.0.0.1:8787")
        self._url = url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("KRABS_API_KEY")
        self._run = run if run is not None else (os.environ.get("KRABS_RUN_ID") or None)
        self._timeout = timeout
        self._max_retries = max(0, max_retries)
        self._max_wait = max_wait
        self._schema: dict[str, Any] | None = None

    # -- the schema ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "krabs-python"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _operations(self) -> dict[str, Any]:
        assert self._schema is not None
        return dict(self._schema.get("operations", {}))

    def _nouns(self) -> set[str]:
        return {name.split(".", 1)[0] for name in self._operations()}

    def _mutates(self, op: str) -> bool:
        entry = self._operations().get(op) if self._schema is not None else None
        # Unknown to the schema (or schema not loaded): treat as a mutation, so it gets a key.
        return True if entry is None else bool(entry.get("mutates"))

    # -- one call --------------------------------------------------------------------------

    def _prepare(
        self,
        op: str,
        args: dict[str, Any] | None,
        dry_run: bool,
        idempotency_key: str | None,
        run: str | None,
        wait: float | None = None,
    ) -> tuple[dict[str, Any], dict[str, str], str | None]:
        body = dict(args or {})
        if dry_run:
            body["dry_run"] = True
        headers = self._headers()
        if wait:
            if not 0 < wait < 1e6:
                raise ValueError("wait must be a number of seconds from 0")
            headers["Prefer"] = f"wait={math.ceil(wait)}"  # RFC 7240; whole seconds
        run = run or self._run
        if run:
            headers["X-Krabs-Run"] = run
        key = idempotency_key
        if key is None and self._mutates(op) and not dry_run:
            key = f"sdk_{uuid.uuid4().hex}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return body, headers, key

    @staticmethod
    def _finish(op: str, response: httpx.Response, key: str | None) -> Response:
        if response.status_code >= 400:
            raise error_from_response(op, response)
        try:
            result = response.json()
        except ValueError:
            raise KrabsAPIError(
                "internal", f"{op}: the server answered with non-JSON", status=response.status_code
            ) from None
        if isinstance(result, dict) and isinstance(result.get("error"), dict):
            raise error_from_response(op, response)  # approval_required arrives as a 202
        h = response.headers
        return Response(
            result=result,
            status=response.status_code,
            op=op,
            replayed=h.get("idempotent-replayed", "").lower() == "true",
            action_id=h.get("x-krabs-action"),
            run_id=h.get("x-krabs-run"),
            request_id=h.get("x-request-id"),
            idempotency_key=key,
            headers=dict(h),
        )

    def _timeout_for(self, wait: float | None) -> float:
        """A call that may wait at an approval gate gets that much longer to answer."""
        return self._timeout + (math.ceil(wait) if wait else 0)

    def _wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (1-based), or None when not retryable."""
        if attempt > self._max_retries:
            return None
        if response is not None:
            retryable = response.status_code in RETRY_STATUSES or in_use(response)
            if not retryable:
                return None
            after = response.headers.get("retry-after", "")
            if after.replace(".", "", 1).isdigit():
                # Waiting longer than max_wait is the caller's decision: raise RateLimited instead.
                return float(after) if float(after) <= self._max_wait else None
        return min(MAX_BACKOFF, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def in_use(response: httpx.Response) -> bool:
    if response.status_code != 409:
        return False
    try:
        return bool(response.json()["error"]["code"] == "idempotency_key_in_use")
    except (ValueError, KeyError, TypeError):
        return False


def describe(entry: dict[str, Any], name: str) -> str:
    fields = entry.get("input", {}).get("properties", {})
    lines = [entry.get("summary", ""), "", entry.get("description", ""), "", "Arguments:"]
    for fname, prop in fields.items():
        lines.append(f"  {fname}: {prop.get('description') or prop.get('title', '')}")
    codes = ", ".join(e["code"] for e in entry.get("errors", []))
    lines += ["", f"Errors: {codes}", f"Operation: {name}"]
    return "\n".join(lines).strip()


class _Caller(Protocol):
    def _operations(self) -> dict[str, Any]: ...

    def call(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
    ) -> Any: ...


class Namespace:
    """``client.contact``: its verbs are the schema's ``contact.*`` operations."""

    def __init__(self, client: _Caller, noun: str) -> None:
        self._client, self._noun = client, noun

    def _verbs(self) -> dict[str, Any]:
        prefix = self._noun + "."
        return {
            name[len(prefix) :]: entry
            for name, entry in self._client._operations().items()
            if name.startswith(prefix)
        }

    def __getattr__(self, verb: str) -> Callable[..., Any]:
        verbs = self._verbs()
        if verb not in verbs:
            raise AttributeError(
                f"no operation {self._noun}.{verb}; {self._noun} has {', '.join(sorted(verbs))}"
            )
        name = f"{self._noun}.{verb}"
        client = self._client

        def operation(
            args: dict[str, Any] | None = None,
            /,
            *,
            dry_run: bool = False,
            idempotency_key: str | None = None,
            **fields: Any,
        ) -> Any:
            # No ``run=`` here: operations have fields of that name (action.list); the run is the
            # client's, or ``client.call(..., run=…)``.
            return client.call(
                name, {**(args or {}), **fields}, dry_run=dry_run, idempotency_key=idempotency_key
            )

        operation.__name__ = verb
        operation.__qualname__ = name
        operation.__doc__ = describe(verbs[verb], name)
        return operation

    def __dir__(self) -> list[str]:
        return sorted(self._verbs())

    def __repr__(self) -> str:
        return f"<krabs {self._noun}: {', '.join(sorted(self._verbs()))}>"
