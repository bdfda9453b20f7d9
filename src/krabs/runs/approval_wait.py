"""A caller that waits at an approval gate: the gated call is held (up to a bound the caller asks
for, HTTP's ``Prefer: wait=N``) until a human decides, then runs again as its own retry would (same
request, so the same Idempotency-Key or the same arguments in the same run) and answers with the
outcome: executed once approved, ``approval_rejected`` once rejected, still ``approval_required``
when the wait ran out.

The waiter is woken by the decision's ``run.input`` event on the live hub, which carries it from
this node's writers and, on PostgreSQL, from every other node (LISTEN/NOTIFY). It subscribes before
it reads the approval's state, so a decision that lands in between is seen either way. A decision
no hub carries here (on SQLite, one made by another process on the same file: ``krabs approval
decide`` in embedded mode, a second server) is found by a look at the approval every
``RECHECK_SECONDS``. A waiter never holds a database connection or a worker thread while it waits.
The same wait serves every transport: HTTP's ``Prefer: wait=N``, MCP's ``_meta["krabs/wait"]``,
the SDK's and the CLI's ``wait``."""

from __future__ import annotations

import asyncio
import json
import time

import sqlalchemy as sa

from krabs.engine import CallRequest, Engine, Outcome
from krabs.runs.hub import hub_for
from krabs.store.tables import approvals

#: How often a waiter looks at its approval itself, for decisions no hub of this process hears.
RECHECK_SECONDS = 1.0


async def acall_waiting(engine: Engine, request: CallRequest, wait: float) -> Outcome:
    """``engine.acall(request)``; if the gate holds it, wait up to ``wait`` seconds (capped by
    ``settings.approval_wait_max_seconds``) for the decision and answer the retry's outcome."""
    outcome = await engine.acall(request)
    wait = min(wait, engine.settings.approval_wait_max_seconds)
    error = outcome.error
    if wait <= 0 or error is None or error.code != "approval_required":
        return outcome
    approval_id, run_id = error.details.get("approval_id"), error.details.get("run_id")
    if not isinstance(approval_id, str) or not isinstance(run_id, str):
        return outcome
    if await decided(engine, approval_id, run_id, time.monotonic() + wait):
        return await engine.acall(request)
    return outcome


async def decided(engine: Engine, approval_id: str, run_id: str, deadline: float) -> bool:
    """Whether the approval is decided by ``deadline`` (monotonic), woken by its ``run.input``."""
    db = engine.store.engine
    hub = hub_for(db)
    await hub.ensure_listening()

    def status() -> tuple[str, str] | None:
        with db.connect() as conn:
            row = conn.execute(
                sa.select(approvals.c.account_id, approvals.c.status).where(
                    approvals.c.id == approval_id
                )
            ).first()
        return (str(row[0]), str(row[1])) if row is not None else None

    while True:
        found = await asyncio.to_thread(status)
        if found is None:
            return False
        account_id, state = found
        if state != "pending":
            return True
        with hub.subscribe(account_id, run_id, maxsize=256) as sub:
            # Subscribed before this second look: a decision committed in between is in the table.
            again = await asyncio.to_thread(status)
            if again is None or again[1] != "pending":
                return again is not None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    event = await asyncio.wait_for(sub.get(), min(left, RECHECK_SECONDS))
                except TimeoutError:  # decided where no hub of this process hears it?
                    again = await asyncio.to_thread(status)
                    if again is None or again[1] != "pending":
                        return again is not None
                    continue
                if event is None:  # cut off for falling behind a busy run: look again
                    break
                if event.type == "run.input" and _names(event.data, approval_id):
                    return True


def _names(data: str, approval_id: str) -> bool:
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("approval_id") == approval_id
