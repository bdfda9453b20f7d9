"""The engine: the one call path every transport uses. Its steps, in order:

    authenticate → resolve operation → scopes → rate limit → attach run → record event → validate
      → approval gate → idempotency guard → transaction [ event in the write's transaction
      → idempotent replay → audit payload → handler ] → audit chain → commit (grouped on SQLite)

Each step is ``step(call, next)``; ``Engine`` folds the list into one callable. ``call`` never raises:
every failure comes back as a typed error in the ``Outcome``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio.to_thread

from krabs.auth import KeyCache
from krabs.config import Settings
from krabs.contract.errors import KrabsError
from krabs.contract.registry import Registry, load_registry
from krabs.engine import steps
from krabs.engine.context import Call, CallRequest, Outcome
from krabs.engine.writer import GroupWriter
from krabs.ratelimit import RateLimiter
from krabs.runs.approval import ApprovalGate
from krabs.runs.attach import RunResolver
from krabs.runs.record import RecordEvent
from krabs.store.db import Store

log = logging.getLogger("krabs.engine")


class Engine:
    def __init__(self, store: Store, settings: Settings, registry: Registry | None = None) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry or load_registry()
        self.keys = KeyCache()
        record = RecordEvent(store)  # every call becomes a tool_call event of its run
        self.runs = RunResolver(store, record.spool)
        self.steps: list[Callable[[Call, steps.Next], Outcome]] = [
            steps.Authenticate(store, self.keys),
            steps.ResolveOperation(self.registry),
            steps.AuthorizeScope(),
            steps.RateLimit(RateLimiter(settings.rate_limit_per_second)),
            steps.AttachRun(self.runs),
            record,
            steps.Validate(),
            ApprovalGate(store),
            steps.IdempotencyGuard(store, settings),
            steps.Transaction(store, settings, self.keys, self.runs),
            record.in_transaction,
            steps.IdempotentReplay(settings),
            steps.AuditAppend(settings),
        ]
        handler: steps.Next = steps.RunHandler(settings)
        for step in reversed(self.steps):
            handler = functools.partial(_guarded, step, handler)
        self._pipeline = handler
        self._writer = (
            GroupWriter(store, self.call, settings.write_wait_seconds) if store.is_sqlite else None
        )

    async def acall(self, request: CallRequest) -> Outcome:
        """``call`` off the event loop. On SQLite, mutations queue for one writer thread that commits
        whatever has queued in one transaction (``krabs.engine.writer``): SQLite takes one writer at
        a time anyway, and dozens of threads contending for it cost more than the writes."""
        op = self.registry.get(request.op)
        if self._writer is not None and op is not None and op.mutates:
            return await self._writer.submit(request)
        return await anyio.to_thread.run_sync(self.call, request)

    def call(self, request: CallRequest) -> Outcome:
        try:
            outcome = self._pipeline(Call(request=request))
        except Exception:
            log.exception("internal error in %s (request %s)", request.op, request.request_id)
            outcome = Outcome.failure(
                KrabsError("internal", f"internal error; quote request id {request.request_id}")
            )
        return outcome


def _guarded(step: Callable[[Call, steps.Next], Outcome], next: steps.Next, call: Call) -> Outcome:
    """Run one step; a ``KrabsError`` it raises becomes the outcome (outer steps still see it)."""
    try:
        return step(call, next)
    except KrabsError as exc:
        return Outcome.failure(exc)
