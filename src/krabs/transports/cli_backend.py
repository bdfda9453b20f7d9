"""Where the CLI's calls go. Remote mode (``KRABS_URL`` set) uses the Python SDK with
``KRABS_API_KEY``. Embedded mode (no ``KRABS_URL``) opens the local database (``KRABS_DATA_DIR``,
default ``./krabs-data``, or ``KRABS_DATABASE_URL``) and calls the same engine ``krabs serve`` uses,
so both modes give the same results.

The embedded principal: with ``KRABS_API_KEY`` set, that key (authenticated as over HTTP, scopes and
all); otherwise the demo account's admin — the oldest live admin key of the oldest account named
"Demo account" (else of the oldest account), created on first use exactly as ``krabs serve`` does,
whose secret is then printed once on stderr."""

from __future__ import annotations

import os
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from krabs.client_errors import KrabsAPIError, make_error

if TYPE_CHECKING:
    from krabs.client import Client
    from krabs.engine import Engine
    from krabs.engine.context import Principal
    from krabs.store.db import Store


class Backend(Protocol):
    mode: str

    def schema(self) -> dict[str, Any]: ...

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]: ...


def local_schema() -> dict[str, Any]:
    """The schema of this installation's registry (no database needed)."""
    from krabs.contract.registry import load_registry
    from krabs.contract.schema import schema_document

    return schema_document(load_registry())


class RemoteBackend:
    mode = "remote"

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url, self.api_key = url, api_key

    @cached_property
    def client(self) -> Client:
        from krabs.client import Client

        return Client(self.url, self.api_key, run="", max_retries=2, max_wait=5)

    def schema(self) -> dict[str, Any]:
        return self.client.schema

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        return self.client.call(
            op, args, dry_run=dry_run, idempotency_key=idempotency_key, run=run or None, wait=wait
        )


class EmbeddedBackend:
    mode = "embedded"

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key

    def schema(self) -> dict[str, Any]:
        return local_schema()

    @cached_property
    def engine(self) -> Engine:
        from krabs.app import open_engine
        from krabs.config import Settings

        return open_engine(Settings.from_env())

    @cached_property
    def principal(self) -> Principal | None:
        if self.api_key:
            return None
        return demo_principal(self.engine.store, self.engine.settings.bootstrap_key)

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        run: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        from krabs.engine import CallRequest

        request = CallRequest(
            op=op,
            args=args,
            api_key=self.api_key,
            principal=self.principal,
            idempotency_key=idempotency_key,
            dry_run=dry_run,
            run_id=run or None,
            transport="cli",
        )
        if wait:  # held at an approval gate: the decision is found as a server's waiter finds it
            import asyncio

            from krabs.runs.approval_wait import acall_waiting

            outcome = asyncio.run(acall_waiting(self.engine, request, wait))
        else:
            outcome = self.engine.call(request)
        if outcome.error is not None:
            e = outcome.error
            raise make_error(
                e.code,
                e.message,
                param=e.param,
                status=e.status,
                op=op,
                request_id=request.request_id,
                retry_after=outcome.retry_after,
                body={"error": e.to_dict(op=op, request_id=request.request_id)},
            )
        assert outcome.result is not None
        return outcome.result


def demo_principal(store: Store, bootstrap_key: str | None) -> Principal:
    import sqlalchemy as sa

    from krabs.accounts import DEMO_ACCOUNT_NAME, ensure_demo_account
    from krabs.auth import DEFAULT_AGENT, expand_scopes
    from krabs.engine.context import Principal
    from krabs.store.tables import accounts, api_keys

    created = ensure_demo_account(store, bootstrap_key)
    if created is not None and created.secret != bootstrap_key:
        print(
            f"created demo account {created.account_id}; its admin API key (shown once):\n"
            f"{created.secret}",
            file=sys.stderr,
        )
    with store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(accounts.c.id, accounts.c.name).order_by(accounts.c.created_at, accounts.c.id)
        ).all()
        if not rows:
            raise KrabsAPIError("internal", "the local database has no account")
        account_id = next((r.id for r in rows if r.name == DEMO_ACCOUNT_NAME), rows[0].id)
        keys = conn.execute(
            sa.select(api_keys.c.id, api_keys.c.agent_id, api_keys.c.scopes)
            .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at, api_keys.c.id)
        ).all()
    admin = next((k for k in keys if "admin" in list(k.scopes)), None)
    return Principal(
        account_id=account_id,
        key_id=admin.id if admin else None,
        agent_id=admin.agent_id if admin else DEFAULT_AGENT,
        scopes=expand_scopes(["admin"]),
    )


def backend_from_env() -> Backend:
    url = os.environ.get("KRABS_URL") or None
    key = os.environ.get("KRABS_API_KEY") or None
    if url:
        return RemoteBackend(url, key)
    return EmbeddedBackend(key)
