"""The engine step that records every call as a ``tool_call`` event of its run.

It sits at two places of the call path. ``RecordEvent`` (outside the transaction, after the run is
attached) sees every call that reached a run; its ``in_transaction`` part (just inside the
transaction) appends a write's event in the write's own transaction, so a committed write always has
its event and a rolled-back one never does. Every other call — reads, dry-runs, idempotent replays,
failures before or inside the transaction — gets its event in a small write of its own after the
call. Events are handed to the live hub only once committed. Secrets (an operation's ``redact``
fields, undo tokens) never reach an event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from krabs.engine.context import Call, Outcome
from krabs.engine.uow import utcnow
from krabs.runs.events import RunEvent, append_event, take_pending
from krabs.runs.hub import Hub, hub_for
from krabs.runs.spool import EventSpool, SpooledEvent
from krabs.store.db import Store, WriterBusy
from krabs.store.tables import api_keys

log = logging.getLogger("krabs.runs")

Next = Callable[[Call], Outcome]

#: Result fields that are capabilities, not data: kept out of events like ``redact`` fields.
_NEVER_RECORDED = ("undo_token",)


def after_commit(store: Store, fn: Callable[[], None]) -> None:
    """Run ``fn`` once this thread's writes are durable: at once, or at the end of a group commit
    where the store batches transactions (``Store.after_commit``)."""
    hook = getattr(store, "after_commit", None)
    if hook is None:
        fn()
    else:
        hook(fn)


class RecordEvent:
    """Outer part: record what ``in_transaction`` did not, publish, and note the key's last use."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub: Hub = hub_for(store.engine)
        self._recorded: dict[str, tuple[dict[str, Any], list[RunEvent]]] = {}
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self.in_transaction = _InTransaction(self)
        self.spool = EventSpool(store, self.hub.publish)

    def __call__(self, call: Call, next: Next) -> Outcome:
        try:
            outcome = next(call)
        except BaseException:
            self._take(call)
            raise
        recorded = self._take(call)
        # An idempotent replay is a new call of the run it is made in, answered from the stored
        # response: its event goes there (marked replayed, naming the original run if another).
        original = outcome.run_id if outcome.replayed else None
        run_id = call.run_id or outcome.run_id
        if outcome.replayed and call.run_id:
            outcome.run_id = call.run_id
        if recorded is not None:
            event, events = recorded
            outcome.event = event
            after_commit(self.store, lambda: self.hub.publish(events))
        elif run_id and call.principal is not None and call.operation is not None:
            outcome.event = self._record_alone(call, outcome, run_id, original)
        if outcome.ok and not requested_dry_run(call) and call.principal and call.who.key_id:
            self._touch(call.who.key_id)
        return outcome

    def _take(self, call: Call) -> tuple[dict[str, Any], list[RunEvent]] | None:
        with self._lock:
            return self._recorded.pop(call.request.request_id, None)

    def _keep(self, call: Call, event: dict[str, Any], events: list[RunEvent]) -> None:
        with self._lock:
            self._recorded[call.request.request_id] = (event, events)

    def _record_alone(
        self, call: Call, outcome: Outcome, run_id: str, original: str | None = None
    ) -> dict[str, Any] | None:
        event = tool_call(call, outcome)
        if original and original != run_id:
            event["original_run_id"] = original
        ts = utcnow()
        try:
            with self.store.transaction_unless_busy() as conn:
                if conn.dialect.name == "postgresql":
                    # Only the log of a call that wrote nothing: not worth waiting for the disk.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                ident, seq = append_event(
                    conn,
                    account_id=call.who.account_id,
                    run_id=run_id,
                    type="tool_call",
                    data=event,
                    op=call.op.name,
                    action_id=event["action_id"],
                    ts=ts,
                )
                events = take_pending(conn)
        except WriterBusy:
            # A long transaction (an import) holds SQLite's writer: answer now, log once it ends.
            self.spool.put(
                SpooledEvent(
                    call.who.account_id, run_id, call.op.name, event["action_id"], event, ts
                )
            )
            return {**event, "seq": None, "id": None, "run_id": run_id, "spooled": True}
        except Exception:  # the call has happened; failing to log it must not change its outcome
            log.exception("could not record %s in run %s", call.op.name, run_id)
            return None
        after_commit(self.store, lambda: self.hub.publish(events))
        return {**event, "seq": seq, "id": ident, "run_id": run_id}

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        previous = self._touched.get(key_id, 0.0)
        if now - previous < 60:
            return
        self._touched[key_id] = now
        try:
            with self.store.transaction_unless_busy(patience=0.05) as conn:
                conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=utcnow())
                )
        except WriterBusy:  # a long transaction holds the writer: a later call notes the use
            self._touched[key_id] = previous


class _InTransaction:
    """Inner part: a write that is about to commit appends its event in its own transaction."""

    def __init__(self, owner: RecordEvent) -> None:
        self.owner = owner

    def __call__(self, call: Call, next: Next) -> Outcome:
        outcome = next(call)
        uow = call.uow
        assert uow is not None
        commits = outcome.ok and call.op.mutates and not call.dry_run and not outcome.replayed
        if not commits or not call.run_id:
            take_pending(uow.conn)  # rolled back with the transaction
            return outcome
        event = tool_call(call, outcome)
        ident, seq = append_event(
            uow.conn,
            account_id=call.who.account_id,
            run_id=call.run_id,
            type="tool_call",
            data=event,
            op=call.op.name,
            action_id=outcome.action_id,
            ts=uow.now,
        )
        published = {**event, "seq": seq, "id": ident, "run_id": call.run_id}
        self.owner._keep(call, published, take_pending(uow.conn))
        return outcome


def requested_dry_run(call: Call) -> bool:
    raw = call.request.args
    return call.request.dry_run or (isinstance(raw, dict) and raw.get("dry_run") is True)


def _safe(call: Call, result: dict[str, Any]) -> dict[str, Any]:
    redacted = call.op.redacted(result)
    return {k: v for k, v in redacted.items() if k not in _NEVER_RECORDED}


def tool_call(call: Call, outcome: Outcome) -> dict[str, Any]:
    """The ``tool_call`` event's own fields (``seq``, ``ts`` and ``type`` are the event's)."""
    raw = call.request.args if isinstance(call.request.args, dict) else {}
    # Bulk text (a CSV, a vCard, a raw email) is recorded as its digest and size (digest_args).
    args = {k: v for k, v in call.op.digested(raw).items() if k != "dry_run"}
    event: dict[str, Any] = {
        "op": call.op.name,
        "args": args,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
        "action_id": outcome.action_id,
        "dry_run": requested_dry_run(call),
        "replayed": outcome.replayed,
        "agent": call.who.agent_id,
    }
    if outcome.ok:
        result = outcome.result or {}
        if result.get("dry_run") is True and isinstance(result.get("result"), dict):
            result = {**result, "result": _safe(call, result["result"])}
        event["result"] = _safe(call, result)
    else:
        assert outcome.error is not None
        event["error"] = {
            "code": outcome.error.code,
            "message": outcome.error.message,
            "param": outcome.error.param,
        }
    return event
