"""Run events that wait for SQLite's writer instead of making their call wait.

A call that wrote nothing (a read, a failure, a dry-run) records its ``tool_call`` event in a small
write of its own. On SQLite there is one writer, and a long transaction (a million-row import) can
hold it for minutes: every ``job.get`` polling that import, every ``contact.list``, would stall
behind it. Such an event is handed to the spool instead and the call answers at once. So is the
creation of the run such a read belongs to, when it is its agent's first call of the day (the day's
default run) or an MCP session's first call (``krabs.runs.attach``).

Whoever takes the writer next writes the spooled events first (``Store.add_before_write``): the spool's
own thread, woken by the first event, or any write that gets there before it. So no write is ever
ordered before an event spooled earlier: seqs follow the calls, and a GDPR erasure cannot run
before an event naming the erased contact is written (it then scrubs it like any other). The queue
is bounded: when it is full a call waits for room, as it would have waited for the writer, so
nothing is dropped."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy.engine import Connection

from krabs.daemon import LazyDaemon
from krabs.runs.events import RunEvent, append_event, take_pending
from krabs.store.db import Store

log = logging.getLogger("krabs.runs")

#: Events held at most; a call finding the spool full waits for room.
CAPACITY = 10_000


@dataclass(frozen=True)
class SpooledEvent:
    account_id: str
    run_id: str
    op: str
    action_id: str | None
    data: dict[str, Any]
    ts: str


@dataclass(frozen=True)
class SpooledRun:
    """A run first needed by a read while a long transaction held the writer (a day's default run,
    an MCP session's): the read answered with ``run_id`` at once, and ``create`` makes the run ahead
    of the events naming it. ``settled`` hears once whether it was written (committed) or given up."""

    account_id: str
    run_id: str
    create: Callable[[Connection], None]
    settled: Callable[[bool], None]
    op: str = "run.create"


Spooled: TypeAlias = SpooledEvent | SpooledRun


class EventSpool:
    def __init__(self, store: Store, publish: Callable[[list[RunEvent]], None]) -> None:
        self.store, self.publish = store, publish
        self._queue: queue.Queue[Spooled] = queue.Queue(CAPACITY)
        self._daemon = LazyDaemon(self._run, "krabs-event-spool")
        self._wake = threading.Event()
        #: Spooled items (events, runs) not yet written.
        self._unwritten = 0
        self._idle = threading.Condition()
        store.add_before_write(self.write_pending)

    def put(self, event: Spooled) -> None:
        with self._idle:
            self._unwritten += 1
        self._queue.put(event)
        self._wake.set()
        self._daemon.ensure()

    def drain(self, timeout: float) -> bool:
        """Wait until every spooled event is written (or ``timeout`` passes); true if none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unwritten == 0, timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                # On SQLite taking the writer is enough (``write_pending`` is its before-write hook).
                with self.store.connect(write=True) as conn:
                    self.write_pending(conn)
            except Exception:
                log.exception("could not take the writer for spooled run events")

    def write_pending(self, conn: Connection) -> None:
        """With the writer held, before anything else is written on ``conn``: append every spooled
        event, in order. Never raises: the writer's own work goes on whatever happens here."""
        if not self._unwritten:
            return
        batch: list[Spooled] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        try:
            self._write(conn, batch)
        finally:
            with self._idle:
                self._unwritten -= len(batch)
                self._idle.notify_all()

    def _write(self, conn: Connection, batch: list[Spooled]) -> None:
        """All in one transaction; if that fails, one by one, so one event that cannot be kept
        (its run is gone) does not take the rest along."""
        try:
            self._append(conn, batch)
            return
        except Exception:
            if len(batch) == 1:
                log.exception("could not record a spooled %s event", batch[0].op)
                _settle(batch, written=False)
                return
        for e in batch:
            try:
                self._append(conn, [e])
            except Exception:
                log.exception("could not record a spooled %s event in run %s", e.op, e.run_id)
                _settle([e], written=False)

    def _append(self, conn: Connection, batch: list[Spooled]) -> None:
        with conn.begin():
            try:
                for e in batch:
                    if isinstance(e, SpooledRun):
                        e.create(conn)
                        continue
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
        _settle(batch, written=True)
        self.publish(events)


def _settle(items: list[Spooled], *, written: bool) -> None:
    for e in items:
        if isinstance(e, SpooledRun):
            e.settled(written)
