"""``import.progress`` events: a long import attached to a run tells the run's live SSE stream how
far it got. They are live only (``id`` 0, never stored): the import's rows and its stored events
commit together at the end, and on SQLite nothing else can write while that transaction is open.
Each carries the run's last stored ``seq``, so a client resuming from it misses nothing stored."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from krabs.engine.uow import UnitOfWork, utcnow
from krabs.runs.events import RunEvent, last_seq
from krabs.runs.hub import hub_for

#: At most one event per this many seconds (and always the first batch).
EVERY_SECONDS = 1.0
#: Run id → the counts of the import running in it in this process, for ``job.get``: the import's
#: own transaction commits only at the end, so its progress cannot be read from the database.
LIVE: dict[str, dict[str, int]] = {}


def live_progress(run_id: str | None) -> dict[str, int] | None:
    """The counts of an import running in ``run_id`` in this process, or None."""
    return LIVE.get(run_id) if run_id is not None else None


def progress_events(
    uow: UnitOfWork, total: int | None, every: float | None = None
) -> Callable[[int, int], None] | None:
    """A progress callback for ``import_lines`` (rows done, rows failed so far) publishing
    ``import.progress`` to the call's run and keeping ``LIVE`` current, or None when the call has
    no run. The caller ends with ``forget(run_id)``."""
    run_id = uow.run_id
    gap = EVERY_SECONDS if every is None else every
    if run_id is None:
        return None
    found = last_seq(uow.conn, uow.account_id, run_id)
    seq = found[0] if found else 0
    hub = hub_for(uow.conn.engine)
    sent = [0.0]

    def report(done: int, failed: int) -> None:
        counts = {"rows_done": done, "rows_failed": failed}
        if total is not None:
            counts["rows_total"] = max(total, done)
        LIVE[run_id] = counts
        now = time.monotonic()
        if sent[0] and now - sent[0] < gap:
            return
        sent[0] = now
        data = {"op": "contact.import_csv", "action_id": uow.action_id, **counts}
        hub.publish(
            [
                RunEvent(
                    id=0,
                    seq=seq,
                    account_id=uow.account_id,
                    run_id=run_id,
                    type="import.progress",
                    ts=utcnow(),
                    data=json.dumps(data, separators=(",", ":")),
                    op="contact.import_csv",
                )
            ]
        )

    return report


def forget(run_id: str | None) -> None:
    """The import in ``run_id`` ended (committed, rolled back or failed)."""
    if run_id is not None:
        LIVE.pop(run_id, None)
