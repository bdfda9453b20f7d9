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


def progress_events(
    uow: UnitOfWork, total: int | None, every: float | None = None
) -> Callable[[int], None] | None:
    """A progress callback for ``import_lines`` publishing ``import.progress`` (rows done, total)
    to the call's run, or None when the call has no run."""
    run_id = uow.run_id
    gap = EVERY_SECONDS if every is None else every
    if run_id is None:
        return None
    found = last_seq(uow.conn, uow.account_id, run_id)
    seq = found[0] if found else 0
    hub = hub_for(uow.conn.engine)
    sent = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if sent[0] and now - sent[0] < gap:
            return
        sent[0] = now
        data = {"op": "contact.import_csv", "action_id": uow.action_id, "rows_done": done}
        if total is not None:
            data["rows_total"] = max(total, done)
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
