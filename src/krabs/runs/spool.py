"""Run events that wait for SQLite's writer instead of making their call wait.

A call that wrote nothing (a read, a failure, a dry-run) records its ``tool_call`` event in a small
write of its own. On SQLite there is one writer, and a long transaction (a million-row import) can
hold it for minutes: every ``job.get`` polling that import, every ``contact.list``, would stall
behind it. Such an event is handed to the spool instead: the call answers at once, and the spool's
thread appends its events, in the order they came, as soon as the writer is free, then publishes
them to live subscribers like any other. The queue is bounded: when it is full a call waits for
room, as it would have waited for the writer, so nothing is dropped."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from krabs.runs.events import RunEvent, append_event, take_pending
from krabs.store.db import Store

log = logging.getLogger("krabs.runs")

#: Events held at most; a call finding the spool full waits for room.
CAPACITY = 10_000
#: Events appended per transaction when the spool drains.
DRAIN_BATCH = 500


@dataclass(frozen=True)
class SpooledEvent:
    account_id: str
    run_id: str
    op: str
    action_id: str | None
    data: dict[str, Any]
    ts: str


class EventSpool:
    def __init__(self, store: Store, publish: Callable[[list[RunEvent]], None]) -> None:
        self.store, self.publish = store, publish
        self._queue: queue.Queue[SpooledEvent] = queue.Queue(CAPACITY)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: Spooled events not yet written (for ``drain`` and the tests).
        self._unwritten = 0
        self._idle = threading.Condition()

    def put(self, event: SpooledEvent) -> None:
        with self._idle:
            self._unwritten += 1
        if self._thread is None:
            self._start()
        self._queue.put(event)

    def drain(self, timeout: float) -> bool:
        """Wait until every spooled event is written (or ``timeout`` passes); true if none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unwritten == 0, timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="krabs-event-spool", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < DRAIN_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # the calls have happened; a log that cannot be kept is reported
                log.exception("could not record %d spooled run event(s)", len(batch))
            finally:
                with self._idle:
                    self._unwritten -= len(batch)
                    self._idle.notify_all()

    def _write(self, batch: list[SpooledEvent]) -> None:
        """All in one transaction (this thread may wait for the writer); if that fails, one by
        one, so one event that cannot be kept (its run was erased) does not take the rest along."""
        try:
            self._append(batch)
        except Exception:
            if len(batch) == 1:
                raise
            for e in batch:
                try:
                    self._append([e])
                except Exception:
                    log.exception("could not record a spooled %s event in run %s", e.op, e.run_id)

    def _append(self, batch: list[SpooledEvent]) -> None:
        with self.store.transaction(write=True) as conn:
            try:
                for e in batch:
                    append_event(
                        conn,
                        account_id=e.account_id,
                        run_id=e.run_id,
                        type="tool_call",
                        data=e.data,
                        op=e.op,
                        action_id=e.action_id,
                        ts=e.ts,
                    )
            except BaseException:
                take_pending(conn)  # rolled back: never to be published
                raise
            events = take_pending(conn)
        self.publish(events)
